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

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/internal/retryable"
	"github.com/rds-reconcile/rds-reconcile/rds"
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
	pol := PolicyFrom(st)
	if opts.Retry != nil {
		pol = *opts.Retry
	}
	for _, a := range p.Actions {
		if a.Kind == KindBlocked {
			continue
		}
		if a.Kind.OnRDS() && r.opts.RDS == nil {
			return nil, fmt.Errorf("%s %s: %w", a.Kind, target(a), ErrNoRDS)
		}
		if !a.Kind.OnRDS() && r.opts.Fabric == nil {
			return nil, fmt.Errorf("%s %s: %w", a.Kind, target(a), ErrNoFabric)
		}
	}
	res := &Result{}
	ap := &applier{r: r, pol: pol, made: map[string]string{}}
	var mu sync.Mutex
	ap.onRetry = func(ev RetryEvent) {
		// A caller that shows retries itself (the CLI's progress lines)
		// gets them at debug level in the log, so they are not said twice.
		lvl := slog.LevelWarn
		if opts.OnRetry != nil {
			lvl = slog.LevelDebug
		}
		r.log.Log(ctx, lvl, "action failed, retrying", "kind", ev.Action.Kind, "volume", ev.Action.Volume,
			"controller", ev.Action.Controller, "attempt", ev.Attempt, "attempts", ev.Attempts, "next", ev.Next, "err", ev.Err)
		if opts.OnRetry != nil {
			mu.Lock()
			defer mu.Unlock()
			opts.OnRetry(ev)
		}
	}
	failed := map[string][]Kind{} // volume -> kinds that failed or were skipped
	report := func(ar ActionResult) {
		mu.Lock()
		defer mu.Unlock()
		if ar.Err != nil {
			ar.Error = ar.Err.Error()
		}
		res.Actions = append(res.Actions, ar)
		switch {
		case ar.Skipped:
			res.Skipped++
		case ar.Err != nil:
			res.Failed++
		default:
			res.Succeeded++
		}
		if (ar.Skipped || ar.Err != nil) && ar.Action.Volume != "" {
			failed[ar.Action.Volume] = append(failed[ar.Action.Volume], ar.Action.Kind)
		}
		result := "ok"
		if ar.Skipped {
			result = "skipped"
		} else if ar.Err != nil {
			result = "error"
		}
		r.opts.Metrics.action(ar.Action.Kind, result)
		if opts.Progress != nil {
			opts.Progress(ar)
		}
	}
	for _, a := range p.Actions {
		if a.Kind == KindBlocked {
			res.Blocked++
		}
	}
	for _, phase := range []Phase{PhaseRDS, PhaseHost, PhaseHostDetach, PhaseRDSDelete} {
		groups := map[string][]Action{}
		var order []string
		for i, a := range p.Actions {
			if a.Kind == KindBlocked || a.Kind.Phase() != phase {
				continue
			}
			key := a.Volume
			if key == "" {
				key = fmt.Sprintf("#%d", i)
			}
			if _, ok := groups[key]; !ok {
				order = append(order, key)
			}
			groups[key] = append(groups[key], a)
		}
		if len(order) == 0 {
			continue
		}
		limit := r.opts.Parallelism
		if phase == PhaseRDS || phase == PhaseRDSDelete {
			limit = r.opts.RDSParallelism
		}
		sem := make(chan struct{}, limit)
		var wg sync.WaitGroup
		for _, key := range order {
			acts := groups[key]
			wg.Add(1)
			go func() {
				defer wg.Done()
				if ctx.Err() == nil {
					select {
					case sem <- struct{}{}:
						defer func() { <-sem }()
					case <-ctx.Done():
					}
				}
				for _, a := range acts {
					mu.Lock()
					why, dep := blockedBy(a, failed[a.Volume])
					mu.Unlock()
					switch {
					case ctx.Err() != nil:
						report(ActionResult{Action: a, Skipped: true, SkipReason: "cancelled: " + context.Cause(ctx).Error()})
						continue
					case dep && a.Volume != "":
						report(ActionResult{Action: a, Skipped: true, SkipReason: fmt.Sprintf("an earlier step (%s) of volume %s failed", why, a.Volume)})
						continue
					}
					t0 := time.Now()
					attempts, err := ap.do(ctx, a)
					ar := ActionResult{Action: a, Duration: time.Since(t0), Attempts: attempts, Err: err}
					if err != nil {
						r.log.Warn("action failed", "kind", a.Kind, "volume", a.Volume, "controller", a.Controller,
							"attempts", attempts, "err", err)
					} else {
						r.log.Debug("action done", "kind", a.Kind, "volume", a.Volume, "controller", a.Controller,
							"attempts", attempts, "duration", ar.Duration)
					}
					report(ar)
				}
			}()
		}
		wg.Wait()
	}
	// Keep the results in plan order whatever order goroutines finished in.
	pos := map[string]int{}
	for i, a := range p.Actions {
		pos[actionKey(a)] = i
	}
	slices.SortStableFunc(res.Actions, func(a, b ActionResult) int { return pos[actionKey(a.Action)] - pos[actionKey(b.Action)] })
	if res.Succeeded > 0 {
		r.verify(ctx, st, p.Scope, res, opts.Progress)
		r.Record(st, res.After)
	}
	res.Duration = time.Since(start)
	return res, nil
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

