package reconcile

// The plan of a present volume: the RDS side (its disk: create, export,
// grow), then the host side (its one controller here: connect, reconnect,
// timeouts, rescan; disconnects where it is not attached).

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

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
	case disk == nil && v.From != nil:
		return d.createFrom(v, fp)
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
	d.sourceIgnored(v)
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
