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
	if lo.Jitter <= 0 {
		lo.Jitter = 0.1
	}
	if lo.Debounce <= 0 {
		lo.Debounce = 250 * time.Millisecond
	}
	if lo.Settle <= 0 {
		lo.Settle = DefaultSettle
	}
	// The loop's lines name each pass's revision, not the one the
	// Reconciler was made with.
	l := &loop{r: r, lo: lo, log: r.opts.Logger, watched: map[string]bool{}, backoff: backoffs{}}
	if len(lo.Files) > 0 {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			return fmt.Errorf("run: watch state files: %w", err)
		}
		defer w.Close()
		dirs := map[string]bool{}
		for _, f := range lo.Files {
			abs, err := filepath.Abs(f)
			if err != nil {
				return fmt.Errorf("run: %w", err)
			}
			l.watched[abs] = true
			dirs[filepath.Dir(abs)] = true
		}
		for d := range dirs {
			if err := w.Add(d); err != nil {
				return fmt.Errorf("run: watch %s: %w", d, err)
			}
		}
		l.events, l.werrs = w.Events, w.Errors
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	var debounce <-chan time.Time
	for {
		reason := ""
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			reason = "interval"
		case <-lo.Trigger:
			reason = "signal"
		case ev := <-l.events:
			if l.isWatched(ev) {
				debounce = time.After(lo.Debounce)
			}
			continue
		case <-debounce:
			reason = "file change"
		case err := <-l.werrs:
			r.log.Warn("watching state files", "err", err)
			continue
		}
		// The pass reads the files from here on: earlier events are in.
		debounce = nil
		r.log.Debug("reconcile pass", "trigger", reason)
		next, confirm := l.pass(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wait := jittered(lo.Interval, lo.Jitter, rand.Float64())
		if confirm {
			// The next pass settles first: it plans one settle interval
			// from now, not one Interval.
			wait = 0
		}
		if !next.IsZero() {
			if d := time.Until(next); d < wait {
				wait = max(d, 10*time.Millisecond)
			}
		}
		timer.Reset(wait)
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
	backoff backoffs
	// planned holds the destructive actions (by actionKey) the previous
	// pass planned; nil after a pass that planned nothing.
	planned map[string]bool
}

func (l *loop) isWatched(ev fsnotify.Event) bool {
	abs, err := filepath.Abs(ev.Name)
	return err == nil && l.watched[abs]
}

