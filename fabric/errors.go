package fabric

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/rds-reconcile/rds-reconcile/internal/retryable"
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

// transient says whether retrying err later may succeed: a mark anywhere
// in the chain, or one of the transient errnos above. EINVAL (bad options),
// EPERM and ENOENT (module not loaded) are not.
func transient(err error) bool {
	if err == nil {
		return false
	}
	if retryable.Is(err) {
		return true
	}
	var errno syscall.Errno
	return errors.As(err, &errno) && transientErrno(errno)
}

// markTransient marks err when a transient errno is in its chain. Every
// exported Linux method passes its error through it, so callers need only
// retryable.Is: the kernel's errnos stay fabric's business.
func markTransient(err error) error {
	if transient(err) {
		return retryable.Mark(err)
	}
	return err
}

// classify wraps a kernel error from a connect so retryable.Is and errors.Is
// work on the result; the errno stays in the chain.
func classify(err error, format string, args ...any) error {
	return markTransient(fmt.Errorf(format+": %w", append(args, err)...))
}
