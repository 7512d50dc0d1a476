package rds_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/internal/retryable"
	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/rds/sim"
)

func slotNames(ds []rds.Disk) string {
	var s []string
	for _, d := range ds {
		s = append(s, d.Slot)
	}
	return strings.Join(s, ",")
}

// TestSimCopy: a snapshot and a restore over real SSH in every listing
// format: the snapshot is listed apart from the volumes, in the same one
// round trip, never exported; the restore is an exported volume of the
// size asked; the copies outlive their sources.
func TestSimCopy(t *testing.T) {
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			srv := startSim(t, sim.Options{JSON: f.json, CRLF: f.crlf})
			cfg := clientConfig(t, srv)
			cfg.User, cfg.DisableJSON = f.user, f.noJSON
			c := newClient(t, cfg)
			ctx := ctxT(t)
			if err := c.Create(ctx, createReq(prefix+"db", gib)); err != nil {
				t.Fatal(err)
			}
			snap := prefix + "snap-db-1"
			if err := c.CopyDisk(ctx, prefix+"db", snap, base+"/"+snap+".img"); err != nil {
				t.Fatal(err)
			}
			restore := createReq(prefix+"restored", 2*gib)
			if err := c.Copy(ctx, rds.CopyRequest{Source: snap, Slot: restore.Slot, FilePath: restore.FilePath, Size: restore.Size,
				Export: true, Port: restore.Port, NQN: restore.NQN}); err != nil {
				t.Fatal(err)
			}
			if err := c.Delete(ctx, prefix+"db", base+"/"+prefix+"db.img"); err != nil {
				t.Fatal(err)
			}
			before := c.RoundTrips()
			inv, err := c.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n := c.RoundTrips() - before; n != 1 {
				t.Errorf("List took %d round trips", n)
			}
			if got := slotNames(inv.Disks); got != prefix+"restored" {
				t.Errorf("disks = %s", got)
			}
			if len(inv.Snapshots) != 1 {
				t.Fatalf("snapshots = %+v", inv.Snapshots)
			}
			s := inv.Snapshots[0]
			if s.Slot != snap || s.Export || s.Size != gib || s.FilePath != base+"/"+snap+".img" || s.MountFilesystem {
				t.Errorf("snapshot = %+v", s)
			}
			if r := inv.Disks[0]; !r.Export || r.Size != 2*gib || r.NQN != restore.NQN || r.MountFilesystem {
				t.Errorf("restored = %+v", r)
			}
			if len(inv.Exports) != 0 {
				t.Errorf("exports = %+v", inv.Exports)
			}
		})
	}
}

