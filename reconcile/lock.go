package reconcile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// LockFileName is the lock file created next to the first state file.
const LockFileName = ".rds-reconcile.lock"

// LockPath is the lock file for a state: in stateDir when set, else next
// to the first state file.
func LockPath(stateDir string, files []string) string {
	if stateDir != "" {
		return filepath.Join(stateDir, LockFileName)
	}
	dir := "."
	if len(files) > 0 {
		dir = filepath.Dir(files[0])
	}
	return filepath.Join(dir, LockFileName)
}

// LockHolder says who holds a lock.
type LockHolder struct {
	PID     int
	Host    string
	Started time.Time
	Command string
}

func (h LockHolder) String() string {
	s := fmt.Sprintf("pid %d on %s since %s", h.PID, h.Host, h.Started.Format(time.RFC3339))
	if h.Command != "" {
		s += " (" + h.Command + ")"
	}
	return s
}

// ErrLocked: another process holds the lock.
var ErrLocked = errors.New("state is locked by another rds-reconcile")

// LockedError says who holds the lock.
type LockedError struct {
	Path   string
	Holder LockHolder
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%s: %s held by %s", e.Path, ErrLocked, e.Holder)
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// Lock is a held flock on a state's lock file.
type Lock struct {
	f *os.File
}

// AcquireLock takes an exclusive, non-blocking flock on path and writes
// the holder (PID, host, start time, command) into it. A held lock returns
// a *LockedError naming the holder. The kernel drops the lock when the
// process dies, so a stale file never blocks.
func AcquireLock(path, command string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			b, _ := os.ReadFile(path)
			return nil, &LockedError{Path: path, Holder: parseHolder(string(b))}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	host, _ := os.Hostname()
	content := fmt.Sprintf("pid=%d\nhost=%s\nstarted=%s\ncommand=%s\n", os.Getpid(), host,
		time.Now().UTC().Format(time.RFC3339), strings.ReplaceAll(command, "\n", " "))
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(content), 0)
	}
	return &Lock{f: f}, nil
}

// Release drops the lock. The file stays: removing it would race with a
// process that opened it and is waiting to lock it.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := l.f.Close() // closing drops the flock
	l.f = nil
	return err
}

func parseHolder(s string) LockHolder {
	var h LockHolder
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k {
		case "pid":
			h.PID, _ = strconv.Atoi(v)
		case "host":
			h.Host = v
		case "started":
			h.Started, _ = time.Parse(time.RFC3339, v)
		case "command":
			h.Command = v
		}
	}
	return h
}
