// Package retryable is the one mark rds, fabric and reconcile share for
// errors that may go away by themselves: a dropped SSH connection, RouterOS
// saying it is busy, a target refusing a connect, a block device not there
// yet.
//
// The rule: an unmarked error is final; retrying it would only repeat it.
// The code that meets a transient condition marks its error with Mark, at
// the place where it knows, and everyone above asks Is. Nothing guesses from
// an error's text or type after the fact, so rds and fabric never need each
// other's (or the kernel's, or x/crypto/ssh's) error types to decide.
package retryable

import "errors"

// Error marks Err as retryable. It adds no text: Error and Unwrap are Err's,
// so errors.Is and errors.As see through it.
type Error struct {
	Err error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Mark returns err marked as retryable. nil stays nil, and an error already
// marked is returned as is.
func Mark(err error) error {
	if err == nil || Is(err) {
		return err
	}
	return &Error{Err: err}
}

// Is reports whether err, or any error it wraps, was marked by Mark.
func Is(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
