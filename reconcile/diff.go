package reconcile

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// Safety rules named by blocked actions (see docs/reconcile.md, "Safety rules").
const (
	RuleInUse       = "in-use: the namespace is mounted, held, open by a process or used as swap"
	RuleMassDetach  = "mass-detach: a state that declares no volume for this host, or drops more than half of its volumes at once, disconnects nothing without --allow-mass-detach"
	RuleProtected   = "protect: a protected volume is never deleted"
	RuleShrink      = "no-shrink: a disk is never made smaller"
	RuleEmptyPrune  = "empty-state: a state that declares no volume never prunes"
	RuleUnknownHost = "unknown-host: this host is not declared in hosts, so nothing is connected and no controller is treated as an orphan"
	RuleLeftover    = "leftover-file: a file without a disk may hold data and is not overwritten"
	RuleForeignFile = "foreign-file: the disk's file is not <basePath>/<name>.img"
	RuleNoSize      = "no-size: a present volume needs a size"
)

// differ carries what Diff needs while it walks the volumes.
type differ struct {
	st      *spec.State
	obs     *Observed
	host    string
	sc      Scope
	address string
	port    int
	hostNQN string
	known   bool // host declared in st.Hosts
	p       *Plan
	// byNQN holds this state's own controllers only (see owner): a
	// foreign one is never a volume's, a duplicate or an orphan.
	byNQN   map[string][]fabric.Controller
	owned   []fabric.Controller
	claimed map[string]bool // controller names a volume accounted for
}

// newDiffer sets up a walk of st against obs for host.
func newDiffer(st *spec.State, obs *Observed, host string, sc Scope) *differ {
	d := &differ{
		st: st, obs: obs, host: host, sc: sc,
		port:    spec.DefaultNVMePort,
		byNQN:   map[string][]fabric.Controller{},
		claimed: map[string]bool{},
		p: &Plan{
			FormatVersion: PlanFormatVersion, Version: 1, Host: host, Scope: sc,
			Actions: []Action{}, Drift: []Drift{},
		},
	}
	if st.Target != nil {
		d.address = st.Target.Address
		if st.Target.NVMePort != 0 {
			d.port = st.Target.NVMePort
		}
	}
	if h, ok := st.Hosts[host]; ok {
		d.known = true
		d.hostNQN = h.HostNQN
	}
	return d
}

// Diff computes the actions that bring obs to st for host, within sc. It
// is pure: no I/O, the same inputs give the same plan.
func Diff(st *spec.State, obs *Observed, host string, sc Scope) *Plan {
	if obs == nil {
		obs = &Observed{}
	}
	d := newDiffer(st, obs, host, sc)
	d.ownControllers(ownerOf(st, obs).forHost(host))
	d.volumes()
	d.snapshots()
	if len(sc.Volumes) == 0 {
		d.undeclared()
	}
	d.sideNotes()
	if sc.Orphans {
		d.orphans()
	}
	if len(d.p.Foreign) > 0 {
		d.p.Notes = append(d.p.Notes, fmt.Sprintf("%d controller(s) on this host under the managed NQN prefix are not this state's "+
			"(another target address or port, or a disk this state does not manage): never touched (plan -v or -o json lists them)",
			len(d.p.Foreign)))
	}
	if len(sc.Volumes) == 0 && !sc.AllowMassDetach {
		d.massDetachGuard()
	}
	slices.SortStableFunc(d.p.Actions, func(a, b Action) int {
		return cmp.Or(cmp.Compare(a.Phase, b.Phase), strings.Compare(a.Volume, b.Volume),
			strings.Compare(a.Controller, b.Controller), strings.Compare(string(a.Kind), string(b.Kind)))
	})
	d.p.Fingerprint = Fingerprint(st, obs, host, sc)
	return d.p
}