// dependsOn lists the earlier kinds of the same volume k needs: a connect
// needs the disk and its export, a rescan the grow, a delete the
// disconnect. Timeout updates and disconnects need nothing before them.
func dependsOn(k Kind) []Kind {
	switch k {
	case KindConnect, KindReconnect:
		return []Kind{KindCreate, KindFixExport}
	case KindRescan:
		return []Kind{KindCreate, KindGrow, KindFixExport}
	case KindDelete:
		return []Kind{KindDisconnect}
	case KindRemoveFile:
		return []Kind{KindDisconnect, KindDelete}
	}
	return nil
}

// blockedBy says whether a must be skipped because a step it depends on
// failed or was skipped, and which.
func blockedBy(a Action, failed []Kind) (Kind, bool) {
	for _, f := range failed {
		if slices.Contains(dependsOn(a.Kind), f) {
			return f, true
		}
	}
	return "", false
}

func actionKey(a Action) string {
	return string(a.Kind) + "\x00" + a.Volume + "\x00" + a.Controller + "\x00" + a.FilePath
}

// applier runs the actions of one Apply. It remembers the controllers
// that connects produced, so that no later phase undoes them: with the
// same NQN reachable twice, a connect may answer with an existing
// controller (EALREADY) that the plan had down as a duplicate.
type applier struct {
	r       *Reconciler
	pol     RetryPolicy
	onRetry func(RetryEvent)

	mu   sync.Mutex
	made map[string]string // controller -> volume whose connect produced it
}

// retry runs fn for a under the policy, reporting every retried failure.
func (ap *applier) retry(ctx context.Context, a Action, retryable func(error) bool, fn func(attempt uint) error) (uint, error) {
	return ap.pol.doNotify(ctx, retryable, fn, func(n uint, err error, next time.Duration) {
		if ap.onRetry != nil {
			ap.onRetry(RetryEvent{Action: a, Attempt: n, Attempts: ap.pol.Attempts, Err: err, Error: err.Error(), Next: next})
		}
	})
}

