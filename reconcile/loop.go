package reconcile

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

// LoopOptions configure Run.
type LoopOptions struct {
	// Interval between passes; each wait is moved by +/-Jitter of it.
	Interval time.Duration
	Jitter   float64 // default 0.1
	// Load reads the desired state and its revision for each pass. A
	// failing Load skips the pass: an unreadable state changes nothing.
	Load func(ctx context.Context) (*spec.State, string, error)
	// Files are watched (through their directories, since git pull and
	// editors replace files by renaming) and trigger a pass when changed.
	// Their bytes are hashed around each Load (see Settle).
	Files []string
	// Trigger starts a pass at once (SIGHUP).
	Trigger <-chan struct{}
	// Prune is passed to every full plan.
	Prune bool
	// AllowMassDetach lifts the mass-detach guard of every full plan
	// (Scope.AllowMassDetach).
	AllowMassDetach bool
	// OnPass receives each pass's outcome (status for /status, tests).
	OnPass func(PassResult)
	// Debounce groups file events (default 250ms).
	Debounce time.Duration
	// Settle is how long the state files must stay unchanged before a pass
	// acts on them (default DefaultSettle): every pass hashes Files, waits
	// Settle, loads, and hashes again; a change in between (or a file
	// event during the wait) starts the wait over. Files that do not
	// settle within settleTries waits skip the pass. It is also the time
	// between a pass that holds a destructive action and the pass that
	// confirms it.
	Settle time.Duration
}

// DefaultSettle is LoopOptions.Settle's default.
const DefaultSettle = time.Second

// settleTries bounds the settle waits of one pass: once this many waits
// ended with a change and at least this many settle intervals went by, the
// pass is skipped.
const settleTries = 10

// ErrUnsettled: the state files kept changing during a pass's settle
// waits; the pass was skipped and nothing changed.
var ErrUnsettled = errors.New("the state files did not settle")

// PassResult is what one loop pass did.
type PassResult struct {
	Revision string
	Plan     *Plan
	Result   *Result
	Status   *Status
	// HeldBack are volumes whose actions waited for their backoff.
	HeldBack []string
	// Pending are destructive actions (disconnect, delete, file removal)
	// this pass planned but the previous one did not: they were not run,
	// and run only if the next pass plans them too.
	Pending []Action
	Err     error
}

// Run is the level-triggered loop: a pass at once (orphan cleanup on
// start), then every Interval (with jitter), on a change of the state files
// and on Trigger, until ctx ends. Each pass acts only on state files that
// held still for LoopOptions.Settle, and a destructive action runs only
// when two consecutive passes plan it (a pass that holds one is followed at
// once by the next, which settles first). A volume whose actions fail waits
// its own exponential backoff (the state's retry policy) while the others
// go on.
func (r *Reconciler) Run(ctx context.Context, lo LoopOptions) error {
	if lo.Interval <= 0 {
		return fmt.Errorf("run: interval must be positive")
	}
	l := newLoop(r, lo)
	if len(lo.Files) > 0 {
		w, err := l.watch()
		if err != nil {
			return err
		}
		defer w.Close()
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		reason, ok := l.trigger(ctx, timer.C)
		if !ok {
			return nil
		}
		r.log.Debug("reconcile pass", "trigger", reason)
		next, confirm := l.pass(ctx)
		if ctx.Err() != nil {
			return nil
		}
		timer.Reset(l.wait(next, confirm, time.Now(), rand.Float64()))
	}
}

// jittered moves d by a uniform +/-j of it (u in [0,1)).
func jittered(d time.Duration, j, u float64) time.Duration {
	return time.Duration(float64(d) * (1 + j*(2*u-1)))
}

// loop is the state Run keeps between passes.
type loop struct {
	r       *Reconciler
	lo      LoopOptions
	log     *slog.Logger
	events  <-chan fsnotify.Event
	werrs   <-chan error
	watched map[string]bool // absolute paths of lo.Files
	backoff *backoffs
	// planned holds the destructive actions (by actionKey) the previous
	// pass planned; nil after a pass that planned nothing.
	planned map[string]bool
}

