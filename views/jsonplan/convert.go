package jsonplan

import (
	"fmt"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/reconcile"
)

// each maps a slice, keeping nil apart from empty: the document has
// always written a plan without actions or drift as null, not [].
func each[S, D any](src []S, f func(S) D) []D {
	if src == nil {
		return nil
	}
	out := make([]D, len(src))
	for i, s := range src {
		out[i] = f(s)
	}
	return out
}

// FromPlan is p as the document, at this FormatVersion.
func FromPlan(p *reconcile.Plan) Plan {
	return Plan{
		FormatVersion: FormatVersion, Version: p.Version, Host: p.Host, Revision: p.Revision, Files: p.Files,
		Scope: Scope{Volumes: p.Scope.Volumes, Prune: p.Scope.Prune, Orphans: p.Scope.Orphans,
			AllowMassDetach: p.Scope.AllowMassDetach},
		CreatedAt: p.CreatedAt, Fingerprint: p.Fingerprint,
		Actions: each(p.Actions, FromAction),
		Drift: each(p.Drift, func(d reconcile.Drift) Drift {
			return Drift{Volume: d.Volume, Controller: d.Controller, Where: d.Where, Field: d.Field, Want: d.Want, Got: d.Got}
		}),
		Notes:        p.Notes,
		Reconnecting: each(p.Reconnecting, func(r reconcile.Reconnecting) Reconnecting { return Reconnecting(r) }),
		Foreign:      each(p.Foreign, func(f reconcile.ForeignController) Foreign { return Foreign(f) }),
	}
}

// FromAction is a as the document writes it.
func FromAction(a reconcile.Action) Action {
	return Action{
		Kind: string(a.Kind), Volume: a.Volume, Controller: a.Controller, Reason: a.Reason, Blocked: a.Blocked,
		Wanted: string(a.Wanted), Phase: a.Phase.String(),
		Slot: a.Slot, FilePath: a.FilePath, Size: a.Size, FromSize: a.FromSize, Port: a.Port, NQN: a.NQN,
		SetAllowHosts: a.SetAllowHosts, AllowHosts: a.AllowHosts, Source: a.Source, SourceKind: a.SourceKind,
		Address: a.Address, HostNQN: a.HostNQN, Timeouts: fromTimeouts(a.Timeouts), FromTimeouts: fromTimeouts(a.FromTimeouts),
	}
}

func fromTimeouts(t *fabric.Timeouts) *Timeouts {
	if t == nil {
		return nil
	}
	v := Timeouts(*t)
	return &v
}

func (t *Timeouts) toFabric() *fabric.Timeouts {
	if t == nil {
		return nil
	}
	v := fabric.Timeouts(*t)
	return &v
}

// toPlan is the document as reconcile's Plan.
func (d *Plan) toPlan() (*reconcile.Plan, error) {
	p := &reconcile.Plan{
		FormatVersion: d.FormatVersion, Version: d.Version, Host: d.Host, Revision: d.Revision, Files: d.Files,
		Scope: reconcile.Scope{Volumes: d.Scope.Volumes, Prune: d.Scope.Prune, Orphans: d.Scope.Orphans,
			AllowMassDetach: d.Scope.AllowMassDetach},
		CreatedAt: d.CreatedAt, Fingerprint: d.Fingerprint,
		Drift: each(d.Drift, func(x Drift) reconcile.Drift {
			return reconcile.Drift{Volume: x.Volume, Controller: x.Controller, Where: x.Where, Field: x.Field, Want: x.Want, Got: x.Got}
		}),
		Notes:        d.Notes,
		Reconnecting: each(d.Reconnecting, func(r Reconnecting) reconcile.Reconnecting { return reconcile.Reconnecting(r) }),
		Foreign:      each(d.Foreign, func(f Foreign) reconcile.ForeignController { return reconcile.ForeignController(f) }),
	}
	if d.Actions != nil {
		p.Actions = make([]reconcile.Action, len(d.Actions))
	}
	for i, a := range d.Actions {
		var err error
		if p.Actions[i], err = a.toAction(); err != nil {
			return nil, fmt.Errorf("action %d (%s): %w", i+1, a.Kind, err)
		}
	}
	return p, nil
}

func (a *Action) toAction() (reconcile.Action, error) {
	var ph reconcile.Phase
	if err := ph.UnmarshalText([]byte(a.Phase)); err != nil {
		return reconcile.Action{}, err
	}
	return reconcile.Action{
		Kind: reconcile.Kind(a.Kind), Volume: a.Volume, Controller: a.Controller, Reason: a.Reason, Blocked: a.Blocked,
		Wanted: reconcile.Kind(a.Wanted), Phase: ph,
		Slot: a.Slot, FilePath: a.FilePath, Size: a.Size, FromSize: a.FromSize, Port: a.Port, NQN: a.NQN,
		SetAllowHosts: a.SetAllowHosts, AllowHosts: a.AllowHosts, Source: a.Source, SourceKind: a.SourceKind,
		Address: a.Address, HostNQN: a.HostNQN, Timeouts: a.Timeouts.toFabric(), FromTimeouts: a.FromTimeouts.toFabric(),
	}, nil
}
