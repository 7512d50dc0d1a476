package csi

import (
	"context"
	"sync"
	"time"

	"github.com/rds-reconcile/rds-reconcile/reconcile"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// Engine is the part of *reconcile.Reconciler the CSI services use.
type Engine interface {
	Reconcile(ctx context.Context, st *spec.State, sc reconcile.Scope) (*reconcile.Result, error)
}

// ensureEngine is an Engine that can also converge volumes in one RDS
// session (*reconcile.Reconciler with an RDS client and no host side).
type ensureEngine interface {
	EnsureMany(ctx context.Context, items []reconcile.EnsureItem) []*reconcile.Result
}

// DefaultGather is how long a call waits for others to share its RDS
// session or layer write with, when others are in flight (see
// EngineOptions.Gather and crowd.go).
const DefaultGather = 2 * time.Millisecond

// EngineOptions tune FromEngineWith.
type EngineOptions struct {
	// Gather: how long a call of one volume waits for others to share its
	// RDS session (gatherFor in crowd.go): a call alone waits at most a
	// quarter of it for a second to begin; with other calls in flight
	// (Scope's crowd), until they have all joined and none has begun for
	// that quarter, or Gather has passed without progress; a call that
	// finds a batch in flight joins the next. Each call gets its own verdict. Zero means DefaultGather;
	// negative sends every call alone.
	Gather time.Duration
}

// FromEngine adapts the reconcile package's Reconciler: a reconcile that
// ran but left an action failed, skipped, blocked or still planned is an
// error (the volume has not converged), with the RDS and fabric errors
// still reachable through errors.Is (rds.ErrNoSpace -> ResourceExhausted).
//
// A call of one volume first tries the one-session path (an Engine with
// EnsureMany: the write and its read back in one RDS command line, shared
// with concurrent calls); when that does not show the volume converged,
// the full reconcile runs as before and gives the errors.
func FromEngine(e Engine) Reconciler { return FromEngineWith(e, EngineOptions{}) }

// FromEngineWith is FromEngine with options.
func FromEngineWith(e Engine, o EngineOptions) Reconciler {
	if o.Gather == 0 {
		o.Gather = DefaultGather
	}
	a := &engineAdapter{e: e}
	if en, ok := e.(ensureEngine); ok {
		a.g = &gatherer{e: en, window: o.Gather, wake: make(chan struct{}, 1)}
	}
	return a
}

type engineAdapter struct {
	e Engine
	g *gatherer // nil: no one-session path
}

func (a *engineAdapter) Reconcile(ctx context.Context, st *spec.State, sc Scope) error {
	if a.g != nil && len(sc.Volumes) == 1 && !sc.Orphans {
		if res := a.g.ensure(ctx, reconcile.EnsureItem{State: st, Volume: sc.Volumes[0]}, sc.crowd); res != nil {
			return res.Err()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	// The mass-detach guard is for files people edit; the CSI layers are
	// written whole by the driver itself, and the node's full run at start
	// is the seed's orphan cleanup.
	res, err := a.e.Reconcile(ctx, st, reconcile.Scope{Volumes: sc.Volumes, Orphans: sc.Orphans, AllowMassDetach: true})
	if err != nil {
		return err
	}
	return res.Err()
}

// gatherer coalesces concurrent one-session calls (group commit): the
// calls in flight go together in one EnsureMany (one RDS session), each
// getting its own verdict; see gatherFor for how long a batch waits.
type gatherer struct {
	e      ensureEngine
	window time.Duration
	wake   chan struct{} // a call joined pending (room for one)

	mu      sync.Mutex
	busy    bool    // a batch is in flight
	pending []*call // waiting for the next batch
}

type call struct {
	item reconcile.EnsureItem
	res  *reconcile.Result
	done chan struct{}
}

// ensure returns item's result, or nil when it did not converge in one
// session (or ctx ended first): the caller then reconciles as usual.
func (g *gatherer) ensure(ctx context.Context, item reconcile.EnsureItem, cr *crowd) *reconcile.Result {
	if g.window < 0 {
		return g.e.EnsureMany(ctx, []reconcile.EnsureItem{item})[0]
	}
	c := &call{item: item, done: make(chan struct{})}
	g.mu.Lock()
	g.pending = append(g.pending, c)
	lead := !g.busy
	g.busy = true
	g.mu.Unlock()
	signal(g.wake)
	if lead {
		// The batch outlives any one caller's context: its result is
		// shared, and RouterOS bounds each command (commandTimeout).
		go g.run(context.WithoutCancel(ctx), cr)
	}
	select {
	case <-c.done:
		return c.res
	case <-ctx.Done():
		return nil
	}
}

// run sends batches until nobody waits, each once the calls in flight
// have joined it or the window has passed (gatherFor); without a crowd,
// the first at once and the next after the window.
func (g *gatherer) run(ctx context.Context, cr *crowd) {
	gatherFor(cr, g.window, g.pendingLen, g.wake)
	for {
		g.mu.Lock()
		calls := g.pending
		g.pending = nil
		if len(calls) == 0 {
			g.busy = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		items := make([]reconcile.EnsureItem, len(calls))
		for i, c := range calls {
			items[i] = c.item
		}
		out := g.e.EnsureMany(ctx, items)
		for i, c := range calls {
			c.res = out[i]
			close(c.done)
		}
		if g.pendingLen() > 0 {
			if cr == nil {
				time.Sleep(g.window)
			} else {
				gatherFor(cr, g.window, g.pendingLen, g.wake)
			}
		}
	}
}

func (g *gatherer) pendingLen() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.pending)
}