// ownControllers splits the observed controllers into this state's own (by NQN)
// and foreign ones worth listing.
func (d *differ) ownControllers(own owner) {
	for _, c := range d.obs.Controllers {
		if ok, why := own.classify(c); !ok {
			// Foreign controllers under the managed prefix are worth
			// listing (another RDS, another port, a disk made by hand);
			// other NQNs are everyone else's business.
			if why != ForeignTransport && why != ForeignPrefix {
				d.p.Foreign = append(d.p.Foreign, ForeignController{Controller: c.Name, NQN: c.SubsysNQN,
					Address: c.TrAddr, Port: c.TrSvcID, State: string(c.State), Why: why})
			}
			continue
		}
		d.owned = append(d.owned, c)
		d.byNQN[c.SubsysNQN] = append(d.byNQN[c.SubsysNQN], c)
	}
}

// volumes plans every declared volume in scope, by name.
func (d *differ) volumes() {
	vols := slices.Clone(d.st.Volumes)
	slices.SortFunc(vols, func(a, b spec.Volume) int { return strings.Compare(a.Name, b.Name) })
	for i := range vols {
		v := &vols[i]
		switch {
		case len(d.sc.Volumes) > 0 && !slices.Contains(d.sc.Volumes, v.Name):
		case v.State == spec.Absent:
			d.absent(v)
		default:
			d.present(v)
		}
	}
}

// sideNotes says what the plan could not see or will not do on a side: an
// undeclared host, no RDS, no fabric, a host NQN other than the declared.
func (d *differ) sideNotes() {
	obs, host := d.obs, d.host
	if obs.Fabric && !d.known {
		d.p.Notes = append([]string{fmt.Sprintf("host %q is not declared under hosts (declared: %s): nothing is connected or "+
			"disconnected on this host; pass --host with one of them", host, strings.Join(d.st.HostNames(), ", "))}, d.p.Notes...)
	}
	if obs.RDS == nil {
		d.p.Notes = append(d.p.Notes, "the RDS is not observed (no RDS client): its disks are neither checked nor changed")
	}
	if !obs.Fabric {
		d.p.Notes = append(d.p.Notes, "this host's controllers are not observed (no fabric): nothing is connected or disconnected")
	}
	if d.known && obs.HostNQN != "" && d.hostNQN != "" && obs.HostNQN != d.hostNQN {
		d.p.Notes = append(d.p.Notes, fmt.Sprintf("this host presents %s but the state declares %s for %s: connects use the declared one",
			obs.HostNQN, d.hostNQN, host))
	}
}

func (d *differ) add(a Action) {
	a.Phase = a.Kind.Phase()
	if a.Kind == KindBlocked {
		a.Phase = a.Wanted.Phase()
	}
	d.p.Actions = append(d.p.Actions, a)
}

func (d *differ) block(wanted Kind, rule string, a Action) {
	a.Kind, a.Wanted, a.Blocked = KindBlocked, wanted, rule
	d.add(a)
}

// drift records a difference on something that exists, unless the live
// value is the one apply last made true (see Applied): then only the
// desired state changed, and the action alone says so.
func (d *differ) drift(dr Drift) {
	if d.ownValue(dr) {
		return
	}
	d.p.Drift = append(d.p.Drift, dr)
}

func (d *differ) disk(slot string) *rds.Disk {
	if d.obs.RDS == nil {
		return nil
	}
	for i := range d.obs.RDS.Disks {
		if d.obs.RDS.Disks[i].Slot == slot {
			return &d.obs.RDS.Disks[i]
		}
	}
	return nil
}

func (d *differ) hasFile(path string) bool {
	if d.obs.RDS == nil {
		return false
	}
	for _, f := range d.obs.RDS.Files {
		if f.Name == path {
			return true
		}
	}
	return false
}

func toFabric(t spec.Timeouts) fabric.Timeouts {
	return fabric.Timeouts{CtrlLossTmo: t.CtrlLossTmo, ReconnectDelay: t.ReconnectDelay, KeepAliveTmo: t.KeepAliveTmo}
}

