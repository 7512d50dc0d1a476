package views

import (
	"testing"
	"time"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/reconcile"
)

// goldenSnapshotPlan has every snapshot kind: a snapshot of a volume in
// use, a restore from it in the same apply (its source on the line), a
// grown clone, a snapshot deleted, one blocked (no source).
func goldenSnapshotPlan(t *testing.T) *reconcile.Plan {
	st := state(t, `  - {name: t-a, size: 1Gi, attachments: [node-a]}
  - {name: t-r, size: 1Gi, attachments: [node-a], source: {snapshot: t-snap-mon}}
  - {name: t-c, size: 2Gi, source: {volume: t-a}}
  - {name: t-x, size: 1Gi, source: {snapshot: t-snap-gone}}
snapshots:
  - {name: t-snap-mon, volume: t-a}
  - {name: t-snap-old, state: absent}
  - {name: t-snap-gone, state: absent}
`)
	snap := func(slot string) rds.Disk {
		return rds.Disk{Slot: slot, Type: "file", FilePath: "pool/vols/" + slot + ".img", Size: gi}
	}
	obs := &reconcile.Observed{Fabric: true, RDS: &rds.Inventory{
		Disks:     []rds.Disk{disk("t-a", gi)},
		Snapshots: []rds.Disk{snap("t-snap-old")},
	}, Controllers: []fabric.Controller{ctrl("nvme0", "t-a")}}
	p := reconcile.Diff(st, obs, "node-a", reconcile.Full(false))
	p.CreatedAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p.Files = []string{"state.yaml"}
	return p
}

func TestSnapshotPlanGolden(t *testing.T) {
	p := goldenSnapshotPlan(t)
	golden(t, "plan-snapshots.txt", renderPlan(t, Text, PlanOptions{}, p))
	js := renderPlan(t, JSON, PlanOptions{}, p)
	golden(t, "plan-snapshots.json", js)
}
