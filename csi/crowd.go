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
	n atomic.Int64

	mu   sync.Mutex
	grew chan struct{} // closed by the next enter
}

// enter counts one call until the returned func is called.
func (c *crowd) enter() func() {
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

// growth returns a channel closed when the next call enters.
func (c *crowd) growth() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.grew == nil {
		c.grew = make(chan struct{})
	}
	return c.grew
}

// gatherFor is how a batch's leader waits for company. With other calls in
// flight it waits until joined() reaches the crowd's size (every call in
// flight has joined: nobody else is coming) or window has passed since the
// last call entered or joined (at most maxGatherWindows windows in all). A
// call alone waits at most window/4 for a
// second to enter, since gRPC starts the handlers of a burst one by one and
// the first can reach its batch before the next has begun: that bounds
// what a lone sequential call pays (twice window/4: the layer write and the
// RDS session). No crowd (nil) or no window: no wait.
func gatherFor(c *crowd, window time.Duration, joined func() int, wake <-chan struct{}) {
	if c == nil || window <= 0 {
		return
	}
	if grew := c.growth(); c.size() <= 1 {
		t := time.NewTimer(window / 4)
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
	t := time.NewTimer(window)
	defer t.Stop()
	for joined() < c.size() {
		grew := c.growth()
		select {
		case <-wake:
		case <-grew:
		case <-t.C:
			return
		case <-limit.C:
			return
		}
		t.Reset(window)
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
