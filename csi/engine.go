package csi

import (
	"context"

	"github.com/rds-reconcile/rds-reconcile/reconcile"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// Engine is the part of *reconcile.Reconciler the CSI services use.
type Engine interface {
	Reconcile(ctx context.Context, st *spec.State, sc reconcile.Scope) (*reconcile.Result, error)
}

// FromEngine adapts the reconcile package's Reconciler: a reconcile that
// ran but left an action failed, skipped, blocked or still planned is an
// error (the volume has not converged), with the RDS and fabric errors
// still reachable through errors.Is (rds.ErrNoSpace -> ResourceExhausted).
func FromEngine(e Engine) Reconciler { return engineAdapter{e} }

type engineAdapter struct{ e Engine }

func (a engineAdapter) Reconcile(ctx context.Context, st *spec.State, sc Scope) error {
	// The mass-detach guard is for files people edit; the CSI layers are
	// written whole by the driver itself, and the node's full run at start
	// is the seed's orphan cleanup.
	res, err := a.e.Reconcile(ctx, st, reconcile.Scope{Volumes: sc.Volumes, Orphans: sc.Orphans, AllowMassDetach: true})
	if err != nil {
		return err
	}
	return res.Err()
}
