package csi

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rds-reconcile/rds-reconcile/kube"
	"github.com/rds-reconcile/rds-reconcile/kube/kubetest"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// countingLayer counts the underlying Updates; before, when set, runs
// before the nth one (from 1) and may fail it.
type countingLayer struct {
	ControllerLayer
	n      atomic.Int64
	before func(n int64) error
}

func (c *countingLayer) Update(ctx context.Context, fn func(*spec.State) error) error {
	n := c.n.Add(1)
	if c.before != nil {
		if err := c.before(n); err != nil {
			return err
		}
	}
	return c.ControllerLayer.Update(ctx, fn)
}

// batchBackend is a real layer under test: a file or a ConfigMap on the
// fake API server.
type batchBackend struct {
	name string
	open func(t *testing.T) ControllerLayer
}

var batchBackends = []batchBackend{
	{"file", func(t *testing.T) ControllerLayer {
		return spec.OpenStore(filepath.Join(t.TempDir(), "csi-volumes.yaml"))
	}},
	{"configmap", func(t *testing.T) ControllerLayer {
		api := kubetest.New()
		t.Cleanup(api.Close)
		return kube.NewConfigMapLayer(api.Client(), kube.LayerRef{Namespace: "rds-reconcile", Name: "rds-csi-volumes"}, nil)
	}},
}

// waitQueued waits until n edits are queued behind the one in flight.
func waitQueued(t *testing.T, b *layerBatch, n int) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		b.mu.Lock()
		q := len(b.queued)
		b.mu.Unlock()
		if q >= n {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("only some of %d edits queued after 20 s", n)
}

func addVolume(name string) func(*spec.State) error {
	return func(l *spec.State) error {
		if l.Volume(name) != nil {
			return errUnchanged
		}
		l.Volumes = append(l.Volumes, spec.Volume{Name: name, State: spec.Present, Size: spec.Quantity{Bytes: 1 << 30}})
		return nil
	}
}

// layerVolumes reads the names of the layer's volumes back from storage.
func layerVolumes(t *testing.T, l ControllerLayer) []string {
	t.Helper()
	data, err := l.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st, err := spec.ParseLayer(l.Name(), data)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range st.Volumes {
		names = append(names, v.Name)
	}
	slices.Sort(names)
	return names
}

var errEdit = errors.New("this edit fails")

