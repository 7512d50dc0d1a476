package sim

import (
	"testing"
	"time"
)

// fixedNow pins the clock so file times and uptime are stable in goldens.
func fixedNow() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

func newTestServer(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	if opts.PoolSize == 0 {
		opts.PoolSize = 100 << 30
	}
	if opts.Version == "" {
		// The newest profile; JSON false still takes :serialize away.
		opts.Version = NewestVersion
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// mustExec runs a script that must print nothing (a mutation that succeeds).
func mustExec(t testing.TB, s *Server, script string) {
	t.Helper()
	if out := s.Exec(script); out != "" {
		t.Fatalf("%s\n=> %q", script, out)
	}
}

const refAdd = `/disk add type=file file-path=storage-pool/test.img file-size=50G slot=pvc-test-123 ` +
	`nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn="nqn.2000-02.com.mikrotik:pvc-test-123"`