// TestSimCopyErrors: what RouterOS answers becomes a typed error; what
// validation refuses is never sent.
func TestSimCopyErrors(t *testing.T) {
	srv := startSim(t, sim.Options{JSON: true, Backend: sim.NewMemoryBackend(3 * gib)})
	c := newClient(t, clientConfig(t, srv))
	ctx := ctxT(t)
	if err := c.Create(ctx, createReq(prefix+"db", gib)); err != nil {
		t.Fatal(err)
	}
	fp := func(s string) string { return base + "/" + s + ".img" }
	if err := c.CopyDisk(ctx, prefix+"db", prefix+"snap-taken", fp(prefix+"snap-taken")); err != nil {
		t.Fatal(err)
	}
	cmds := srv.Commands()
	if got, want := cmds[len(cmds)-1], `/disk add type=file copy-from=[find slot="pvc-db"] file-path="storage-pool/volumes/pvc-snap-taken.img" slot="pvc-snap-taken" mount-filesystem=no`; got != want {
		t.Errorf("command:\n got %s\nwant %s", got, want)
	}
	tests := []struct {
		name    string
		r       rds.CopyRequest
		want    error
		sent    bool
		message string
	}{
		{"source missing", rds.CopyRequest{Source: prefix + "nope", Slot: prefix + "snap-a", FilePath: fp(prefix + "snap-a")}, rds.ErrNotFound, true, "no such item"},
		{"no space", rds.CopyRequest{Source: prefix + "db", Slot: prefix + "big", FilePath: fp(prefix + "big"), Size: 4 * gib, Export: true, Port: 4420, NQN: nqnPfx + "big"}, rds.ErrNoSpace, true, "not enough space"},
		{"slot used", rds.CopyRequest{Source: prefix + "db", Slot: prefix + "snap-taken", FilePath: fp(prefix + "snap-taken")}, rds.ErrRejected, true, "already used"},
		{"smaller than source", rds.CopyRequest{Source: prefix + "db", Slot: prefix + "small", FilePath: fp(prefix + "small"), Size: 1 << 20, Export: true, Port: 4420, NQN: nqnPfx + "small"}, rds.ErrRejected, true, "shrink"},
		{"snapshot exported", rds.CopyRequest{Source: prefix + "db", Slot: prefix + "snap-a", FilePath: fp(prefix + "snap-a"), Export: true, Port: 4420, NQN: nqnPfx + "x"}, rds.ErrInvalid, false, "never exported"},
		{"volume not exported", rds.CopyRequest{Source: prefix + "db", Slot: prefix + "v", FilePath: fp(prefix + "v")}, rds.ErrInvalid, false, "must start with"},
		{"onto itself", rds.CopyRequest{Source: prefix + "db", Slot: prefix + "db", FilePath: fp(prefix + "db"), Export: true, Port: 4420, NQN: nqnPfx + "db"}, rds.ErrInvalid, false, "itself"},
		{"source not managed", rds.CopyRequest{Source: "other", Slot: prefix + "snap-a", FilePath: fp(prefix + "snap-a")}, rds.ErrInvalid, false, "not managed"},
		{"injection in source", rds.CopyRequest{Source: prefix + `db"]; /disk remove [find`, Slot: prefix + "snap-a", FilePath: fp(prefix + "snap-a")}, rds.ErrInvalid, false, "must match"},
		{"file outside base", rds.CopyRequest{Source: prefix + "db", Slot: prefix + "snap-a", FilePath: "storage-pool/snap-a.img"}, rds.ErrInvalid, false, "not directly under"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(srv.Commands())
			err := c.Copy(ctx, tt.r)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("err = %v, want %v with %q", err, tt.want, tt.message)
			}
			if retryable.Is(err) {
				t.Errorf("%v is retryable; a copy refused stays refused", err)
			}
			if sent := len(srv.Commands()) > n; sent != tt.sent {
				t.Errorf("sent = %v, want %v", sent, tt.sent)
			}
		})
	}
	if disks := srv.Disks(); len(disks) != 2 {
		t.Errorf("sim disks after refusals = %d", len(disks))
	}
}

// TestSimExportedSnapshotSlotIsForeign: a disk in the snapshot name space
// that is exported (made by hand) is neither a volume nor a snapshot of
// ours: it is listed with the other exports, paged or not.
func TestSimExportedSnapshotSlotIsForeign(t *testing.T) {
	srv := startSim(t, sim.Options{JSON: true})
	c := newClient(t, clientConfig(t, srv))
	ctx := ctxT(t)
	slot := prefix + "snap-hand"
	if out := srv.Exec(`/disk add type=file file-path=` + base + `/` + slot + `.img file-size=1048576 slot="` + slot +
		`" nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn="` + nqnPfx + slot + `"`); out != "" {
		t.Fatal(out)
	}
	seedSpread(t, srv, 300) // over the paging threshold: the second List is paged
	for i := range 2 {
		inv, err := c.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(inv.Snapshots) != 0 || len(inv.Exports) != 1 || inv.Exports[0].Slot != slot || len(inv.Disks) != 300 {
			t.Errorf("list %d: %d disks, snapshots %s, exports %s", i, len(inv.Disks), slotNames(inv.Snapshots), slotNames(inv.Exports))
		}
	}
	if cmds := listCommands(srv); len(cmds) != 2 || !strings.Contains(cmds[1], ":0\"") {
		t.Errorf("second List not paged: %d list commands", len(cmds))
	}
}
