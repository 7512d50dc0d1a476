package rds_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/rds/sim"
)

// TestSimBatch: writes in one session over real SSH, in every listing
// format: a failing item does not stop the next ones, its status says so,
// the read at the end shows exactly the asked slots, and the failed item
// run again alone gives RouterOS's error, typed.
func TestSimBatch(t *testing.T) {
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			srv := startSim(t, sim.Options{JSON: f.json, CRLF: f.crlf, Backend: sim.NewMemoryBackend(10 << 30)})
			cfg := clientConfig(t, srv)
			cfg.User, cfg.DisableJSON = f.user, f.noJSON
			c := newClient(t, cfg)
			ctx := ctxT(t)
			// A disk made by hand that the batch deletes, with its file.
			if err := c.Create(ctx, createReq("pvc-old", 1<<20)); err != nil {
				t.Fatal(err)
			}
			reqs := []rds.CreateRequest{createReq("pvc-a", 1<<20), createReq("pvc-big", 100<<30), createReq("pvc-c", 1<<20)}
			var ops []rds.BatchOp
			for _, r := range reqs {
				op, err := c.CreateOp(r)
				if err != nil {
					t.Fatal(err)
				}
				ops = append(ops, op)
			}
			del, err := c.DeleteOp("pvc-old", base+"/pvc-old.img")
			if err != nil {
				t.Fatal(err)
			}
			ops = append(ops, del)
			s0 := srv.Sessions()
			res, err := c.Batch(ctx, ops, []string{"pvc-a", "pvc-big", "pvc-c", "pvc-old"})
			if err != nil || res.Err != nil {
				t.Fatal(err, res.Err)
			}
			if n := srv.Sessions() - s0; n != 1 || res.Sessions != 1 {
				t.Errorf("%d sessions (reported %d), want 1", n, res.Sessions)
			}
			want := []rds.BatchStatus{rds.BatchOK, rds.BatchFailed, rds.BatchOK, rds.BatchOK}
			if fmt.Sprint(res.Status) != fmt.Sprint(want) {
				t.Errorf("statuses %v, want %v", res.Status, want)
			}
			var read []string
			for _, d := range res.Inventory.Disks {
				read = append(read, d.Slot)
			}
			if !res.Read || strings.Join(read, ",") != "pvc-a,pvc-c" {
				t.Errorf("read %v (whole %v), want pvc-a,pvc-c", read, res.Read)
			}
			var live []string
			for _, d := range srv.Disks() {
				live = append(live, d.Slot)
			}
			if strings.Join(live, ",") != "pvc-a,pvc-c" {
				t.Errorf("disks %v", live)
			}
			for _, fl := range srv.Files() {
				if strings.Contains(fl.Name, "pvc-old") {
					t.Errorf("the deleted disk's file %s is still there", fl.Name)
				}
			}
			// The failed item alone: RouterOS's own text, typed.
			err = c.Create(ctx, reqs[1])
			if !errors.Is(err, rds.ErrNoSpace) || !strings.Contains(err.Error(), "not enough space") {
				t.Errorf("the failed item alone: %v, want ErrNoSpace", err)
			}
		})
	}
}

