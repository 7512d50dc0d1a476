package rds_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/internal/retryable"
	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/rds/sim"
)

// TestSimProfiles runs every operation against each RouterOS release the
// simulator models and checks the commands fit the release: JSON reads
// with json.no-string-conversion only from 7.17, the NQN property under
// the release's name.
func TestSimProfiles(t *testing.T) {
	for _, v := range sim.Versions {
		t.Run(v, func(t *testing.T) {
			srv := startSim(t, sim.Options{JSON: true, Version: v})
			c := newClient(t, clientConfig(t, srv))
			ctx := ctxT(t)
			p, err := c.Profile(ctx)
			if err != nil || !strings.HasPrefix(p.Raw, v) {
				t.Fatalf("Profile = %+v, %v", p, err)
			}
			if lp, ok := c.LastProfile(); !ok || lp.Raw != p.Raw {
				t.Errorf("LastProfile = %+v, %v", lp, ok)
			}
			if err := c.Create(ctx, createReq("pvc-a", gib)); err != nil {
				t.Fatalf("Create: %v", err)
			}
			if err := c.SetExport(ctx, rds.ExportRequest{Slot: "pvc-a", Port: 4421, NQN: nqnPfx + "pvc-a-2"}); err != nil {
				t.Fatalf("SetExport: %v", err)
			}
			if err := c.Grow(ctx, "pvc-a", 2*gib); err != nil {
				t.Fatalf("Grow: %v", err)
			}
			d, err := c.Get(ctx, "pvc-a")
			if err != nil || d.NQN != nqnPfx+"pvc-a-2" || d.Port != 4421 || d.Size != 2*gib {
				t.Fatalf("Get = %+v, %v", d, err)
			}
			inv, err := c.List(ctx)
			if err != nil || len(inv.Disks) != 1 || inv.Disks[0].NQN != nqnPfx+"pvc-a-2" || len(inv.Files) != 1 || inv.Files[0].Size == 0 {
				t.Fatalf("List = %+v, %v", inv, err)
			}
			json := p.JSONReads()
			for _, cmd := range srv.Commands() {
				switch {
				case strings.HasPrefix(cmd, "/disk add") || strings.HasPrefix(cmd, "/disk set") && strings.Contains(cmd, "nvme-tcp-export=yes"):
					if !strings.Contains(cmd, " "+srv.NQNProperty()+"=") {
						t.Errorf("%s: NQN not sent as %s: %s", v, srv.NQNProperty(), cmd)
					}
				case strings.Contains(cmd, "print detail"):
					if got := strings.Contains(cmd, ":serialize to=json options=json.no-string-conversion"); got != json {
						t.Errorf("%s: JSON read %v, want %v: %s", v, got, json, cmd)
					}
				}
			}
			if err := c.Delete(ctx, "pvc-a", base+"/pvc-a.img"); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if inv, err := c.List(ctx); err != nil || len(inv.Disks)+len(inv.Files) != 0 {
				t.Fatalf("List after Delete = %+v, %v", inv, err)
			}
		})
	}
}

// TestSimNumberLikeSlot: a slot that looks like a number ("1e5") survives
// every release. :serialize without json.no-string-conversion (7.13..7.16)
// prints it as 100000.000000, so the client reads print detail there.
func TestSimNumberLikeSlot(t *testing.T) {
	for _, v := range sim.Versions {
		t.Run(v, func(t *testing.T) {
			srv := startSim(t, sim.Options{JSON: true, Version: v})
			cfg := clientConfig(t, srv)
			cfg.SlotPrefix = ""
			c := newClient(t, cfg)
			ctx := ctxT(t)
			r := rds.CreateRequest{Slot: "1e5", FilePath: base + "/1e5.img", Size: gib, Port: 4420, NQN: nqnPfx + "1e5"}
			if err := c.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
			if d, err := c.Get(ctx, "1e5"); err != nil || d.Slot != "1e5" {
				t.Fatalf("Get = %+v, %v", d, err)
			}
			inv, err := c.List(ctx)
			if err != nil || len(inv.Disks) != 1 || inv.Disks[0].Slot != "1e5" {
				t.Fatalf("List = %+v, %v", inv, err)
			}
			if v == "7.16" {
				// The hazard itself: plain :serialize mangles the slot.
				out := srv.Exec(`:put [:serialize to=json [/disk print detail as-value where slot="1e5"]]`)
				if !strings.Contains(out, `"slot":100000.000000`) {
					t.Errorf("7.16 :serialize kept the slot a string: %s", out)
				}
			}
		})
	}
}

// TestSimOldReleaseRefusal: RouterOS's bare "expected end of command" for
// a command an old release lacks comes back naming the release and what
// is needed.
func TestSimOldReleaseRefusal(t *testing.T) {
	srv := startSim(t, sim.Options{JSON: true, Version: "7.16"})
	c := newClient(t, clientConfig(t, srv))
	ctx := ctxT(t)
	if _, err := c.Profile(ctx); err != nil {
		t.Fatal(err)
	}
	srv.SetFaults(sim.Faults{FailNext: []string{"expected end of command (line 1 column 98)"}})
	err := c.Create(ctx, createReq("pvc-a", gib))
	if !errors.Is(err, rds.ErrUnsupported) || retryable.Is(err) {
		t.Fatalf("Create on a refusing 7.16: %v, want terminal ErrUnsupported", err)
	}
	for _, want := range []string{"RouterOS 7.16 (stable)", "7.17 or later", "7.21 or later", "expected end of command"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %v", want, err)
		}
	}
}
