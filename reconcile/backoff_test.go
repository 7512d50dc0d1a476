package reconcile

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestBackoffs walks one volume through failed passes, a repeated failure
// within a pass, success, and checks the others are never held.
func TestBackoffs(t *testing.T) {
	pol := RetryPolicy{Attempts: 3, InitialDelay: time.Second, Multiplier: 2, MaxDelay: 5 * time.Second}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newBackoffs(func() float64 { return 0.5 }) // no jitter
	if !b.Earliest().IsZero() || b.Holds("v", t0) || b.Failures("v") != 0 {
		t.Fatal("a new backoffs holds something")
	}
	steps := []struct {
		name     string
		done     time.Time
		wantNext time.Time
		failures uint
	}{
		{"first failed pass", t0, t0.Add(time.Second), 1},
		{"second failure in the same pass counts once", t0.Add(500 * time.Millisecond), t0.Add(time.Second), 1},
		{"next pass doubles", t0.Add(2 * time.Second), t0.Add(4 * time.Second), 2},
		{"then doubles again", t0.Add(10 * time.Second), t0.Add(14 * time.Second), 3},
		{"capped at MaxDelay", t0.Add(20 * time.Second), t0.Add(25 * time.Second), 4},
	}
	for _, s := range steps {
		next := b.When("v", "create failed: boom", pol, s.done)
		if !next.Equal(s.wantNext) || b.Failures("v") != s.failures {
			t.Errorf("%s: next %s, failures %d; want %s, %d", s.name, next.Sub(t0), b.Failures("v"), s.wantNext.Sub(t0), s.failures)
		}
		if !b.Holds("v", s.done) || b.Holds("v", next) || b.Holds("other", s.done) {
			t.Errorf("%s: holds v at done %v, at next %v, other %v", s.name, b.Holds("v", s.done), b.Holds("v", next), b.Holds("other", s.done))
		}
		if !b.Earliest().Equal(next) {
			t.Errorf("%s: earliest %s, want %s", s.name, b.Earliest().Sub(t0), next.Sub(t0))
		}
	}
	b.When("w", "grow failed", pol, t0.Add(21*time.Second))
	if want := t0.Add(22 * time.Second); !b.Earliest().Equal(want) {
		t.Errorf("earliest of two: %s, want %s", b.Earliest().Sub(t0), want.Sub(t0))
	}
	b.Forget("v")
	b.Forget("w")
	if !b.Earliest().IsZero() || b.Holds("v", t0) || b.Failures("v") != 0 {
		t.Error("Forget left a backoff")
	}
	b.When("v", "x", pol, t0)
	if b.Failures("v") != 1 {
		t.Errorf("after Forget the count starts over: %d", b.Failures("v"))
	}
}

func TestBackoffsMark(t *testing.T) {
	pol := RetryPolicy{Attempts: 3, InitialDelay: time.Second, Multiplier: 2, MaxDelay: time.Minute}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newBackoffs(func() float64 { return 0.5 })
	b.When("a", "create failed: no space", pol, t0)
	b.When("c", "grow failed", pol, t0)
	s := &Status{Volumes: []VolumeStatus{
		{Name: "a", Condition: ConditionProgressing, Reason: "disk does not exist"},
		{Name: "b", Condition: ConditionProgressing, Reason: "not connected"},
		{Name: "c", Condition: ConditionReady},
	}}
	b.Mark(s)
	want := []struct {
		cond   Condition
		reason string
	}{
		{ConditionDegraded, "create failed: no space (1 failed passes; next try at 2026-01-01T00:00:01Z)"},
		{ConditionProgressing, "not connected"}, // not backing off
		{ConditionReady, ""},                    // the live state no longer needs anything
	}
	for i, w := range want {
		if v := s.Volumes[i]; v.Condition != w.cond || v.Reason != w.reason {
			t.Errorf("%s: %s %q, want %s %q", v.Name, v.Condition, v.Reason, w.cond, w.reason)
		}
	}
}

func TestFailedVolumes(t *testing.T) {
	res := &Result{Actions: []ActionResult{
		{Action: Action{Kind: KindCreate, Volume: "a"}, Err: errors.New("boom")},
		{Action: Action{Kind: KindConnect, Volume: "a"}, Skipped: true, SkipReason: "an earlier step failed"},
		{Action: Action{Kind: KindGrow, Volume: "b"}},
		{Action: Action{Kind: KindRescan, Volume: "b"}, Skipped: true, SkipReason: "cancelled"},
		{Action: Action{Kind: KindSetTimeouts, Volume: "b"}, Err: errors.New("sysfs")},
		{Action: Action{Kind: KindConnect, Volume: "c"}},
	}}
	got := failedVolumes(res)
	want := map[string]string{"a": "create failed: boom", "b": "set-timeouts failed: sysfs"}
	if len(got) != len(want) {
		t.Errorf("failedVolumes = %v, want %v", got, want)
	}
	for v, w := range want {
		if got[v] != w {
			t.Errorf("%s: %q, want %q", v, got[v], w)
		}
	}
	only := failedVolumes(&Result{Actions: []ActionResult{{Action: Action{Kind: KindRescan, Volume: "d"}, Skipped: true, SkipReason: "cancelled"}}})
	if !strings.HasPrefix(only["d"], "rescan skipped: cancelled") {
		t.Errorf("skip only: %v", only)
	}
}

func TestLoopWait(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := &loop{lo: LoopOptions{Interval: time.Minute, Jitter: 0.1}}
	tests := []struct {
		name    string
		next    time.Time
		confirm bool
		u       float64
		want    time.Duration
	}{
		{"interval", time.Time{}, false, 0.5, time.Minute},
		{"jitter low", time.Time{}, false, 0, 54 * time.Second},
		{"jitter high", time.Time{}, false, 1, 66 * time.Second},
		{"confirm at once", time.Time{}, true, 0.5, 0},
		{"backoff ends first", now.Add(5 * time.Second), false, 0.5, 5 * time.Second},
		{"backoff ends later", now.Add(2 * time.Minute), false, 0.5, time.Minute},
		{"backoff already over", now.Add(-time.Second), false, 0.5, 10 * time.Millisecond},
		{"confirm beats backoff", now.Add(5 * time.Second), true, 0.5, 0},
	}
	for _, tt := range tests {
		if got := l.wait(tt.next, tt.confirm, now, tt.u); got != tt.want {
			t.Errorf("%s: wait %s, want %s", tt.name, got, tt.want)
		}
	}
}
