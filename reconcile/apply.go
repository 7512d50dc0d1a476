package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

// Errors callers decide on.
var (
	// ErrStalePlan: the live or desired state changed since the saved plan
	// was made.
	ErrStalePlan = errors.New("plan is stale: the live or desired state changed since it was made; run plan again")
	// ErrNotConverged: after apply, a new plan still has actions.
	ErrNotConverged = errors.New("not converged")
	// ErrNotVisible: an action reported success but the live state observed
	// after apply does not show its effect.
	ErrNotVisible = errors.New("effect not visible after apply")
	// ErrUndo: an action would undo what an earlier phase of the same apply
	// produced (e.g. disconnect the controller a connect just returned).
	ErrUndo = errors.New("refused: it would undo an earlier step of this apply")
	// ErrNoRDS and ErrNoFabric: the plan needs a side the Reconciler has no
	// client for.
	ErrNoRDS    = errors.New("no RDS client configured")
	ErrNoFabric = errors.New("no host fabric configured")
)

// ApplyOptions tune one Apply.
type ApplyOptions struct {
	// Progress is called once per action as it finishes; calls are
	// serialised.
	Progress func(ActionResult)
	// Retry overrides the state's retry policy (tests, benchmarks).
	Retry *RetryPolicy
	// OnRetry is called for every failed attempt that will be retried,
	// before the wait; calls are serialised with Progress.
	OnRetry func(RetryEvent)
}

// RetryEvent is one failed attempt of an action that will be tried again.
type RetryEvent struct {
	Action   Action        `json:"action"`
	Attempt  uint          `json:"attempt"`
	Attempts uint          `json:"attempts"` // of the policy
	Err      error         `json:"-"`
	Error    string        `json:"error"`
	Next     time.Duration `json:"next"` // wait before the next attempt
}

// ActionResult is how one action went.
type ActionResult struct {
	Action   Action        `json:"action"`
	Duration time.Duration `json:"duration"`
	Attempts uint          `json:"attempts"`
	// Err is nil on success. Skipped actions carry why in SkipReason.
	Err        error  `json:"-"`
	Error      string `json:"error,omitempty"`
	Skipped    bool   `json:"skipped,omitempty"`
	SkipReason string `json:"skipReason,omitempty"`
}

// Result is how an Apply went.
type Result struct {
	Actions   []ActionResult `json:"actions"`
	Succeeded int            `json:"succeeded"`
	Failed    int            `json:"failed"`
	Skipped   int            `json:"skipped"`
	Blocked   int            `json:"blocked"`
	Duration  time.Duration  `json:"duration"`
	// Remaining is the plan made after apply by Reconcile (nil from Apply).
	Remaining *Plan `json:"remaining,omitempty"`
	// After is the plan made from the live state observed once the phases
	// ran, against which every touched volume was verified (nil when
	// nothing ran).
	After *Plan `json:"after,omitempty"`
	// VerifyErr: the live state could not be observed again, so nothing
	// was verified.
	VerifyErr error `json:"-"`
}

// ApplyError lists what failed or was skipped.
type ApplyError struct {
	Failed  []ActionResult
	Skipped []ActionResult
}

func (e *ApplyError) Error() string {
	var parts []string
	for _, f := range e.Failed {
		parts = append(parts, fmt.Sprintf("%s %s: %v", f.Action.Kind, target(f.Action), f.Err))
	}
	msg := fmt.Sprintf("%d action(s) failed", len(e.Failed))
	if len(e.Skipped) > 0 {
		msg += fmt.Sprintf(", %d skipped", len(e.Skipped))
	}
	if len(parts) > 0 {
		msg += ": " + strings.Join(parts, "; ")
	}
	return msg
}

// Unwrap gives the individual errors to errors.Is/As.
func (e *ApplyError) Unwrap() []error {
	var errs []error
	for _, f := range e.Failed {
		errs = append(errs, f.Err)
	}
	return errs
}

// Err is nil when every action that ran succeeded and none was skipped.
func (r *Result) Err() error {
	if r == nil {
		return nil
	}
	var e ApplyError
	for _, a := range r.Actions {
		switch {
		case a.Skipped:
			e.Skipped = append(e.Skipped, a)
		case a.Err != nil:
			e.Failed = append(e.Failed, a)
		}
	}
	if len(e.Failed) == 0 && len(e.Skipped) == 0 && r.VerifyErr != nil {
		return fmt.Errorf("apply ran but could not be verified: %w", r.VerifyErr)
	}
	if len(e.Failed) == 0 && len(e.Skipped) == 0 {
		if r.Remaining == nil {
			return nil
		}
		if r.Remaining.HasChanges() {
			return fmt.Errorf("%w: %d action(s) still planned after apply", ErrNotConverged, len(r.Remaining.Actions))
		}
		// A scoped run (CSI) asked for these volumes: a safety rule that
		// stops one of them is an error for the caller.
		for _, a := range r.Remaining.Actions {
			if a.Kind == KindBlocked && slices.Contains(r.Remaining.Scope.Volumes, a.Volume) {
				return fmt.Errorf("%w: %s %s blocked by %s: %s", ErrNotConverged, a.Wanted, target(a), a.Blocked, a.Reason)
			}
		}
		return nil
	}
	return &e
}

