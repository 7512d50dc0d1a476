package reconcile

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
			Settle: 20 * time.Millisecond,
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
	// The orphan is disconnected only once a second pass plans it too.
	ff.mu.Lock()
	_, orphan := ff.ctrls["nvme7"]
	ff.mu.Unlock()
	if !orphan {
		t.Error("orphan disconnected by the first pass alone")
	}
	if !slices.ContainsFunc(p1.Pending, func(a Action) bool { return a.Kind == KindDisconnectOrphan && a.Controller == "nvme7" }) {
		t.Errorf("first pass: orphan disconnect not pending: %+v", p1.Pending)
	}
	// t-a converged despite t-b failing.
	if p1.Status == nil || p1.Status.Volumes[0].Condition != ConditionReady {
		t.Errorf("t-a after first pass: %+v", p1.Status)
	}
	// t-b is waiting out its backoff: Degraded with the failure, not Progressing.
	if p1.Status != nil {
		b := p1.Status.Volumes[1]
		if b.Name != "t-b" || b.Condition != ConditionDegraded || !strings.Contains(b.Reason, "create failed") ||
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
	ff.mu.Lock()
	_, orphan = ff.ctrls["nvme7"]
	ff.mu.Unlock()
	if orphan {
		t.Error("orphan not disconnected by the second pass")
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

// loopHarness runs Run in the background and hands out its passes.
type loopHarness struct {
	got    chan PassResult
	cancel context.CancelFunc
	done   chan error
}

func startLoop(t *testing.T, r *Reconciler, lo LoopOptions) *loopHarness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &loopHarness{got: make(chan PassResult, 100), cancel: cancel, done: make(chan error, 1)}
	if lo.Interval == 0 {
		lo.Interval = time.Hour // whatever happens is not the timer
	}
	lo.OnPass = func(p PassResult) { h.got <- p }
	go func() { h.done <- r.Run(ctx, lo) }()
	t.Cleanup(func() { h.stop(t) })
	return h
}

// next waits for the next pass.
func (h *loopHarness) next(t *testing.T, what string) PassResult {
	t.Helper()
	select {
	case p := <-h.got:
		return p
	case <-time.After(10 * time.Second):
		t.Fatalf("no pass after %s", what)
	}
	return PassResult{}
}

// quiet fails when a pass comes within d.
func (h *loopHarness) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case p := <-h.got:
		t.Errorf("unexpected pass: plan %+v, pending %+v, err %v", p.Plan, p.Pending, p.Err)
	case <-time.After(d):
	}
}

func (h *loopHarness) stop(t *testing.T) {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	if err := <-h.done; err != nil {
		t.Error(err)
	}
}

// converged3 is three volumes t-a, t-b, t-c with their disks on the RDS and
// their controllers on node-a: the plan of threeVols is empty.
func converged3() (*fakeRDS, *fakeFabric) {
	fr := newFakeRDS()
	ff := newFakeFabric(fr)
	for i, v := range []string{"t-a", "t-b", "t-c"} {
		fr.addDisk(disk(v, gi))
		ff.add(ctrl(fmt.Sprintf("nvme%d", i), v, defTimeouts))
	}
	ff.next = 3
	return fr, ff
}

const threeVols = `volumes:
  - {name: t-a, size: 1Gi, attachments: [node-a]}
  - {name: t-b, size: 1Gi, attachments: [node-a]}
  - {name: t-c, size: 1Gi, attachments: [node-a]}
`

// destructiveOps are the destructive calls the fakes recorded.
func destructiveOps(fr *fakeRDS, ff *fakeFabric) []string {
	var out []string
	fr.mu.Lock()
	for _, op := range fr.ops {
		if op == "delete" || op == "remove-file" {
			out = append(out, "rds "+op)
		}
	}
	fr.mu.Unlock()
	ff.mu.Lock()
	for _, op := range ff.ops {
		if op == "disconnect" {
			out = append(out, "host "+op)
		}
	}
	ff.mu.Unlock()
	return out
}

