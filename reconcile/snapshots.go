package reconcile

// Snapshots, restores and clones: the plan of the state's snapshots
// (create-snapshot, delete-snapshot), of volumes created as copies
// (create-from), and their execution. A snapshot is an RDS disk of its
// own, never exported, named slotPrefix + "snap-..." (spec.SnapshotInfix);
// docs/reconcile.md, "Snapshots, restores and clones".

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// Safety rules of copies.
const (
	RuleNoSource = "no-source: a copy needs its source on the RDS, or made earlier in the same apply"
)

// Source kinds (Action.SourceKind).
const (
	SourceVolume   = "volume"
	SourceSnapshot = "snapshot"
)

// crashConsistent is what the plan says of a copy of a volume in use.
const crashConsistent = "crash-consistent copy of a volume in use"

// snapshotDisk is the managed snapshot disk called slot, or nil.
func (d *differ) snapshotDisk(slot string) *rds.Disk {
	if d.obs.RDS == nil {
		return nil
	}
	for i := range d.obs.RDS.Snapshots {
		if s := &d.obs.RDS.Snapshots[i]; s.Slot == slot && managedSnapshot(d.st, *s) {
			return s
		}
	}
	return nil
}

// managedSnapshot reports whether disk is a snapshot of this state's: in
// the snapshots' name space (under the slot prefix), its file
// <basePath>/<slot>.img, and not exported (the RDS client lists only
// those as snapshots).
func managedSnapshot(st *spec.State, disk rds.Disk) bool {
	prefix := ""
	if st.Target != nil {
		prefix = st.Target.SlotPrefix
	}
	return spec.IsSnapshotName(disk.Slot, prefix) && !disk.Export && disk.FilePath == st.FilePath(disk.Slot)
}

// inScope says whether the plan considers the snapshot or volume name.
func (d *differ) inScope(name string) bool {
	return len(d.sc.Volumes) == 0 || slices.Contains(d.sc.Volumes, name)
}

// readyBy is the phase after which the disk called name exists in this
// apply: -1 when it exists already, PhaseRDS for a volume created empty,
// PhaseRDSSnapshot for a snapshot made from a volume that exists by then,
// PhaseRDSCopy for a copy; ok false when this plan does not make it (out
// of scope, absent, no size, a leftover file in the way, or a copy of a
// copy, which waits for the next pass).
func (d *differ) readyBy(name string) (Phase, bool) {
	if d.disk(name) != nil || d.snapshotDisk(name) != nil {
		return -1, true
	}
	if !d.inScope(name) {
		return 0, false
	}
	if s := d.st.Snapshot(name); s != nil {
		if s.State == spec.Absent || d.hasFile(d.st.FilePath(name)) {
			return 0, false
		}
		if p, ok := d.volumeReadyBy(s.Volume); ok && p < PhaseRDSSnapshot {
			return PhaseRDSSnapshot, true
		}
		return 0, false
	}
	if v := d.st.Volume(name); v != nil && v.From == nil {
		return d.volumeReadyBy(name)
	}
	return 0, false
}

// volumeReadyBy is readyBy for a volume created empty in PhaseRDS; a
// volume copied from a source is made in PhaseRDSCopy, which nothing in
// the same apply waits for.
func (d *differ) volumeReadyBy(name string) (Phase, bool) {
	if d.disk(name) != nil {
		return -1, true
	}
	v := d.st.Volume(name)
	if v == nil || v.State == spec.Absent || v.From != nil || v.Size.Bytes <= 0 || !d.inScope(name) ||
		d.hasFile(d.st.FilePath(name)) {
		return 0, false
	}
	return PhaseRDS, true
}

// sourceSize is the size a copy of name has: its disk's, else the size
// its volume will have once this apply made or grew it.
func (d *differ) sourceSize(name string) int64 {
	if disk := d.disk(name); disk != nil {
		return max(disk.Size, d.declaredSize(name))
	}
	if s := d.snapshotDisk(name); s != nil {
		return s.Size
	}
	if s := d.st.Snapshot(name); s != nil {
		return d.sourceSize(s.Volume)
	}
	return d.declaredSize(name)
}

func (d *differ) declaredSize(volume string) int64 {
	if v := d.st.Volume(volume); v != nil && v.State != spec.Absent {
		return v.Size.Bytes
	}
	return 0
}

// inUse says whether the volume is attached or connected anywhere this
// plan can see, and where, for the crash-consistency note.
func (d *differ) volumeInUse(name string) string {
	var where []string
	if v := d.st.Volume(name); v != nil && len(v.Attachments) > 0 {
		where = append(where, "attached to "+strings.Join(v.Attachments, ", "))
	}
	if cs := d.byNQN[d.st.NQN(name)]; len(cs) > 0 && d.obs.Fabric {
		where = append(where, "connected on "+d.host)
	}
	return strings.Join(where, ", ")
}

