package csi

import (
	"sync"
	"sync/atomic"
	"time"
)

// crowd counts the controller's volume calls in flight (from the call's
// first line, before it reads the layer, to its return). The two batchers
// (layerBatch for the layer write, gatherer for the RDS session) read it to
// tell a call that is alone from one with company on the way, which waits a
// short window for the others to join its batch: without that, the first
// of N concurrent calls always went alone and the other N-1 waited for it,
// two layer writes and two RDS round trips instead of one each.
type crowd struct {
	n    atomic.Int64
	last atomic.Int64 // when the last call began, in Unix nanoseconds

	mu   sync.Mutex
	grew chan struct{} // closed by the next enter
}

// enter counts one call until the returned func is called.
func (c *crowd) enter() func() {
	c.last.Store(time.Now().UnixNano())
	c.n.Add(1)
	c.mu.Lock()
	if c.grew != nil {
		close(c.grew)
		c.grew = nil
	}
	c.mu.Unlock()
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

// lastEnter is when the last call began.
func (c *crowd) lastEnter() time.Time { return time.Unix(0, c.last.Load()) }

// growth returns a channel closed when the next call enters.
func (c *crowd) growth() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.grew == nil {
		c.grew = make(chan struct{})
	}
	return c.grew
}

// gatherFor is how a batch's leader waits for company. A call alone waits
// at most a quiet spell (window/4) for a second to begin, since gRPC
// starts the handlers of a burst one by one and the first can reach its
// batch before the next has begun: that bounds what a lone sequential call
// pays (twice window/4: the layer write and the RDS session). With others
// in flight it waits until joined() reaches the crowd's size and no call
// has begun for a quiet spell (a burst may still be starting), or until
// window has passed since the last call began or joined; at most
// maxGatherWindows windows in all. No crowd (nil) or no window: no wait.
func gatherFor(c *crowd, window time.Duration, joined func() int, wake <-chan struct{}) {
	if c == nil || window <= 0 {
		return
	}
	quiet := window / 4
	if grew := c.growth(); c.size() <= 1 {
		t := time.NewTimer(quiet)
		defer t.Stop()
		select {
		case <-grew:
		case <-t.C:
			return
		}
	}
	// A steady stream of calls must not hold a batch forever.
	limit := time.NewTimer(maxGatherWindows * window)
	defer limit.Stop()
	for {
		grew := c.growth()
		wait, forJoins := window, true
		if joined() >= c.size() {
			since := time.Since(c.lastEnter())
			if since >= quiet {
				return
			}
			wait, forJoins = quiet-since, false
		}
		t := time.NewTimer(wait)
		select {
		case <-wake:
		case <-grew:
		case <-t.C:
			if forJoins {
				return // a window without progress: the rest are not coming soon
			}
		case <-limit.C:
			t.Stop()
			return
		}
		t.Stop()
	}
}

// maxGatherWindows bounds a leader's whole wait, in windows.
const maxGatherWindows = 10

// signal wakes a gatherFor without blocking (wake has room for one).
func signal(wake chan struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}
