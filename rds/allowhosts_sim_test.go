package rds_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/rds/sim"
)

const (
	simHostA = "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427"
	simHostB = "nqn.2014-08.org.nvmexpress:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8"
)

// TestSimAllowHosts sends allow lists over real SSH in every listing
// format and reads them back: Create with a list, SetExport to another,
// to none (every host), to closed, and SetExport without the field leaves
// it alone.
func TestSimAllowHosts(t *testing.T) {
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			srv := startSim(t, sim.Options{JSON: f.json, CRLF: f.crlf})
			cfg := clientConfig(t, srv)
			cfg.User, cfg.DisableJSON = f.user, f.noJSON
			c := newClient(t, cfg)
			ctx := ctxT(t)
			r := createReq("pvc-a", gib)
			r.SetAllowHosts, r.AllowHosts = true, []string{simHostB, simHostA}
			if err := c.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
			check := func(step string, want []string) {
				t.Helper()
				d, err := c.Get(ctx, "pvc-a")
				if err != nil || !slices.Equal(d.AllowHosts, want) {
					t.Fatalf("%s: AllowHosts = %q, %v; want %q", step, d.AllowHosts, err, want)
				}
				inv, err := c.List(ctx)
				if err != nil || len(inv.Disks) != 1 || !slices.Equal(inv.Disks[0].AllowHosts, want) {
					t.Fatalf("%s: listed %+v, %v; want AllowHosts %q", step, inv.Disks, err, want)
				}
			}
			check("create", []string{simHostA, simHostB})
			req := rds.ExportRequest{Slot: "pvc-a", Port: 4420, NQN: nqnPfx + "pvc-a", SetAllowHosts: true, AllowHosts: []string{simHostB}}
			if err := c.SetExport(ctx, req); err != nil {
				t.Fatal(err)
			}
			check("set one", []string{simHostB})
			req.AllowHosts = []string{rds.NoHostNQN}
			if err := c.SetExport(ctx, req); err != nil {
				t.Fatal(err)
			}
			check("closed", []string{rds.NoHostNQN})
			req.SetAllowHosts = false
			req.AllowHosts = nil
			if err := c.SetExport(ctx, req); err != nil {
				t.Fatal(err)
			}
			check("not sent", []string{rds.NoHostNQN})
			req.SetAllowHosts = true
			if err := c.SetExport(ctx, req); err != nil {
				t.Fatal(err)
			}
			check("every host", nil)
			if d := srv.Disks()[0]; d.AllowHost != "" {
				t.Errorf("simulator holds %q, want empty", d.AllowHost)
			}
		})
	}
}

// TestSimAllowHostsInjectionRefused: a host NQN that is not an NQN stops
// Create and SetExport before anything is sent.
func TestSimAllowHostsInjectionRefused(t *testing.T) {
	srv := startSim(t, sim.Options{JSON: true})
	c := newClient(t, clientConfig(t, srv))
	ctx := ctxT(t)
	for _, evil := range []string{`x"; /system reset-configuration`, "x\n/system reset-configuration", `$(reboot)`, "a b", "", strings.Repeat("n", 224)} {
		r := createReq("pvc-a", gib)
		r.SetAllowHosts, r.AllowHosts = true, []string{simHostA, evil}
		if err := c.Create(ctx, r); !errors.Is(err, rds.ErrInvalid) {
			t.Errorf("Create with host %q = %v, want ErrInvalid", evil, err)
		}
		// Even when the field is not to be set, a bad list is refused.
		if err := c.SetExport(ctx, rds.ExportRequest{Slot: "pvc-a", Port: 4420, NQN: nqnPfx + "pvc-a", AllowHosts: []string{evil}}); !errors.Is(err, rds.ErrInvalid) {
			t.Errorf("SetExport with host %q = %v, want ErrInvalid", evil, err)
		}
	}
	if cmds := srv.Commands(); len(cmds) != 0 {
		t.Errorf("commands reached the RDS: %q", cmds)
	}
}