// do executes one action with retries.
func (ap *applier) do(ctx context.Context, a Action) (uint, error) {
	r := ap.r
	rdsRetry, fabRetry := retryable.Is, retryable.Is
	switch a.Kind {
	case KindCreate:
		return ap.retry(ctx, a, rdsRetry, func(attempt uint) error {
			if attempt > 1 {
				// A create whose connection dropped after sending may have
				// been applied: look before sending it again.
				ok, err := r.diskExists(ctx, a.Slot)
				if err != nil {
					return err // retryable read errors wait for the next attempt
				}
				if ok {
					return nil
				}
			}
			return r.opts.RDS.Create(ctx, rds.CreateRequest{Slot: a.Slot, FilePath: a.FilePath, Size: a.Size, Port: a.Port, NQN: a.NQN,
				SetAllowHosts: a.SetAllowHosts, AllowHosts: a.AllowHosts})
		})
	case KindFixExport:
		return ap.retry(ctx, a, rdsRetry, func(uint) error {
			return r.opts.RDS.SetExport(ctx, rds.ExportRequest{Slot: a.Slot, Port: a.Port, NQN: a.NQN,
				SetAllowHosts: a.SetAllowHosts, AllowHosts: a.AllowHosts})
		})
	case KindGrow:
		return ap.retry(ctx, a, rdsRetry, func(uint) error { return r.opts.RDS.Grow(ctx, a.Slot, a.Size) })
	case KindDelete:
		return ap.retry(ctx, a, rdsRetry, func(uint) error { return r.opts.RDS.Delete(ctx, a.Slot, a.FilePath) })
	case KindRemoveFile:
		return ap.retry(ctx, a, rdsRetry, func(uint) error {
			if err := r.opts.RDS.RemoveFile(ctx, a.FilePath); err != nil && !errors.Is(err, rds.ErrNotFound) {
				return err
			}
			return nil
		})
	case KindConnect:
		return ap.retry(ctx, a, fabRetry, func(uint) error { return ap.connect(ctx, a) })
	case KindSetTimeouts:
		return ap.retry(ctx, a, fabRetry, func(uint) error {
			err := r.opts.Fabric.SetTimeouts(ctx, a.Controller, *a.Timeouts)
			if errors.Is(err, fabric.ErrNeedsReconnect) {
				return fmt.Errorf("%w (the next plan reconnects)", err)
			}
			return err
		})
	case KindRescan:
		return ap.retry(ctx, a, fabRetry, func(uint) error {
			if err := r.opts.Fabric.Rescan(ctx, a.Controller); err != nil {
				return err
			}
			return r.waitNamespace(ctx, a.Controller)
		})
	case KindReconnect:
		n, err := ap.retry(ctx, a, fabRetry, func(uint) error { return r.disconnect(ctx, a.Controller) })
		if err != nil {
			return n, fmt.Errorf("disconnect %s: %w", a.Controller, err)
		}
		m, err := ap.retry(ctx, a, fabRetry, func(uint) error { return ap.connect(ctx, a) })
		return n + m, err
	case KindDisconnect, KindDisconnectOrphan:
		ap.mu.Lock()
		by, made := ap.made[a.Controller]
		ap.mu.Unlock()
		if made {
			return 0, fmt.Errorf("%w: %s is the controller the connect of %s returned", ErrUndo, a.Controller, by)
		}
		return ap.retry(ctx, a, fabRetry, func(uint) error { return r.disconnect(ctx, a.Controller) })
	}
	return 0, fmt.Errorf("unknown action kind %q", a.Kind)
}

func (r *Reconciler) diskExists(ctx context.Context, slot string) (bool, error) {
	inv, err := r.opts.RDS.List(ctx)
	if err != nil {
		return false, err
	}
	for _, d := range inv.Disks {
		if d.Slot == slot {
			return true, nil
		}
	}
	return false, nil
}

func (ap *applier) connect(ctx context.Context, a Action) error {
	req := fabric.ConnectRequest{NQN: a.NQN, Address: a.Address, Port: a.Port, HostNQN: a.HostNQN, DeviceWait: ap.r.opts.DeviceWait}
	if a.Timeouts != nil {
		req.Timeouts = *a.Timeouts
	}
	c, err := ap.r.opts.Fabric.Connect(ctx, req)
	if err == nil && c.Name != "" {
		ap.mu.Lock()
		ap.made[c.Name] = a.Volume
		ap.mu.Unlock()
	}
	return err
}

// waitNamespace waits, up to the device wait, until the controller shows a
// namespace again: the kernel scans asynchronously after a rescan, and a plan
// made before that would see the same gap again.
func (r *Reconciler) waitNamespace(ctx context.Context, name string) error {
	wait := r.opts.DeviceWait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	deadline := time.Now().Add(wait)
	for {
		ctrls, err := r.opts.Fabric.List(ctx)
		if err != nil {
			return err
		}
		for _, c := range ctrls {
			if c.Name == name && len(c.Namespaces) > 0 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return retryable.Mark(fmt.Errorf("controller %s shows no namespace %s after a rescan", name, wait))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (r *Reconciler) disconnect(ctx context.Context, name string) error {
	if err := r.opts.Fabric.Disconnect(ctx, name, false); err != nil && !errors.Is(err, fabric.ErrNotFound) {
		return err
	}
	return nil
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
		for _, a := range p.Actions {
			if a.Kind == KindBlocked {
				res.Blocked++
			}
		}
	}
	res.Duration = time.Since(t0)
	r.opts.Metrics.reconciled(res.Duration, res.Err())
	return res, nil
}
