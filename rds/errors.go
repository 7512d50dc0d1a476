package rds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"

	"github.com/rds-reconcile/rds-reconcile/internal/retryable"
)

// Sentinel errors. Callers test them with errors.Is; every error returned by
// SSHClient that comes from RouterOS or the transport is an *Error wrapping
// one of these or the transport error itself.
var (
	// ErrNotFound: the disk, file or pool does not exist ("no such item").
	ErrNotFound = errors.New("not found")
	// ErrShrink: a Grow would make a disk smaller; refused before sending.
	ErrShrink = errors.New("refusing to shrink a disk")
	// ErrNoSpace: RouterOS answered "failure: not enough space".
	ErrNoSpace = errors.New("not enough space on the RDS")
	// ErrInvalid: a value failed validation; nothing was sent.
	ErrInvalid = errors.New("invalid value")
	// ErrRejected: RouterOS refused the command for another reason (syntax
	// error, invalid value, bad command name, unexpected output). Terminal.
	ErrRejected = errors.New("command rejected by RouterOS")
	// ErrBusy: RouterOS answered that it is busy or an action timed out.
	// Retryable.
	ErrBusy = errors.New("RouterOS busy")
	// ErrHostKey: the RDS host key is unknown, changed or revoked. Terminal
	// until an operator fixes known_hosts.
	ErrHostKey = errors.New("host key verification failed")
	// ErrAuth: the RDS refused our credentials. Terminal.
	ErrAuth = errors.New("ssh authentication failed")
	// ErrConnection: the SSH transport failed (dial, handshake, session or a
	// connection dropped mid-command). Retryable. A mutating command whose
	// connection dropped after it was sent may or may not have been applied;
	// callers re-read the state before deciding again.
	ErrConnection = errors.New("ssh connection failed")
	// ErrTimeout: a command got no complete answer within the command
	// timeout (Config.CommandTimeout). Retryable; it also matches
	// context.DeadlineExceeded. A write that timed out after it was sent
	// is Ambiguous: RouterOS may still apply it.
	ErrTimeout = errors.New("RouterOS command timed out")
)

// Error is the error type of every failed RDS operation. Command never holds
// secrets: commands are built only from validated slot names, paths, NQNs and
// numbers. Output is what RouterOS printed, trimmed and capped.
//
// A retryable failure has its Err marked with retryable.Mark (transport
// failures, command timeouts, RouterOS busy); retryable.Is sees the mark
// through Unwrap. Terminal errors — not enough space, invalid values, syntax
// errors, no such item, host key and authentication failures, cancellation —
// are left unmarked.
type Error struct {
	Op      string // "list", "create", ...
	Slot    string // the slot concerned, when there is one
	Command string // the RouterOS command line, when one was sent or built
	Output  string // RouterOS output that made us judge it an error
	// Ambiguous: a mutating command was sent and then its answer was lost
	// (connection dropped, command timeout, caller's deadline). It may or
	// may not have been applied: read the state again before retrying.
	Ambiguous bool
	Err       error // a sentinel above or the transport error, marked when retryable
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("rds ")
	b.WriteString(e.Op)
	if e.Slot != "" {
		b.WriteString(" ")
		b.WriteString(e.Slot)
	}
	b.WriteString(": ")
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	if e.Output != "" {
		fmt.Fprintf(&b, ": RouterOS said %q", e.Output)
	}
	if e.Ambiguous {
		b.WriteString(" (it may or may not have been applied)")
	}
	// A command that never reached RouterOS (no connection, no login) is
	// not worth printing: the internal probe would only be noise.
	if e.Command != "" && !errors.Is(e.Err, ErrConnection) && !errors.Is(e.Err, ErrAuth) && !errors.Is(e.Err, ErrHostKey) {
		fmt.Fprintf(&b, " (command: %s)", e.Command)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// IsAmbiguous reports whether err is a write that was sent but whose
// outcome is unknown (see Error.Ambiguous).
func IsAmbiguous(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Ambiguous
}

// markIf marks err retryable when retry is true.
func markIf(retry bool, err error) error {
	if retry {
		return retryable.Mark(err)
	}
	return err
}

// transportRetryable classifies errors that did not come from RouterOS text:
// refused or reset connections, EOF, timeouts, broken SSH sessions or
// channels are worth another try; cancellation and the terminal sentinels
// are not.
func transportRetryable(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrShrink), errors.Is(err, ErrNoSpace),
		errors.Is(err, ErrInvalid), errors.Is(err, ErrRejected), errors.Is(err, ErrHostKey),
		errors.Is(err, ErrAuth):
		return false
	case errors.Is(err, ErrBusy), errors.Is(err, ErrConnection), errors.Is(err, ErrTimeout):
		return true
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH):
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	var oce *ssh.OpenChannelError
	if errors.As(err, &oce) {
		return true
	}
	var em *ssh.ExitMissingError
	return errors.As(err, &em)
}

// routerosErrors maps error text RouterOS prints to a sentinel. Order matters:
// the first match wins. RouterOS has no structured error channel over SSH and
// its exit status is unreliable, so the text decides.
var routerosErrors = []struct {
	substr string
	err    error
}{
	{"not enough space", ErrNoSpace},
	{"no such item", ErrNotFound},
	{"busy", ErrBusy},
	{"action timed out", ErrBusy},
	{"failure:", ErrRejected},
	{"bad command name", ErrRejected},
	{"expected end of command", ErrRejected},
	{"syntax error", ErrRejected},
	{"input does not match any value", ErrRejected},
	{"invalid value", ErrRejected},
	{"invalid trailing characters", ErrRejected},
	{"action cancelled", ErrRejected},
	{"expected ", ErrRejected}, // "expected command name", "expected closing brace"...
}

// classifyOutput returns the sentinel matching RouterOS error text in out, or
// nil when out holds none of the known strings.
func classifyOutput(out string) error {
	low := strings.ToLower(out)
	for _, r := range routerosErrors {
		if strings.Contains(low, r.substr) {
			return r.err
		}
	}
	return nil
}

// errorPrefixes start the lines RouterOS prints instead of data when a read
// command fails. Reads look for them at the start of a line only, because
// data (a slot named "busy-1") may contain the same words.
var errorPrefixes = []string{
	"failure:", "no such item", "bad command name", "expected end of command",
	"syntax error", "input does not match any value", "invalid value",
	"value of ", "action cancelled", "action timed out", "expected ", "busy",
}

// errorLine returns the first line of read output that is RouterOS error
// text, or "".
func errorLine(out string) string {
	for line := range strings.SplitSeq(out, "\n") {
		t := strings.ToLower(strings.TrimSpace(line))
		for _, p := range errorPrefixes {
			if strings.HasPrefix(t, p) {
				return strings.TrimSpace(line)
			}
		}
	}
	return ""
}

// outputError builds the *Error for RouterOS output judged as an error.
func outputError(op, slot, cmd, out string) *Error {
	sentinel := classifyOutput(out)
	if sentinel == nil {
		sentinel = ErrRejected
	}
	return &Error{
		Op: op, Slot: slot, Command: cmd, Output: capOutput(out),
		Err: markIf(errors.Is(sentinel, ErrBusy), sentinel),
	}
}

// capOutput trims and caps output quoted in errors so a runaway answer does
// not flood logs.
func capOutput(out string) string {
	out = strings.TrimSpace(out)
	const max = 512
	if len(out) > max {
		return out[:max] + "..."
	}
	return out
}
