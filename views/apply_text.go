package views

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rds-reconcile/rds-reconcile/reconcile"
)

type applyText struct {
	w io.Writer
	o PlanOptions
}

func (v *applyText) Plan(p *reconcile.Plan) error { return writePlanText(v.w, p, v.o.Verbose) }

func (v *applyText) NothingToApply(p *reconcile.Plan) error {
	n := p.Summary().Blocked
	if n == 0 {
		_, err := io.WriteString(v.w, "\nNothing to apply.\n")
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nNothing to apply: %d action(s) held back by safety rules:\n", n)
	for _, a := range p.Actions {
		if a.Kind == reconcile.KindBlocked {
			fmt.Fprintf(&b, "  %s: %s\n", reconcile.Describe(a), a.Blocked)
		}
	}
	_, err := io.WriteString(v.w, b.String())
	return err
}

func (v *applyText) Ask(in io.Reader) error {
	fmt.Fprint(v.w, "\nApply these actions? Only 'yes' is accepted.\n  Enter yes: ")
	line, _ := bufio.NewReader(in).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return errors.New("apply cancelled")
	}
	return nil
}

func (v *applyText) Start()                           { fmt.Fprintln(v.w) }
func (v *applyText) Result(ar reconcile.ActionResult) { fmt.Fprintln(v.w, resultLine(ar)) }
func (v *applyText) Retry(ev reconcile.RetryEvent)    { fmt.Fprintln(v.w, retryLine(ev)) }

// resultLine is the one line apply prints as an action finishes.
func resultLine(ar reconcile.ActionResult) string {
	head := fmt.Sprintf("%-3s %s", ar.Action.Kind.Mark(), reconcile.Describe(ar.Action))
	switch {
	case ar.Skipped:
		return head + ": skipped (" + ar.SkipReason + ")"
	case ar.Err != nil:
		return fmt.Sprintf("%s: FAILED after %s, %s: %v", head, ms(ar.Duration), attempts(ar.Attempts), ar.Err)
	}
	return fmt.Sprintf("%s: done in %s, %s", head, ms(ar.Duration), attempts(ar.Attempts))
}

// retryLine is the line apply prints when an attempt failed and the
// action will be tried again.
func retryLine(ev reconcile.RetryEvent) string {
	return fmt.Sprintf("    %s %s: attempt %d of %d failed: %v; next try in %s", ev.Action.Kind, target(ev.Action),
		ev.Attempt, ev.Attempts, ev.Err, ev.Next.Round(10*time.Millisecond))
}

func attempts(n uint) string {
	if n == 1 {
		return "1 attempt"
	}
	return fmt.Sprintf("%d attempts", n)
}

// Summary writes apply's closing line and a line per failure.
func (v *applyText) Summary(res *reconcile.Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nApply: %d done, %d failed, %d skipped, %d blocked in %s.\n",
		res.Succeeded, res.Failed, res.Skipped, res.Blocked, ms(res.Duration))
	for _, a := range res.Actions {
		if a.Err != nil {
			fmt.Fprintf(&b, "  failed: %s %s: %v\n", a.Action.Kind, target(a.Action), a.Err)
		}
	}
	_, err := io.WriteString(v.w, b.String())
	return err
}
