package csi

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/rds-reconcile/rds-reconcile/reconcile"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// recordingEngine is an ensureEngine that records the batches it is given.
type recordingEngine struct {
	mu      sync.Mutex
	batches [][]string
}

func (r *recordingEngine) EnsureMany(_ context.Context, items []reconcile.EnsureItem) []*reconcile.Result {
	names := make([]string, len(items))
	for i, it := range items {
		names[i] = it.Volume
	}
	r.mu.Lock()
	r.batches = append(r.batches, names)
	r.mu.Unlock()
	return make([]*reconcile.Result, len(items)) // nil: converged
}

func (r *recordingEngine) sizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []int
	for _, b := range r.batches {
		s = append(s, len(b))
	}
	return s
}

// The window is long so that an early end is the calls having joined, never
// the timer, however loaded the machine.
const longWindow = 4 * time.Second

// wait classes: how long a batch's leader waited.
type wait int

const (
	atOnce wait = iota // less than a quarter window
	quiet              // a quarter window (a quiet spell) after the last call began
	window             // a whole window: fewer came than were in flight
)

func classify(d time.Duration) wait {
	switch {
	case d >= longWindow:
		return window
	case d >= longWindow/4:
		return quiet
	}
	return atOnce
}

// TestGathererCrowd: a call alone waits a quiet spell for company, then
// goes; with others in flight, the leader waits for them and all go in one
// batch once the last has joined and a quiet spell has passed since the
// last began (not when the window ends); with fewer joining than counted,
// the batch goes when the window ends; without a crowd (the node side)
// nobody waits.
func TestGathererCrowd(t *testing.T) {
	cases := []struct {
		name     string
		crowd    bool
		inFlight int  // calls counted before any comes
		enter    bool // the first call enters alone, the others a moment later (a burst's RPCs)
		stagger  bool // each call enters just before it comes, 1 ms apart
		calls    int  // calls that reach the gatherer
		batches  []int
		waited   wait
	}{
		{"no crowd: at once", false, 0, false, false, 1, []int{1}, atOnce},
		{"alone: a quiet spell", true, 1, false, false, 1, []int{1}, quiet},
		{"a burst whose first comes alone: one batch", true, 0, true, false, 6, []int{6}, quiet},
		{"a burst that keeps starting, each joining before the next begins: one batch", true, 0, false, true, 6, []int{6}, quiet},
		{"eight in flight, eight come: one batch, no window", true, 8, false, false, 8, []int{8}, quiet},
		{"three in flight, two come: the window ends it", true, 3, false, false, 2, []int{2}, window},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := &recordingEngine{}
			g := &gatherer{e: e, window: longWindow, wake: make(chan struct{}, 1)}
			var cr *crowd
			if tc.crowd {
				cr = &crowd{}
			}
			for range tc.inFlight {
				defer cr.enter()()
			}
			t0 := time.Now()
			var wg sync.WaitGroup
			for i := range tc.calls {
				// With enter, the first comes alone and the rest of the
				// burst enters while it waits (gRPC starts them one by one).
				switch {
				case tc.stagger:
					defer cr.enter()()
				case tc.enter && i == 0:
					defer cr.enter()()
				case tc.enter && i == 1:
					for range tc.calls - 1 {
						defer cr.enter()()
					}
				}
				wg.Go(func() {
					res := g.ensure(t.Context(), reconcile.EnsureItem{Volume: fmt.Sprintf("v%d", i)}, cr)
					if res != nil {
						t.Errorf("call %d: %+v", i, res)
					}
				})
				time.Sleep(time.Millisecond) // they arrive one by one
			}
			wg.Wait()
			took := time.Since(t0)
			if got := e.sizes(); !slices.Equal(got, tc.batches) {
				t.Errorf("batch sizes %v, want %v", got, tc.batches)
			}
			if got := classify(took); got != tc.waited {
				t.Errorf("took %v: wait class %d, want %d", took, got, tc.waited)
			}
		})
	}
}

