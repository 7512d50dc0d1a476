package reconcile

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// Condition is a volume's health in status. Its values are named
// Condition* so that ConditionBlocked (a volume a safety rule stops) reads
// apart from KindBlocked (the action it stops).
type Condition string

// Conditions of a volume.
const (
	ConditionReady       Condition = "Ready"       // as declared
	ConditionProgressing Condition = "Progressing" // apply has work to do
	ConditionDegraded    Condition = "Degraded"    // the kernel is reconnecting, or the volume's actions keep failing
	ConditionBlocked     Condition = "Blocked"     // a safety rule stops an action
)

// Status is the per-volume health of a state on this host.
type Status struct {
	FormatVersion string         `json:"format_version"`
	Host          string         `json:"host"`
	Revision      string         `json:"revision,omitempty"`
	Time          time.Time      `json:"time"`
	Volumes       []VolumeStatus `json:"volumes"`
	Orphans       []OrphanStatus `json:"orphans"`
	// Foreign are controllers under the managed prefix that are not this
	// state's (another target or port, an unmanaged disk).
	Foreign []ForeignController `json:"foreign"`
	Drift   []Drift             `json:"drift"`
	Plan    Summary             `json:"plan"`
	// RDSVersion is the RDS's RouterOS release as it prints it ("7.21
	// (stable)"), read once per connection; absent when unknown.
	RDSVersion string `json:"rdsVersion,omitempty"`
}

// VolumeStatus is one declared volume.
type VolumeStatus struct {
	Name  string     `json:"name"`
	State string     `json:"state"` // present or absent
	RDS   *RDSStatus `json:"rds,omitempty"`
	Host  *HostState `json:"host,omitempty"`
	Drift []string   `json:"drift,omitempty"`
	// Condition is Ready, Progressing, Degraded or Blocked; Reason says why.
	Condition Condition `json:"condition"`
	Reason    string    `json:"reason,omitempty"`
}

// RDSStatus is the volume's disk on the RDS.
type RDSStatus struct {
	Present  bool  `json:"present"`
	Exported bool  `json:"exported"`
	Size     int64 `json:"size"`
	Desired  int64 `json:"desiredSize"`
}

// HostState is the volume on this host.
type HostState struct {
	Attached   bool   `json:"attached"` // declared attached to this host
	Controller string `json:"controller,omitempty"`
	State      string `json:"state,omitempty"`
	Device     string `json:"device,omitempty"`
	Mounted    bool   `json:"mounted"`
	MountedBy  string `json:"mountedBy,omitempty"`
	// InUse: mounted, held, open by a process or active swap; InUseBy
	// says which and by whom.
	InUse   bool   `json:"inUse"`
	InUseBy string `json:"inUseBy,omitempty"`
}

// OrphanStatus is an undeclared managed controller.
type OrphanStatus struct {
	Controller string `json:"controller"`
	NQN        string `json:"nqn"`
	State      string `json:"state"`
	InUse      string `json:"inUse,omitempty"`
}

// Status observes and reports per-volume health, judged by a full plan.
func (r *Reconciler) Status(ctx context.Context, st *spec.State) (*Status, error) {
	return r.StatusIn(ctx, st, Full(st.Policy != nil && st.Policy.Prune))
}

// StatusIn is Status judged by a plan of scope sc (the loop passes its own,
// so --prune and --allow-mass-detach show as they act).
func (r *Reconciler) StatusIn(ctx context.Context, st *spec.State, sc Scope) (*Status, error) {
	obs, err := r.observe(ctx, PolicyFrom(st))
	if err != nil {
		return nil, err
	}
	s := BuildStatusIn(st, obs, r.opts.Host, sc)
	r.opts.Metrics.observeStatus(s, obs)
	s.Revision = r.opts.Revision
	s.RDSVersion = r.rdsVersion()
	s.Time = r.opts.Now().UTC()
	return s, nil
}

// BuildStatus is the pure part of Status.
func BuildStatus(st *spec.State, obs *Observed, host string) *Status {
	return BuildStatusIn(st, obs, host, Full(st.Policy != nil && st.Policy.Prune))
}

