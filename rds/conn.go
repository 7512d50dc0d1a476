package rds

// The SSH connection: one reused connection per client, dialled on first
// use (transport.go dials), dropped when it breaks or idles too long, and
// redialled by the next command. Nothing here knows RouterOS.

import (
	"context"
	"errors"
	"time"

	"golang.org/x/crypto/ssh"
)

// connState is one SSH connection and what we learned about the router
// through it.
type connState struct {
	client *ssh.Client
	done   chan struct{} // closed when the connection ends

	probeMu chan struct{} // held while probing; a channel so waiting honours ctx
	probed  bool
	profile Profile // the RouterOS release, read once per connection

	// Guarded by SSHClient.mu.
	users    int       // callers between connect and release
	lastUsed time.Time // when the last user released it
}

// Close closes the connection. Calls after Close fail.
func (c *SSHClient) Close() error {
	c.mu.Lock()
	c.closed = true
	cs := c.conn
	c.conn = nil
	c.mu.Unlock()
	if cs != nil {
		return cs.client.Close()
	}
	return nil
}

// errClosed is returned by calls after Close.
var errClosed = errors.New("client closed")

// connect returns the live connection, dialling when there is none, and
// takes a use of it: the caller must release it. A connection idle for
// longer than MaxIdle is closed and replaced first.
func (c *SSHClient) connect(ctx context.Context) (*connState, error) {
	if cs, err := c.current(); cs != nil || err != nil {
		return cs, err
	}
	select {
	case c.dialMu <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.dialMu }()
	// Another caller may have dialled while we waited.
	if cs, err := c.current(); cs != nil || err != nil {
		return cs, err
	}
	client, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	cs := &connState{client: client, done: make(chan struct{}), probeMu: make(chan struct{}, 1)}
	go func() {
		_ = client.Wait()
		close(cs.done)
	}()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = client.Close()
		return nil, errClosed
	}
	cs.users, cs.lastUsed = 1, time.Now()
	c.conn = cs
	c.mu.Unlock()
	return cs, nil
}

// current takes a use of the live connection; nil, nil when one must be
// dialled.
func (c *SSHClient) current() (*connState, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errClosed
	}
	cs := c.conn
	switch {
	case cs == nil:
		c.mu.Unlock()
		return nil, nil
	case cs.isDone():
		c.conn = nil
		c.mu.Unlock()
		return nil, nil
	case c.cfg.MaxIdle > 0 && cs.users == 0 && time.Since(cs.lastUsed) > c.cfg.MaxIdle:
		// Nobody uses it, so closing it cuts no command short. An idle
		// connection may have died silently (RDS rebooted, state lost on
		// the path); a fresh one costs one handshake.
		idle := time.Since(cs.lastUsed)
		c.conn = nil
		c.mu.Unlock()
		c.log.Debug("rds connection idle; closing it and dialling again", "idle", idle)
		_ = cs.client.Close()
		return nil, nil
	}
	cs.users++
	c.mu.Unlock()
	return cs, nil
}

// release gives back a use taken by connect.
func (c *SSHClient) release(cs *connState) {
	c.mu.Lock()
	cs.users--
	cs.lastUsed = time.Now()
	c.mu.Unlock()
}

func (cs *connState) isDone() bool {
	select {
	case <-cs.done:
		return true
	default:
		return false
	}
}

// drop forgets cs (if still current) and closes it, so the next call dials.
func (c *SSHClient) drop(cs *connState) {
	c.mu.Lock()
	if c.conn == cs {
		c.conn = nil
	}
	c.mu.Unlock()
	_ = cs.client.Close()
}

// connLost reports whether cs ended. A dropped connection closes the
// session's channel a moment before the connection itself is seen to end,
// so it waits briefly for that.
func (c *SSHClient) connLost(cs *connState) bool {
	t := time.NewTimer(250 * time.Millisecond)
	defer t.Stop()
	select {
	case <-cs.done:
		return true
	case <-t.C:
		return false
	}
}
