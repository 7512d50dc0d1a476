package views

import (
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/rds-reconcile/rds-reconcile/reconcile"
	"github.com/rds-reconcile/rds-reconcile/views/jsonplan"
)

// applyJSON writes one JSON object per line (docs/cli.md, "apply -o
// json"): the plan, a retry per retried attempt, a result per action,
// and a summary last. Each line has "type".
type applyJSON struct{ w io.Writer }

type planEvent struct {
	Type string        `json:"type"` // "plan"
	Plan jsonplan.Plan `json:"plan"`
}

type retryEvent struct {
	Type     string          `json:"type"` // "retry"
	Action   jsonplan.Action `json:"action"`
	Attempt  uint            `json:"attempt"`
	Attempts uint            `json:"attempts"`
	Error    string          `json:"error"`
	NextMs   int64           `json:"nextMs"`
}

type resultEvent struct {
	Type        string          `json:"type"` // "result"
	Action      jsonplan.Action `json:"action"`
	Description string          `json:"description"`
	// Status is done, failed or skipped.
	Status     string `json:"status"`
	DurationMs int64  `json:"durationMs"`
	Attempts   uint   `json:"attempts"`
	Error      string `json:"error,omitempty"`
	SkipReason string `json:"skipReason,omitempty"`
}

type summaryEvent struct {
	Type       string `json:"type"` // "summary"
	Done       int    `json:"done"`
	Failed     int    `json:"failed"`
	Skipped    int    `json:"skipped"`
	Blocked    int    `json:"blocked"`
	DurationMs int64  `json:"durationMs"`
}

// line writes x as one line (Encode ends it with a newline, in one
// Write). "->" stays as it is: the stream is read by people too.
func (v *applyJSON) line(x any) error {
	enc := json.NewEncoder(v.w)
	enc.SetEscapeHTML(false)
	return enc.Encode(x)
}

func (v *applyJSON) Plan(p *reconcile.Plan) error {
	return v.line(planEvent{Type: "plan", Plan: jsonplan.FromPlan(p)})
}

func (v *applyJSON) NothingToApply(p *reconcile.Plan) error {
	return v.line(summaryEvent{Type: "summary", Blocked: p.Summary().Blocked})
}

// Ask refuses: a prompt would break the stream, as Terraform's -json does.
func (v *applyJSON) Ask(io.Reader) error {
	return errors.New("apply -o json does not ask: pass --auto-approve (or apply a saved PLANFILE)")
}

func (v *applyJSON) Start() {}

func (v *applyJSON) Retry(ev reconcile.RetryEvent) {
	_ = v.line(retryEvent{Type: "retry", Action: jsonplan.FromAction(ev.Action), Attempt: ev.Attempt,
		Attempts: ev.Attempts, Error: errText(ev.Err, ev.Error), NextMs: ev.Next.Milliseconds()})
}

func (v *applyJSON) Result(ar reconcile.ActionResult) {
	e := resultEvent{Type: "result", Action: jsonplan.FromAction(ar.Action), Description: reconcile.Describe(ar.Action),
		Status: "done", DurationMs: ar.Duration.Round(time.Millisecond).Milliseconds(), Attempts: ar.Attempts}
	switch {
	case ar.Skipped:
		e.Status, e.SkipReason = "skipped", ar.SkipReason
	case ar.Err != nil || ar.Error != "":
		e.Status, e.Error = "failed", errText(ar.Err, ar.Error)
	}
	_ = v.line(e)
}

func (v *applyJSON) Summary(res *reconcile.Result) error {
	return v.line(summaryEvent{Type: "summary", Done: res.Succeeded, Failed: res.Failed, Skipped: res.Skipped,
		Blocked: res.Blocked, DurationMs: res.Duration.Round(time.Millisecond).Milliseconds()})
}

// errText prefers the error itself; the string is what a result read
// back from JSON keeps.
func errText(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}
