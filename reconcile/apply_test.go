package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/internal/retryable"
	"github.com/rds-reconcile/rds-reconcile/rds"
)

func TestRetryDelayBounds(t *testing.T) {
	p := RetryPolicy{Attempts: 8, InitialDelay: time.Second, MaxDelay: 30 * time.Second, Multiplier: 2, Jitter: 0.1}
	wantBase := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i, wb := range wantBase {
		n := uint(i + 1)
		if got := p.Base(n); got != wb*time.Second {
			t.Errorf("Base(%d) = %s, want %s", n, got, wb*time.Second)
		}
		lo, hi := p.Delay(n, 0), p.Delay(n, math.Nextafter(1, 0))
		b := float64(wb * time.Second)
		if float64(lo) < b*0.9-1 || float64(lo) > b*0.9+1 {
			t.Errorf("Delay(%d, 0) = %s, want %s", n, lo, time.Duration(b*0.9))
		}
		wantHi := math.Min(b*1.1, float64(p.MaxDelay))
		if math.Abs(float64(hi)-wantHi) > float64(time.Microsecond) {
			t.Errorf("Delay(%d, ~1) = %s, want %s", n, hi, time.Duration(wantHi))
		}
		// The retry-go adapter stays inside the bounds for random draws.
		dt := p.DelayType(nil)
		for range 100 {
			d := dt(n, nil, nil)
			if d < lo || d > hi {
				t.Fatalf("retry %d: delay %s outside [%s, %s]", n, d, lo, hi)
			}
		}
	}
	// Multiplier 1.5 and no jitter: exact.
	p = RetryPolicy{InitialDelay: 100 * time.Millisecond, MaxDelay: time.Second, Multiplier: 1.5}
	if got := p.Delay(3, 0.7); got != 225*time.Millisecond {
		t.Errorf("Delay(3) = %s, want 225ms", got)
	}
}

func TestPolicyFromState(t *testing.T) {
	st := state(t, "")
	p := PolicyFrom(st)
	want := RetryPolicy{Attempts: 3, InitialDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, Multiplier: 2, Jitter: 0.1}
	if p != want {
		t.Errorf("PolicyFrom = %+v, want %+v", p, want)
	}
}

func TestApplyRetriesAndFailures(t *testing.T) {
	st := state(t, `  - {name: t-a, size: 1Gi, attachments: [node-a]}
  - {name: t-b, size: 1Gi, attachments: [node-a]}
  - {name: t-c, size: 1Gi, attachments: [node-a]}
`)
	fr := newFakeRDS()
	ff := newFakeFabric(fr)
	// t-a: two dropped connections, then success (3 attempts allowed).
	// t-b: rejected by RouterOS: not retried, its connect is skipped.
	fr.fail["create"] = nil
	var calls []string
	r := New(Options{RDS: &orderedFail{fakeRDS: fr, fail: map[string][]error{
		"t-a": {retryableErr, retryableErr},
		"t-b": {&rds.Error{Op: "create", Err: rds.ErrNoSpace}},
	}, calls: &calls}, Fabric: ff, Host: "node-a", RDSParallelism: 1})
	ctx := context.Background()
	p, err := r.Plan(ctx, st, Full(false))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	res, err := r.Apply(ctx, st, p, ApplyOptions{Progress: func(ar ActionResult) { lines = append(lines, Describe(ar.Action)) }})
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string]ActionResult{}
	for _, ar := range res.Actions {
		byKey[string(ar.Action.Kind)+" "+ar.Action.Volume] = ar
	}
	if ar := byKey["create t-a"]; ar.Err != nil || ar.Attempts != 3 {
		t.Errorf("create t-a: err %v attempts %d, want success after 3", ar.Err, ar.Attempts)
	}
	if ar := byKey["create t-b"]; !errors.Is(ar.Err, rds.ErrNoSpace) || ar.Attempts != 1 {
		t.Errorf("create t-b: err %v attempts %d, want ErrNoSpace after 1", ar.Err, ar.Attempts)
	}
	if ar := byKey["connect t-b"]; !ar.Skipped || !strings.Contains(ar.SkipReason, "create") {
		t.Errorf("connect t-b: %+v, want skipped because create failed", ar)
	}
	if ar := byKey["connect t-c"]; ar.Err != nil || ar.Skipped {
		t.Errorf("connect t-c: %+v, want done (independent of t-b)", ar)
	}
	if res.Failed != 1 || res.Skipped != 1 || res.Succeeded != 4 {
		t.Errorf("result %d ok %d failed %d skipped", res.Succeeded, res.Failed, res.Skipped)
	}
	err = res.Err()
	if !errors.Is(err, rds.ErrNoSpace) || !strings.Contains(err.Error(), "create t-b") {
		t.Errorf("Err() = %v, want it to name create t-b", err)
	}
	if len(lines) != len(p.Actions) {
		t.Errorf("progress lines %d, want %d", len(lines), len(p.Actions))
	}
	// A rerun converges from where the failure left.
	res2, err := r.Reconcile(ctx, st, Full(false))
	if err != nil || res2.Err() != nil {
		t.Fatalf("rerun: %v %v", err, res2.Err())
	}
}

