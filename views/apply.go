package views

import (
	"io"
	"sync"

	"github.com/rds-reconcile/rds-reconcile/reconcile"
)

// Apply is what the apply command shows, in the order it calls it: the
// plan, then either NothingToApply, or Ask (unless approved), Start, a
// Result per action as it finishes (Retry before each retried attempt)
// and the Summary. Result and Retry may be called from apply's workers;
// a view writes each line whole.
type Apply interface {
	Plan(p *reconcile.Plan) error
	// NothingToApply closes a plan with no change to make.
	NothingToApply(p *reconcile.Plan) error
	// Ask asks for approval on in; an error refuses.
	Ask(in io.Reader) error
	Start()
	Result(ar reconcile.ActionResult)
	Retry(ev reconcile.RetryEvent)
	Summary(res *reconcile.Result) error
}

// NewApply returns the apply view for -o format: "text" or "json".
func NewApply(format string, w io.Writer, o PlanOptions) (Apply, error) {
	lw := &lineWriter{w: w}
	switch format {
	case Text:
		return &applyText{w: lw, o: o}, nil
	case JSON:
		return &applyJSON{w: lw}, nil
	}
	return nil, badFormat(format, Text, JSON)
}

// lineWriter writes each line (or block) in one call under a lock, so
// lines from apply's workers never interleave.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
