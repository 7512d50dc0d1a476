package reconcile

import (
	"context"
	"math"
	"math/rand/v2"
	"time"

	"github.com/avast/retry-go/v4"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

// RetryPolicy is the resolved backoff of every action: attempts, first
// delay, cap, multiplier and proportional jitter.
type RetryPolicy struct {
	Attempts     uint
	InitialDelay time.Duration
	MaxDelay     time.Duration
	Multiplier   float64
	Jitter       float64
}

// Seed defaults, used where the state leaves a field zero.
var defaultRetry = RetryPolicy{Attempts: 5, InitialDelay: time.Second, MaxDelay: 30 * time.Second, Multiplier: 2, Jitter: 0.1}

// PolicyFrom resolves the state's retry section.
func PolicyFrom(st *spec.State) RetryPolicy {
	p := defaultRetry
	if st == nil || st.Defaults == nil {
		return p
	}
	r := st.Defaults.Retry
	if r.Attempts == 0 {
		return p // no retry section: spec.Load fills one, tests may not
	}
	p.Attempts = r.Attempts
	if r.InitialDelay.Duration > 0 {
		p.InitialDelay = r.InitialDelay.Duration
	}
	if r.MaxDelay.Duration > 0 {
		p.MaxDelay = r.MaxDelay.Duration
	}
	if r.Multiplier >= 1 {
		p.Multiplier = r.Multiplier
	}
	if r.Jitter >= 0 && r.Jitter <= 1 {
		p.Jitter = r.Jitter // 0 is a valid choice: no jitter
	}
	return p
}

// Base is the delay before retry n (n = 1 for the first retry) without
// jitter: InitialDelay * Multiplier^(n-1), capped at MaxDelay.
func (p RetryPolicy) Base(n uint) time.Duration {
	if n == 0 {
		n = 1
	}
	d := float64(p.InitialDelay) * math.Pow(p.Multiplier, float64(n-1))
	if p.MaxDelay > 0 && d > float64(p.MaxDelay) {
		d = float64(p.MaxDelay)
	}
	if d > math.MaxInt64/2 {
		d = math.MaxInt64 / 2
	}
	return time.Duration(d)
}

// Delay is Base(n) moved by a uniform proportional jitter in
// [-Jitter, +Jitter] of it (u in [0,1) picks the point), still capped at
// MaxDelay so the cap is a hard bound.
func (p RetryPolicy) Delay(n uint, u float64) time.Duration {
	b := float64(p.Base(n))
	d := b * (1 + p.Jitter*(2*u-1))
	if p.MaxDelay > 0 && d > float64(p.MaxDelay) {
		d = float64(p.MaxDelay)
	}
	if d < 0 {
		d = 0
	}
	return time.Duration(d)
}

// DelayType adapts Delay to retry-go; rnd returns uniform values in [0,1)
// (nil: math/rand/v2).
func (p RetryPolicy) DelayType(rnd func() float64) retry.DelayTypeFunc {
	if rnd == nil {
		rnd = rand.Float64
	}
	return func(n uint, _ error, _ *retry.Config) time.Duration { return p.Delay(n, rnd()) }
}

// do runs fn under the policy: only errors retryable says so are retried,
// cancellation ends the wait, the last error is returned. It returns the
// number of attempts made.
func (p RetryPolicy) do(ctx context.Context, retryable func(error) bool, fn func(attempt uint) error) (uint, error) {
	return p.doNotify(ctx, retryable, fn, nil)
}

// doNotify is do that tells notify about every failed attempt that will be
// retried: its number, its error and the delay before the next one.
func (p RetryPolicy) doNotify(ctx context.Context, retryable func(error) bool, fn func(attempt uint) error,
	notify func(attempt uint, err error, next time.Duration)) (uint, error) {
	var attempts uint
	if p.Attempts == 0 {
		p.Attempts = 1 // retry-go reads 0 as "until it succeeds"
	}
	delay := p.DelayType(nil)
	if notify != nil {
		// retry-go asks for a delay only when it will retry, so this is the
		// one place that knows both the error and the wait.
		delay = func(n uint, err error, c *retry.Config) time.Duration {
			d := p.DelayType(nil)(n, err, c)
			notify(attempts, err, d)
			return d
		}
	}
	err := retry.Do(func() error {
		attempts++
		return fn(attempts)
	},
		retry.Context(ctx),
		retry.Attempts(p.Attempts),
		retry.DelayType(delay),
		retry.RetryIf(retryable),
		retry.LastErrorOnly(true),
	)
	return attempts, err
}