// target names what an action is about, for messages.
func target(a Action) string {
	switch {
	case a.Volume != "" && a.Controller != "":
		return a.Volume + " (" + a.Controller + ")"
	case a.Volume != "":
		return a.Volume
	case a.Controller != "":
		return a.Controller
	}
	return a.FilePath
}

// Apply runs p's actions in phase order: RDS creates and repairs, host
// connects and updates, host disconnects, RDS deletes. Within a phase,
// actions of one volume run in order and volumes run in parallel (bounded
// by Parallelism on the host, RDSParallelism on the RDS). A failed action
// skips the later-phase actions of its volume but not the others.
// Cancellation stops between steps; what did not start is skipped.
func (r *Reconciler) Apply(ctx context.Context, st *spec.State, p *Plan, opts ApplyOptions) (*Result, error) {
	start := time.Now()
	if err := r.haveSides(p); err != nil {
		return nil, err
	}
	pol := PolicyFrom(st)
	if opts.Retry != nil {
		pol = *opts.Retry
	}
	rec := &recorder{r: r, opts: opts, res: &Result{Blocked: p.Summary().Blocked}, failed: map[string][]Kind{}}
	ap := &applier{r: r, pol: pol, rec: rec, made: map[string]string{}}
	for _, phase := range Phases() {
		ap.runPhase(ctx, phase, p.Actions)
	}
	res := rec.res
	inPlanOrder(res, p)
	if res.Succeeded > 0 {
		r.verify(ctx, st, p.Scope, res, opts.Progress)
		r.Record(st, res.After)
	}
	res.Duration = time.Since(start)
	return res, nil
}

// haveSides checks that the Reconciler has a client for every side p
// changes, before anything runs.
func (r *Reconciler) haveSides(p *Plan) error {
	for _, a := range p.Actions {
		switch {
		case a.Kind == KindBlocked:
		case a.Kind.OnRDS() && r.opts.RDS == nil:
			return fmt.Errorf("%s %s: %w", a.Kind, target(a), ErrNoRDS)
		case !a.Kind.OnRDS() && r.opts.Fabric == nil:
			return fmt.Errorf("%s %s: %w", a.Kind, target(a), ErrNoFabric)
		}
	}
	return nil
}

// inPlanOrder puts res's actions back in p's order, whatever order the
// goroutines finished in.
func inPlanOrder(res *Result, p *Plan) {
	pos := map[string]int{}
	for i, a := range p.Actions {
		pos[actionKey(a)] = i
	}
	slices.SortStableFunc(res.Actions, func(a, b ActionResult) int { return pos[actionKey(a.Action)] - pos[actionKey(b.Action)] })
}

// recorder collects the results of one Apply as its actions finish, from
// the goroutines of a phase: the counts, the metrics, the caller's Progress
// and OnRetry (serialised), and per volume the kinds that failed or were
// skipped, which later actions of the volume may need.
type recorder struct {
	r    *Reconciler
	opts ApplyOptions

	mu     sync.Mutex
	res    *Result
	failed map[string][]Kind // volume -> kinds that failed or were skipped
}

// record adds one finished (or skipped) action.
func (rc *recorder) record(ar ActionResult) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if ar.Err != nil {
		ar.Error = ar.Err.Error()
	}
	rc.res.Actions = append(rc.res.Actions, ar)
	result := "ok"
	switch {
	case ar.Skipped:
		rc.res.Skipped++
		result = "skipped"
	case ar.Err != nil:
		rc.res.Failed++
		result = "error"
	default:
		rc.res.Succeeded++
	}
	if (ar.Skipped || ar.Err != nil) && ar.Action.Volume != "" {
		rc.failed[ar.Action.Volume] = append(rc.failed[ar.Action.Volume], ar.Action.Kind)
	}
	rc.r.opts.Metrics.action(ar.Action.Kind, result)
	if rc.opts.Progress != nil {
		rc.opts.Progress(ar)
	}
}

