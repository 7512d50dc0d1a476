package views

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rds-reconcile/rds-reconcile/reconcile"
)

// showApply runs an apply of goldenPlan through a view of format: the
// plan, a retry before the failed grow, a result per action, the summary.
func showApply(t *testing.T, format string, withPlan bool) []byte {
	t.Helper()
	var b bytes.Buffer
	v, err := NewApply(format, &b, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if withPlan {
		if err := v.Plan(goldenPlan(t)); err != nil {
			t.Fatal(err)
		}
		v.Start()
	}
	res := goldenResult(t)
	for _, ar := range res.Actions {
		if ar.Action.Kind == reconcile.KindGrow && withPlan {
			v.Retry(reconcile.RetryEvent{Action: ar.Action, Attempt: 1, Attempts: 3, Err: droppedErr, Next: 1234 * time.Millisecond})
		}
		v.Result(ar)
	}
	if err := v.Summary(res); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestRenderApplyGolden(t *testing.T) {
	golden(t, "apply.txt", showApply(t, Text, false))
	golden(t, "apply.jsonl", showApply(t, JSON, true))
}

// TestApplyJSONLines: every line is one object with a type, in the order
// plan, (retry), result..., summary; the plan is the plan document.
func TestApplyJSONLines(t *testing.T) {
	sc := bufio.NewScanner(bytes.NewReader(showApply(t, JSON, true)))
	sc.Buffer(nil, 1<<20)
	var types []string
	for sc.Scan() {
		var line struct {
			Type string `json:"type"`
			Plan *struct {
				FormatVersion string `json:"format_version"`
			} `json:"plan"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("%v: %s", err, sc.Bytes())
		}
		if line.Type == "plan" && (line.Plan == nil || line.Plan.FormatVersion != "1") {
			t.Errorf("plan line without the document: %s", sc.Bytes())
		}
		types = append(types, line.Type)
	}
	got := strings.Join(types, " ")
	want := "plan result retry result" + strings.Repeat(" result", 8) + " summary"
	if got != want {
		t.Errorf("line types\n%s\nwant\n%s", got, want)
	}
}

func TestRetryLine(t *testing.T) {
	ev := reconcile.RetryEvent{Action: reconcile.Action{Kind: reconcile.KindConnect, Volume: "t-a", Controller: "nvme0"},
		Attempt: 1, Attempts: 3, Err: errors.New("connection refused"), Next: 1234 * time.Millisecond}
	want := "    connect t-a (nvme0): attempt 1 of 3 failed: connection refused; next try in 1.23s"
	if got := retryLine(ev); got != want {
		t.Errorf("retryLine\n%q\nwant\n%q", got, want)
	}
}

func TestNothingToApply(t *testing.T) {
	blocked := &reconcile.Plan{Actions: []reconcile.Action{{Kind: reconcile.KindBlocked, Wanted: reconcile.KindDisconnect,
		Controller: "nvme0", NQN: nqnP + "t-a", Blocked: "mass-detach: the state declares no volume for this host"}}}
	for _, c := range []struct {
		format string
		p      *reconcile.Plan
		want   string
	}{
		{Text, &reconcile.Plan{}, "\nNothing to apply.\n"},
		{Text, blocked, "\nNothing to apply: 1 action(s) held back by safety rules:\n" +
			"  would disconnect nvme0 (" + nqnP + "t-a): mass-detach: the state declares no volume for this host\n"},
		{JSON, blocked, `{"type":"summary","done":0,"failed":0,"skipped":0,"blocked":1,"durationMs":0}` + "\n"},
	} {
		var b bytes.Buffer
		v, err := NewApply(c.format, &b, PlanOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.NothingToApply(c.p); err != nil {
			t.Fatal(err)
		}
		if b.String() != c.want {
			t.Errorf("%s: %q, want %q", c.format, b.String(), c.want)
		}
	}
}

// TestApplyAsk: the text view takes only "yes"; the JSON view never asks.
func TestApplyAsk(t *testing.T) {
	for _, c := range []struct {
		format, answer string
		ok             bool
	}{
		{Text, "yes\n", true},
		{Text, "y\n", false},
		{Text, "", false},
		{JSON, "yes\n", false},
	} {
		var b bytes.Buffer
		v, _ := NewApply(c.format, &b, PlanOptions{})
		err := v.Ask(strings.NewReader(c.answer))
		if (err == nil) != c.ok {
			t.Errorf("%s %q: %v, want ok %v", c.format, c.answer, err, c.ok)
		}
		if prompted := strings.Contains(b.String(), "Enter yes: "); prompted != (c.format == Text) {
			t.Errorf("%s: prompt %q", c.format, b.String())
		}
	}
}

// TestApplyLinesWhole: results and retries from many workers at once come
// out as whole lines (run with -race).
func TestApplyLinesWhole(t *testing.T) {
	for _, format := range []string{Text, JSON} {
		var b bytes.Buffer
		v, _ := NewApply(format, &b, PlanOptions{})
		res := goldenResult(t)
		var wg sync.WaitGroup
		for range 20 {
			for _, ar := range res.Actions {
				wg.Go(func() { v.Result(ar) })
			}
		}
		wg.Wait()
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		if len(lines) != 20*len(res.Actions) {
			t.Fatalf("%s: %d lines, want %d", format, len(lines), 20*len(res.Actions))
		}
		for _, l := range lines {
			if format == JSON && !json.Valid([]byte(l)) {
				t.Errorf("broken line %q", l)
			}
			if format == Text && !strings.Contains(l, ": done in ") && !strings.Contains(l, ": FAILED after ") && !strings.Contains(l, ": skipped (") {
				t.Errorf("broken line %q", l)
			}
		}
	}
}
