package csi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

// layerBatch is group commit for edits of the controller's layer: every
// Update of the layer is one locked read, validation and fsynced write (or
// one ConfigMap PUT), so concurrent CSI calls would otherwise reach the RDS
// one layer write apart, however well their RDS writes are coalesced.
//
// An Update that finds no edit in flight leads a batch: it waits for the
// controller's other calls in flight (its crowd) to queue behind it, or
// briefly for one to begin (gatherFor); without a crowd it goes at once,
// alone. Updates arriving while one is in flight queue. The next underlying
// Update applies them all: each fn in arrival order on top of the ones
// before it. A fn that fails has its own
// changes undone and gets its error alone; the others are written. When the
// combined layer is refused as a whole (validation, a failed write), each
// queued fn is run again alone, so that each call gets its own verdict and
// one bad edit cannot fail its neighbours.
type layerBatch struct {
	layer  ControllerLayer
	crowd  *crowd        // the controller's calls in flight; nil: none counted
	window time.Duration // how long a leader with company gathers
	wake   chan struct{} // an edit joined the queue (room for one)

	mu     sync.Mutex
	busy   bool         // an underlying Update is in flight
	queued []*layerEdit // waiting for the next one, in arrival order
}

// layerEdit is one caller's Update waiting in the queue.
type layerEdit struct {
	ctx  context.Context
	fn   func(*spec.State) error
	done chan error // buffered: the verdict
	// taken is set (under layerBatch.mu) when a batch takes the edit off
	// the queue: from then on its fn may be applied, so its caller waits
	// for the verdict even if its ctx ends.
	taken bool
}

// errNoneApplied ends a combined edit in which every fn failed: nothing to
// write.
var errNoneApplied = errors.New("no edit of the batch applied")

// newLayerBatch wraps l. A file layer (a LayerStore) stays one, so the
// driver still finds the file to clean up after an interrupted write.
func newLayerBatch(l ControllerLayer, c *crowd, window time.Duration) ControllerLayer {
	b := &layerBatch{layer: l, crowd: c, window: window, wake: make(chan struct{}, 1)}
	if f, ok := l.(LayerStore); ok {
		return fileLayerBatch{layerBatch: b, file: f}
	}
	return b
}

// fileLayerBatch is a layerBatch over a file layer: Path and Read are the
// file's, Update is gathered.
type fileLayerBatch struct {
	*layerBatch
	file LayerStore
}

func (f fileLayerBatch) Path() string { return f.file.Path() }

func (f fileLayerBatch) Read() (*spec.State, error) { return f.file.Read() }

func (b *layerBatch) Name() string { return b.layer.Name() }

func (b *layerBatch) Load(ctx context.Context) ([]byte, error) { return b.layer.Load(ctx) }

// Update is ControllerLayer.Update, gathered with concurrent calls. A
// caller whose ctx ends while its edit is queued gets ctx's error and its fn
// is never run; once a batch has taken the edit, the caller waits for the
// batch's verdict (the write may land).
func (b *layerBatch) Update(ctx context.Context, fn func(*spec.State) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("waiting to edit %s: %w", b.Name(), err)
	}
	b.mu.Lock()
	if !b.busy && b.crowd == nil {
		b.busy = true
		b.mu.Unlock()
		defer b.next()
		return b.layer.Update(ctx, fn)
	}
	e := &layerEdit{ctx: ctx, fn: fn, done: make(chan error, 1)}
	b.queued = append(b.queued, e)
	lead := !b.busy
	b.busy = true
	b.mu.Unlock()
	signal(b.wake)
	if lead {
		// Others are on their way: gather them, then write once. The
		// leader waits for the verdict like any queued edit.
		go func() {
			gatherFor(b.crowd, b.window, b.queuedLen, b.wake)
			b.drain()
		}()
	}
	select {
	case err := <-e.done:
		return err
	case <-ctx.Done():
	}
	b.mu.Lock()
	if !e.taken {
		b.queued = slices.DeleteFunc(b.queued, func(q *layerEdit) bool { return q == e })
		b.mu.Unlock()
		return fmt.Errorf("waiting to edit %s: %w", b.Name(), ctx.Err())
	}
	b.mu.Unlock()
	return <-e.done
}

func (b *layerBatch) queuedLen() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queued)
}

// next ends an underlying Update: with edits queued meanwhile, the next
// batch starts in the background (the caller that finished has its answer
// and must not wait for others'); with none, the layer is idle.
func (b *layerBatch) next() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queued) == 0 {
		b.busy = false
		return
	}
	go b.drain()
}

