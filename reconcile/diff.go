package reconcile

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
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

// present plans a present volume: its disk on the RDS, then its
// controller on this host. What the RDS side finds (a grow, no disk to
// connect to) shapes the host side.
func (d *differ) present(v *spec.Volume) {
	var disk diskOutcome
	if d.obs.RDS != nil {
		disk = d.presentDisk(v)
	}
	if d.obs.Fabric {
		d.presentHost(v, disk)
	}
}

// diskOutcome is what the RDS side of a present volume tells its host side.
type diskOutcome struct {
	growing bool // a grow is planned: the namespace grows with it
	noDisk  bool // no disk, and none will be created: nothing to connect to
}

// presentDisk plans the RDS side of a present volume: create its disk, or
// repair the export and grow the disk it has.
func (d *differ) presentDisk(v *spec.Volume) diskOutcome {
	fp := d.st.FilePath(v.Name)
	want := v.Size.Bytes
	disk := d.disk(v.Name)
	switch {
	case disk == nil && want <= 0:
		d.block(KindCreate, RuleNoSize, Action{Volume: v.Name, Slot: v.Name, Reason: "volume has no size"})
		return diskOutcome{noDisk: true}
	case disk == nil && d.hasFile(fp):
		d.block(KindCreate, RuleLeftover, Action{Volume: v.Name, Slot: v.Name, FilePath: fp,
			Reason: fmt.Sprintf("file %s exists without a disk: remove it or adopt it by hand", fp)})
		return diskOutcome{noDisk: true}
	case disk == nil:
		a := Action{Kind: KindCreate, Volume: v.Name, Slot: v.Name, FilePath: fp, Size: want, Port: d.port, NQN: d.st.NQN(v.Name),
			Reason: "disk does not exist"}
		a.SetAllowHosts, a.AllowHosts = d.wantAllowHosts(v)
		d.add(a)
		return diskOutcome{}
	}
	if disk.FilePath != fp {
		d.drift(Drift{Volume: v.Name, Where: "rds", Field: "file-path", Want: fp, Got: disk.FilePath})
	}
	d.export(v, disk)
	return diskOutcome{growing: d.grow(v, disk)}
}

// export plans a fix-export when the disk's export is off or differs from
// the state (NQN, port, mount-filesystem, the allow list under
// policy.exportACL), with a drift entry for each difference.
func (d *differ) export(v *spec.Volume, disk *rds.Disk) {
	nqn := d.st.NQN(v.Name)
	setACL, wantACL := d.wantAllowHosts(v)
	gotACL := rds.NormalizeAllowHosts(disk.AllowHosts)
	var why []string
	differs := func(cond bool, reason, field, want, got string) {
		if cond {
			why = append(why, reason)
			d.drift(Drift{Volume: v.Name, Where: "rds", Field: field, Want: want, Got: got})
		}
	}
	differs(!disk.Export, "export is off", "nvme-tcp-export", "yes", "no")
	differs(disk.NQN != nqn, fmt.Sprintf("NQN is %q", disk.NQN), "nqn", nqn, disk.NQN)
	differs(disk.Port != d.port, fmt.Sprintf("port is %d", disk.Port), "nvme-tcp-port", strconv.Itoa(d.port), strconv.Itoa(disk.Port))
	// mount-filesystem=yes (RouterOS's default) lets RouterOS mount the
	// filesystem a host formats inside the exported disk, a second
	// writer; SetExport turns it off with the export.
	differs(disk.MountFilesystem, "mount-filesystem is yes", "mount-filesystem", "no", "yes")
	// policy.exportACL: the hosts admitted follow the attachments; set in
	// place with the export.
	differs(setACL && !slices.Equal(gotACL, wantACL), "allow-hosts is "+fmtAllowHosts(gotACL),
		"allow-hosts", fmtAllowHosts(wantACL), fmtAllowHosts(gotACL))
	if len(why) > 0 {
		d.add(Action{Kind: KindFixExport, Volume: v.Name, Slot: v.Name, Port: d.port, NQN: nqn,
			SetAllowHosts: setACL, AllowHosts: wantACL, Reason: strings.Join(why, ", ")})
	}
}

// grow plans a grow of a disk smaller than the state's size, and blocks a
// shrink; it says whether the disk grows.
func (d *differ) grow(v *spec.Volume, disk *rds.Disk) bool {
	want := v.Size.Bytes
	switch {
	case want > 0 && disk.Size < want:
		d.add(Action{Kind: KindGrow, Volume: v.Name, Slot: v.Name, Size: want, FromSize: disk.Size,
			Reason: fmt.Sprintf("size %s is less than %s", spec.Quantity{Bytes: disk.Size}, v.Size)})
		return true
	case want > 0 && disk.Size > want:
		d.drift(Drift{Volume: v.Name, Where: "rds", Field: "size", Want: v.Size.String(), Got: spec.Quantity{Bytes: disk.Size}.String()})
		d.block(KindGrow, RuleShrink, Action{Volume: v.Name, Slot: v.Name, Size: want, FromSize: disk.Size,
			Reason: fmt.Sprintf("disk is %s, state says %s: shrinking is refused", spec.Quantity{Bytes: disk.Size}, v.Size)})
	}
	return false
}