func fmtTimeouts(t fabric.Timeouts) string {
	return fmt.Sprintf("ctrl_loss_tmo=%d reconnect_delay=%d keep_alive_tmo=%d", t.CtrlLossTmo, t.ReconnectDelay, t.KeepAliveTmo)
}

func inUse(c fabric.Controller) (bool, string) {
	for _, ns := range c.Namespaces {
		if ns.InUse {
			by := ns.InUseBy
			if by == "" {
				by = "in use"
			}
			return true, ns.Device + " " + by
		}
	}
	return false, ""
}

// better says whether controller a is a better one to keep than b.
func (d *differ) better(a, b fabric.Controller) bool {
	if (a.State == fabric.StateLive) != (b.State == fabric.StateLive) {
		return a.State == fabric.StateLive
	}
	am, bm := a.HostNQN == d.hostNQN, b.HostNQN == d.hostNQN
	if am != bm {
		return am
	}
	if a.State == fabric.StateDead || b.State == fabric.StateDead {
		return b.State == fabric.StateDead && a.State != fabric.StateDead
	}
	return a.Instance < b.Instance || (a.Instance == b.Instance && a.Name < b.Name)
}

// attachedHere says whether v is attached to this host.
func (d *differ) attachedHere(v *spec.Volume) bool {
	return d.known && slices.Contains(v.Attachments, d.host)
}

// detach plans a disconnect of c, blocked when its namespace is in use.
func (d *differ) detach(kind Kind, volume string, c fabric.Controller, reason string) {
	a := Action{Kind: kind, Volume: volume, Controller: c.Name, NQN: c.SubsysNQN, Reason: reason}
	if busy, by := inUse(c); busy {
		a.Reason = reason + "; " + by
		d.block(kind, RuleInUse, a)
		return
	}
	d.add(a)
}

func (d *differ) absent(v *spec.Volume) {
	nqn := d.st.NQN(v.Name)
	busy := ""
	if d.obs.Fabric {
		for _, c := range d.byNQN[nqn] {
			d.claimed[c.Name] = true
			d.detach(KindDisconnect, v.Name, c, "volume is absent")
			if ok, by := inUse(c); ok {
				busy = by
			}
		}
	}
	if d.obs.RDS == nil {
		return
	}
	fp := d.st.FilePath(v.Name)
	disk := d.disk(v.Name)
	switch {
	case disk != nil && busy != "":
		d.block(KindDelete, RuleInUse, Action{Volume: v.Name, Slot: v.Name, FilePath: disk.FilePath, Size: disk.Size,
			Reason: "volume is absent but still in use on this host: " + busy})
	case disk != nil && v.Protect:
		d.block(KindDelete, RuleProtected, Action{Volume: v.Name, Slot: v.Name, FilePath: disk.FilePath,
			Reason: "volume is absent but protected: remove protect: true to delete it"})
	case disk != nil && disk.FilePath != fp:
		d.block(KindDelete, RuleForeignFile, Action{Volume: v.Name, Slot: v.Name, FilePath: disk.FilePath,
			Reason: fmt.Sprintf("disk file is %s, not %s", disk.FilePath, fp)})
	case disk != nil:
		d.add(Action{Kind: KindDelete, Volume: v.Name, Slot: v.Name, FilePath: fp, Size: disk.Size,
			Reason: "volume is absent"})
	case d.hasFile(fp) && !v.Protect:
		d.add(Action{Kind: KindRemoveFile, Volume: v.Name, FilePath: fp, Reason: "leftover file of an absent volume"})
	}
}

