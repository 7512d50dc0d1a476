package rds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rds-reconcile/rds-reconcile/internal/retryable"
)

// TestTransportRetryable: the classifier for errors that did not come from
// RouterOS text, which decides whether rds marks them.
func TestTransportRetryable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"eof", io.EOF, true},
		{"unexpected eof", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"reset", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, true},
		{"refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{"timeout", os.ErrDeadlineExceeded, true},
		{"deadline", context.DeadlineExceeded, true},
		{"canceled", context.Canceled, false},
		{"session refused", &ssh.OpenChannelError{Reason: ssh.ResourceShortage, Message: "too many sessions"}, true},
		{"exit missing", &ssh.ExitMissingError{}, true},
		{"busy", ErrBusy, true},
		{"connection", ErrConnection, true},
		{"command timeout", ErrTimeout, true},
		{"no space", ErrNoSpace, false},
		{"invalid", ErrInvalid, false},
		{"not found", ErrNotFound, false},
		{"host key", ErrHostKey, false},
		{"auth", ErrAuth, false},
		{"unknown", errors.New("something"), false},
	} {
		if got := transportRetryable(tc.err); got != tc.want {
			t.Errorf("%s: transportRetryable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestErrorRetryable: an *Error is retryable exactly when its Err carries
// the shared mark, whatever it wraps.
func TestErrorRetryable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"typed retryable", &Error{Op: "x", Err: retryable.Mark(errors.New("y"))}, true},
		{"typed terminal over eof", &Error{Op: "x", Err: io.EOF}, false},
		{"wrapped typed", fmt.Errorf("apply: %w", &Error{Op: "x", Err: retryable.Mark(ErrBusy)}), true},
		{"output busy", outputError("create", "pvc-a", "/disk add", "busy"), true},
		{"output no space", outputError("create", "pvc-a", "/disk add", "failure: not enough space"), false},
	} {
		if got := retryable.Is(tc.err); got != tc.want {
			t.Errorf("%s: retryable.Is(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
	// The mark does not hide the sentinel.
	if err := outputError("create", "pvc-a", "/disk add", "busy"); !errors.Is(err, ErrBusy) {
		t.Errorf("busy output lost ErrBusy: %v", err)
	}
}

func TestErrorMessage(t *testing.T) {
	e := outputError("create", "pvc-a", `/disk add slot="pvc-a"`, "failure: not enough space\n")
	want := `rds create pvc-a: not enough space on the RDS: RouterOS said "failure: not enough space" (command: /disk add slot="pvc-a")`
	if e.Error() != want {
		t.Errorf("got  %s\nwant %s", e.Error(), want)
	}
	// A command that never reached RouterOS is left out: it is noise.
	for _, cause := range []error{ErrConnection, ErrAuth, ErrHostKey} {
		e := &Error{Op: "probe", Command: ":put [:serialize ...]", Err: fmt.Errorf("%w: dial tcp 127.0.0.1:2399: connect: connection refused", cause)}
		if strings.Contains(e.Error(), "command:") {
			t.Errorf("%v: the unsent command is printed: %s", cause, e.Error())
		}
	}
	long := outputError("x", "", "", strings.Repeat("a", 2000))
	if len(long.Output) > 520 {
		t.Errorf("output not capped: %d bytes", len(long.Output))
	}
}

func TestIsAmbiguous(t *testing.T) {
	amb := &Error{Op: "create", Ambiguous: true, Err: retryable.Mark(ErrTimeout)}
	if !IsAmbiguous(amb) || !IsAmbiguous(fmt.Errorf("apply: %w", amb)) {
		t.Error("ambiguous write not reported")
	}
	if IsAmbiguous(&Error{Op: "list", Err: retryable.Mark(ErrTimeout)}) || IsAmbiguous(ErrTimeout) || IsAmbiguous(nil) {
		t.Error("unambiguous error reported ambiguous")
	}
	if !strings.Contains(amb.Error(), "may or may not have been applied") {
		t.Errorf("message does not say so: %s", amb)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	good := Config{Address: "127.0.0.1:22", User: "admin", Password: "pw", InsecureIgnoreHostKey: true, BasePath: "storage-pool/volumes", SlotPrefix: "pvc-"}
	c, err := New(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.User != "admin"+DefaultLoginOptions || c.cfg.MaxSessions != 4 || c.cfg.BasePath != "storage-pool/volumes" ||
		c.cfg.Timeout != 10*time.Second || c.cfg.CommandTimeout != 30*time.Second || c.cfg.KeepAlive != 30*time.Second || c.cfg.MaxIdle != time.Minute {
		t.Errorf("defaults: %+v", c.cfg)
	}
	explicit := good
	explicit.User = "admin+ct80w"
	if c, _ := New(explicit); c.cfg.User != "admin+ct80w" {
		t.Errorf("login options overridden: %q", c.cfg.User)
	}
	for name, mut := range map[string]func(*Config){
		"no address":     func(c *Config) { c.Address = "" },
		"no user":        func(c *Config) { c.User = "" },
		"no auth":        func(c *Config) { c.Password = "" },
		"no host policy": func(c *Config) { c.InsecureIgnoreHostKey = false },
		"missing known_hosts": func(c *Config) {
			c.InsecureIgnoreHostKey = false
			c.KnownHostsFile = "/nonexistent/known_hosts"
		},
		"bad prefix":    func(c *Config) { c.SlotPrefix = `p"` },
		"upper prefix":  func(c *Config) { c.SlotPrefix = "PVC-" },
		"no base":       func(c *Config) { c.BasePath = "/" },
		"dotdot base":   func(c *Config) { c.BasePath = "storage-pool/../etc" },
		"quote in base": func(c *Config) { c.BasePath = `storage-pool/"x` },
		"garbage key":   func(c *Config) { c.PrivateKey = []byte("not a key") },
		"space in base": func(c *Config) { c.BasePath = "storage pool" },
		"double slash":  func(c *Config) { c.BasePath = "storage-pool//v" },
	} {
		cfg := good
		mut(&cfg)
		if _, err := New(cfg); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		} else if strings.Contains(err.Error(), "pw") && name != "no auth" {
			t.Errorf("%s: password in error %q", name, err)
		}
	}
}