// presentHost plans the host side of a present volume: nothing but a
// blocked connect on an undeclared host, disconnects where it is not
// attached, else its one controller here.
func (d *differ) presentHost(v *spec.Volume, disk diskOutcome) {
	ctrls := d.byNQN[d.st.NQN(v.Name)]
	switch {
	case !d.known && len(ctrls) == 0 && len(v.Attachments) > 0 && !disk.noDisk:
		// A wrong --host must not look like "nothing to do here".
		wantT := toFabric(d.st.TimeoutsFor(v))
		d.block(KindConnect, RuleUnknownHost, Action{Volume: v.Name, NQN: d.st.NQN(v.Name), Address: d.address, Port: d.port, Timeouts: &wantT,
			Reason: fmt.Sprintf("attached to %s; this host runs as %q, which the state does not declare (wrong --host?)",
				strings.Join(v.Attachments, ", "), d.host)})
	case !d.attachedHere(v):
		d.notAttached(v, ctrls)
	default:
		d.attached(v, ctrls, disk)
	}
}

// notAttached disconnects the controllers of a volume not attached to this
// host (blocked when the host is not declared).
func (d *differ) notAttached(v *spec.Volume, ctrls []fabric.Controller) {
	for _, c := range ctrls {
		d.claimed[c.Name] = true
		if !d.known {
			// A wrong --host must not detach every volume.
			d.block(KindDisconnect, RuleUnknownHost, Action{Volume: v.Name, Controller: c.Name, NQN: c.SubsysNQN,
				Reason: fmt.Sprintf("host %q is not in the state's hosts (wrong --host?)", d.host)})
			continue
		}
		d.detach(KindDisconnect, v.Name, c, fmt.Sprintf("volume is not attached to %s", d.host))
	}
}

// attached plans a volume attached to this host: keep one controller
// (connect one when there is none), then bring it to the state.
func (d *differ) attached(v *spec.Volume, ctrls []fabric.Controller, disk diskOutcome) {
	wantT := toFabric(d.st.TimeoutsFor(v))
	connect := Action{Kind: KindConnect, Volume: v.Name, NQN: d.st.NQN(v.Name), Address: d.address, Port: d.port,
		HostNQN: d.hostNQN, Timeouts: &wantT}
	cur := d.keep(v, ctrls)
	if cur == nil {
		if !disk.noDisk { // else nothing to connect to until the disk exists
			connect.Reason = "not connected on this host"
			d.add(connect)
		}
		return
	}
	connect.Controller = cur.Name
	if d.unhealthy(v, connect, *cur) || d.timeouts(v, connect, *cur) {
		return
	}
	d.namespace(v, *cur, disk)
}

// keep claims a volume's controllers and returns the best one to keep
// (live, then with the declared host NQN, then the lowest name); any
// other of ours for the same NQN is a duplicate and disconnected. All of
// them are at this target's address and port (ownership), so the one kept
// is never one a connect would duplicate. Nil: none but being deleted.
func (d *differ) keep(v *spec.Volume, ctrls []fabric.Controller) *fabric.Controller {
	var cur *fabric.Controller
	for i := range ctrls {
		c := ctrls[i]
		d.claimed[c.Name] = true
		if c.State == fabric.StateDeleting {
			continue
		}
		if cur == nil || d.better(c, *cur) {
			cur = &ctrls[i]
		}
	}
	for _, c := range ctrls {
		if cur == nil || c.State == fabric.StateDeleting || c.Name == cur.Name {
			continue
		}
		d.detach(KindDisconnect, v.Name, c, fmt.Sprintf("duplicate controller for %s (keeping %s)", d.st.NQN(v.Name), cur.Name))
	}
	return cur
}

// unhealthy plans a reconnect of a controller with the wrong host NQN or
// a dead one, and notes one the kernel is reconnecting; it says whether
// cur is done with (nothing more to plan for it).
func (d *differ) unhealthy(v *spec.Volume, connect Action, cur fabric.Controller) bool {
	var wrong []string
	if cur.HostNQN != "" && d.hostNQN != "" && cur.HostNQN != d.hostNQN {
		wrong = append(wrong, fmt.Sprintf("hostnqn %s", cur.HostNQN))
		d.drift(Drift{Volume: v.Name, Controller: cur.Name, Where: "host", Field: "hostnqn", Want: d.hostNQN, Got: cur.HostNQN})
	}
	if cur.State == fabric.StateDead {
		wrong = append(wrong, "controller is dead")
	}
	if len(wrong) > 0 {
		d.reconnect(connect, cur, "connected with wrong "+strings.Join(wrong, ", "))
		return true
	}
	if cur.State == fabric.StateLive {
		return false
	}
	// connecting, resetting, new: the kernel is retrying within
	// ctrl_loss_tmo; status shows Degraded, the plan leaves it alone but
	// says so, so "no changes" is never read as "all is well".
	loss := "ctrl_loss_tmo off: it retries until the target is back"
	if t := cur.Timeouts.CtrlLossTmo; t >= 0 {
		loss = fmt.Sprintf("it gives up %d s after the connection was lost (ctrl_loss_tmo), then the next plan connects anew", t)
	}
	d.p.Reconnecting = append(d.p.Reconnecting, Reconnecting{Volume: v.Name, Controller: cur.Name, State: string(cur.State),
		Reason: fmt.Sprintf("the kernel is reconnecting every %d s; %s", cur.Timeouts.ReconnectDelay, loss)})
	return true
}

