package reconcile

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// Copy makes a disk as a copy of another, as RouterOS copy-from does: the
// source's size or a larger one, exported when asked.
func (f *fakeRDS) Copy(ctx context.Context, r rds.CopyRequest) error {
	if err := f.step(ctx, "copy"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	src, ok := f.disks[r.Source]
	if !ok {
		return &rds.Error{Op: "copy", Slot: r.Slot, Err: rds.ErrNotFound}
	}
	if _, used := f.disks[r.Slot]; used {
		return &rds.Error{Op: "copy", Slot: r.Slot, Err: rds.ErrRejected}
	}
	d := rds.Disk{Slot: r.Slot, Type: "file", FilePath: r.FilePath, Size: max(src.Size, r.Size)}
	if r.Export {
		d.Export, d.Port, d.NQN = true, r.Port, r.NQN
		if r.SetAllowHosts {
			d.AllowHosts = rds.NormalizeAllowHosts(r.AllowHosts)
		}
	}
	f.addDisk(d)
	return nil
}

// snapDisk is a snapshot disk as create-snapshot makes it: not exported.
func snapDisk(slot string, size int64) rds.Disk {
	return rds.Disk{Slot: slot, Type: "file", FilePath: "pool/vols/" + slot + ".img", Size: size}
}

const (
	volR     = "  - {name: t-r, size: 1Gi, source: {snapshot: t-snap-a}}\n"
	snapA    = "snapshots:\n  - {name: t-snap-a, volume: t-a}\n"
	volPlain = "  - {name: t-a, size: 1Gi}\n"
)

func snapshotCases() []diffCase {
	restoreSmall := "  - {name: t-r, size: 1Gi, source: {snapshot: t-snap-a}}\n"
	return []diffCase{
		{name: "snapshot of a volume in use: proceeds with a note", volumes: volA + snapA,
			disks: []rds.Disk{disk("t-a", gi)}, ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)},
			want: []string{"create-snapshot t-snap-a"}},
		{name: "snapshot of a volume created by the same plan", volumes: volA + snapA,
			want: []string{"create t-a", "create-snapshot t-snap-a", "connect t-a"}},
		{name: "restore from a snapshot that exists", volumes: volPlain + volR + snapA,
			disks: []rds.Disk{disk("t-a", gi), snapDisk("t-snap-a", gi)}, want: []string{"create-from t-r"}},
		{name: "restore from a snapshot made by the same plan", volumes: volPlain + volR + snapA,
			disks: []rds.Disk{disk("t-a", gi)}, want: []string{"create-snapshot t-snap-a", "create-from t-r"}},
		{name: "restore larger than the snapshot: grown copy", volumes: volPlain + "  - {name: t-r, size: 2Gi, attachments: [node-a], source: {snapshot: t-snap-a}}\n" + snapA,
			disks: []rds.Disk{disk("t-a", gi), snapDisk("t-snap-a", gi)}, want: []string{"create-from t-r", "connect t-r"}},
		{name: "restore smaller than the snapshot is refused", volumes: "  - {name: t-a, size: 2Gi}\n" + restoreSmall + snapA,
			disks: []rds.Disk{disk("t-a", 2*gi), snapDisk("t-snap-a", 2*gi)}, want: []string{"blocked:create-from t-r"}, rule: RuleShrink},
		{name: "clone of a volume", volumes: volA + "  - {name: t-c, size: 1Gi, source: {volume: t-a}}\n",
			disks: []rds.Disk{disk("t-a", gi)}, ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)}, want: []string{"create-from t-c"}},
		{name: "clone of a volume created by the same plan", volumes: volPlain + "  - {name: t-c, size: 1Gi, source: {volume: t-a}}\n",
			want: []string{"create t-a", "create-from t-c"}},
		{name: "source snapshot absent and gone", volumes: volPlain + volR + "snapshots:\n  - {name: t-snap-a, state: absent}\n",
			disks: []rds.Disk{disk("t-a", gi)}, want: []string{"blocked:create-from t-r"}, rule: RuleNoSource},
		{name: "snapshot of a copy made by the same plan waits for the next pass",
			volumes: volPlain + "  - {name: t-c, size: 1Gi, source: {volume: t-a}}\nsnapshots:\n  - {name: t-snap-c, volume: t-c}\n",
			disks:   []rds.Disk{disk("t-a", gi)}, want: []string{"blocked:create-snapshot t-snap-c", "create-from t-c"}, rule: RuleNoSource},
		{name: "snapshot of an absent volume that is gone", volumes: "  - {name: t-a, state: absent}\n" + snapA,
			want: []string{"blocked:create-snapshot t-snap-a"}, rule: RuleNoSource},
		{name: "snapshot outlives its volume", volumes: "  - {name: t-a, state: absent}\n" + snapA,
			disks: []rds.Disk{snapDisk("t-snap-a", gi)}, want: nil},
		{name: "existing volume: its source is ignored", volumes: volPlain + volR + "snapshots:\n  - {name: t-snap-a, state: absent}\n",
			disks: []rds.Disk{disk("t-a", gi), disk("t-r", gi)}, want: nil},
		{name: "absent snapshot deleted, restored volume kept", volumes: volPlain + volR + "snapshots:\n  - {name: t-snap-a, state: absent}\n",
			disks: []rds.Disk{disk("t-a", gi), disk("t-r", gi), snapDisk("t-snap-a", gi)}, want: []string{"delete-snapshot t-snap-a"}},
		{name: "absent protected snapshot refused", volumes: volPlain + "snapshots:\n  - {name: t-snap-a, state: absent}\n",
			mod:   func(st *spec.State) { st.Snapshot("t-snap-a").Protect = true },
			disks: []rds.Disk{disk("t-a", gi), snapDisk("t-snap-a", gi)}, want: []string{"blocked:delete-snapshot t-snap-a"}, rule: RuleProtected},
		{name: "leftover file of an absent snapshot", volumes: volPlain + "snapshots:\n  - {name: t-snap-a, state: absent}\n",
			disks: []rds.Disk{disk("t-a", gi)}, files: []rds.File{{Name: "pool/vols/t-snap-a.img", Size: gi}}, want: []string{"remove-file t-snap-a"}},
		{name: "undeclared snapshot kept without prune", volumes: volPlain,
			disks: []rds.Disk{disk("t-a", gi), snapDisk("t-snap-old", gi)}, want: nil},
		{name: "undeclared snapshot pruned, declared one and its file kept", volumes: volPlain + snapA, scope: &Scope{Prune: true, Orphans: true},
			disks: []rds.Disk{disk("t-a", gi), snapDisk("t-snap-a", gi), snapDisk("t-snap-old", gi)}, want: []string{"delete-snapshot t-snap-old"}},
		{name: "an empty state prunes no snapshot", volumes: "", scope: &Scope{Prune: true, Orphans: true},
			disks: []rds.Disk{snapDisk("t-snap-old", gi)}, want: []string{"blocked:delete-snapshot t-snap-old"}, rule: RuleEmptyPrune},
		{name: "scope names the snapshot only", volumes: volA + snapA, scope: &Scope{Volumes: []string{"t-snap-a"}},
			disks: []rds.Disk{disk("t-a", gi)}, want: []string{"create-snapshot t-snap-a"}},
		{name: "scope names the restore only; its snapshot is not made", volumes: volPlain + volR + snapA, scope: &Scope{Volumes: []string{"t-r"}},
			disks: []rds.Disk{disk("t-a", gi)}, want: []string{"blocked:create-from t-r"}, rule: RuleNoSource},
	}
}

