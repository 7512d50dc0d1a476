package rds

// Sessions: one SSH session per RouterOS command, within the session slots
// (MaxSessions) and CommandTimeout, with the retries that are safe (a read on
// a fresh connection, a refused session asked for again) and the errors a
// failed run becomes. Nothing here knows RouterOS beyond "a command and its
// output".

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rds-reconcile/rds-reconcile/internal/retryable"
)

// errBeforeSend marks failures where the command certainly did not reach
// the router, so even a write may be retried on a fresh connection.
type errBeforeSend struct{ err error }

func (e errBeforeSend) Error() string { return e.err.Error() }

func (e errBeforeSend) Unwrap() error { return e.err }

// run sends one command and returns its output. Reads (mutating=false) are
// retried once on a fresh connection after any transport failure; writes
// only when the failure happened before the command was sent. A refused
// session is asked for again, waiting longer each time. All of it stays
// within CommandTimeout and ctx.
func (c *SSHClient) run(ctx context.Context, op, slot, cmd string, mutating bool) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", c.ctxError(op, slot, cmd, err, false)
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return "", c.ctxError(op, slot, cmd, ctx.Err(), false)
	}
	defer func() { <-c.sem }()
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CommandTimeout)
	defer cancel()

	var (
		out      string
		err      error
		redialed bool
		sent     bool // the failed attempt had sent the command
		refused  int
	)
	for {
		out, err = c.runOnce(cctx, cmd)
		if err == nil {
			break
		}
		var before errBeforeSend
		sent = !errors.As(err, &before)
		if cctx.Err() != nil || errors.Is(err, errClosed) || isTerminalDial(err) {
			break
		}
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) {
			// The RDS refused a session (its cap counts sessions we
			// already closed but it has not yet reaped, or another
			// client holds them): nothing was sent, so wait and ask
			// again until the command timeout.
			refused++
			if !sleepCtx(cctx, refusalWait(refused)) {
				break
			}
			continue
		}
		if redialed || (mutating && sent) {
			break
		}
		redialed = true
		c.log.Debug("rds command failed on transport; retrying on a fresh connection", "op", op, "err", err)
	}
	if err != nil {
		return "", c.runError(ctx, cctx, op, slot, cmd, err, mutating && sent, sent, refused)
	}
	return out, nil
}

// runError is the *Error a failed run returns: the caller's context ended,
// the command timeout ran out, or the transport failed. ambiguous is a
// write that was sent.
func (c *SSHClient) runError(ctx, cctx context.Context, op, slot, cmd string, err error, ambiguous, sent bool, refused int) *Error {
	switch {
	case ctx.Err() != nil:
		return c.ctxError(op, slot, cmd, ctx.Err(), ambiguous)
	case cctx.Err() != nil:
		return c.timeoutError(op, slot, cmd, err, sent, refused, ambiguous)
	}
	e := c.transportError(op, slot, cmd, err)
	e.Ambiguous = ambiguous
	return e
}

// A refused session is asked for again after refusalBackoff, doubling each
// time up to maxRefusalWait, until the command timeout.
const (
	refusalBackoff = 10 * time.Millisecond
	maxRefusalWait = time.Second
)

func refusalWait(n int) time.Duration {
	if n > 7 {
		return maxRefusalWait
	}
	return min(refusalBackoff<<(n-1), maxRefusalWait)
}

// sleepCtx waits d or until ctx ends; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// isTerminalDial tells dial failures retrying cannot fix.
func isTerminalDial(err error) bool {
	return errors.Is(err, ErrHostKey) || errors.Is(err, ErrAuth) || errors.Is(err, ErrInvalid)
}

func (c *SSHClient) ctxError(op, slot, cmd string, err error, ambiguous bool) *Error {
	return &Error{Op: op, Slot: slot, Command: cmd, Ambiguous: ambiguous, Err: markIf(errors.Is(err, context.DeadlineExceeded), err)}
}

