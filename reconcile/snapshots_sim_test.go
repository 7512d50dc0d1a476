package reconcile

import (
	"context"
	"strings"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/rds/sim"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// TestIntegrationSnapshots: the real SSH client against rds/sim. One
// apply makes a volume, its snapshot and a restore and a clone of it in
// phase order; the snapshot is listed apart and never exported; a plan
// after apply is empty; the snapshot set absent is deleted while the copies
// stay, and the plan is empty again.
func TestIntegrationSnapshots(t *testing.T) {
	srv, c := simClient(t, sim.Options{})
	doc := func(snapState string) *spec.State {
		st, err := spec.LoadBytes("s.yaml", []byte(`apiVersion: rds-reconcile/v1
kind: State
target: {address: 127.0.0.1, basePath: storage-pool/volumes, slotPrefix: b-}
defaults:
  retry: {attempts: 3, initialDelay: 1ms, maxDelay: 10ms, multiplier: 2, jitter: 0.1}
volumes:
  - {name: b-db, size: 16Mi}
  - {name: b-restored, size: 32Mi, source: {snapshot: b-snap-1}}
  - {name: b-clone, size: 16Mi, source: {volume: b-db}}
snapshots:
  - {name: b-snap-1, volume: b-db, state: `+snapState+`}
`))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	r := New(Options{RDS: c})
	ctx := context.Background()
	st := doc("present")
	p, err := r.Plan(ctx, st, Full(false))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(summarize(p), ","); got != "create b-db,create-snapshot b-snap-1,create-from b-clone,create-from b-restored" {
		t.Fatalf("plan: %s", got)
	}
	res, err := r.Apply(ctx, st, p, ApplyOptions{})
	if err != nil || res.Err() != nil {
		t.Fatalf("apply: %v %v", err, res.Err())
	}
	exported := map[string]bool{}
	sizes := map[string]int64{}
	for _, d := range srv.Disks() {
		exported[d.Slot] = d.Export
		sizes[d.Slot] = d.Size
	}
	want := map[string]bool{"b-db": true, "b-snap-1": false, "b-restored": true, "b-clone": true}
	for slot, exp := range want {
		if got, ok := exported[slot]; !ok || got != exp {
			t.Errorf("%s: present %v exported %v, want exported %v (%v)", slot, ok, got, exp, exported)
		}
	}
	if sizes["b-restored"] != 32<<20 || sizes["b-snap-1"] != 16<<20 {
		t.Errorf("sizes %v", sizes)
	}
	inv, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Snapshots) != 1 || len(inv.Disks) != 3 {
		t.Errorf("listed %d disks, %d snapshots", len(inv.Disks), len(inv.Snapshots))
	}
	if p, err = r.Plan(ctx, st, Full(true)); err != nil || !p.Empty() {
		t.Fatalf("plan after apply (prune on): %v %q", err, summarize(p))
	}
	st = doc("absent")
	res, err = r.Reconcile(ctx, st, Full(false))
	if err != nil || res.Err() != nil {
		t.Fatalf("delete the snapshot: %v %v", err, res.Err())
	}
	for _, d := range srv.Disks() {
		if d.Slot == "b-snap-1" {
			t.Error("snapshot disk still there")
		}
	}
	for _, f := range srv.Files() {
		if strings.Contains(f.Name, "b-snap-1") {
			t.Errorf("snapshot file still there: %s", f.Name)
		}
	}
	if len(srv.Disks()) != 3 {
		t.Errorf("disks after the snapshot is gone: %+v", srv.Disks())
	}
	if p, err = r.Plan(ctx, st, Full(false)); err != nil || !p.Empty() {
		t.Fatalf("plan after the delete: %v %q", err, summarize(p))
	}
}
