package csi

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rds-reconcile/rds-reconcile/rds"
)

// statusOf maps an error from the reconciler, the store or the host to the
// gRPC code the CSI spec asks for, keeping the message.
func statusOf(what string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return err // already a status chosen by our own code
	}
	msg := fmt.Sprintf("%s: %v", what, err)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, msg)
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, msg)
	case errors.Is(err, rds.ErrNoSpace):
		return status.Error(codes.ResourceExhausted, msg)
	case errors.Is(err, rds.ErrConnection), errors.Is(err, rds.ErrBusy):
		return status.Error(codes.Unavailable, msg)
	}
	return status.Error(codes.Internal, msg)
}