// undeclared handles disks and files no volume declares (full runs only).
func (d *differ) undeclared() {
	if d.obs.RDS == nil {
		return
	}
	declared := map[string]bool{}
	for _, v := range d.st.Volumes {
		declared[v.Name] = true
	}
	for _, s := range d.st.Snapshots { // their files are snapshots.go's
		declared[s.Name] = true
	}
	prune := d.sc.Prune
	diskFiles := map[string]bool{}
	for _, s := range d.obs.RDS.Snapshots {
		diskFiles[s.FilePath] = true
	}
	for _, disk := range d.obs.RDS.Disks {
		diskFiles[disk.FilePath] = true
		if declared[disk.Slot] {
			continue
		}
		if !managedDisk(d.st, disk) {
			d.p.Notes = append(d.p.Notes, fmt.Sprintf("disk %s (%s, %s) is not declared and not fully managed: never touched",
				disk.Slot, disk.FilePath, disk.NQN))
			continue
		}
		a := Action{Volume: disk.Slot, Slot: disk.Slot, FilePath: disk.FilePath, Size: disk.Size}
		switch {
		case !prune:
			d.p.Notes = append(d.p.Notes, fmt.Sprintf("disk %s is not declared: kept (prune is off)", disk.Slot))
		case len(d.st.Volumes) == 0:
			a.Reason = "not declared, but the state declares no volume at all"
			d.block(KindDelete, RuleEmptyPrune, a)
		default:
			a.Kind, a.Reason = KindDelete, "not declared (prune)"
			d.add(a)
		}
	}
	base := strings.TrimSuffix(d.st.FilePath("x"), "x.img")
	for _, f := range d.obs.RDS.Files {
		if diskFiles[f.Name] || !strings.HasPrefix(f.Name, base) || !strings.HasSuffix(f.Name, ".img") {
			continue
		}
		slot := strings.TrimSuffix(strings.TrimPrefix(f.Name, base), ".img")
		if declared[slot] || strings.Contains(slot, "/") {
			continue // declared ones are handled per volume
		}
		if d.st.Target != nil && d.st.Target.SlotPrefix != "" && !strings.HasPrefix(slot, d.st.Target.SlotPrefix) {
			continue
		}
		a := Action{Volume: slot, FilePath: f.Name, Size: f.Size}
		switch {
		case !prune:
			d.p.Notes = append(d.p.Notes, fmt.Sprintf("file %s has no disk and is not declared: kept (prune is off)", f.Name))
		case len(d.st.Volumes) == 0:
			a.Reason = "leftover file, but the state declares no volume at all"
			d.block(KindRemoveFile, RuleEmptyPrune, a)
		default:
			a.Kind, a.Reason = KindRemoveFile, "leftover file, not declared (prune)"
			d.add(a)
		}
	}
}

// orphans handles managed controllers no volume accounted for.
func (d *differ) orphans() {
	if !d.obs.Fabric {
		return
	}
	report := d.st.Policy != nil && d.st.Policy.Orphans == spec.OrphansReport
	for _, c := range d.owned {
		if d.claimed[c.Name] {
			continue
		}
		name := strings.TrimPrefix(c.SubsysNQN, d.st.NQN(""))
		if _, ours := d.obs.Applied[name]; !ours {
			// A volume apply made and the state then dropped is a change
			// of the state, not drift.
			d.drift(Drift{Volume: name, Controller: c.Name, Where: "host", Field: "controller", Got: c.SubsysNQN + " (not declared)"})
		}
		switch {
		case report:
			d.p.Notes = append(d.p.Notes, fmt.Sprintf("orphan controller %s (%s) reported, not disconnected (policy.orphans: report)", c.Name, c.SubsysNQN))
		case !d.known:
			d.block(KindDisconnectOrphan, RuleUnknownHost, Action{Volume: name, Controller: c.Name, NQN: c.SubsysNQN,
				Reason: fmt.Sprintf("host %q is not in the state's hosts (wrong --host?)", d.host)})
		default:
			d.detach(KindDisconnectOrphan, name, c, "no volume attached to this host declares it")
		}
	}
}

