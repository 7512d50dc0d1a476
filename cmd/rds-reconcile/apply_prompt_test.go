package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair without cgo: the answer is written
// on the master side, apply reads it on the terminal side.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("open pts: %v", err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

func TestApplyAsksOnATerminal(t *testing.T) {
	for _, c := range []struct {
		answer string
		code   int
		disks  int
	}{
		{"no\n", 1, 0},
		{"yes\n", 0, 2},
	} {
		e := newEnv(t, twoVolumes)
		master, tty := openPTY(t)
		if _, err := master.WriteString(c.answer); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		code := run([]string{"--fabric", "sim:" + e.hostDir, "--host", "node-a", "--log-level", "warn", "apply", "-f", e.state},
			tty, &out, &errb)
		if code != c.code || !strings.Contains(out.String(), "Enter yes") || len(e.srv.Disks()) != c.disks {
			t.Errorf("answer %q: exit %d, %d disks\n%s%s", strings.TrimSpace(c.answer), code, len(e.srv.Disks()), out.String(), errb.String())
		}
		if c.code == 1 && !strings.Contains(errb.String(), "cancelled") {
			t.Errorf("answer no: stderr %q", errb.String())
		}
	}
}