// drain applies the queued edits, batch after batch, until none is left.
func (b *layerBatch) drain() {
	for {
		b.mu.Lock()
		batch := b.queued
		b.queued = nil
		if len(batch) == 0 {
			b.busy = false
			b.mu.Unlock()
			return
		}
		for _, e := range batch {
			e.taken = true
		}
		b.mu.Unlock()
		b.apply(batch)
	}
}

// apply writes one batch and answers each of its callers.
func (b *layerBatch) apply(batch []*layerEdit) {
	// A caller whose ctx ended before the batch took it is answered so
	// and left out, as if it had left the queue itself.
	live := batch[:0:0]
	for _, e := range batch {
		if err := e.ctx.Err(); err != nil {
			e.done <- fmt.Errorf("waiting to edit %s: %w", b.Name(), err)
			continue
		}
		live = append(live, e)
	}
	switch len(live) {
	case 0:
		return
	case 1:
		live[0].done <- b.layer.Update(live[0].ctx, live[0].fn)
		return
	}
	ctx, stop := batchContext(live)
	defer stop()
	results := make([]error, len(live))
	err := b.layer.Update(ctx, func(st *spec.State) error {
		// The layer may run this again on a fresh read (another writer
		// won): every verdict is recomputed from the state given.
		applied := 0
		for i, e := range live {
			before := cloneState(st)
			results[i] = spec.EditLayer(e.fn, st)
			if results[i] != nil {
				*st = *before
				continue
			}
			applied++
		}
		if applied == 0 {
			return errNoneApplied
		}
		return nil
	})
	if err == nil || errors.Is(err, errNoneApplied) {
		for i, e := range live {
			e.done <- results[i]
		}
		return
	}
	// Refused as a whole: no fn of the batch was stored. Each goes again
	// alone, for its own verdict, unless its caller has gone meanwhile.
	for _, e := range live {
		if cerr := e.ctx.Err(); cerr != nil {
			e.done <- fmt.Errorf("waiting to edit %s: %w", b.Name(), cerr)
			continue
		}
		e.done <- b.layer.Update(e.ctx, e.fn)
	}
}

// batchContext is the context of a batch's underlying Update: it keeps the
// first caller's values and ends when every caller's ctx has ended (one
// caller giving up must not fail the others' write; all of them giving up
// stops it).
func batchContext(batch []*layerEdit) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(batch[0].ctx))
	var left atomic.Int64
	left.Store(int64(len(batch)))
	stops := make([]func() bool, 0, len(batch))
	for _, e := range batch {
		stops = append(stops, context.AfterFunc(e.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		}))
	}
	return ctx, func() {
		for _, s := range stops {
			s()
		}
		cancel()
	}
}

// cloneState is a deep copy of s: nothing the copy holds (pointers,
// slices, maps) is shared with s, so an edit of one never shows in the
// other. TestCloneStateShares checks by reflection that no field is left
// shared, so a new reference field must be copied here.
func cloneState(s *spec.State) *spec.State {
	c := *s
	if s.Target != nil {
		t := *s.Target
		c.Target = &t
	}
	if s.Defaults != nil {
		d := *s.Defaults
		d.Connection = cloneConnection(d.Connection)
		c.Defaults = &d
	}
	if s.Policy != nil {
		p := *s.Policy
		c.Policy = &p
	}
	if s.Hosts != nil {
		c.Hosts = maps.Clone(s.Hosts)
	}
	if s.Volumes != nil {
		c.Volumes = make([]spec.Volume, len(s.Volumes), cap(s.Volumes))
		for i, v := range s.Volumes {
			v.Connection = cloneConnection(v.Connection)
			if v.Attachments != nil {
				v.Attachments = slices.Clone(v.Attachments)
			}
			if v.From != nil {
				f := *v.From
				v.From = &f
			}
			c.Volumes[i] = v
		}
	}
	if s.Snapshots != nil {
		c.Snapshots = slices.Clone(s.Snapshots)
	}
	return &c
}

func cloneConnection(c spec.Connection) spec.Connection {
	cp := func(p *int) *int {
		if p == nil {
			return nil
		}
		v := *p
		return &v
	}
	c.CtrlLossTmo, c.ReconnectDelay, c.KeepAliveTmo = cp(c.CtrlLossTmo), cp(c.ReconnectDelay), cp(c.KeepAliveTmo)
	return c
}
