package csi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/reconcile"
)

func TestStatusOf(t *testing.T) {
	noSpace := &reconcile.ApplyError{Failed: []reconcile.ActionResult{{Err: &rds.Error{Op: "create", Err: rds.ErrNoSpace}}}}
	for _, tt := range []struct {
		err  error
		want codes.Code
	}{
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{fmt.Errorf("waiting: %w", context.Canceled), codes.Canceled},
		{noSpace, codes.ResourceExhausted},
		{&rds.Error{Op: "list", Err: rds.ErrConnection}, codes.Unavailable},
		{status.Error(codes.AlreadyExists, "x"), codes.AlreadyExists},
		{errors.New("boom"), codes.Internal},
	} {
		if got := status.Code(statusOf("doing", tt.err)); got != tt.want {
			t.Errorf("statusOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	if statusOf("x", nil) != nil {
		t.Error("nil error mapped to a status")
	}
}

func TestListen(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sub", "csi.sock")
	if err := os.MkdirAll(filepath.Dir(sock), 0o750); err != nil {
		t.Fatal(err)
	}
	// A socket file left by a crashed plugin must not block the restart.
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []string{"unix://" + sock, "tcp://127.0.0.1:0"} {
		l, err := Listen(ep)
		if err != nil {
			t.Fatalf("Listen(%q): %v", ep, err)
		}
		if _, ok := l.Addr().(*net.UnixAddr); ok != (ep[:4] == "unix") {
			t.Errorf("Listen(%q) listens on %v", ep, l.Addr())
		}
		l.Close()
	}
	for _, bad := range []string{"/csi/csi.sock", "http://x", "unix://"} {
		if _, err := Listen(bad); err == nil {
			t.Errorf("Listen(%q) accepted", bad)
		}
	}
}
