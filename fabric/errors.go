package fabric

import (
	"errors"
	"fmt"
	"syscall"
)

// Sentinel errors; callers test them with errors.Is. The wrapped message says
// which controller and why.
var (
	// ErrNotManaged: the controller's subsystem NQN is outside the managed
	// prefixes, so this tool must not touch it (whoever asks).
	ErrNotManaged = errors.New("controller not managed by rds-reconcile")
	// ErrInUse: a namespace (or a partition of it) is mounted or has holders.
	ErrInUse = errors.New("namespace in use")
	// ErrNotFound: no such controller (it may just have been deleted).
	ErrNotFound = errors.New("controller not found")
	// ErrNeedsReconnect: the change cannot be made on a live controller
	// (keep-alive is fixed at connect time); the caller must reconnect.
	ErrNeedsReconnect = errors.New("change needs a reconnect")
	// ErrTimeoutsMismatch: the kernel reports other timeouts than requested.
	ErrTimeoutsMismatch = errors.New("controller timeouts differ from the requested ones")
	// ErrInvalidRequest: the connect request cannot be turned into a valid
	// kernel option string; retrying will not help.
	ErrInvalidRequest = errors.New("invalid connect request")
)

// RetryableError marks a failure that may go away by itself: the target
// refused the connection, the block device did not appear in time, EAGAIN.
type RetryableError struct {
	Err error
}

func (e *RetryableError) Error() string { return e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// Retryable wraps err as a RetryableError (nil stays nil).
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return &RetryableError{Err: err}
}

// transientErrno says whether a kernel answer to a fabrics write describes
// a transient condition: target down, busy, interrupted, or a connect-time
// NVMe status the kernel maps to EIO (such as a host not yet allowed).
func transientErrno(e syscall.Errno) bool {
	switch e {
	case syscall.EAGAIN, syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ETIMEDOUT,
		syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.EHOSTDOWN, syscall.ENETDOWN,
		syscall.EINTR, syscall.EIO, syscall.EBUSY:
		return true
	}
	return false
}

// IsRetryable says whether retrying err later may succeed: a RetryableError
// anywhere in the chain, or one of the transient errnos above. EINVAL (bad
// options), EPERM and ENOENT (module not loaded) are not retryable.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	var re *RetryableError
	if errors.As(err, &re) {
		return true
	}
	var errno syscall.Errno
	return errors.As(err, &errno) && transientErrno(errno)
}

// classify wraps a kernel error from a connect so IsRetryable and errors.Is
// work on the result; the errno stays in the chain.
func classify(err error, format string, args ...any) error {
	wrapped := fmt.Errorf(format+": %w", append(args, err)...)
	if IsRetryable(err) {
		return Retryable(wrapped)
	}
	return wrapped
}
