package reconcile

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
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
	Files []string
	// Trigger starts a pass at once (SIGHUP).
	Trigger <-chan struct{}
	// Prune is passed to every full plan.
	Prune bool
	// OnPass receives each pass's outcome (status for /status, tests).
	OnPass func(PassResult)
	// Debounce groups file events (default 250ms).
	Debounce time.Duration
}

// PassResult is what one loop pass did.
type PassResult struct {
	Revision string
	Plan     *Plan
	Result   *Result
	Status   *Status
	// HeldBack are volumes whose actions waited for their backoff.
	HeldBack []string
	Err      error
}

// volumeBackoff tracks consecutive failures of one volume.
type volumeBackoff struct {
	failures uint
	until    time.Time
	lastErr  string // what failed last, for status
}

// Run is the level-triggered loop: a pass at once (orphan cleanup on
// start), then every Interval (with jitter), on a change of the state files
// and on Trigger, until ctx ends. A volume whose actions fail waits its own
// exponential backoff (the state's retry policy) while the others go on.
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
	var events <-chan fsnotify.Event
	var werrs <-chan error
	watched := map[string]bool{}
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
			watched[abs] = true
			dirs[filepath.Dir(abs)] = true
		}
		for d := range dirs {
			if err := w.Add(d); err != nil {
				return fmt.Errorf("run: watch %s: %w", d, err)
			}
		}
		events, werrs = w.Events, w.Errors
	}
	backoff := map[string]*volumeBackoff{}
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
		case ev := <-events:
			if abs, err := filepath.Abs(ev.Name); err == nil && watched[abs] {
				debounce = time.After(lo.Debounce)
			}
			continue
		case <-debounce:
			debounce = nil
			reason = "file change"
		case err := <-werrs:
			r.log.Warn("watching state files", "err", err)
			continue
		}
		r.log.Debug("reconcile pass", "trigger", reason)
		next := r.pass(ctx, lo, backoff)
		wait := jittered(lo.Interval, lo.Jitter, rand.Float64())
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

// pass runs one reconcile and returns the earliest backoff expiry (zero:
// none pending).
func (r *Reconciler) pass(ctx context.Context, lo LoopOptions, backoff map[string]*volumeBackoff) time.Time {
	t0 := time.Now()
	out := PassResult{}
	defer func() {
		if lo.OnPass != nil {
			lo.OnPass(out)
		}
	}()
	st, rev, err := lo.Load(ctx)
	out.Revision = rev
	if err != nil {
		out.Err = fmt.Errorf("load desired state: %w", err)
		r.log.Error("reconcile pass skipped: the desired state cannot be loaded", "err", err)
		r.opts.Metrics.reconciled(time.Since(t0), out.Err)
		return earliest(backoff)
	}
	r.opts.Metrics.SetRevision(rev)
	log := r.log.With("revision", rev)
	p, err := r.Plan(ctx, st, Full(lo.Prune || (st.Policy != nil && st.Policy.Prune)))
	if err != nil {
		out.Err = err
		log.Error("reconcile pass: observe failed", "err", err)
		r.opts.Metrics.reconciled(time.Since(t0), err)
		return earliest(backoff)
	}
	p.Revision = rev
	out.Plan = p
	now := time.Now()
	run := *p
	run.Actions = nil
	held := map[string]bool{}
	for _, a := range p.Actions {
		if b := backoff[a.Volume]; b != nil && a.Volume != "" && now.Before(b.until) {
			held[a.Volume] = true
			continue
		}
		run.Actions = append(run.Actions, a)
	}
	for v := range held {
		out.HeldBack = append(out.HeldBack, v)
	}
	var passErr error
	if run.HasChanges() {
		res, err := r.Apply(ctx, st, &run, ApplyOptions{})
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
			pol := PolicyFrom(st)
			// The backoff runs from the end of the apply: an apply can take
			// longer than the first delays.
			done := time.Now()
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
					b := backoff[v]
					if b == nil {
						b = &volumeBackoff{}
						backoff[v] = b
					}
					if b.until.Before(done) { // once per pass, however many actions failed
						b.failures++
						b.until = done.Add(pol.Delay(b.failures, rand.Float64()))
					}
					b.lastErr = bad[v]
					log.Warn("volume backs off", "volume", v, "failures", b.failures, "until", b.until)
				default:
					delete(backoff, v)
				}
			}
		}
	}
	if s, err := r.Status(ctx, st); err == nil {
		s.Revision = rev
		markBackingOff(s, backoff)
		out.Status = s
	}
	out.Err = passErr
	r.opts.Metrics.reconciled(time.Since(t0), passErr)
	if passErr != nil {
		log.Warn("reconcile pass finished with errors", "err", passErr, "duration", time.Since(t0))
	} else {
		log.Info("reconcile pass", "actions", len(run.Actions), "held_back", len(held), "duration", time.Since(t0))
	}
	return earliest(backoff)
}

// markBackingOff turns a volume whose actions keep failing from Progressing
// into Degraded, with the last error and when the loop tries again: the loop
// is not making progress on it, it is waiting.
func markBackingOff(s *Status, backoff map[string]*volumeBackoff) {
	for i := range s.Volumes {
		v := &s.Volumes[i]
		b := backoff[v.Name]
		if b == nil || b.lastErr == "" || v.Condition != Progressing {
			continue
		}
		v.Condition = Degraded
		v.Reason = fmt.Sprintf("%s (%d failed passes; next try at %s)", b.lastErr, b.failures, b.until.Format(time.RFC3339))
	}
}

func earliest(backoff map[string]*volumeBackoff) time.Time {
	var t time.Time
	for _, b := range backoff {
		if t.IsZero() || b.until.Before(t) {
			t = b.until
		}
	}
	return t
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