// createFrom plans the disk of a present volume with a source that does
// not exist yet: a copy of the source, exported like a create, once the
// source exists (it may be made earlier in the same apply).
func (d *differ) createFrom(v *spec.Volume, fp string) diskOutcome {
	src := v.From.Name()
	kind := SourceVolume
	if v.From.Snapshot != "" {
		kind = SourceSnapshot
	}
	a := Action{Volume: v.Name, Slot: v.Name, FilePath: fp, Size: v.Size.Bytes, Port: d.port, NQN: d.st.NQN(v.Name),
		Source: src, SourceKind: kind}
	a.SetAllowHosts, a.AllowHosts = d.wantAllowHosts(v)
	p, ok := d.readyBy(src)
	switch {
	case !ok || p >= PhaseRDSCopy:
		a.Reason = fmt.Sprintf("disk does not exist, and its source %s %s does not exist and is not made before it by this plan", kind, src)
		d.block(KindCreateFrom, RuleNoSource, a)
		return diskOutcome{noDisk: true}
	}
	a.FromSize = d.sourceSize(src)
	if a.FromSize > a.Size {
		a.Reason = fmt.Sprintf("the %s %s is %s, larger than the volume's %s: a copy is never smaller than its source",
			kind, src, spec.Quantity{Bytes: a.FromSize}, v.Size)
		d.block(KindCreateFrom, RuleShrink, a)
		return diskOutcome{noDisk: true}
	}
	a.Kind = KindCreateFrom
	a.Reason = "disk does not exist: copy of " + v.From.String()
	if p >= 0 {
		a.Reason += fmt.Sprintf(" (made first, in phase %s)", p)
	}
	if kind == SourceVolume {
		if where := d.volumeInUse(src); where != "" {
			a.Reason += "; " + crashConsistent
			d.p.Notes = append(d.p.Notes, fmt.Sprintf("volume %s: the clone of %s is a %s (%s): see docs/reconcile.md, \"Snapshots, restores and clones\"",
				v.Name, src, crashConsistent, where))
		}
	}
	d.add(a)
	return diskOutcome{}
}

// sourceIgnored notes a volume whose disk exists while its source is
// gone, or differs from the one apply recorded when it last converged the
// volume (changed or added later): a source is used only at creation.
func (d *differ) sourceIgnored(v *spec.Volume) {
	if d.obs.RDS == nil {
		return
	}
	if rec, ok := d.obs.Applied[v.Name]; ok {
		if was, ok := rec[key("rds", "source")]; ok && was != v.From.String() {
			from := was
			if from == "" {
				from = "none (an empty disk)"
			}
			to := v.From.String()
			if to == "" {
				to = "none"
			}
			d.p.Notes = append(d.p.Notes, fmt.Sprintf("volume %s: source changed from %s to %s since its disk was made: ignored (a source is used only when the disk is created)",
				v.Name, from, to))
			return
		}
	}
	if v.From == nil {
		return
	}
	src := v.From.Name()
	if d.disk(src) == nil && d.snapshotDisk(src) == nil {
		d.p.Notes = append(d.p.Notes, fmt.Sprintf("volume %s: its source %s is ignored: the disk exists (a source is used only when the disk is created)",
			v.Name, v.From))
	}
}

// snapshots plans the declared snapshots in scope, then (full runs) the
// snapshot disks no snapshot declares.
func (d *differ) snapshots() {
	if d.obs.RDS == nil {
		return
	}
	snaps := slices.Clone(d.st.Snapshots)
	slices.SortFunc(snaps, func(a, b spec.Snapshot) int { return strings.Compare(a.Name, b.Name) })
	for i := range snaps {
		s := &snaps[i]
		switch {
		case !d.inScope(s.Name):
		case s.State == spec.Absent:
			d.absentSnapshot(s)
		default:
			d.presentSnapshot(s)
		}
	}
	if len(d.sc.Volumes) == 0 {
		d.undeclaredSnapshots()
	}
}

// presentSnapshot makes a snapshot that does not exist yet from its
// volume, once the volume exists (it may be created earlier in the same
// apply). A snapshot that exists is never made again.
func (d *differ) presentSnapshot(s *spec.Snapshot) {
	fp := d.st.FilePath(s.Name)
	if disk := d.snapshotDisk(s.Name); disk != nil {
		return
	}
	a := Action{Volume: s.Name, Slot: s.Name, FilePath: fp, Source: s.Volume, SourceKind: SourceVolume}
	p, ok := d.volumeReadyBy(s.Volume)
	switch {
	case d.hasFile(fp):
		a.Reason = fmt.Sprintf("file %s exists without a disk: remove it or adopt it by hand", fp)
		d.block(KindCreateSnapshot, RuleLeftover, a)
		return
	case !ok:
		why := "does not exist and is not created by this plan"
		if v := d.st.Volume(s.Volume); v != nil && v.State == spec.Absent {
			why = "is absent: there is nothing to copy"
		}
		a.Reason = fmt.Sprintf("volume %s %s", s.Volume, why)
		d.block(KindCreateSnapshot, RuleNoSource, a)
		return
	}
	a.Kind = KindCreateSnapshot
	a.Size = d.sourceSize(s.Volume)
	a.Reason = "snapshot does not exist: copy of volume " + s.Volume
	if p >= 0 {
		a.Reason += " (created first, in phase " + p.String() + ")"
	}
	if where := d.volumeInUse(s.Volume); where != "" {
		a.Reason += "; " + crashConsistent
		d.p.Notes = append(d.p.Notes, fmt.Sprintf("snapshot %s of %s is a %s (%s): see docs/reconcile.md, \"Snapshots, restores and clones\"",
			s.Name, s.Volume, crashConsistent, where))
	}
	d.add(a)
}