// orderedFail fails Create per slot with queued errors.
type orderedFail struct {
	*fakeRDS
	fail  map[string][]error
	calls *[]string
}

func (o *orderedFail) Create(ctx context.Context, r rds.CreateRequest) error {
	o.mu.Lock()
	errs := o.fail[r.Slot]
	if len(errs) > 0 {
		o.fail[r.Slot] = errs[1:]
	}
	o.mu.Unlock()
	if len(errs) > 0 {
		return errs[0]
	}
	return o.fakeRDS.Create(ctx, r)
}

func TestApplyCancelledStopsBetweenSteps(t *testing.T) {
	st := state(t, volA)
	fr := newFakeRDS()
	ff := newFakeFabric(fr)
	r := New(Options{RDS: fr, Fabric: ff, Host: "node-a"})
	ctx, cancel := context.WithCancel(context.Background())
	p, err := r.Plan(ctx, st, Full(false))
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Apply(ctx, st, p, ApplyOptions{Progress: func(ar ActionResult) {
		if ar.Action.Kind == KindCreate {
			cancel()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Succeeded != 1 || res.Skipped != 1 || !strings.Contains(res.Actions[1].SkipReason, "cancel") {
		t.Fatalf("got %+v, want create done and connect skipped as cancelled", res.Actions)
	}
	if len(ff.ops) != 0 && ff.ops[len(ff.ops)-1] == "connect" {
		t.Errorf("connect ran after cancellation: %q", ff.ops)
	}
}

func TestApplyRetryOnlyRetryable(t *testing.T) {
	st := state(t, volA)
	fr := newFakeRDS()
	fr.addDisk(disk("t-a", gi))
	ff := newFakeFabric(fr)
	ff.fail["connect"] = []error{retryable.Mark(errors.New("ECONNREFUSED")), errors.New("EINVAL")}
	r := New(Options{RDS: fr, Fabric: ff, Host: "node-a"})
	res, err := r.Reconcile(context.Background(), st, Full(false))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Actions) != 1 || res.Actions[0].Attempts != 2 || res.Actions[0].Err == nil {
		t.Fatalf("got %+v, want connect failing after 2 attempts (retryable, then terminal)", res.Actions)
	}
	if err := res.Err(); err == nil || !strings.Contains(err.Error(), "EINVAL") {
		t.Errorf("Err() = %v", err)
	}
}

func TestReconcileScopedBlockedIsAnError(t *testing.T) {
	st := state(t, `  - {name: t-a, size: 512Mi, attachments: [node-a]}
`)
	fr := newFakeRDS()
	fr.addDisk(disk("t-a", gi))
	r := New(Options{RDS: fr, Host: "node-a"})
	res, err := r.Reconcile(context.Background(), st, Scope{Volumes: []string{"t-a"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Err(); !errors.Is(err, ErrNotConverged) || !strings.Contains(err.Error(), "no-shrink") {
		t.Errorf("Err() = %v, want not converged naming the rule", err)
	}
}

func TestFingerprint(t *testing.T) {
	st := state(t, volA)
	fr := newFakeRDS()
	fr.addDisk(disk("t-a", gi))
	ff := newFakeFabric(fr)
	r := New(Options{RDS: fr, Fabric: ff, Host: "node-a"})
	ctx := context.Background()
	p1, _ := r.Plan(ctx, st, Full(false))
	fr.mu.Lock()
	fr.files["pool/vols/other.img"] = 1
	fr.mu.Unlock()
	p2, _ := r.Plan(ctx, st, Full(false))
	if p1.Fingerprint == p2.Fingerprint {
		t.Error("fingerprint did not change with the live state")
	}
	p3, _ := r.Plan(ctx, st, Full(false))
	if p3.Fingerprint != p2.Fingerprint {
		t.Error("fingerprint changed without a change")
	}
	st2 := state(t, `  - {name: t-a, size: 2Gi, attachments: [node-a]}
`)
	p4, _ := r.Plan(ctx, st2, Full(false))
	if p4.Fingerprint == p3.Fingerprint {
		t.Error("fingerprint did not change with the desired state")
	}
	// Listing order does not matter.
	obs := &Observed{Fabric: true, Controllers: []fabric.Controller{ctrl("nvme1", "t-b", defTimeouts), ctrl("nvme0", "t-a", defTimeouts)}}
	obs2 := &Observed{Fabric: true, Controllers: []fabric.Controller{obs.Controllers[1], obs.Controllers[0]}}
	if Fingerprint(st, obs, "h", Scope{}) != Fingerprint(st, obs2, "h", Scope{}) {
		t.Error("fingerprint depends on listing order")
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	path := LockPath("", []string{filepath.Join(dir, "state.yaml")})
	if path != filepath.Join(dir, LockFileName) {
		t.Fatalf("LockPath = %s", path)
	}
	l, err := AcquireLock(path, "apply -f state.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = AcquireLock(path, "apply")
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v, want LockedError", err)
	}
	host, _ := os.Hostname()
	if le.Holder.PID != os.Getpid() || le.Holder.Host != host || le.Holder.Started.IsZero() || le.Holder.Command != "apply -f state.yaml" {
		t.Errorf("holder = %+v", le.Holder)
	}
	if !strings.Contains(err.Error(), "pid ") {
		t.Errorf("error does not name the holder: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := AcquireLock(path, "apply")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	_ = l2.Release()
}

func TestStatusConditions(t *testing.T) {
	st := state(t, `  - {name: t-a, size: 1Gi, attachments: [node-a]}
  - {name: t-b, size: 1Gi, attachments: [node-a]}
  - {name: t-c, size: 512Mi, attachments: [node-a]}
  - {name: t-d, size: 1Gi, attachments: [node-a]}
`)
	obs := &Observed{Fabric: true, RDS: &rds.Inventory{Disks: []rds.Disk{disk("t-a", gi), disk("t-c", gi), disk("t-d", gi)}},
		Controllers: []fabric.Controller{mounted(ctrl("nvme0", "t-a", defTimeouts)), ctrl("nvme2", "t-c", defTimeouts),
			withState(ctrl("nvme3", "t-d", defTimeouts), "connecting"), ctrl("nvme9", "t-zz", defTimeouts)}}
	s := BuildStatus(st, obs, "node-a")
	want := map[string]Condition{"t-a": ConditionReady, "t-b": ConditionProgressing, "t-c": ConditionBlocked, "t-d": ConditionDegraded}
	for _, v := range s.Volumes {
		if v.Condition != want[v.Name] {
			t.Errorf("%s: %s (%s), want %s", v.Name, v.Condition, v.Reason, want[v.Name])
		}
	}
	if !s.Volumes[0].Host.Mounted || s.Volumes[0].Host.Device != "/dev/nvme0n1" {
		t.Errorf("t-a host = %+v", s.Volumes[0].Host)
	}
	if len(s.Orphans) != 1 || s.Orphans[0].Controller != "nvme9" {
		t.Errorf("orphans = %+v", s.Orphans)
	}
}

// countingFabric records the most connects in flight at once.
type countingFabric struct {
	*fakeFabric
	mu       sync.Mutex
	cur, max int
}

func (c *countingFabric) Connect(ctx context.Context, req fabric.ConnectRequest) (fabric.Controller, error) {
	c.mu.Lock()
	c.cur++
	c.max = max(c.max, c.cur)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.cur--
		c.mu.Unlock()
	}()
	return c.fakeFabric.Connect(ctx, req)
}

func TestApplyParallelismIsBounded(t *testing.T) {
	var vols strings.Builder
	for i := range 12 {
		fmt.Fprintf(&vols, "  - {name: t-%02d, size: 1Gi, attachments: [node-a]}\n", i)
	}
	st := state(t, vols.String())
	fr := newFakeRDS()
	ff := newFakeFabric(fr)
	ff.latency = 20 * time.Millisecond
	cf := &countingFabric{fakeFabric: ff}
	r := New(Options{RDS: fr, Fabric: cf, Host: "node-a", Parallelism: 3})
	res, err := r.Reconcile(context.Background(), st, Full(false))
	if err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
	if cf.max != 3 {
		t.Errorf("at most %d connects at once, want 3", cf.max)
	}
}

func TestDiffDoesNotChangeItsInputs(t *testing.T) {
	st := state(t, volA)
	obs := &Observed{Fabric: true, RDS: &rds.Inventory{Disks: []rds.Disk{disk("t-b", gi), disk("t-a", gi)}},
		Controllers: []fabric.Controller{ctrl("nvme1", "t-z", defTimeouts), ctrl("nvme0", "t-a", defTimeouts)}}
	before, _ := json.Marshal(obs)
	stBefore, _ := json.Marshal(st)
	p1 := Diff(st, obs, "node-a", Full(true))
	p2 := Diff(st, obs, "node-a", Full(true))
	after, _ := json.Marshal(obs)
	stAfter, _ := json.Marshal(st)
	if !bytes.Equal(before, after) || !bytes.Equal(stBefore, stAfter) {
		t.Error("Diff changed its inputs")
	}
	j1, _ := json.Marshal(p1)
	j2, _ := json.Marshal(p2)
	if !bytes.Equal(j1, j2) {
		t.Error("Diff is not deterministic")
	}
}

func TestReconnectSkipsConnectWhenDisconnectFails(t *testing.T) {
	st := state(t, `  - {name: t-a, size: 1Gi, attachments: [node-a], connection: {keepAliveTmo: 15}}
`)
	fr := newFakeRDS()
	fr.addDisk(disk("t-a", gi))
	ff := newFakeFabric(fr)
	ff.add(ctrl("nvme0", "t-a", defTimeouts))
	ff.fail["disconnect"] = []error{errors.New("EPERM")}
	r := New(Options{RDS: fr, Fabric: ff, Host: "node-a"})
	res, err := r.Reconcile(context.Background(), st, Full(false))
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 1 || slices.Contains(ff.ops, "connect") {
		t.Errorf("result %+v, ops %q: want the reconnect failed before connecting", res.Actions, ff.ops)
	}
}

func TestApplyDependencies(t *testing.T) {
	// t-a: grow fails: its rescan is skipped, its timeout update still runs.
	st := state(t, `  - {name: t-a, size: 2Gi, attachments: [node-a], connection: {ctrlLossTmo: 600}}
  - {name: t-b, state: absent}
`)
	fr := newFakeRDS()
	fr.addDisk(disk("t-a", gi))
	fr.addDisk(disk("t-b", gi))
	fr.fail["grow"] = []error{&rds.Error{Op: "grow", Err: rds.ErrNoSpace}}
	ff := newFakeFabric(fr)
	ff.add(ctrl("nvme0", "t-a", defTimeouts))
	ff.add(ctrl("nvme1", "t-b", defTimeouts))
	// t-b: the disconnect fails: the delete must not run.
	ff.fail["disconnect"] = []error{errors.New("EPERM")}
	r := New(Options{RDS: fr, Fabric: ff, Host: "node-a"})
	ctx := context.Background()
	p, err := r.Plan(ctx, st, Full(false))
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Apply(ctx, st, p, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, ar := range res.Actions {
		state := "ok"
		if ar.Skipped {
			state = "skipped"
		} else if ar.Err != nil {
			state = "failed"
		}
		got[string(ar.Action.Kind)+" "+ar.Action.Volume] = state
	}
	want := map[string]string{"grow t-a": "failed", "rescan t-a": "skipped", "set-timeouts t-a": "ok",
		"disconnect t-b": "failed", "delete t-b": "skipped"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s, want %s (all: %v)", k, got[k], v, got)
		}
	}
	if slices.Contains(fr.ops, "delete") {
		t.Error("a disk was deleted while its controller is still connected")
	}
}

// lyingFabric reports a connect as done but connects nothing: apply must
// not believe it.
type lyingFabric struct{ *fakeFabric }

func (l lyingFabric) Connect(ctx context.Context, req fabric.ConnectRequest) (fabric.Controller, error) {
	return fabric.Controller{Name: "nvme99", SubsysNQN: req.NQN}, nil
}

func TestApplyVerifiesEffects(t *testing.T) {
	st := state(t, volA)
	fr := newFakeRDS()
	fr.addDisk(disk("t-a", gi))
	ff := newFakeFabric(fr)
	r := New(Options{RDS: fr, Fabric: lyingFabric{ff}, Host: "node-a"})
	ctx := context.Background()
	p, err := r.Plan(ctx, st, Full(false))
	if err != nil {
		t.Fatal(err)
	}
	if got := summarize(p); !slices.Equal(got, []string{"connect t-a"}) {
		t.Fatalf("plan %q", got)
	}
	res, err := r.Apply(ctx, st, p, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Succeeded != 0 || res.Failed != 1 {
		t.Fatalf("succeeded %d failed %d, want 0 and 1: %+v", res.Succeeded, res.Failed, res.Actions)
	}
	if err := res.Err(); !errors.Is(err, ErrNotVisible) {
		t.Fatalf("Err() = %v, want ErrNotVisible", err)
	}
	if !strings.Contains(res.Actions[0].Error, "connect nqn.2000-02.com.mikrotik:t-a") {
		t.Errorf("the failure does not say what is still needed: %s", res.Actions[0].Error)
	}
	if res.After == nil || !res.After.HasChanges() {
		t.Errorf("After = %+v, want the plan that still connects", res.After)
	}
}

// TestApplyNeverUndoesItsOwnConnect: the same NQN twice, the kept
// controller with the wrong host NQN: the reconnect's connect answers with
// the existing controller (EALREADY), which the plan had down as a
// duplicate. The later phase must not disconnect it.
func TestApplyNeverUndoesItsOwnConnect(t *testing.T) {
	st := state(t, volA)
	fr := newFakeRDS()
	fr.addDisk(disk("t-a", gi))
	ff := newFakeFabric(fr)
	wrongHost := ctrl("nvme0", "t-a", defTimeouts)
	wrongHost.HostNQN = "nqn.2014-08.org.nvmexpress:uuid:other"
	ff.add(wrongHost)
	ff.add(ctrl("nvme1", "t-a", defTimeouts))
	r := New(Options{RDS: fr, Fabric: ff, Host: "node-a"})
	ctx := context.Background()
	// The plan an older planner made (kept the first controller): reconnect
	// nvme0, disconnect nvme1 as a duplicate.
	want := toFabric(st.TimeoutsFor(st.Volume("t-a")))
	p := &Plan{Scope: Full(false), Actions: []Action{
		{Kind: KindReconnect, Phase: PhaseHost, Volume: "t-a", Controller: "nvme0", NQN: nqnP + "t-a", Address: "10.0.0.1",
			Port: 4420, HostNQN: "nqn.2014-08.org.nvmexpress:uuid:a", Timeouts: &want, Reason: "wrong hostnqn"},
		{Kind: KindDisconnect, Phase: PhaseHostDetach, Volume: "t-a", Controller: "nvme1", NQN: nqnP + "t-a", Reason: "duplicate"},
	}}
	res, err := r.Apply(ctx, st, p, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Err(); !errors.Is(err, ErrUndo) {
		t.Fatalf("Err() = %v, want ErrUndo for the disconnect of nvme1", err)
	}
	ff.mu.Lock()
	_, kept := ff.ctrls["nvme1"]
	ff.mu.Unlock()
	if !kept {
		t.Fatal("nvme1, returned by the reconnect's connect, was disconnected by the same apply")
	}
	again, err := r.Plan(ctx, st, Full(false))
	if err != nil {
		t.Fatal(err)
	}
	if again.HasChanges() {
		t.Errorf("plan after apply not empty: %q", summarize(again))
	}
}

// TestApplyReportsRetries: every failed attempt that is retried is
// reported with its error and the wait, in order, before the result.
func TestApplyReportsRetries(t *testing.T) {
	st := state(t, volA)
	fr := newFakeRDS()
	fr.addDisk(disk("t-a", gi))
	ff := newFakeFabric(fr)
	ff.fail["connect"] = []error{retryable.Mark(errors.New("connection refused")), retryable.Mark(errors.New("connection refused"))}
	r := New(Options{RDS: fr, Fabric: ff, Host: "node-a"})
	ctx := context.Background()
	p, err := r.Plan(ctx, st, Full(false))
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	res, err := r.Apply(ctx, st, p, ApplyOptions{
		// The event carries what apply's retry line prints (views).
		OnRetry: func(ev RetryEvent) {
			events = append(events, fmt.Sprintf("%s %s: attempt %d of %d failed: %v; next try in %s",
				ev.Action.Kind, ev.Action.Volume, ev.Attempt, ev.Attempts, ev.Err, ev.Next))
		},
		Progress: func(ar ActionResult) { events = append(events, "done "+string(ar.Action.Kind)) },
	})
	if err != nil || res.Err() != nil {
		t.Fatalf("apply: %v %v", err, res.Err())
	}
	if len(events) != 3 || !strings.Contains(events[0], "connect t-a: attempt 1 of 3 failed: connection refused; next try in") ||
		!strings.Contains(events[1], "attempt 2 of 3") || events[2] != "done connect" {
		t.Errorf("events:\n%s", strings.Join(events, "\n"))
	}
}