// newLoop fills in lo's defaults. The loop's lines name each pass's
// revision, not the one the Reconciler was made with, so it logs to the
// bare logger.
func newLoop(r *Reconciler, lo LoopOptions) *loop {
	if lo.Jitter <= 0 {
		lo.Jitter = 0.1
	}
	if lo.Debounce <= 0 {
		lo.Debounce = 250 * time.Millisecond
	}
	if lo.Settle <= 0 {
		lo.Settle = DefaultSettle
	}
	return &loop{r: r, lo: lo, log: r.opts.Logger, watched: map[string]bool{}, backoff: newBackoffs(rand.Float64)}
}

// watch watches the directories of the state files, since git pull and
// editors replace files by renaming, and feeds their events to the loop.
func (l *loop) watch() (*fsnotify.Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("run: watch state files: %w", err)
	}
	dirs := map[string]bool{}
	for _, f := range l.lo.Files {
		abs, err := filepath.Abs(f)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("run: %w", err)
		}
		l.watched[abs] = true
		dirs[filepath.Dir(abs)] = true
	}
	for d := range dirs {
		if err := w.Add(d); err != nil {
			w.Close()
			return nil, fmt.Errorf("run: watch %s: %w", d, err)
		}
	}
	l.events, l.werrs = w.Events, w.Errors
	return w, nil
}

// trigger waits for what starts the next pass: the timer, a signal, or a
// change of a state file once the files were quiet for Debounce. Events
// before it returns are in the pass, which reads the files from then on.
// ok is false once ctx ended.
func (l *loop) trigger(ctx context.Context, timer <-chan time.Time) (reason string, ok bool) {
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return "", false
		case <-timer:
			return "interval", true
		case <-l.lo.Trigger:
			return "signal", true
		case ev := <-l.events:
			if l.isWatched(ev) {
				debounce = time.After(l.lo.Debounce)
			}
		case <-debounce:
			return "file change", true
		case err := <-l.werrs:
			l.r.log.Warn("watching state files", "err", err)
		}
	}
}

// wait is the time from now to the next pass: an Interval moved by Jitter
// (u in [0,1)); none when a destructive action waits for confirmation (the
// next pass settles first: it plans one settle interval from now); never
// past next, the earliest backoff expiry (zero: none), but at least 10ms.
func (l *loop) wait(next time.Time, confirm bool, now time.Time, u float64) time.Duration {
	wait := jittered(l.lo.Interval, l.lo.Jitter, u)
	if confirm {
		wait = 0
	}
	if !next.IsZero() {
		if d := next.Sub(now); d < wait {
			wait = max(d, 10*time.Millisecond)
		}
	}
	return wait
}

func (l *loop) isWatched(ev fsnotify.Event) bool {
	abs, err := filepath.Abs(ev.Name)
	return err == nil && l.watched[abs]
}

// pass runs one reconcile. It returns the earliest backoff expiry (zero:
// none pending) and whether a destructive action waits for the next pass.
func (l *loop) pass(ctx context.Context) (time.Time, bool) {
	t0 := time.Now()
	st, rev, err := l.settledLoad(ctx)
	if ctx.Err() != nil {
		return time.Time{}, false // stopping: this was no pass
	}
	out := PassResult{Revision: rev}
	defer func() {
		if l.lo.OnPass != nil {
			l.lo.OnPass(out)
		}
	}()
	if err != nil {
		if errors.Is(err, ErrUnsettled) {
			l.log.Warn("reconcile pass skipped: the state files keep changing", "err", err)
		} else {
			l.log.Error("reconcile pass skipped: the desired state cannot be loaded", "err", err)
		}
		l.unplanned(&out, err, t0)
		return l.backoff.Earliest(), false
	}
	l.r.opts.Metrics.SetRevision(rev)
	log := l.log.With("revision", rev)
	sc := Full(l.lo.Prune || (st.Policy != nil && st.Policy.Prune))
	sc.AllowMassDetach = l.lo.AllowMassDetach
	p, err := l.r.Plan(ctx, st, sc)
	if err != nil {
		log.Error("reconcile pass: observe failed", "err", err)
		l.unplanned(&out, err, t0)
		return l.backoff.Earliest(), false
	}
	p.Revision = rev
	out.Plan = p
	run, held, pending := l.split(p, time.Now())
	out.HeldBack, out.Pending = held, pending
	logPlanned(log, p, pending)
	if !p.HasChanges() {
		l.r.Record(st, p) // converged: what is live is what the state wants
	}
	passErr := l.apply(ctx, log, st, run, &out)
	if s, err := l.r.StatusIn(ctx, st, p.Scope); err == nil {
		s.Revision = rev
		l.backoff.Mark(s)
		markPending(s, p, pending)
		out.Status = s
	}
	out.Err = passErr
	l.r.opts.Metrics.reconciled(time.Since(t0), passErr)
	if passErr != nil {
		log.Warn("reconcile pass finished with errors", "err", passErr, "duration", time.Since(t0))
	} else {
		sum := run.Summary()
		log.Info("reconcile pass", "actions", len(run.Actions)-sum.Blocked, "blocked", sum.Blocked, "held_back", len(held),
			"pending", len(pending), "duration", time.Since(t0))
	}
	return l.backoff.Earliest(), len(pending) > 0
}