// BuildStatusIn is the pure part of StatusIn.
func BuildStatusIn(st *spec.State, obs *Observed, host string, sc Scope) *Status {
	p := Diff(st, obs, host, sc)
	s := &Status{FormatVersion: "1", Host: host, Volumes: []VolumeStatus{}, Orphans: []OrphanStatus{}, Drift: p.Drift, Plan: p.Summary()}
	s.Foreign = p.Foreign
	if s.Foreign == nil {
		s.Foreign = []ForeignController{}
	}
	byVol := map[string][]Action{}
	for _, a := range p.Actions {
		byVol[a.Volume] = append(byVol[a.Volume], a)
	}
	driftBy := map[string][]string{}
	for _, d := range p.Drift {
		driftBy[d.Volume] = append(driftBy[d.Volume], fmt.Sprintf("%s %s: want %s, got %s", d.Where, d.Field, d.Want, d.Got))
	}
	own := ownerOf(st, obs)
	claimed := map[string]bool{}
	vols := slices.Clone(st.Volumes)
	slices.SortFunc(vols, func(a, b spec.Volume) int { return strings.Compare(a.Name, b.Name) })
	for i := range vols {
		v := &vols[i]
		state := v.State
		if state == "" {
			state = spec.Present
		}
		vs := VolumeStatus{Name: v.Name, State: state, Drift: driftBy[v.Name]}
		if obs.RDS != nil {
			vs.RDS = rdsStatus(v, obs.RDS.Disks)
		}
		var ctrl *fabric.Controller
		if obs.Fabric {
			ctrl = volumeController(obs.Controllers, own, st.NQN(v.Name), claimed)
			vs.Host = hostState(slices.Contains(v.Attachments, host), ctrl)
		}
		vs.Condition, vs.Reason = condition(state, byVol[v.Name], ctrl)
		s.Volumes = append(s.Volumes, vs)
	}
	if obs.Fabric {
		s.Orphans = append(s.Orphans, orphanStatus(obs.Controllers, own, claimed)...)
	}
	return s
}

// rdsStatus is a volume's disk as the RDS shows it.
func rdsStatus(v *spec.Volume, disks []rds.Disk) *RDSStatus {
	rs := &RDSStatus{Desired: v.Size.Bytes}
	for _, d := range disks {
		if d.Slot == v.Name {
			rs.Present, rs.Exported, rs.Size = true, d.Export, d.Size
		}
	}
	return rs
}

// volumeController claims this state's controllers of nqn and returns the
// one status reports: the first live one, else the first (nil: none).
func volumeController(ctrls []fabric.Controller, own owner, nqn string, claimed map[string]bool) *fabric.Controller {
	var ctrl *fabric.Controller
	for j := range ctrls {
		c := &ctrls[j]
		if owned, _ := own.classify(*c); owned && c.SubsysNQN == nqn {
			claimed[c.Name] = true
			if ctrl == nil || (ctrl.State != fabric.StateLive && c.State == fabric.StateLive) {
				ctrl = c
			}
		}
	}
	return ctrl
}

// hostState is a volume on this host: declared attached or not, and its
// controller, device and use when it has one.
func hostState(attached bool, ctrl *fabric.Controller) *HostState {
	hs := &HostState{Attached: attached}
	if ctrl == nil {
		return hs
	}
	hs.Controller, hs.State = ctrl.Name, string(ctrl.State)
	if len(ctrl.Namespaces) > 0 {
		hs.Device = ctrl.Namespaces[0].Device
	}
	if busy, by := inUse(*ctrl); busy {
		hs.InUse, hs.InUseBy = true, by
		hs.Mounted = strings.Contains(by, " mounted on ")
		if hs.Mounted {
			hs.MountedBy = by
		}
	}
	return hs
}

// orphanStatus lists this state's controllers no volume claimed.
func orphanStatus(ctrls []fabric.Controller, own owner, claimed map[string]bool) []OrphanStatus {
	var orphans []OrphanStatus
	for _, c := range ctrls {
		if owned, _ := own.classify(c); !owned || claimed[c.Name] {
			continue
		}
		o := OrphanStatus{Controller: c.Name, NQN: c.SubsysNQN, State: string(c.State)}
		if busy, by := inUse(c); busy {
			o.InUse = by
		}
		orphans = append(orphans, o)
	}
	return orphans
}

// condition derives a volume's condition from what the plan would do and
// the controller's kernel state.
func condition(state string, acts []Action, ctrl *fabric.Controller) (Condition, string) {
	for _, a := range acts {
		if a.Kind == KindBlocked {
			return ConditionBlocked, fmt.Sprintf("%s blocked (%s): %s", a.Wanted, a.Blocked, a.Reason)
		}
	}
	if len(acts) > 0 {
		var what []string
		for _, a := range acts {
			what = append(what, string(a.Kind)+": "+a.Reason)
		}
		return ConditionProgressing, strings.Join(what, "; ")
	}
	if ctrl != nil && state != spec.Absent {
		switch ctrl.State {
		case fabric.StateLive:
		case fabric.StateConnecting, fabric.StateResetting:
			return ConditionDegraded, fmt.Sprintf("controller %s is %s: the kernel is reconnecting", ctrl.Name, ctrl.State)
		case fabric.StateDeleting:
			return ConditionProgressing, fmt.Sprintf("controller %s is being deleted", ctrl.Name)
		default:
			return ConditionDegraded, fmt.Sprintf("controller %s is %s", ctrl.Name, ctrl.State)
		}
	}
	if state == spec.Absent {
		return ConditionReady, "absent"
	}
	return ConditionReady, ""
}
