package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

func TestJittered(t *testing.T) {
	for _, u := range []float64{0, 0.25, 0.5, 0.999} {
		d := jittered(time.Minute, 0.1, u)
		if d < 54*time.Second || d > 66*time.Second {
			t.Errorf("jittered(1m, 0.1, %v) = %s", u, d)
		}
	}
}

func TestRunLoop(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "state.yaml")
	vols := `volumes:
  - {name: t-a, size: 1Gi, attachments: [node-a]}
  - {name: t-b, size: 1Gi, attachments: [node-a]}
`
	if err := os.WriteFile(file, []byte(baseYAML+vols), 0o644); err != nil {
		t.Fatal(err)
	}
	fr := newFakeRDS()
	ff := newFakeFabric(fr)
	// An orphan from before the restart: cleaned by the first pass.
	ff.add(ctrl("nvme7", "t-old", defTimeouts))
	// t-b's create fails (terminal) three times: t-b backs off alone.
	failing := &orderedFail{fakeRDS: fr, fail: map[string][]error{
		"t-b": {&rds.Error{Op: "create", Err: rds.ErrNoSpace}, &rds.Error{Op: "create", Err: rds.ErrNoSpace}},
	}}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	r := New(Options{RDS: failing, Fabric: ff, Host: "node-a", Metrics: m})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var passes []PassResult
	got := make(chan PassResult, 100)
	trigger := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- r.Run(ctx, LoopOptions{
			Interval: time.Hour, Files: []string{file}, Trigger: trigger, Debounce: 20 * time.Millisecond,
			Load: func(context.Context) (*spec.State, string, error) {
				st, err := spec.Load(file)
				return st, "rev1", err
			},
			OnPass: func(p PassResult) {
				mu.Lock()
				passes = append(passes, p)
				mu.Unlock()
				got <- p
			},
		})
	}()
	wait := func(what string) PassResult {
		t.Helper()
		select {
		case p := <-got:
			return p
		case <-time.After(10 * time.Second):
			t.Fatalf("no pass after %s", what)
		}
		return PassResult{}
	}
	p1 := wait("start")
	if p1.Err == nil {
		t.Errorf("first pass: want t-b's failure reported")
	}
	ff.mu.Lock()
	_, orphan := ff.ctrls["nvme7"]
	ff.mu.Unlock()
	if orphan {
		t.Error("orphan not disconnected on start")
	}
	// t-a converged despite t-b failing.
	if p1.Status == nil || p1.Status.Volumes[0].Condition != Ready {
		t.Errorf("t-a after first pass: %+v", p1.Status)
	}
	// t-b is waiting out its backoff: Degraded with the failure, not Progressing.
	if p1.Status != nil {
		b := p1.Status.Volumes[1]
		if b.Name != "t-b" || b.Condition != Degraded || !strings.Contains(b.Reason, "create failed") ||
			!strings.Contains(b.Reason, "next try at") {
			t.Errorf("t-b after first pass: %s %q, want Degraded with the create failure", b.Condition, b.Reason)
		}
	}
	// Backoff here is 1-5ms (test policy), so the loop retries t-b by itself
	// long before the hour: the second failure, then success.
	var last PassResult
	for i := 0; i < 5; i++ {
		last = wait("backoff")
		if last.Err == nil {
			break
		}
	}
	if last.Err != nil {
		t.Fatalf("t-b never converged: %v", last.Err)
	}
	// SIGHUP-like trigger.
	trigger <- struct{}{}
	if p := wait("trigger"); p.Plan == nil || p.Plan.HasChanges() {
		t.Errorf("triggered pass: %+v", p.Plan)
	}
	// A file change (atomic replace as git does) triggers a pass.
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(baseYAML+vols+"  - {name: t-c, size: 1Gi, attachments: [node-a]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	p := wait("file change")
	if p.Result == nil || !slices.ContainsFunc(p.Result.Actions, func(ar ActionResult) bool { return ar.Action.Volume == "t-c" }) {
		t.Errorf("file change pass did not create t-c: %+v", p.Result)
	}
	// An unreadable state skips the pass and changes nothing.
	if err := os.WriteFile(file, []byte("::: not yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p := wait("broken file"); p.Err == nil || p.Plan != nil {
		t.Errorf("broken state: %+v", p)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := counterValue(t, m.actions.WithLabelValues("create", "error")); n != 2 {
		t.Errorf("actions_total{create,error} = %v, want 2", n)
	}
	if n := counterValue(t, m.errors); n < 3 {
		t.Errorf("reconcile_errors_total = %v", n)
	}
}

func counterValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetCounter().GetValue()
}