// timeoutError is a command that ran out of CommandTimeout. last is the
// error of the last attempt; refused counts sessions the RDS refused.
func (c *SSHClient) timeoutError(op, slot, cmd string, last error, sent bool, refused int, ambiguous bool) *Error {
	var err error
	switch {
	case sent:
		err = fmt.Errorf("%w: no complete answer within %v (commandTimeout): %w", ErrTimeout, c.cfg.CommandTimeout, context.DeadlineExceeded)
	case refused > 0:
		err = fmt.Errorf("%w: not sent: the RDS refused a session %d times within %v (commandTimeout): %w", ErrTimeout, refused, c.cfg.CommandTimeout, context.DeadlineExceeded)
	default:
		err = fmt.Errorf("%w: not sent within %v (commandTimeout; last error: %v): %w", ErrTimeout, c.cfg.CommandTimeout, last, context.DeadlineExceeded)
	}
	return &Error{Op: op, Slot: slot, Command: cmd, Ambiguous: ambiguous, Err: retryable.Mark(err)}
}

func (c *SSHClient) transportError(op, slot, cmd string, err error) *Error {
	e := &Error{Op: op, Slot: slot, Command: cmd, Err: err}
	switch {
	case errors.Is(err, errClosed):
	case isTerminalDial(err):
	default:
		if !errors.Is(err, ErrConnection) {
			err = fmt.Errorf("%w: %w", ErrConnection, err)
		}
		e.Err = retryable.Mark(err)
	}
	return e
}

// runOnce runs cmd in a new session on the current connection.
func (c *SSHClient) runOnce(ctx context.Context, cmd string) (string, error) {
	cs, err := c.connect(ctx)
	if err != nil {
		return "", errBeforeSend{err}
	}
	defer c.release(cs)
	sess, err := c.newSession(ctx, cs)
	if err != nil {
		var oce *ssh.OpenChannelError
		if !errors.As(err, &oce) {
			// The connection is broken: forget it so the retry re-dials.
			c.drop(cs)
		}
		return "", errBeforeSend{fmt.Errorf("%w: open session: %w", ErrConnection, err)}
	}
	defer sess.Close()
	var out lockedBuffer
	sess.Stdout = &out
	sess.Stderr = &out
	start := time.Now()
	c.roundTrips.Add(1)
	done := make(chan error, 1)
	go func() {
		if err := sess.Start(cmd); err != nil {
			done <- err
			return
		}
		done <- sess.Wait()
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		// Closing the session ends the remote command's channel; the
		// goroutine then returns.
		_ = sess.Close()
		return "", ctx.Err()
	}
	c.log.Debug("rds command", "cmd", cmd, "took", time.Since(start), "err", err)
	return c.waited(cs, &out, err)
}

// waited judges how a command's session ended. A connection that ends
// mid-command ends Wait too (EOF or no exit status), so there is no
// separate case for it: output that arrived complete just before a close
// is not thrown away.
func (c *SSHClient) waited(cs *connState, out *lockedBuffer, err error) (string, error) {
	if err == nil {
		return out.String(), nil
	}
	var exit *ssh.ExitError
	if errors.As(err, &exit) {
		// RouterOS exit status is unreliable; the text decides.
		return out.String(), nil
	}
	var missing *ssh.ExitMissingError
	if errors.As(err, &missing) && !c.connLost(cs) {
		// The channel closed without an exit status but the
		// connection lives: a server quirk, the output is whole.
		return out.String(), nil
	}
	c.drop(cs)
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w: %w", ErrConnection, err)
	}
	return "", err
}

// newSession opens a session, giving up after Timeout or when ctx ends: a
// peer that went silent never answers the channel open. The connection is
// then dropped, since the next command would wait the same way; nothing
// was sent, so the caller may retry on a fresh connection.
func (c *SSHClient) newSession(ctx context.Context, cs *connState) (*ssh.Session, error) {
	type result struct {
		s   *ssh.Session
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := cs.client.NewSession()
		ch <- result{s, err}
	}()
	t := time.NewTimer(c.cfg.Timeout)
	defer t.Stop()
	var err error
	select {
	case r := <-ch:
		return r.s, r.err
	case <-t.C:
		err = fmt.Errorf("no answer to a session open within %v", c.cfg.Timeout)
		c.log.Warn("rds session open unanswered; closing the connection", "timeout", c.cfg.Timeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	c.drop(cs)
	go func() {
		if r := <-ch; r.s != nil {
			_ = r.s.Close()
		}
	}()
	return nil, err
}

// lockedBuffer collects stdout and stderr, which x/crypto/ssh copies from
// two goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
