package csi

import (
	"sync/atomic"
	"time"
)

// crowd counts the controller's volume calls in flight (from the call's
// first line, before it reads the layer, to its return). The two batchers (layerBatch for the
// layer write, gatherer for the RDS session) read it to tell a call that
// is alone, which goes at once so sequential calls never wait, from one
// with company on the way, which waits a short window for the others to
// join its batch: without that, the first of N concurrent calls always went
// alone and the other N-1 waited for it, two layer writes and two RDS round
// trips instead of one each.
type crowd struct{ n atomic.Int64 }

// enter counts one call until the returned func is called.
func (c *crowd) enter() func() {
	c.n.Add(1)
	return func() { c.n.Add(-1) }
}

// size is the number of calls in flight. A nil crowd has none (callers
// outside the controller, tests).
func (c *crowd) size() int {
	if c == nil {
		return 0
	}
	return int(c.n.Load())
}

// gatherFor waits until joined() reaches the crowd's size (every call in
// flight has joined the batch: nobody else is coming) or window has passed,
// whichever is first. wake is signalled whenever a call joins. A crowd of
// one (or none) returns at once.
func gatherFor(c *crowd, window time.Duration, joined func() int, wake <-chan struct{}) {
	if window <= 0 || c.size() <= 1 {
		return
	}
	t := time.NewTimer(window)
	defer t.Stop()
	for joined() < c.size() {
		select {
		case <-wake:
		case <-t.C:
			return
		}
	}
}

// signal wakes a gatherFor without blocking (wake has room for one).
func signal(wake chan struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}