// massDetachGuard holds back every disconnect of a full run when the state
// declares no volume attached to this host, or when the plan would
// disconnect more than half (and at least two) of this host's owned
// controllers at once: that is what a half-written, emptied or wrong file
// looks like (Argo CD's allowEmpty idea). The deletes that wait for those
// disconnects are held too. Scope.AllowMassDetach lifts it. Tombstones
// (state: absent) are exempt.
func (d *differ) massDetachGuard() {
	if !d.known || !d.obs.Fabric {
		return // an unknown host already blocks every disconnect
	}
	// A tombstone (state: absent) is an explicit wish no truncated file can
	// produce: its disconnect neither counts nor is held.
	tombstone := map[string]bool{}
	for _, v := range d.st.Volumes {
		if v.State == spec.Absent {
			tombstone[v.Name] = true
		}
	}
	guarded := func(a Action) bool {
		return a.Kind.Bucket() == BucketDisconnect && !tombstone[a.Volume]
	}
	detach := 0
	for _, a := range d.p.Actions {
		if guarded(a) {
			detach++
		}
	}
	why := d.massDetach(detach)
	if why == "" {
		return
	}
	d.holdBack(guarded, why)
	d.p.Notes = append([]string{fmt.Sprintf("held back %d disconnect(s): %s; if that is meant, apply with --allow-mass-detach", detach, why)},
		d.p.Notes...)
}

// massDetach says why detach disconnects at once are a mass detach, or ""
// when they are not: the state declares no volume attached to this host,
// or they are more than half (and at least two) of its owned controllers.
func (d *differ) massDetach(detach int) string {
	attached := 0
	for i := range d.st.Volumes {
		v := &d.st.Volumes[i]
		if v.State != spec.Absent && d.attachedHere(v) {
			attached++
		}
	}
	owned := 0
	for _, c := range d.owned {
		if c.State != fabric.StateDeleting {
			owned++
		}
	}
	switch {
	case detach == 0:
		return ""
	case attached == 0:
		return fmt.Sprintf("the state declares no volume attached to %s", d.host)
	case detach >= 2 && 2*detach > owned:
		return fmt.Sprintf("%d of the %d controllers of %s would be disconnected at once", detach, owned, d.host)
	}
	return ""
}

// holdBack blocks the guarded disconnects (RuleMassDetach) and the deletes
// that wait for them.
func (d *differ) holdBack(guarded func(Action) bool, why string) {
	held := map[string]bool{}
	for i := range d.p.Actions {
		a := &d.p.Actions[i]
		if !guarded(*a) {
			continue
		}
		held[a.Volume] = true
		a.Wanted, a.Kind, a.Blocked = a.Kind, KindBlocked, RuleMassDetach
		a.Reason = a.Reason + "; held back: " + why
	}
	for i := range d.p.Actions {
		a := &d.p.Actions[i]
		if a.Kind.Bucket() == BucketDelete && held[a.Volume] {
			a.Wanted, a.Kind, a.Blocked = a.Kind, KindBlocked, RuleMassDetach
			a.Reason = a.Reason + "; held back with its disconnect: " + why
		}
	}
}

// Fingerprint is the sha256 of the canonical observed state (sorted, pool
// free space left out as it moves on its own) and the desired state, the
// host and the scope. A saved plan stores it; apply refuses a plan whose
// fingerprint no longer matches.
func Fingerprint(st *spec.State, obs *Observed, host string, sc Scope) string {
	o := *obs
	if o.RDS != nil {
		// Exports decide ownership, so they count; pool free space does not.
		inv := rds.Inventory{Disks: slices.Clone(o.RDS.Disks), Files: slices.Clone(o.RDS.Files), Exports: slices.Clone(o.RDS.Exports),
			Snapshots: slices.Clone(o.RDS.Snapshots)}
		o.RDS = &inv
	}
	o.Controllers = slices.Clone(o.Controllers)
	o.sort()
	h := sha256.New()
	enc := json.NewEncoder(h)
	// Encoding plain data types cannot fail; errors would only come from
	// the hash writer, which never fails.
	_ = enc.Encode(o)
	_ = enc.Encode(st)
	_ = enc.Encode(host)
	_ = enc.Encode(sc)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
