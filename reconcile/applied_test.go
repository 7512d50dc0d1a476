package reconcile

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/fabric"
)

// TestDesiredMatchesDrift: the record keeps the very strings Diff writes
// as Want, for every drift the diff table produces.
func TestDesiredMatchesDrift(t *testing.T) {
	for _, c := range diffCases() {
		st, _, _, r, host, sc := c.setup(t)
		p, err := r.Plan(context.Background(), st, sc)
		if err != nil {
			t.Fatal(err)
		}
		d := newDiffer(st, &Observed{}, host, sc)
		for _, dr := range p.Drift {
			v := st.Volume(dr.Volume)
			if v == nil || dr.Want == "" || dr.Field == "namespace" {
				continue // orphans, and a missing namespace, are no desired value
			}
			if got := d.desired(v)[key(dr.Where, dr.Field)]; got != dr.Want {
				t.Errorf("%s: drift %s %s wants %q, the record would keep %q", c.name, dr.Where, dr.Field, dr.Want, got)
			}
		}
	}
}

// TestOwnChangeIsNoDrift: a timeout changed in the state is a change (the
// live value is what apply last made true); the same difference made
// behind our back is drift.
func TestOwnChangeIsNoDrift(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, AppliedFileName)
	old := state(t, volA)
	fr := newFakeRDS()
	fr.addDisk(disk("t-a", gi))
	ff := newFakeFabric(fr)
	r := New(Options{RDS: fr, Fabric: ff, Host: "node-a", AppliedFile: file})
	ctx := context.Background()
	p, err := r.Plan(ctx, old, Full(false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(ctx, old, p, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	rec, err := ReadApplied(file)
	if err != nil || rec["t-a"][key("host", "timeouts")] == "" {
		t.Fatalf("record after apply: %v %v", rec, err)
	}

	changed := state(t, `  - {name: t-a, size: 1Gi, attachments: [node-a], connection: {ctrlLossTmo: 600}}
`)
	p, err = r.Plan(ctx, changed, Full(false))
	if err != nil {
		t.Fatal(err)
	}
	if got := summarize(p); !slices.Equal(got, []string{"set-timeouts t-a"}) {
		t.Fatalf("plan after a change of the state: %q", got)
	}
	if len(p.Drift) != 0 {
		t.Errorf("a change of the state is reported as drift: %+v", p.Drift)
	}

	// Behind our back: someone writes ctrl_loss_tmo on the live controller.
	ff.mu.Lock()
	for n, c := range ff.ctrls {
		c.Timeouts = fabric.Timeouts{CtrlLossTmo: 30, ReconnectDelay: 5, KeepAliveTmo: 5}
		ff.ctrls[n] = c
	}
	ff.mu.Unlock()
	p, err = r.Plan(ctx, old, Full(false))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Drift) != 1 || p.Drift[0].Field != "timeouts" {
		t.Errorf("a change behind our back is not drift: %+v", p.Drift)
	}

	// No record (CSI, a first run): every difference is drift, as before.
	r2 := New(Options{RDS: fr, Fabric: ff, Host: "node-a"})
	p, err = r2.Plan(ctx, changed, Full(false))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Drift) == 0 {
		t.Error("without a record, a difference is not reported at all")
	}
}

func TestRecordApplied(t *testing.T) {
	st := state(t, volA+`  - {name: t-b, size: 1Gi, attachments: [node-a]}
  - {name: t-gone, state: absent}
`)
	prev := Applied{"t-gone": {"rds size": "1Gi"}, "t-b": {"rds size": "2Gi"}}
	after := &Plan{Scope: Full(false), Actions: []Action{{Kind: KindConnect, Volume: "t-b"}}}
	got := RecordApplied(st, "node-a", after, prev)
	if _, ok := got["t-gone"]; ok {
		t.Error("an absent volume stays in the record")
	}
	if got["t-b"]["rds size"] != "2Gi" {
		t.Error("a volume with an action left was recorded anew")
	}
	if got["t-a"]["rds size"] != "1Gi" || got["t-a"]["host timeouts"] == "" {
		t.Errorf("a converged volume is not recorded: %v", got["t-a"])
	}
	if prev["t-gone"] == nil {
		t.Error("RecordApplied changed its input")
	}
	// A volume dropped from the state leaves the record once nothing is
	// left to do for it; while its orphan is still planned it stays.
	prev = Applied{"t-dropped": {"rds size": "1Gi"}}
	busy := &Plan{Scope: Full(false), Actions: []Action{{Kind: KindDisconnectOrphan, Volume: "t-dropped"}}}
	if _, ok := RecordApplied(st, "node-a", busy, prev)["t-dropped"]; !ok {
		t.Error("a dropped volume left the record while its orphan is still planned")
	}
	if _, ok := RecordApplied(st, "node-a", &Plan{Scope: Full(false)}, prev)["t-dropped"]; ok {
		t.Error("a dropped volume with nothing left to do stays in the record")
	}
}
