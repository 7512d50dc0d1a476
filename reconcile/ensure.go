package reconcile

// Ensure: the RDS side of a few volumes in one RDS session, the common case
// of CSI calls (create, delete, expand one volume). Instead of observe,
// apply, observe (three sessions), it sends in one command line the write
// the planner would make for the state it expects (no disk yet for a
// present volume, the managed disk for an absent one), each guarded by
// RouterOS against any other state (rds.EnsureCreateOp and the others),
// and reads back the volumes' slots. The planner then judges that read as
// it judges any observation: when it wants nothing more for the volume, the
// volume has converged; otherwise the caller runs the normal path
// (Reconcile), which observes, plans, applies and verifies, and gives the
// errors (a full pool, a blocked delete) their usual form. Diff stays the
// one source of decisions: the guarded writes come from its plans, and
// convergence is its verdict.

import (
	"context"
	"slices"
	"time"

	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// ensurer is what Ensure needs; *rds.SSHClient has it.
type ensurer interface {
	EnsureCreateOp(r rds.CreateRequest) (rds.BatchOp, error)
	EnsureDeleteOp(slot, filePath, nqn string) (rds.BatchOp, error)
	EnsureGrowOp(slot, filePath string, size int64) (rds.BatchOp, error)
	Batch(ctx context.Context, ops []rds.BatchOp, read []string) (rds.BatchResult, error)
}

// EnsureItem is one volume of one desired state.
type EnsureItem struct {
	State  *spec.State
	Volume string
}

// Ensure converges the one volume of sc in one RDS session when it can. It
// returns the result and true when the volume has converged (the result's
// Remaining is the plan made from the read back), false when the caller
// must run Reconcile: another scope, a host side to converge, a state the
// guarded writes do not cover, or anything short of convergence.
func (r *Reconciler) Ensure(ctx context.Context, st *spec.State, sc Scope) (*Result, bool) {
	if len(sc.Volumes) != 1 || sc.Orphans || sc.Prune {
		return nil, false
	}
	out := r.EnsureMany(ctx, []EnsureItem{{State: st, Volume: sc.Volumes[0]}})
	return out[0], out[0] != nil
}

// EnsureMany is Ensure for several volumes, possibly of different states
// (concurrent CSI calls, each with the state it loaded), in one RDS
// session: out[i] is items[i]'s result, nil when it did not converge
// (run Reconcile for it). Items of one slot are not merged: each gets its
// own guarded writes, which RouterOS runs in order, and its own verdict.
func (r *Reconciler) EnsureMany(ctx context.Context, items []EnsureItem) []*Result {
	out := make([]*Result, len(items))
	e, ok := r.opts.RDS.(ensurer)
	if !ok || r.opts.Fabric != nil {
		return out
	}
	t0 := time.Now()
	var ops []rds.BatchOp
	var read []string
	opsOf := make([][]int, len(items))
	for i, it := range items {
		mine := r.guardedOps(e, it)
		if len(mine) == 0 {
			continue
		}
		for _, op := range mine {
			opsOf[i] = append(opsOf[i], len(ops))
			ops = append(ops, op)
		}
		if !slices.Contains(read, it.Volume) {
			read = append(read, it.Volume)
		}
	}
	if len(ops) == 0 {
		return out
	}
	res, err := e.Batch(ctx, ops, read)
	if err != nil || !res.Read {
		r.log.Debug("one-session ensure not read back; taking the usual path", "err", err, "batchErr", res.Err)
		return out
	}
	for i, it := range items {
		if len(opsOf[i]) == 0 {
			continue
		}
		done := true
		for _, k := range opsOf[i] {
			done = done && res.Status[k] == rds.BatchOK
		}
		if !done {
			continue
		}
		inv := res.Inventory
		obs := &Observed{RDS: &inv, At: r.opts.Now()}
		obs.sort()
		sc := Scope{Volumes: []string{it.Volume}, AllowMassDetach: true}
		after := Diff(it.State, obs, r.opts.Host, sc)
		after.Revision = r.opts.Revision
		after.CreatedAt = r.opts.Now().UTC()
		if after.HasChanges() || slices.ContainsFunc(after.Actions, func(a Action) bool { return a.Volume == it.Volume }) {
			continue
		}
		out[i] = &Result{Remaining: after, After: after, Duration: time.Since(t0)}
		r.opts.Metrics.reconciled(out[i].Duration, nil)
	}
	return out
}

// guardedOps are the guarded writes for it: those of the plans Diff makes
// for the states the volume is expected in. A plan for a present volume is
// asked of "no disk" (a create) and of "the disk, smaller" (a grow); for
// an absent volume of "the managed disk" (a delete). A plan wanting
// anything else (a block, a fix, several actions) gives no write, and no
// writes at all leave the volume to the usual path.
func (r *Reconciler) guardedOps(e ensurer, it EnsureItem) []rds.BatchOp {
	v := it.State.Volume(it.Volume)
	if v == nil {
		return nil
	}
	sc := Scope{Volumes: []string{v.Name}, AllowMassDetach: true}
	only := func(inv rds.Inventory, k Kind) (Action, bool) {
		p := Diff(it.State, &Observed{RDS: &inv}, r.opts.Host, sc)
		if len(p.Actions) != 1 || p.Actions[0].Kind != k || p.Actions[0].Volume != v.Name {
			return Action{}, false
		}
		return p.Actions[0], true
	}
	if v.State == spec.Absent {
		nqn := it.State.NQN(v.Name)
		managed := rds.Disk{Slot: v.Name, Type: "file", FilePath: it.State.FilePath(v.Name), Size: 1, Export: true, NQN: nqn}
		a, ok := only(rds.Inventory{Disks: []rds.Disk{managed}}, KindDelete)
		if !ok {
			return nil
		}
		op, err := e.EnsureDeleteOp(a.Slot, a.FilePath, nqn)
		if err != nil {
			return nil
		}
		return []rds.BatchOp{op}
	}
	create, ok := only(rds.Inventory{}, KindCreate)
	if !ok {
		return nil
	}
	var ops []rds.BatchOp
	op, err := e.EnsureCreateOp(rds.CreateRequest{Slot: create.Slot, FilePath: create.FilePath, Size: create.Size, Port: create.Port,
		NQN: create.NQN, SetAllowHosts: create.SetAllowHosts, AllowHosts: create.AllowHosts})
	if err != nil {
		return nil
	}
	ops = append(ops, op)
	// The disk as the create would make it, one byte: what a grow starts from.
	smaller := rds.Disk{Slot: create.Slot, Type: "file", FilePath: create.FilePath, Size: 1, Export: true, Port: create.Port,
		NQN: create.NQN, AllowHosts: create.AllowHosts}
	if a, ok := only(rds.Inventory{Disks: []rds.Disk{smaller}}, KindGrow); ok {
		if op, err := e.EnsureGrowOp(a.Slot, create.FilePath, a.Size); err == nil {
			ops = append(ops, op)
		}
	}
	return ops
}