// pass runs one reconcile. It returns the earliest backoff expiry (zero:
// none pending) and whether a destructive action waits for the next pass.
func (l *loop) pass(ctx context.Context) (time.Time, bool) {
	r, lo := l.r, l.lo
	t0 := time.Now()
	st, rev, err := l.settledLoad(ctx)
	if ctx.Err() != nil {
		return time.Time{}, false // stopping: this was no pass
	}
	out := PassResult{Revision: rev}
	defer func() {
		if lo.OnPass != nil {
			lo.OnPass(out)
		}
	}()
	if err != nil {
		// A pass that did not plan confirms nothing.
		l.planned = nil
		out.Err = err
		if errors.Is(err, ErrUnsettled) {
			l.log.Warn("reconcile pass skipped: the state files keep changing", "err", err)
		} else {
			l.log.Error("reconcile pass skipped: the desired state cannot be loaded", "err", err)
		}
		r.opts.Metrics.reconciled(time.Since(t0), out.Err)
		return l.backoff.earliest(), false
	}
	r.opts.Metrics.SetRevision(rev)
	log := l.log.With("revision", rev)
	sc := Full(lo.Prune || (st.Policy != nil && st.Policy.Prune))
	sc.AllowMassDetach = lo.AllowMassDetach
	p, err := r.Plan(ctx, st, sc)
	if err != nil {
		l.planned = nil
		out.Err = err
		log.Error("reconcile pass: observe failed", "err", err)
		r.opts.Metrics.reconciled(time.Since(t0), err)
		return l.backoff.earliest(), false
	}
	p.Revision = rev
	out.Plan = p
	run, held, pending := l.split(p, time.Now())
	out.HeldBack, out.Pending = held, pending
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
	var passErr error
	if !p.HasChanges() {
		r.Record(st, p) // converged: what is live is what the state wants
	}
	if run.HasChanges() {
		res, err := r.Apply(ctx, st, run, ApplyOptions{})
		if err != nil {
			passErr = err
		} else {
			out.Result = res
			passErr = res.Err()
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
			// The backoff runs from the end of the apply: an apply can take
			// longer than the first delays.
			l.backoff.record(res, PolicyFrom(st), time.Now(), log)
		}
	}
	if s, err := r.StatusIn(ctx, st, p.Scope); err == nil {
		s.Revision = rev
		l.backoff.mark(s)
		markPending(s, p, pending)
		out.Status = s
	}
	out.Err = passErr
	r.opts.Metrics.reconciled(time.Since(t0), passErr)
	if passErr != nil {
		log.Warn("reconcile pass finished with errors", "err", passErr, "duration", time.Since(t0))
	} else {
		sum := run.Summary()
		log.Info("reconcile pass", "actions", len(run.Actions)-sum.Blocked, "blocked", sum.Blocked, "held_back", len(held),
			"pending", len(pending), "duration", time.Since(t0))
	}
	return l.backoff.earliest(), len(pending) > 0
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
		case a.Volume != "" && l.backoff.holds(a.Volume, now):
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
		if a.Kind == KindDisconnect || a.Kind == KindDisconnectOrphan {
			detaching[a.Volume] = true
		}
	}
	if len(detaching) > 0 {
		run.Actions = slices.DeleteFunc(run.Actions, func(a Action) bool {
			if (a.Kind == KindDelete || a.Kind == KindRemoveFile) && detaching[a.Volume] {
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
		if len(why[v.Name]) == 0 || blocked[v.Name] || v.Condition == Ready {
			continue
		}
		v.Condition = Progressing
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

// volumeBackoff tracks consecutive failures of one volume.
type volumeBackoff struct {
	failures uint
	until    time.Time
	lastErr  string // what failed last, for status
}

// backoffs are the per-volume backoffs of the loop: a volume whose actions
// fail waits while the others go on.
type backoffs map[string]*volumeBackoff

// holds says whether volume's actions wait at now.
func (b backoffs) holds(volume string, now time.Time) bool {
	v := b[volume]
	return v != nil && now.Before(v.until)
}

// record backs off each volume with a failed or skipped action in res
// (once per pass, however many of its actions failed) and forgets those
// whose actions all succeeded.
func (b backoffs) record(res *Result, pol RetryPolicy, done time.Time, log *slog.Logger) {
	bad := map[string]string{}
	for _, ar := range res.Actions {
		switch {
		case ar.Err != nil:
			bad[ar.Action.Volume] = fmt.Sprintf("%s failed: %v", ar.Action.Kind, ar.Err)
		case ar.Skipped && bad[ar.Action.Volume] == "":
			bad[ar.Action.Volume] = fmt.Sprintf("%s skipped: %s", ar.Action.Kind, ar.SkipReason)
		}
	}
	for _, ar := range res.Actions {
		v := ar.Action.Volume
		switch {
		case v == "":
		case bad[v] != "":
			vb := b[v]
			if vb == nil {
				vb = &volumeBackoff{}
				b[v] = vb
			}
			if vb.until.Before(done) { // once per pass
				vb.failures++
				vb.until = done.Add(pol.Delay(vb.failures, rand.Float64()))
			}
			vb.lastErr = bad[v]
			log.Warn("volume backs off", "volume", v, "failures", vb.failures, "until", vb.until)
		default:
			delete(b, v)
		}
	}
}

// earliest is when the first backoff ends (zero: none).
func (b backoffs) earliest() time.Time {
	var t time.Time
	for _, vb := range b {
		if t.IsZero() || vb.until.Before(t) {
			t = vb.until
		}
	}
	return t
}

// mark turns a volume whose actions keep failing from Progressing into
// Degraded, with the last error and when the loop tries again: the loop is
// not making progress on it, it is waiting.
func (b backoffs) mark(s *Status) {
	for i := range s.Volumes {
		v := &s.Volumes[i]
		vb := b[v.Name]
		if vb == nil || vb.lastErr == "" || v.Condition != Progressing {
			continue
		}
		v.Condition = Degraded
		v.Reason = fmt.Sprintf("%s (%d failed passes; next try at %s)", vb.lastErr, vb.failures, vb.until.Format(time.RFC3339))
	}
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