// absentSnapshot deletes a snapshot's disk and file (or a leftover file).
// Volumes restored from it are copies of their own and stay.
func (d *differ) absentSnapshot(s *spec.Snapshot) {
	fp := d.st.FilePath(s.Name)
	if disk := d.snapshotDisk(s.Name); disk != nil && s.Protect {
		d.block(KindDeleteSnapshot, RuleProtected, Action{Volume: s.Name, Slot: s.Name, FilePath: fp,
			Reason: "snapshot is absent but protected: remove protect: true to delete it"})
		return
	}
	if disk := d.snapshotDisk(s.Name); disk != nil {
		d.add(Action{Kind: KindDeleteSnapshot, Volume: s.Name, Slot: s.Name, FilePath: fp, Size: disk.Size, Reason: "snapshot is absent"})
		return
	}
	for _, disk := range d.obs.RDS.Snapshots {
		if disk.Slot == s.Name { // in the name space, but another file
			d.block(KindDeleteSnapshot, RuleForeignFile, Action{Volume: s.Name, Slot: s.Name, FilePath: disk.FilePath,
				Reason: fmt.Sprintf("snapshot file is %s, not %s", disk.FilePath, fp)})
			return
		}
	}
	if d.hasFile(fp) {
		d.add(Action{Kind: KindRemoveFile, Volume: s.Name, FilePath: fp, Reason: "leftover file of an absent snapshot"})
	}
}

// undeclaredSnapshots handles managed snapshot disks no snapshot declares:
// kept unless pruning, never pruned by a state that declares nothing.
func (d *differ) undeclaredSnapshots() {
	for _, disk := range d.obs.RDS.Snapshots {
		if d.st.Snapshot(disk.Slot) != nil {
			continue
		}
		if !managedSnapshot(d.st, disk) {
			d.p.Notes = append(d.p.Notes, fmt.Sprintf("snapshot disk %s (%s) is not declared and not fully managed: never touched", disk.Slot, disk.FilePath))
			continue
		}
		a := Action{Volume: disk.Slot, Slot: disk.Slot, FilePath: disk.FilePath, Size: disk.Size}
		switch {
		case !d.sc.Prune:
			d.p.Notes = append(d.p.Notes, fmt.Sprintf("snapshot %s is not declared: kept (prune is off)", disk.Slot))
		case len(d.st.Volumes) == 0 && len(d.st.Snapshots) == 0:
			a.Reason = "not declared, but the state declares no volume or snapshot at all"
			d.block(KindDeleteSnapshot, RuleEmptyPrune, a)
		default:
			a.Kind, a.Reason = KindDeleteSnapshot, "not declared (prune)"
			d.add(a)
		}
	}
}

// doCopy executes a create-snapshot or create-from: one copy-from
// command. A retry first looks whether the copy made it after all (a
// dropped connection after sending), as a create does.
func (ap *applier) doCopy(ctx context.Context, a Action) (uint, error) {
	r := ap.r
	req := rds.CopyRequest{Source: a.Source, Slot: a.Slot, FilePath: a.FilePath}
	if a.Kind == KindCreateFrom {
		req.Export, req.Port, req.NQN = true, a.Port, a.NQN
		req.SetAllowHosts, req.AllowHosts = a.SetAllowHosts, a.AllowHosts
		if a.Size > a.FromSize {
			req.Size = a.Size // file-size only to grow: the copy has the source's size
		}
	}
	return ap.retry(ctx, a, func(attempt uint) error {
		if attempt > 1 {
			inv, err := r.opts.RDS.List(ctx)
			if err != nil {
				return err
			}
			if slices.ContainsFunc(append(inv.Disks, inv.Snapshots...), func(d rds.Disk) bool { return d.Slot == a.Slot }) {
				return nil
			}
		}
		return r.opts.RDS.Copy(ctx, req)
	})
}

// sourceNeeds says whether a copy must be skipped because the create of
// its source failed or was skipped earlier in the same apply.
func sourceNeeds(a Action, failedOfSource []Kind) (Kind, bool) {
	if a.Source == "" || (a.Kind != KindCreateFrom && a.Kind != KindCreateSnapshot) {
		return "", false
	}
	for _, k := range failedOfSource {
		switch k {
		case KindCreate, KindCreateSnapshot, KindCreateFrom, KindGrow:
			return k, true
		}
	}
	return "", false
}