// unplanned ends a pass that made no plan (the state could not be loaded,
// the live state not observed): it confirms nothing.
func (l *loop) unplanned(out *PassResult, err error, t0 time.Time) {
	l.planned = nil
	out.Err = err
	l.r.opts.Metrics.reconciled(time.Since(t0), err)
}

// logPlanned logs what the plan blocks and what waits for the next pass.
func logPlanned(log *slog.Logger, p *Plan, pending []Action) {
	for _, a := range p.Actions {
		if a.Kind == KindBlocked {
			log.Warn("action blocked by a safety rule", "wanted", a.Wanted, "volume", a.Volume, "controller", a.Controller,
				"rule", a.Blocked, "reason", a.Reason)
		}
	}
	for _, a := range pending {
		log.Info("action waits for confirmation by the next pass", "kind", a.Kind, "volume", a.Volume,
			"controller", a.Controller, "reason", a.Reason)
	}
}

// apply runs what the pass runs now, logs each action's result and backs
// off the volumes that failed; it returns the pass's error.
func (l *loop) apply(ctx context.Context, log *slog.Logger, st *spec.State, run *Plan, out *PassResult) error {
	if !run.HasChanges() {
		return nil
	}
	res, err := l.r.Apply(ctx, st, run, ApplyOptions{})
	if err != nil {
		return err
	}
	out.Result = res
	for _, ar := range res.Actions {
		result := "ok"
		switch {
		case ar.Skipped:
			result = "skipped: " + ar.SkipReason
		case ar.Err != nil:
			result = "error: " + ar.Err.Error()
		}
		log.Info("action", "kind", ar.Action.Kind, "volume", ar.Action.Volume, "controller", ar.Action.Controller,
			"result", result, "attempts", ar.Attempts, "duration", ar.Duration)
	}
	// The backoff runs from the end of the apply: an apply can take longer
	// than the first delays.
	l.backOff(res, PolicyFrom(st), time.Now(), log)
	return res.Err()
}

// backOff backs off each volume with a failed or skipped action in res
// (once per pass, however many of its actions failed) and forgets those
// whose actions all succeeded.
func (l *loop) backOff(res *Result, pol RetryPolicy, done time.Time, log *slog.Logger) {
	bad := failedVolumes(res)
	for _, ar := range res.Actions {
		v := ar.Action.Volume
		switch {
		case v == "":
		case bad[v] != "":
			until := l.backoff.When(v, bad[v], pol, done)
			log.Warn("volume backs off", "volume", v, "failures", l.backoff.Failures(v), "until", until)
		default:
			l.backoff.Forget(v)
		}
	}
}

// split divides p's actions into the plan to run now, the volumes waiting
// out their backoff, and the destructive actions the previous pass did not
// plan (pending). It remembers this pass's destructive actions for the
// next one.
func (l *loop) split(p *Plan, now time.Time) (*Plan, []string, []Action) {
	run := *p
	run.Actions = nil
	planned := map[string]bool{}
	held := map[string]bool{}
	var pending []Action
	for _, a := range p.Actions {
		confirmed := true
		if a.Kind.Destructive() { // run only when two passes in a row plan it
			k := actionKey(a)
			planned[k] = true
			confirmed = l.planned[k]
		}
		switch {
		case a.Volume != "" && l.backoff.Holds(a.Volume, now):
			held[a.Volume] = true
		case !confirmed:
			pending = append(pending, a)
		default:
			run.Actions = append(run.Actions, a)
		}
	}
	l.planned = planned
	// A confirmed delete waits while the same volume's disconnect waits:
	// a disk is never deleted under a controller this host still has.
	detaching := map[string]bool{}
	for _, a := range pending {
		if a.Kind.Bucket() == BucketDisconnect {
			detaching[a.Volume] = true
		}
	}
	if len(detaching) > 0 {
		run.Actions = slices.DeleteFunc(run.Actions, func(a Action) bool {
			if a.Kind.Bucket() == BucketDelete && detaching[a.Volume] {
				pending = append(pending, a)
				return true
			}
			return false
		})
	}
	heldBack := make([]string, 0, len(held))
	for v := range held {
		heldBack = append(heldBack, v)
	}
	slices.Sort(heldBack)
	return &run, heldBack, pending
}

