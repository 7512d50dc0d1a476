package reconcile

import (
	"fmt"
	"time"
)

// backoffs owns the loop's per-volume backoff, the way controller-runtime's
// rate-limited queue owns its items' (When, Forget): a volume whose actions
// fail waits out its own exponential backoff (the state's retry policy)
// while the other volumes go on. Not safe for concurrent use: only the
// loop's goroutine touches it.
type backoffs struct {
	rnd func() float64 // jitter source, uniform in [0,1)
	m   map[string]*volumeBackoff
}

// volumeBackoff tracks consecutive failed passes of one volume.
type volumeBackoff struct {
	failures uint
	until    time.Time
	lastErr  string // what failed last, for status
}

func newBackoffs(rnd func() float64) *backoffs {
	return &backoffs{rnd: rnd, m: map[string]*volumeBackoff{}}
}

// When records that volume failed (why) in the pass that ended at done and
// returns when it may run again. A pass counts once however many of the
// volume's actions failed: a failure before the current wait ends is the
// same pass's and only updates why.
func (b *backoffs) When(volume, why string, pol RetryPolicy, done time.Time) time.Time {
	vb := b.m[volume]
	if vb == nil {
		vb = &volumeBackoff{}
		b.m[volume] = vb
	}
	if vb.until.Before(done) {
		vb.failures++
		vb.until = done.Add(pol.Delay(vb.failures, b.rnd()))
	}
	vb.lastErr = why
	return vb.until
}

// Forget drops volume's backoff: its actions succeeded.
func (b *backoffs) Forget(volume string) { delete(b.m, volume) }

// Failures is how many passes in a row volume failed in (0: none).
func (b *backoffs) Failures(volume string) uint {
	if vb := b.m[volume]; vb != nil {
		return vb.failures
	}
	return 0
}

// Holds says whether volume's actions wait at now.
func (b *backoffs) Holds(volume string, now time.Time) bool {
	vb := b.m[volume]
	return vb != nil && now.Before(vb.until)
}

// Earliest is when the first backoff ends (zero: none).
func (b *backoffs) Earliest() time.Time {
	var t time.Time
	for _, vb := range b.m {
		if t.IsZero() || vb.until.Before(t) {
			t = vb.until
		}
	}
	return t
}

// Mark turns a volume whose actions keep failing from Progressing into
// Degraded, with the last error and when the loop tries again: the loop is
// not making progress on it, it is waiting.
func (b *backoffs) Mark(s *Status) {
	for i := range s.Volumes {
		v := &s.Volumes[i]
		vb := b.m[v.Name]
		if vb == nil || vb.lastErr == "" || v.Condition != ConditionProgressing {
			continue
		}
		v.Condition = ConditionDegraded
		v.Reason = fmt.Sprintf("%s (%d failed passes; next try at %s)", vb.lastErr, vb.failures, vb.until.Format(time.RFC3339))
	}
}

// failedVolumes says, per volume, what failed in res: the last error, or
// else the first skip. Volumes whose actions all succeeded are not in it.
func failedVolumes(res *Result) map[string]string {
	bad := map[string]string{}
	for _, ar := range res.Actions {
		switch {
		case ar.Err != nil:
			bad[ar.Action.Volume] = fmt.Sprintf("%s failed: %v", ar.Action.Kind, ar.Err)
		case ar.Skipped && bad[ar.Action.Volume] == "":
			bad[ar.Action.Volume] = fmt.Sprintf("%s skipped: %s", ar.Action.Kind, ar.SkipReason)
		}
	}
	return bad
}