// retried logs a failed attempt that will be tried again and passes it
// to the caller's OnRetry.
func (rc *recorder) retried(ctx context.Context, ev RetryEvent) {
	// A caller that shows retries itself (the CLI's progress lines) gets
	// them at debug level in the log, so they are not said twice.
	lvl := slog.LevelWarn
	if rc.opts.OnRetry != nil {
		lvl = slog.LevelDebug
	}
	rc.r.log.Log(ctx, lvl, "action failed, retrying", "kind", ev.Action.Kind, "volume", ev.Action.Volume,
		"controller", ev.Action.Controller, "attempt", ev.Attempt, "attempts", ev.Attempts, "next", ev.Next, "err", ev.Err)
	if rc.opts.OnRetry != nil {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.opts.OnRetry(ev)
	}
}

// blockedBy says whether a must be skipped because a step of its volume
// it needs failed or was skipped, and which.
func (rc *recorder) blockedBy(a Action) (Kind, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if k, ok := sourceNeeds(a, rc.failed[a.Source]); ok {
		return k, true
	}
	return blockedBy(a, rc.failed[a.Volume])
}

// verify observes once more and checks every volume an action succeeded
// on: an effect that is not visible turns that volume's successes into
// failures (ErrNotVisible), so "done" means done. A volume is unverified
// when the new plan still wants a change for it that is not destructive
// (a connect, rescan, grow...: what apply was to produce), or the very
// action that reported success. Disconnects and deletes the caller held
// back on purpose (the loop's two-pass confirmation) are not a failure.
func (r *Reconciler) verify(ctx context.Context, st *spec.State, sc Scope, res *Result, progress func(ActionResult)) {
	after, err := r.Plan(ctx, st, sc)
	if err != nil {
		res.VerifyErr = err
		r.log.Warn("apply: could not observe the live state again to verify", "err", err)
		return
	}
	res.After = after
	done := map[string]bool{}
	failed := map[string]bool{} // volumes whose failure is already reported
	for _, ar := range res.Actions {
		if ar.Err == nil && !ar.Skipped {
			done[actionKey(ar.Action)] = true
		} else {
			failed[ar.Action.Volume] = true
		}
	}
	missing := map[string][]string{} // volume -> what the new plan still wants
	for _, a := range after.Actions {
		if a.Kind == KindBlocked || a.Volume == "" || failed[a.Volume] {
			continue
		}
		if a.Kind.Destructive() && !done[actionKey(a)] {
			continue
		}
		missing[a.Volume] = append(missing[a.Volume], Describe(a))
	}
	for i := range res.Actions {
		ar := &res.Actions[i]
		want, ok := missing[ar.Action.Volume]
		if !ok || ar.Err != nil || ar.Skipped {
			continue
		}
		ar.Err = fmt.Errorf("%w: %s reported success, but the live state still needs: %s",
			ErrNotVisible, ar.Action.Kind, strings.Join(want, "; "))
		ar.Error = ar.Err.Error()
		res.Succeeded--
		res.Failed++
		r.opts.Metrics.action(ar.Action.Kind, "unverified")
		r.log.Warn("action not verified", "kind", ar.Action.Kind, "volume", ar.Action.Volume, "still", want)
		if progress != nil {
			progress(*ar)
		}
	}
}

// blockedBy says whether a must be skipped because a step it needs (see
// Kind.Needs) failed or was skipped, and which.
func blockedBy(a Action, failed []Kind) (Kind, bool) {
	for _, f := range failed {
		if a.Kind.needs(f) {
			return f, true
		}
	}
	return "", false
}

func actionKey(a Action) string {
	return string(a.Kind) + "\x00" + a.Volume + "\x00" + a.Controller + "\x00" + a.FilePath
}

// Reconcile plans, applies and plans again to verify convergence: what
// CSI calls. The result's Err says what failed or is still planned.
func (r *Reconciler) Reconcile(ctx context.Context, st *spec.State, sc Scope) (*Result, error) {
	t0 := time.Now()
	p, err := r.Plan(ctx, st, sc)
	if err != nil {
		r.opts.Metrics.reconciled(time.Since(t0), err)
		return nil, err
	}
	res := &Result{}
	if p.HasChanges() {
		res, err = r.Apply(ctx, st, p, ApplyOptions{})
		if err != nil {
			r.opts.Metrics.reconciled(time.Since(t0), err)
			return nil, err
		}
		after := res.After // Apply's verification already observed again
		if after == nil {
			if after, err = r.Plan(ctx, st, sc); err != nil {
				r.opts.Metrics.reconciled(time.Since(t0), err)
				return res, err
			}
		}
		res.Remaining = after
	} else {
		res.Remaining = p
		res.Blocked = p.Summary().Blocked
	}
	res.Duration = time.Since(t0)
	r.opts.Metrics.reconciled(res.Duration, res.Err())
	return res, nil
}