// TestSnapshotDiff plans every case; then applies against the fakes until
// nothing but the blocked actions is left (at most two passes: a copy of a
// copy waits for the next one), and checks the disks that exist.
func TestSnapshotDiff(t *testing.T) {
	for _, c := range snapshotCases() {
		t.Run(c.name, func(t *testing.T) {
			st, fr, _, r, _, sc := c.setup(t)
			ctx := context.Background()
			p, err := r.Plan(ctx, st, sc)
			if err != nil {
				t.Fatal(err)
			}
			if got := summarize(p); !slices.Equal(got, c.want) {
				t.Fatalf("actions:\n got %q\nwant %q\nnotes %q", got, c.want, p.Notes)
			}
			for _, a := range p.Actions {
				if a.Reason == "" {
					t.Errorf("%s %s has no reason", a.Kind, a.Volume)
				}
				if a.Kind == KindBlocked && a.Blocked != c.rule {
					t.Errorf("blocked by %q, want %q", a.Blocked, c.rule)
				}
				if a.Kind == KindCreateFrom && (a.Source == "" || !strings.Contains(Describe(a), " from "+a.SourceKind+" "+a.Source)) {
					t.Errorf("create-from does not show its source: %s", Describe(a))
				}
			}
			for pass := range 2 {
				res, err := r.Apply(ctx, st, p, ApplyOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if res.Failed > 0 {
					t.Fatalf("pass %d: apply failed: %v", pass, res.Err())
				}
				if p, err = r.Plan(ctx, st, sc); err != nil {
					t.Fatal(err)
				}
				if !p.HasChanges() {
					break
				}
			}
			if p.HasChanges() {
				t.Errorf("not converged after two passes: %q (ops %q)", summarize(p), fr.ops)
			}
			for _, s := range st.Snapshots {
				_, made := fr.disks[s.Name]
				if s.State == spec.Absent && made && c.rule != RuleProtected {
					t.Errorf("absent snapshot %s still on the RDS", s.Name)
				}
			}
			for _, d := range fr.disks {
				if rds.IsSnapshotSlot(d.Slot, "t-") && d.Export {
					t.Errorf("snapshot %s exported", d.Slot)
				}
			}
		})
	}
}

// TestSnapshotNotes: a copy of a volume in use says it is crash-consistent;
// a volume whose source is gone says the source is ignored.
func TestSnapshotNotes(t *testing.T) {
	cases := snapshotCases()
	for _, tc := range []struct {
		index int
		note  string
	}{
		{0, "snapshot t-snap-a of t-a is a crash-consistent copy of a volume in use (attached to node-a, connected on node-a)"},
		{6, "the clone of t-a is a crash-consistent copy of a volume in use"},
		{12, "volume t-r: its source snapshot t-snap-a is ignored: the disk exists"},
	} {
		c := cases[tc.index]
		st, _, _, r, _, sc := c.setup(t)
		p, err := r.Plan(context.Background(), st, sc)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(p.Notes, func(n string) bool { return strings.Contains(n, tc.note) }) {
			t.Errorf("%s: notes %q lack %q", c.name, p.Notes, tc.note)
		}
	}
}

// TestCopyWaitsForItsSource: when the snapshot a restore is made from
// fails, the restore is skipped, not tried against a missing source.
func TestCopyWaitsForItsSource(t *testing.T) {
	c := snapshotCases()[3]
	st, fr, _, r, _, sc := c.setup(t)
	fr.fail["copy"] = []error{&rds.Error{Op: "copy", Err: rds.ErrNoSpace}}
	ctx := context.Background()
	p, err := r.Plan(ctx, st, sc)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Apply(ctx, st, p, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 1 || res.Skipped != 1 {
		t.Fatalf("failed %d skipped %d, want 1 and 1: %+v", res.Failed, res.Skipped, res.Actions)
	}
	if n := strings.Count(strings.Join(fr.ops, " "), "copy"); n != 1 {
		t.Errorf("%d copies sent, want 1 (ops %q)", n, fr.ops)
	}
}

func TestSnapshotInfixAgrees(t *testing.T) {
	if spec.SnapshotInfix != rds.SnapshotInfix {
		t.Errorf("spec says %q, rds says %q: one rule, two places", spec.SnapshotInfix, rds.SnapshotInfix)
	}
}

// TestSourceChangedLater: a source changed (or added) after apply made the
// disk is noted as ignored, from the applied record; nothing is planned.
func TestSourceChangedLater(t *testing.T) {
	c := snapshotCases()[2] // the restore from a snapshot that exists
	st, fr, _, r, _, sc := c.setup(t)
	r.opts.AppliedFile = t.TempDir() + "/applied.json"
	ctx := context.Background()
	if res, err := r.Reconcile(ctx, st, sc); err != nil || res.Err() != nil {
		t.Fatalf("reconcile: %v %v", err, res.Err())
	}
	fr.addDisk(snapDisk("t-snap-b", gi))
	for _, tc := range []struct {
		from *spec.VolumeSource
		note string
	}{
		{&spec.VolumeSource{Snapshot: "t-snap-b"}, "volume t-r: source changed from snapshot t-snap-a to snapshot t-snap-b since its disk was made: ignored"},
		{nil, "volume t-r: source changed from snapshot t-snap-a to none since its disk was made: ignored"},
		{&spec.VolumeSource{Snapshot: "t-snap-a"}, ""},
	} {
		st.Volume("t-r").From = tc.from
		p, err := r.Plan(ctx, st, sc)
		if err != nil {
			t.Fatal(err)
		}
		if p.HasChanges() {
			t.Errorf("%v: plan %q", tc.from, summarize(p))
		}
		got := strings.Join(p.Notes, "\n")
		if (tc.note == "") != !strings.Contains(got, "source changed") || !strings.Contains(got, tc.note) {
			t.Errorf("%v: notes %q, want %q", tc.from, p.Notes, tc.note)
		}
	}
}
