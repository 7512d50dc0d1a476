package reconcile

// The batched RDS executor: a phase's RDS writes go to RouterOS in one
// command line (rds.Batch; more only past its size limit) instead of one
// session each. What the batch did not clearly do falls back to the
// per-action path with its retries and backoff: a failed item is run again
// alone (for RouterOS's own message and typed error), an unknown one after
// looking at the live state first. Nothing is reported done on the batch's
// word alone beyond what the per-action path would report: Apply's
// verification observes once more and turns an effect it does not see into
// ErrNotVisible, as for every action.

import (
	"context"
	"sync"
	"time"

	"github.com/rds-reconcile/rds-reconcile/rds"
)

// batcher is what batched RDS phases need; *rds.SSHClient has it. An RDS
// without it (the tests' fakes) runs every action alone.
type batcher interface {
	CreateOp(r rds.CreateRequest) (rds.BatchOp, error)
	SetExportOp(r rds.ExportRequest) (rds.BatchOp, error)
	DeleteOp(slot, filePath string) (rds.BatchOp, error)
	RemoveFileOp(path string) (rds.BatchOp, error)
	Batch(ctx context.Context, ops []rds.BatchOp, read []string) (rds.BatchResult, error)
	BatchUnordered(ctx context.Context, ops []rds.BatchOp, read []string) (rds.BatchResult, error)
}

// batchOp is the batch item of a, or false when a is not batched: a kind
// the batch has no item for (grow reads the size first so it never
// shrinks; copies and the like), or a value the client refuses (the
// per-action path gives the same refusal as the action's error).
func batchOp(b batcher, a Action) (rds.BatchOp, bool) {
	var op rds.BatchOp
	var err error
	switch a.Kind {
	case KindCreate:
		op, err = b.CreateOp(rds.CreateRequest{Slot: a.Slot, FilePath: a.FilePath, Size: a.Size, Port: a.Port, NQN: a.NQN,
			SetAllowHosts: a.SetAllowHosts, AllowHosts: a.AllowHosts})
	case KindFixExport:
		op, err = b.SetExportOp(rds.ExportRequest{Slot: a.Slot, Port: a.Port, NQN: a.NQN,
			SetAllowHosts: a.SetAllowHosts, AllowHosts: a.AllowHosts})
	case KindDelete:
		op, err = b.DeleteOp(a.Slot, a.FilePath)
	case KindRemoveFile:
		op, err = b.RemoveFileOp(a.FilePath)
	default:
		return rds.BatchOp{}, false
	}
	return op, err == nil
}

// batchedGroup is one volume's actions of the phase: head goes in the
// batch, rest runs after it the usual way.
type batchedGroup struct {
	head []Action
	ops  []int // index of each head action's item in the batch
	rest []Action
}

// runBatched runs an RDS phase with its writes batched, and reports
// whether it did: with fewer than two writes to batch, or an RDS that
// cannot batch, the caller runs the phase action by action as before.
//
// Each volume's leading actions that have a batch item, need no earlier
// action of the same volume and are not held back by a failure in an
// earlier phase go in the batch, in plan order; the batch keeps that
// order. Then, per volume and in parallel up to RDSParallelism: a done
// item is recorded, a failed or unknown one runs alone with retries, and
// the volume's remaining actions run in order as runVolume runs them.
func (ap *applier) runBatched(ctx context.Context, order []string, groups map[string][]Action) bool {
	b, ok := ap.r.opts.RDS.(batcher)
	if !ok || ctx.Err() != nil {
		return false
	}
	var ops []rds.BatchOp
	plan := make([]batchedGroup, len(order))
	for gi, key := range order {
		acts := groups[key]
		g := &plan[gi]
		i := 0
		for ; i < len(acts); i++ {
			a := acts[i]
			if _, held := ap.rec.blockedBy(a); held || needsEarlier(a, acts[:i]) {
				break
			}
			op, ok := batchOp(b, a)
			if !ok {
				break
			}
			g.head = append(g.head, a)
			g.ops = append(g.ops, len(ops))
			ops = append(ops, op)
		}
		g.rest = acts[i:]
	}
	if len(ops) < 2 {
		return false
	}
	// One write per volume needs no order between the lines of a long
	// batch: they go side by side. A volume with several keeps them in
	// order, so then the lines go one after the other.
	send := b.BatchUnordered
	for _, g := range plan {
		if len(g.head) > 1 {
			send = b.Batch
		}
	}
	t0 := time.Now()
	res, err := send(ctx, ops, nil)
	took := time.Since(t0)
	if err != nil {
		// Nothing was sent: every action goes its own way.
		ap.r.log.Debug("batch not sent; running the actions one by one", "err", err)
		res = rds.BatchResult{Status: make([]rds.BatchStatus, len(ops))}
		for i := range res.Status {
			res.Status[i] = rds.BatchFailed
		}
	} else if res.Err != nil {
		ap.r.log.Warn("batch answer incomplete; looking again at what it did not confirm", "err", res.Err)
	}
	// Unknown creates may have run: one look at the live state for all.
	var seen map[string]bool
	looked := false
	for gi := range plan {
		for j, a := range plan[gi].head {
			if a.Kind == KindCreate && res.Status[plan[gi].ops[j]] == rds.BatchUnknown && !looked {
				seen, looked = ap.existing(ctx), true
			}
		}
	}
	ap.r.log.Debug("batch ran", "items", len(ops), "sessions", res.Sessions, "took", took)
	sem := make(chan struct{}, ap.r.opts.RDSParallelism)
	var wg sync.WaitGroup
	for gi := range plan {
		g := plan[gi]
		wg.Go(func() {
			if ctx.Err() == nil {
				select {
				case sem <- struct{}{}:
					defer func() { <-sem }()
				case <-ctx.Done():
				}
			}
			for j, a := range g.head {
				switch st := res.Status[g.ops[j]]; {
				case st == rds.BatchOK:
					ap.r.log.Debug("action done", "kind", a.Kind, "volume", a.Volume, "batched", true, "duration", took)
					ap.rec.record(ActionResult{Action: a, Duration: took, Attempts: 1})
				case st == rds.BatchUnknown && a.Kind == KindCreate && seen != nil && seen[a.Slot]:
					// The batch made it before its answer was lost; the
					// verification checks it like any other.
					ap.rec.record(ActionResult{Action: a, Duration: time.Since(t0), Attempts: 1})
				default:
					// Failed (run alone for RouterOS's message) or unknown
					// (delete, remove-file and fix-export are idempotent;
					// a create was looked for above).
					ap.runVolume(ctx, []Action{a})
				}
			}
			ap.runVolume(ctx, g.rest)
		})
	}
	wg.Wait()
	return true
}

// needsEarlier reports whether a needs one of the actions before it.
func needsEarlier(a Action, before []Action) bool {
	for _, b := range before {
		if a.Kind.needs(b.Kind) {
			return true
		}
	}
	return false
}

// existing is the set of managed slots on the RDS now, or nil when it
// cannot be read (the creates then run alone, which looks again on retry).
func (ap *applier) existing(ctx context.Context) map[string]bool {
	inv, err := ap.r.opts.RDS.List(ctx)
	if err != nil {
		ap.r.log.Warn("could not look at the RDS after an incomplete batch", "err", err)
		return nil
	}
	seen := make(map[string]bool, len(inv.Disks))
	for _, d := range inv.Disks {
		seen[d.Slot] = true
	}
	return seen
}