func TestLayerBatch(t *testing.T) {
	const n = 50
	type edit struct {
		fn      func(*spec.State) error
		wantErr error // nil: applied
	}
	cases := []struct {
		name  string
		edits func(i int) edit
		// failFirstBatch makes the layer refuse the first combined write
		// (a write error) so that every edit goes again alone.
		failFirstBatch bool
		// updates is the number of underlying Updates: edit 0 alone, then
		// one batch of the n-1 edits gathered behind it (2, far fewer
		// than n), and each alone again when the batch is refused.
		updates int64
	}{{
		name:    "all applied in two writes",
		edits:   func(i int) edit { return edit{fn: addVolume(fmt.Sprintf("v%02d", i))} },
		updates: 2,
	}, {
		name: "a failing edit is undone alone",
		edits: func(i int) edit {
			name := fmt.Sprintf("v%02d", i)
			if i == 0 || i == 17 || i == 33 {
				return edit{fn: func(l *spec.State) error {
					// A partial change, then the error: it must not be written.
					if err := addVolume(name)(l); err != nil {
						return err
					}
					l.Hosts = map[string]spec.Host{"stray": {HostNQN: "nqn.2014-08.org.nvmexpress:uuid:0a0a0a0a-0000-4000-8000-00000000000a"}}
					return fmt.Errorf("edit %d: %w", i, errEdit)
				}, wantErr: errEdit}
			}
			return edit{fn: addVolume(name)}
		},
		updates: 2,
	}, {
		name: "a panicking edit is undone alone",
		edits: func(i int) edit {
			name := fmt.Sprintf("v%02d", i)
			if i == 5 {
				return edit{fn: func(l *spec.State) error {
					_ = addVolume(name)(l)
					panic("bug")
				}, wantErr: errAnyError}
			}
			return edit{fn: addVolume(name)}
		},
		updates: 2,
	}, {
		name: "an invalid layer is refused: each edit alone",
		edits: func(i int) edit {
			name := fmt.Sprintf("v%02d", i)
			if i == 20 {
				// Valid as Go, refused by the layer's validation.
				return edit{fn: func(l *spec.State) error {
					l.Volumes = append(l.Volumes, spec.Volume{Name: name, State: "bogus", Size: spec.Quantity{Bytes: 1 << 30}})
					return nil
				}, wantErr: spec.ErrLayer}
			}
			return edit{fn: addVolume(name)}
		},
		// One alone, one refused batch, then each of the n-1 alone.
		updates: 2 + n - 1,
	}, {
		name:           "a failed combined write: each edit alone",
		edits:          func(i int) edit { return edit{fn: addVolume(fmt.Sprintf("v%02d", i))} },
		failFirstBatch: true,
		updates:        2 + n - 1,
	}}
	for _, be := range batchBackends {
		for _, tc := range cases {
			t.Run(be.name+"/"+tc.name, func(t *testing.T) {
				under := &countingLayer{ControllerLayer: be.open(t)}
				b := newLayerBatch(under, nil, 0)
				lb := batchOf(b)
				// The first Update holds the layer until every other edit
				// has queued behind it, so the batch is exactly n-1 edits.
				under.before = func(k int64) error {
					switch {
					case k == 1:
						return waitQueued(t, lb, n-1)
					case k == 2 && tc.failFirstBatch:
						return errors.New("disk full")
					}
					return nil
				}
				var wg sync.WaitGroup
				errs := make([]error, n)
				want := make([]edit, n)
				for i := range n {
					want[i] = tc.edits(i)
					wg.Go(func() { errs[i] = b.Update(t.Context(), want[i].fn) })
					// Edit 0 goes alone; the others queue behind it.
					for i == 0 && !lbBusy(lb) {
						time.Sleep(time.Millisecond)
					}
				}
				wg.Wait()
				var wantNames []string
				for i, w := range want {
					switch {
					case w.wantErr == nil && errs[i] != nil:
						t.Errorf("edit %d: %v, want applied", i, errs[i])
					case w.wantErr == errAnyError && errs[i] == nil,
						w.wantErr != nil && w.wantErr != errAnyError && !errors.Is(errs[i], w.wantErr):
						t.Errorf("edit %d: error %v, want %v", i, errs[i], w.wantErr)
					}
					if w.wantErr == nil {
						wantNames = append(wantNames, fmt.Sprintf("v%02d", i))
					}
				}
				if got := layerVolumes(t, under); !slices.Equal(got, wantNames) {
					t.Errorf("layer volumes\n got %v\nwant %v", got, wantNames)
				}
				data, err := under.Load(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if st, _ := spec.ParseLayer(under.Name(), data); len(st.Hosts) != 0 {
					t.Errorf("a failed edit's change was written: hosts %v", st.Hosts)
				}
				if got := under.n.Load(); got != tc.updates {
					t.Errorf("%d underlying Updates for %d edits, want %d", got, n, tc.updates)
				}
			})
		}
	}
}

// errAnyError in a want means "some error".
var errAnyError = errors.New("any error")

func batchOf(l ControllerLayer) *layerBatch {
	switch b := l.(type) {
	case *layerBatch:
		return b
	case fileLayerBatch:
		return b.layerBatch
	}
	panic(fmt.Sprintf("%T is no layer batch", l))
}

// TestLayerBatchCanceledWhileQueued: a caller that gives up while queued
// gets its ctx's error, and its edit is never run.
func TestLayerBatchCanceledWhileQueued(t *testing.T) {
	for _, be := range batchBackends {
		t.Run(be.name, func(t *testing.T) {
			under := be.open(t)
			b := newLayerBatch(under, nil, 0)
			lb := batchOf(b)
			release := make(chan struct{})
			first := make(chan error, 1)
			go func() {
				first <- b.Update(t.Context(), func(l *spec.State) error {
					<-release
					return addVolume("first")(l)
				})
			}()
			// Wait for the first edit to be in flight.
			for {
				lb.mu.Lock()
				busy := lb.busy
				lb.mu.Unlock()
				if busy {
					break
				}
				time.Sleep(time.Millisecond)
			}
			ctx, cancel := context.WithCancel(t.Context())
			var ran atomic.Bool
			queued := make(chan error, 1)
			go func() {
				queued <- b.Update(ctx, func(l *spec.State) error {
					ran.Store(true)
					return addVolume("canceled")(l)
				})
			}()
			other := make(chan error, 1)
			go func() {
				if err := waitQueued(t, lb, 1); err != nil {
					other <- err
					return
				}
				other <- b.Update(t.Context(), addVolume("other"))
			}()
			if err := waitQueued(t, lb, 2); err != nil {
				t.Fatal(err)
			}
			cancel()
			if err := <-queued; !errors.Is(err, context.Canceled) {
				t.Errorf("canceled caller: %v, want context.Canceled", err)
			}
			close(release)
			if err := <-first; err != nil {
				t.Errorf("first edit: %v", err)
			}
			if err := <-other; err != nil {
				t.Errorf("other queued edit: %v", err)
			}
			if ran.Load() {
				t.Error("the canceled edit ran")
			}
			if got, want := layerVolumes(t, under), []string{"first", "other"}; !slices.Equal(got, want) {
				t.Errorf("layer volumes %v, want %v", got, want)
			}
		})
	}
}

// TestLayerBatchRerun: the combined edit may run again on a fresh read
// (a ConfigMap writer lost a race); verdicts are those of the last run.
func TestLayerBatchRerun(t *testing.T) {
	api := kubetest.New()
	defer api.Close()
	ref := kube.LayerRef{Namespace: "rds-reconcile", Name: "rds-csi-volumes"}
	under := &countingLayer{ControllerLayer: kube.NewConfigMapLayer(api.Client(), ref, nil)}
	b := newLayerBatch(under, nil, 0)
	lb := batchOf(b)
	under.before = func(k int64) error {
		if k == 1 {
			return waitQueued(t, lb, 2)
		}
		return nil
	}
	// Once, a competing writer adds "b" between the batch's read and its
	// write: the batch runs again, and the edit of "b" is then unchanged.
	var raced atomic.Bool
	api.BeforeUpdate = func(ns, name string) {
		if under.n.Load() < 2 || !raced.CompareAndSwap(false, true) {
			return
		}
		other := kube.NewConfigMapLayer(api.Client(), ref, nil)
		if err := other.Update(context.Background(), addVolume("b")); err != nil {
			t.Errorf("competing writer: %v", err)
		}
	}
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, name := range []string{"first", "a", "b"} {
		wg.Go(func() { errs[i] = b.Update(t.Context(), addVolume(name)) })
		// In order: the first in flight, then "a" and "b" queued.
		if i == 0 {
			for !lbBusy(lb) {
				time.Sleep(time.Millisecond)
			}
		} else if err := waitQueued(t, lb, i); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if !raced.Load() {
		t.Fatal("no competing write: the batch never ran again")
	}
	if errs[0] != nil || errs[1] != nil {
		t.Errorf("first, a: %v, %v", errs[0], errs[1])
	}
	if !errors.Is(errs[2], errUnchanged) {
		t.Errorf("b after the competing write: %v, want errUnchanged (from the rerun)", errs[2])
	}
	if got, want := layerVolumes(t, under), []string{"a", "b", "first"}; !slices.Equal(got, want) {
		t.Errorf("layer volumes %v, want %v", got, want)
	}
}

func lbBusy(b *layerBatch) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.busy
}

// TestCloneStateShares: cloneState copies every field and shares nothing
// (a new pointer, slice or map field left shared fails here).
func TestCloneStateShares(t *testing.T) {
	var s spec.State
	fill(reflect.ValueOf(&s).Elem(), 0)
	c := cloneState(&s)
	if !reflect.DeepEqual(&s, c) {
		t.Fatalf("the clone differs:\n got %+v\nwant %+v", c, &s)
	}
	if p := shared(reflect.ValueOf(s), reflect.ValueOf(*c), "State"); p != "" {
		t.Errorf("%s is shared between the state and its clone", p)
	}
	// Nil and empty stay as they are (they encode differently).
	empty := spec.State{Volumes: []spec.Volume{}, Hosts: map[string]spec.Host{}}
	if c := cloneState(&empty); c.Volumes == nil || c.Hosts == nil || c.Snapshots != nil {
		t.Errorf("clone of empty slices and maps: %+v", c)
	}
}

// fill sets every field reachable from v to a non-zero value, with two
// elements in each slice and map.
func fill(v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), depth+1)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), depth+1)
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i), depth+1)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for i := range 2 {
			k := reflect.New(v.Type().Key()).Elem()
			fill(k, depth+1)
			if k.Kind() == reflect.String {
				k.SetString(fmt.Sprintf("k%d", i))
			}
			e := reflect.New(v.Type().Elem()).Elem()
			fill(e, depth+1)
			v.SetMapIndex(k, e)
		}
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", depth))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(depth + 1))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(depth + 1))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(depth) + 1.5)
	}
}

// shared is the path of the first pointer, slice or map that a and b
// share, or "".
func shared(a, b reflect.Value, path string) string {
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() {
			return ""
		}
		if a.Pointer() == b.Pointer() {
			return path
		}
		return shared(a.Elem(), b.Elem(), path)
	case reflect.Struct:
		for i := range a.NumField() {
			if p := shared(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); p != "" {
				return p
			}
		}
	case reflect.Slice:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			return path
		}
		for i := range a.Len() {
			if p := shared(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	case reflect.Map:
		if !a.IsNil() && a.Pointer() == b.Pointer() {
			return path
		}
		for _, k := range a.MapKeys() {
			if p := shared(a.MapIndex(k), b.MapIndex(k), fmt.Sprintf("%s[%v]", path, k)); p != "" {
				return p
			}
		}
	}
	return ""
}