// A state file rewritten in place in two chunks, the first of which drops
// a volume, is never acted on half-written, even with prune on: nothing is
// disconnected or deleted, and once the second chunk is in the plan is
// empty again.
func TestRunLoopHalfWrittenFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "state.yaml")
	base := strings.Replace(baseYAML, "policy: {orphans: disconnect}", "policy: {orphans: disconnect, prune: true}", 1)
	if base == baseYAML {
		t.Fatal("baseYAML has no policy line to replace")
	}
	before := base + threeVols
	after := before + "# reviewed\n" // a harmless change
	if err := os.WriteFile(file, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	// The first chunk ends before t-c: on its own it is a valid state that
	// prunes t-c (its controller disconnected, its disk and file deleted).
	cut := strings.Index(after, "  - {name: t-c")
	rev := func(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b))[:8] }
	fr, ff := converged3()
	r := New(Options{RDS: fr, Fabric: ff, Host: "node-a"})
	h := startLoop(t, r, LoopOptions{
		Files: []string{file}, Debounce: 10 * time.Millisecond, Settle: 200 * time.Millisecond,
		Load: func(context.Context) (*spec.State, string, error) {
			b, err := os.ReadFile(file)
			if err != nil {
				return nil, "", err
			}
			st, err := spec.LoadBytes(file, b)
			return st, rev(b), err
		},
	})
	if p := h.next(t, "start"); p.Err != nil || p.Plan == nil || !p.Plan.Empty() {
		t.Fatalf("first pass: want an empty plan, got %+v (err %v)", p.Plan, p.Err)
	}
	// Rewrite in place, as cp or a slow sync does: truncate, first chunk,
	// a pause longer than the debounce, the rest.
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(after[:cut]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	if _, err := f.WriteString(after[cut:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	final := rev([]byte(after))
	deadline := time.After(10 * time.Second)
wait:
	for {
		select {
		case p := <-h.got:
			if len(p.Pending) > 0 {
				t.Logf("a pass saw the half-written file (slow machine?): pending %+v", p.Pending)
			}
			if p.Err == nil && p.Revision == final && p.Plan != nil && p.Plan.Empty() && len(p.Pending) == 0 {
				break wait
			}
			t.Logf("pass: rev %s (final %s), plan %+v, err %v", p.Revision, final, p.Plan, p.Err)
		case <-deadline:
			t.Error("no pass on the whole file with an empty plan")
			break wait
		}
	}
	h.stop(t)
	if ops := destructiveOps(fr, ff); len(ops) > 0 {
		t.Errorf("destructive calls on a half-written file: %v", ops)
	}
	if len(fr.disks) != 3 || len(fr.files) != 3 || len(ff.ctrls) != 3 {
		t.Errorf("after the rewrite: %d disks, %d files, %d controllers; want 3 of each", len(fr.disks), len(fr.files), len(ff.ctrls))
	}
}

// loadSeq returns, for the n-th Load (from 1), the state of volumes(n).
func loadSeq(t *testing.T, volumes func(n int) string) (func(context.Context) (*spec.State, string, error), *atomic.Int32) {
	var n atomic.Int32
	return func(context.Context) (*spec.State, string, error) {
		i := int(n.Add(1))
		st, err := spec.LoadBytes("state.yaml", []byte(baseYAML+volumes(i)))
		return st, fmt.Sprint("load", i), err
	}, &n
}

const cAbsent = `volumes:
  - {name: t-a, size: 1Gi, attachments: [node-a]}
  - {name: t-b, size: 1Gi, attachments: [node-a]}
  - {name: t-c, state: absent}
`

// A disconnect or delete that one pass plans and the next does not is
// never run.
func TestRunLoopDestructiveOnePassOnly(t *testing.T) {
	fr, ff := converged3()
	r := New(Options{RDS: fr, Fabric: ff, Host: "node-a"})
	load, _ := loadSeq(t, func(n int) string {
		if n == 1 {
			return cAbsent
		}
		return threeVols
	})
	h := startLoop(t, r, LoopOptions{Settle: 50 * time.Millisecond, Load: load})
	p1 := h.next(t, "start")
	var kinds []Kind
	for _, a := range p1.Pending {
		kinds = append(kinds, a.Kind)
	}
	if !slices.Equal(kinds, []Kind{KindDisconnect, KindDelete}) || p1.Pending[0].Volume != "t-c" {
		t.Fatalf("first pass pending: %+v, want t-c's disconnect and delete", p1.Pending)
	}
	if p1.Result != nil {
		t.Errorf("first pass ran actions: %+v", p1.Result.Actions)
	}
	if p1.Status == nil {
		t.Fatal("first pass: no status")
	}
	for _, v := range p1.Status.Volumes {
		if v.Name == "t-c" && (v.Condition != ConditionProgressing || !strings.Contains(v.Reason, "disconnect waits for confirmation by the next pass")) {
			t.Errorf("t-c in status: %s %q", v.Condition, v.Reason)
		}
	}
	// The next pass comes at once (after its settle wait), not after the
	// hour, and no longer plans them.
	p2 := h.next(t, "the pending actions")
	if p2.Plan == nil || !p2.Plan.Empty() || len(p2.Pending) > 0 || p2.Result != nil {
		t.Errorf("second pass: plan %+v, pending %+v, result %+v", p2.Plan, p2.Pending, p2.Result)
	}
	h.quiet(t, 200*time.Millisecond)
	h.stop(t)
	if ops := destructiveOps(fr, ff); len(ops) > 0 {
		t.Errorf("an action planned by one pass only ran: %v", ops)
	}
}

// A disconnect and delete planned by two passes in a row run on the second.
func TestRunLoopDestructiveTwoPasses(t *testing.T) {
	fr, ff := converged3()
	r := New(Options{RDS: fr, Fabric: ff, Host: "node-a"})
	load, _ := loadSeq(t, func(int) string { return cAbsent })
	settle := 50 * time.Millisecond
	h := startLoop(t, r, LoopOptions{Settle: settle, Load: load})
	p1 := h.next(t, "start")
	t1 := time.Now()
	if len(p1.Pending) != 2 || p1.Result != nil {
		t.Fatalf("first pass: pending %+v, result %+v", p1.Pending, p1.Result)
	}
	if ops := destructiveOps(fr, ff); len(ops) > 0 {
		t.Fatalf("first pass ran %v", ops)
	}
	p2 := h.next(t, "confirmation")
	if d := time.Since(t1); d < settle {
		t.Errorf("confirming pass %s after the first, want at least the settle interval %s", d, settle)
	}
	if len(p2.Pending) > 0 || p2.Result == nil || p2.Err != nil {
		t.Fatalf("second pass: pending %+v, result %+v, err %v", p2.Pending, p2.Result, p2.Err)
	}
	var ran []string
	for _, ar := range p2.Result.Actions {
		ran = append(ran, string(ar.Action.Kind)+" "+ar.Action.Volume)
	}
	if !slices.Equal(ran, []string{"disconnect t-c", "delete t-c"}) {
		t.Errorf("second pass ran %v", ran)
	}
	if ops := destructiveOps(fr, ff); !slices.Equal(ops, []string{"rds delete", "host disconnect"}) {
		t.Errorf("fakes saw %v", ops)
	}
	if p2.Status == nil || p2.Status.Volumes[2].Name != "t-c" || p2.Status.Volumes[2].Condition != ConditionReady {
		t.Errorf("t-c after the second pass: %+v", p2.Status)
	}
	// Converged: back to the interval.
	h.quiet(t, 200*time.Millisecond)
}

// Files that change on every read skip the pass after the settle bound,
// changing nothing; once they hold still the next pass converges.
func TestRunLoopSettleGivesUp(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "state.yaml")
	src := baseYAML + "volumes:\n  - {name: t-a, size: 1Gi, attachments: [node-a]}\n"
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	fr := newFakeRDS()
	ff := newFakeFabric(fr)
	r := New(Options{RDS: fr, Fabric: ff, Host: "node-a"})
	var writing atomic.Bool
	writing.Store(true)
	var loads atomic.Int32
	settle := 20 * time.Millisecond
	trigger := make(chan struct{})
	t0 := time.Now()
	h := startLoop(t, r, LoopOptions{
		Files: []string{file}, Settle: settle, Debounce: 5 * time.Millisecond, Trigger: trigger,
		Load: func(context.Context) (*spec.State, string, error) {
			n := loads.Add(1)
			st, err := spec.Load(file)
			if writing.Load() {
				// Someone keeps writing: the file changes under every load.
				if werr := os.WriteFile(file, fmt.Appendf([]byte(src), "# %d\n", n), 0o644); werr != nil {
					t.Error(werr)
				}
			}
			return st, "", err
		},
	})
	p := h.next(t, "start")
	if !errors.Is(p.Err, ErrUnsettled) || p.Plan != nil || p.Result != nil {
		t.Fatalf("first pass: err %v, plan %+v; want ErrUnsettled and no plan", p.Err, p.Plan)
	}
	if d := time.Since(t0); d < settleTries*settle {
		t.Errorf("gave up after %s, want at least %d settle intervals", d, settleTries)
	}
	if n := loads.Load(); n < 2 || n > settleTries {
		t.Errorf("%d loads before giving up, want 2..%d", n, settleTries)
	}
	fr.mu.Lock()
	rops := slices.Clone(fr.ops)
	fr.mu.Unlock()
	ff.mu.Lock()
	fops := slices.Clone(ff.ops)
	ff.mu.Unlock()
	if len(rops)+len(fops) > 0 {
		t.Errorf("a skipped pass called the RDS %v and the host %v", rops, fops)
	}
	writing.Store(false)
	go func() {
		select {
		case trigger <- struct{}{}:
		case <-time.After(10 * time.Second):
		}
	}()
	for i := 0; ; i++ {
		p = h.next(t, "the files hold still")
		if p.Err == nil {
			break
		}
		if i == 3 {
			t.Fatalf("never converged: %v", p.Err)
		}
	}
	if p.Result == nil || len(p.Result.Actions) != 2 {
		t.Errorf("settled pass: %+v, want t-a created and connected", p.Result)
	}
}

// A state that attaches nothing to this host disconnects nothing under the
// loop (mass-detach) unless LoopOptions.AllowMassDetach, and then only on
// the confirming pass.
func TestRunLoopMassDetach(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprint("allow=", allow), func(t *testing.T) {
			fr, ff := converged3()
			r := New(Options{RDS: fr, Fabric: ff, Host: "node-a"})
			load, _ := loadSeq(t, func(int) string { return "volumes: []\n" })
			h := startLoop(t, r, LoopOptions{Settle: 20 * time.Millisecond, Load: load, AllowMassDetach: allow})
			p1 := h.next(t, "start")
			if p1.Plan == nil {
				t.Fatalf("first pass: %v", p1.Err)
			}
			blocked := 0
			for _, a := range p1.Plan.Actions {
				if a.Kind == KindBlocked && a.Blocked == RuleMassDetach {
					blocked++
				}
			}
			if !allow {
				if blocked != 3 || len(p1.Pending) > 0 {
					t.Errorf("first pass: %d blocked by mass-detach, pending %+v; want 3 and none", blocked, p1.Pending)
				}
				h.quiet(t, 200*time.Millisecond) // nothing pending: no early pass
				h.stop(t)
				if ops := destructiveOps(fr, ff); len(ops) > 0 {
					t.Errorf("mass detach without the override: %v", ops)
				}
				return
			}
			if blocked != 0 || len(p1.Pending) != 3 {
				t.Fatalf("first pass: %d blocked, pending %+v; want none and 3 disconnects", blocked, p1.Pending)
			}
			p2 := h.next(t, "confirmation")
			if p2.Result == nil || p2.Result.Succeeded != 3 {
				t.Errorf("second pass: %+v", p2.Result)
			}
			h.stop(t)
			if n := len(ff.ctrls); n != 0 {
				t.Errorf("%d controllers left", n)
			}
			if len(fr.disks) != 3 {
				t.Errorf("disks deleted: %d left", len(fr.disks))
			}
		})
	}
}