// TestLayerBatchCrowd: the same for the layer: N edits of N calls in flight
// are one underlying write, made as soon as the last has queued; a call
// alone writes at once.
func TestLayerBatchCrowd(t *testing.T) {
	for _, be := range batchBackends {
		for _, n := range []int{1, 12} {
			t.Run(fmt.Sprintf("%s/%d", be.name, n), func(t *testing.T) {
				under := &countingLayer{ControllerLayer: be.open(t)}
				var cr crowd
				for range n {
					defer cr.enter()()
				}
				b := newLayerBatch(under, &cr, longWindow)
				t0 := time.Now()
				var wg sync.WaitGroup
				errs := make([]error, n)
				for i := range n {
					wg.Go(func() { errs[i] = b.Update(t.Context(), addVolume(fmt.Sprintf("v%02d", i))) })
					time.Sleep(time.Millisecond)
				}
				wg.Wait()
				if took := time.Since(t0); took >= longWindow {
					t.Errorf("took %v: the batch waited for the window, not for the calls", took)
				}
				for i, err := range errs {
					if err != nil {
						t.Errorf("edit %d: %v", i, err)
					}
				}
				if got := under.n.Load(); got != 1 {
					t.Errorf("%d layer writes for %d edits of %d calls in flight, want 1", got, n, n)
				}
				if got := layerVolumes(t, b); len(got) != n {
					t.Errorf("layer holds %v, want %d volumes", got, n)
				}
			})
		}
	}
}

// barrierLayer holds the first n Loads until all n have come: every call
// has reached its first read of the layer, so all are in flight, before any
// goes on.
type barrierLayer struct {
	*countingLayer
	n     int64
	loads atomic.Int64
	all   chan struct{}
}

func (b *barrierLayer) Load(ctx context.Context) ([]byte, error) {
	switch k := b.loads.Add(1); {
	case k == b.n:
		close(b.all)
	case k < b.n:
		select {
		case <-b.all:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return b.countingLayer.Load(ctx)
}

// TestConcurrentCreatesOneLayerWriteOneSession: through the controller, N
// concurrent CreateVolume calls share one layer write and one RDS session.
// The gathering window is long so that the count does not depend on the
// machine's speed (the batches end when the calls have joined, not with
// the window; a lone call never waits: TestOneSessionPerCall).
func TestConcurrentCreatesOneLayerWriteOneSession(t *testing.T) {
	const n = 10
	e := newEnv(t, 1<<40)
	counted := &countingLayer{ControllerLayer: spec.OpenStore(filepath.Join(t.TempDir(), "csi-volumes.yaml"))}
	under := &barrierLayer{countingLayer: counted, n: n, all: make(chan struct{})}
	c, err := newController(ControllerConfig{BaseFiles: []string{e.base}, Layer: counted,
		Reconciler: FromEngineWith(reconcile.New(reconcile.Options{RDS: e.client}), EngineOptions{Gather: longWindow}),
		Pool:       e.client}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := c.start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetCapacity(ctx, &csi.GetCapacityRequest{}); err != nil { // warm up the connection
		t.Fatal(err)
	}
	c.cfg.Layer = newLayerBatch(under, &c.calls, longWindow)
	s0, w0 := e.srv.Sessions(), counted.n.Load()
	t0 := time.Now()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = c.CreateVolume(ctx, createReq(fmt.Sprintf("pvc-g%02d", i), 16*mib, nil)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	if took := time.Since(t0); took >= longWindow {
		t.Errorf("took %v: a batch waited for the window", took)
	}
	if got := counted.n.Load() - w0; got != 1 {
		t.Errorf("%d layer writes for %d concurrent creates, want 1", got, n)
	}
	if got := e.srv.Sessions() - s0; got != 1 {
		t.Errorf("%d RDS sessions for %d concurrent creates, want 1", got, n)
	}
	if got := len(e.srv.Disks()); got != n {
		t.Errorf("%d disks, want %d", got, n)
	}
}