// timeouts plans a set-timeouts when the live controller's timeouts
// differ, or a reconnect when keep_alive_tmo does (the kernel fixes it at
// connect); it says whether it planned the reconnect.
func (d *differ) timeouts(v *spec.Volume, connect Action, cur fabric.Controller) bool {
	wantT, from := *connect.Timeouts, cur.Timeouts
	if wantT.Matches(from) {
		return false
	}
	connect.FromTimeouts = &from
	d.drift(Drift{Volume: v.Name, Controller: cur.Name, Where: "host", Field: "timeouts",
		Want: fmtTimeouts(wantT.Effective()), Got: fmtTimeouts(from.Effective())})
	if wantT.Effective().KeepAliveTmo != from.Effective().KeepAliveTmo {
		d.reconnect(connect, cur, fmt.Sprintf("keep_alive_tmo %d -> %d cannot change on a live controller",
			from.Effective().KeepAliveTmo, wantT.Effective().KeepAliveTmo))
		return true
	}
	a := connect
	a.Kind = KindSetTimeouts
	a.Reason = "timeouts differ: " + fmtTimeouts(from.Effective()) + " -> " + fmtTimeouts(wantT.Effective())
	d.add(a)
	return false
}

// namespace plans a rescan of a live controller that lost its namespace
// or whose namespace is smaller than the disk (or the disk grows).
func (d *differ) namespace(v *spec.Volume, cur fabric.Controller, disk diskOutcome) {
	want := v.Size.Bytes
	if len(cur.Namespaces) == 0 && !disk.noDisk {
		// A live controller without its namespace: the target re-created the
		// subsystem (an export toggled on the RDS) and the kernel dropped the
		// namespace whose identifiers changed. A rescan brings it back.
		d.drift(Drift{Volume: v.Name, Controller: cur.Name, Where: "host", Field: "namespace", Want: "1", Got: "none"})
		d.add(Action{Kind: KindRescan, Volume: v.Name, Controller: cur.Name,
			Reason: "controller is live but shows no namespace: rescan"})
		return
	}
	nsSmall := len(cur.Namespaces) > 0 && cur.Namespaces[0].Size > 0 && want > 0 && cur.Namespaces[0].Size < want
	if disk.growing || (nsSmall && (d.obs.RDS == nil || d.diskSize(v.Name) >= want)) {
		d.add(Action{Kind: KindRescan, Volume: v.Name, Controller: cur.Name, Size: want,
			Reason: "disk grows: rescan the namespace"})
	}
}

// wantAllowHosts says whether policy.exportACL manages v's allow list and
// which host NQNs it holds, sorted: none (any host) under "open"; under
// "attached" the declared hostNQN of every attachment, or rds.NoHostNQN
// alone (no host) when the volume is attached nowhere. The list depends on
// the state only, never on the host planning, so every host's plan wants
// the same list.
func (d *differ) wantAllowHosts(v *spec.Volume) (bool, []string) {
	if d.st.Policy == nil {
		return false, nil
	}
	switch d.st.Policy.ExportACL {
	case spec.ExportACLOpen:
		return true, nil
	case spec.ExportACLAttached:
		var hs []string
		for _, h := range v.Attachments {
			if nqn := d.st.Hosts[h].HostNQN; nqn != "" {
				hs = append(hs, nqn)
			}
		}
		if hs = rds.NormalizeAllowHosts(hs); len(hs) == 0 {
			hs = []string{rds.NoHostNQN}
		}
		return true, hs
	}
	return false, nil
}

// fmtAllowHosts shows an allow list in drift and reasons.
func fmtAllowHosts(hs []string) string {
	switch {
	case len(hs) == 0:
		return "(any host)"
	case len(hs) == 1 && hs[0] == rds.NoHostNQN:
		return "(no host: " + rds.NoHostNQN + ")"
	}
	return strings.Join(hs, ",")
}

func (d *differ) diskSize(slot string) int64 {
	if disk := d.disk(slot); disk != nil {
		return disk.Size
	}
	return 0
}

func (d *differ) reconnect(connect Action, c fabric.Controller, reason string) {
	connect.Kind = KindReconnect
	connect.Controller = c.Name
	connect.Reason = reason
	if busy, by := inUse(c); busy {
		connect.Reason = reason + "; " + by
		d.block(KindReconnect, RuleInUse, connect)
		return
	}
	d.add(connect)
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
	prune := d.sc.Prune
	diskFiles := map[string]bool{}
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
		inv := rds.Inventory{Disks: slices.Clone(o.RDS.Disks), Files: slices.Clone(o.RDS.Files), Exports: slices.Clone(o.RDS.Exports)}
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