// markPending shows a volume whose destructive action waits for the next
// pass as Progressing, saying so. A volume the loop's own plan blocks
// keeps its Blocked condition.
func markPending(s *Status, p *Plan, pending []Action) {
	if len(pending) == 0 {
		return
	}
	blocked := map[string]bool{}
	for _, a := range p.Actions {
		if a.Kind == KindBlocked {
			blocked[a.Volume] = true
		}
	}
	why := map[string][]string{}
	for _, a := range pending {
		why[a.Volume] = append(why[a.Volume], fmt.Sprintf("%s waits for confirmation by the next pass: %s", a.Kind, a.Reason))
	}
	for i := range s.Volumes {
		v := &s.Volumes[i]
		// Ready: the live state no longer needs the action.
		if len(why[v.Name]) == 0 || blocked[v.Name] || v.Condition == ConditionReady {
			continue
		}
		v.Condition = ConditionProgressing
		v.Reason = strings.Join(why[v.Name], "; ")
	}
}

// settledLoad loads the desired state once the watched files held still:
// it hashes them, waits one settle interval (a change of one of them
// starts the wait over), loads, and hashes again; the load counts only if
// both hashes agree. Files that keep changing for settleTries waits and
// settle intervals give ErrUnsettled.
func (l *loop) settledLoad(ctx context.Context) (*spec.State, string, error) {
	t0 := time.Now()
	unsettled := 0
	for {
		before := hashFiles(l.lo.Files)
		changed, err := l.settleWait(ctx)
		if err != nil {
			return nil, "", err
		}
		if !changed {
			st, rev, err := l.lo.Load(ctx)
			if hashFiles(l.lo.Files) == before {
				if err != nil {
					return nil, rev, fmt.Errorf("load desired state: %w", err)
				}
				return st, rev, nil
			}
		}
		unsettled++
		if unsettled >= settleTries && time.Since(t0) >= settleTries*l.lo.Settle {
			return nil, "", fmt.Errorf("%w: they changed during each of %d waits of %s (%s in all); pass skipped, nothing changed",
				ErrUnsettled, unsettled, l.lo.Settle, time.Since(t0).Round(time.Millisecond))
		}
		if unsettled == 1 {
			l.log.Info("waiting for the state files to settle", "settle", l.lo.Settle)
		} else {
			l.log.Debug("waiting for the state files to settle", "settle", l.lo.Settle, "waits", unsettled)
		}
	}
}

// settleWait waits one settle interval; it returns early with changed
// true when a watched file changes.
func (l *loop) settleWait(ctx context.Context) (changed bool, err error) {
	t := time.NewTimer(l.lo.Settle)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-t.C:
			return false, nil
		case ev := <-l.events:
			if l.isWatched(ev) {
				return true, nil
			}
		case err := <-l.werrs:
			l.log.Warn("watching state files", "err", err)
		}
	}
}

// hashFiles is the sha256 of the files' names and bytes (or read errors).
func hashFiles(files []string) [sha256.Size]byte {
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(h, "%s\x00error %v\x00", f, err)
			continue
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(b))
		h.Write(b)
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// LatestStatus keeps the last status a loop published, for /status.
type LatestStatus struct {
	mu sync.Mutex
	s  *Status
	at time.Time
}

// Set stores s.
func (l *LatestStatus) Set(s *Status) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.s, l.at = s, time.Now()
}

// Get returns the last status and when it was set.
func (l *LatestStatus) Get() (*Status, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s, l.at
}
