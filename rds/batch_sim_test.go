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
			for _, d := range res.Disks {
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