// TestSimBatchDropped: a batch whose connection drops leaves every item
// unknown (never guessed ok), and the state re-observable.
func TestSimBatchDropped(t *testing.T) {
	srv := startSim(t, sim.Options{JSON: true})
	c := newClient(t, clientConfig(t, srv))
	ctx := ctxT(t)
	if _, err := c.List(ctx); err != nil {
		t.Fatal(err)
	}
	op, err := c.CreateOp(createReq("pvc-a", 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	srv.SetFaults(sim.Faults{DropAfter: 0, DropProbability: 1})
	res, err := c.Batch(ctx, []rds.BatchOp{op, op}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Err == nil || !rds.IsAmbiguous(res.Err) {
		t.Errorf("err %v, want an ambiguous write", res.Err)
	}
	for i, s := range res.Status {
		if s != rds.BatchUnknown {
			t.Errorf("item %d: %v, want unknown", i, s)
		}
	}
	srv.SetFaults(sim.Faults{})
	if _, err := c.List(ctx); err != nil {
		t.Errorf("re-observing: %v", err)
	}
}

// TestSimBatchChunks: more writes than one line holds go in several lines,
// in order, all done.
func TestSimBatchChunks(t *testing.T) {
	srv := startSim(t, sim.Options{JSON: true})
	c := newClient(t, clientConfig(t, srv))
	ctx := ctxT(t)
	var ops []rds.BatchOp
	for i := range 300 {
		op, err := c.CreateOp(createReq(fmt.Sprintf("pvc-%04d", i), 1<<20))
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, op)
	}
	res, err := c.Batch(ctx, ops, nil)
	if err != nil || res.Err != nil {
		t.Fatal(err, res.Err)
	}
	if res.Sessions < 2 {
		t.Errorf("%d sessions for 300 creates: not chunked", res.Sessions)
	}
	for i, s := range res.Status {
		if s != rds.BatchOK {
			t.Fatalf("item %d: %v", i, s)
		}
	}
	if n := len(srv.Disks()); n != 300 {
		t.Errorf("%d disks, want 300", n)
	}
	for _, line := range srv.Commands() {
		if len(line) > rds.MaxBatchBytes {
			t.Errorf("a %d-byte line", len(line))
		}
	}
}

// TestSimEnsureOps: the guarded items write only when the live state is
// the one assumed, in every listing format (the NQN property differs by
// release), and never touch a disk or file that is not the managed one.
func TestSimEnsureOps(t *testing.T) {
	const size = 1 << 20
	type check func(t *testing.T, srv *sim.Server)
	disk := func(slot string, size int64, nqn string) check {
		return func(t *testing.T, srv *sim.Server) {
			for _, d := range srv.Disks() {
				if d.Slot == slot {
					if d.Size != size || d.NQN != nqn {
						t.Errorf("disk %s: size %d nqn %s, want %d %s", slot, d.Size, d.NQN, size, nqn)
					}
					return
				}
			}
			t.Errorf("no disk %s", slot)
		}
	}
	noDisk := func(slot string) check {
		return func(t *testing.T, srv *sim.Server) {
			for _, d := range srv.Disks() {
				if d.Slot == slot {
					t.Errorf("disk %s is there", slot)
				}
			}
		}
	}
	file := func(name string, want bool) check {
		return func(t *testing.T, srv *sim.Server) {
			got := false
			for _, f := range srv.Files() {
				got = got || f.Name == name
			}
			if got != want {
				t.Errorf("file %s there: %v, want %v", name, got, want)
			}
		}
	}
	foreignNQN := "nqn.2000-02.com.mikrotik:somebody"
	cases := []struct {
		name   string
		seed   string // a script run before
		op     func(c *rds.SSHClient) (rds.BatchOp, error)
		checks []check
	}{
		{name: "create on nothing", op: func(c *rds.SSHClient) (rds.BatchOp, error) { return c.EnsureCreateOp(createReq("pvc-a", size)) },
			checks: []check{disk("pvc-a", size, nqnPfx+"pvc-a")}},
		{name: "create over an existing slot does nothing",
			seed:   `/disk add type=file file-path=` + base + `/pvc-a.img file-size=2M slot=pvc-a`,
			op:     func(c *rds.SSHClient) (rds.BatchOp, error) { return c.EnsureCreateOp(createReq("pvc-a", size)) },
			checks: []check{disk("pvc-a", 2<<20, "pvc-a")}},
		{name: "create over a leftover file does nothing",
			seed:   `/disk add type=file file-path=` + base + `/pvc-a.img file-size=2M slot=tmp; /disk remove [find slot=tmp]`,
			op:     func(c *rds.SSHClient) (rds.BatchOp, error) { return c.EnsureCreateOp(createReq("pvc-a", size)) },
			checks: []check{noDisk("pvc-a"), file(base+"/pvc-a.img", true)}},
		{name: "create with an NQN another disk has does nothing",
			seed:   `/disk add type=file file-path=storage-pool/other/x.img file-size=2M slot=other nvme-tcp-export=yes nvme-tcp-server-nqn="nqn.2000-02.com.mikrotik:pvc-a"`,
			op:     func(c *rds.SSHClient) (rds.BatchOp, error) { return c.EnsureCreateOp(createReq("pvc-a", size)) },
			checks: []check{noDisk("pvc-a")}},
		{name: "delete the managed disk and its file",
			seed: `/disk add type=file file-path=` + base + `/pvc-a.img file-size=1M slot=pvc-a nvme-tcp-export=yes nvme-tcp-server-nqn="` + nqnPfx + `pvc-a"`,
			op: func(c *rds.SSHClient) (rds.BatchOp, error) {
				return c.EnsureDeleteOp("pvc-a", base+"/pvc-a.img", nqnPfx+"pvc-a")
			},
			checks: []check{noDisk("pvc-a"), file(base+"/pvc-a.img", false)}},
		{name: "delete leaves a disk with another NQN and its file",
			seed: `/disk add type=file file-path=` + base + `/pvc-a.img file-size=1M slot=pvc-a nvme-tcp-export=yes nvme-tcp-server-nqn="` + foreignNQN + `"`,
			op: func(c *rds.SSHClient) (rds.BatchOp, error) {
				return c.EnsureDeleteOp("pvc-a", base+"/pvc-a.img", nqnPfx+"pvc-a")
			},
			checks: []check{disk("pvc-a", size, foreignNQN), file(base+"/pvc-a.img", true)}},
		{name: "delete leaves a disk on another file and that file",
			seed: `/disk add type=file file-path=storage-pool/other/pvc-a.img file-size=1M slot=pvc-a nvme-tcp-export=yes nvme-tcp-server-nqn="` + nqnPfx + `pvc-a"`,
			op: func(c *rds.SSHClient) (rds.BatchOp, error) {
				return c.EnsureDeleteOp("pvc-a", base+"/pvc-a.img", nqnPfx+"pvc-a")
			},
			checks: []check{disk("pvc-a", size, nqnPfx+"pvc-a"), file("storage-pool/other/pvc-a.img", true)}},
		{name: "delete of nothing, a leftover file goes",
			seed: `/disk add type=file file-path=` + base + `/pvc-a.img file-size=2M slot=tmp; /disk remove [find slot=tmp]`,
			op: func(c *rds.SSHClient) (rds.BatchOp, error) {
				return c.EnsureDeleteOp("pvc-a", base+"/pvc-a.img", nqnPfx+"pvc-a")
			},
			checks: []check{file(base+"/pvc-a.img", false)}},
		{name: "grow a smaller disk",
			seed:   `/disk add type=file file-path=` + base + `/pvc-a.img file-size=1M slot=pvc-a`,
			op:     func(c *rds.SSHClient) (rds.BatchOp, error) { return c.EnsureGrowOp("pvc-a", base+"/pvc-a.img", 4<<20) },
			checks: []check{disk("pvc-a", 4<<20, "pvc-a")}},
		{name: "grow never shrinks",
			seed:   `/disk add type=file file-path=` + base + `/pvc-a.img file-size=8M slot=pvc-a`,
			op:     func(c *rds.SSHClient) (rds.BatchOp, error) { return c.EnsureGrowOp("pvc-a", base+"/pvc-a.img", 4<<20) },
			checks: []check{disk("pvc-a", 8<<20, "pvc-a")}},
		{name: "grow of a disk on another file does nothing",
			seed:   `/disk add type=file file-path=storage-pool/other/pvc-a.img file-size=1M slot=pvc-a`,
			op:     func(c *rds.SSHClient) (rds.BatchOp, error) { return c.EnsureGrowOp("pvc-a", base+"/pvc-a.img", 4<<20) },
			checks: []check{disk("pvc-a", 1<<20, "pvc-a")}},
	}
	for _, f := range formats {
		for _, tc := range cases {
			t.Run(f.name+"/"+tc.name, func(t *testing.T) {
				srv := startSim(t, sim.Options{JSON: f.json, CRLF: f.crlf})
				if tc.seed != "" {
					seed := tc.seed
					if !f.json { // the old release names the NQN nvme-tcp-name
						seed = strings.ReplaceAll(seed, "nvme-tcp-server-nqn=", srv.NQNProperty()+"=")
					}
					if out := srv.Exec(seed); out != "" {
						t.Fatalf("seed: %s", out)
					}
				}
				cfg := clientConfig(t, srv)
				cfg.User, cfg.DisableJSON = f.user, f.noJSON
				c := newClient(t, cfg)
				op, err := tc.op(c)
				if err != nil {
					t.Fatal(err)
				}
				res, err := c.Batch(ctxT(t), []rds.BatchOp{op}, []string{"pvc-a"})
				if err != nil || res.Err != nil || !res.Read {
					t.Fatal(err, res.Err, res.Read)
				}
				if res.Status[0] != rds.BatchOK {
					t.Errorf("status %v", res.Status[0])
				}
				for _, ch := range tc.checks {
					ch(t, srv)
				}
			})
		}
	}
}
