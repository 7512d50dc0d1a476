package sim

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMonitorTrafficShape renders the values of a real RDS's
// `/disk monitor-traffic storage-pool once` (testdata/monitor-traffic-rds-csi.txt,
// quoted from rds-csi's pkg/rds/commands_test.go, TestParseDiskMetrics
// "full output with active writes") and expects the capture byte for byte.
func TestMonitorTrafficShape(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("testdata", "monitor-traffic-rds-csi.txt"))
	if err != nil {
		t.Fatal(err)
	}
	tr := trafficRec{ReadOps: 243401, ReadBytes: 33131503616, WriteOps: 17667231,
		WriteBytes: 515659673600, writeOpsRate: 76, writeRate: 1600000}
	var b strings.Builder
	renderMonitor(&b, [][][2]string{monitorFields("storage-pool", tr)})
	if b.String() != string(want) {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestBitRate(t *testing.T) {
	for _, tc := range []struct {
		bps  int64
		want string
	}{
		{0, "0bps"}, {-5, "0bps"}, {999, "999bps"}, {1000, "1.0kbps"}, {500000, "500.0kbps"},
		{12800000, "12.8Mbps"}, {100000000, "100.0Mbps"}, {1500000000, "1.5Gbps"},
	} {
		if got := bitRate(tc.bps); got != tc.want {
			t.Errorf("bitRate(%d) = %q, want %q", tc.bps, got, tc.want)
		}
	}
}

// monitorValue reads one row of a monitor-traffic answer: the column of
// item col (0-based), digits only.
func monitorValue(t *testing.T, out, row string, col int) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^ *` + regexp.QuoteMeta(row) + `: (.*)$`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no row %s in\n%s", row, out)
	}
	// Columns are right-aligned and two spaces apart; numbers hold single
	// spaces, so split on two or more.
	cols := regexp.MustCompile(` {2,}`).Split(strings.TrimSpace(m[1]), -1)
	if col >= len(cols) {
		t.Fatalf("row %s has %d columns, want column %d: %q", row, len(cols), col, m[1])
	}
	return cols[col]
}

func monitorInt(t *testing.T, out, row string, col int) int64 {
	t.Helper()
	v := monitorValue(t, out, row, col)
	n, err := strconv.ParseInt(strings.ReplaceAll(v, " ", ""), 10, 64)
	if err != nil {
		t.Fatalf("%s column %d: %q is not a number", row, col, v)
	}
	return n
}

// clock is a settable clock for the simulator.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestMonitorTrafficErrorsSSH: the command's errors over SSH, as text with
// exit status 0.
func TestMonitorTrafficErrorsSSH(t *testing.T) {
	s := startServer(t, Options{})
	c := dial(t, s, "admin")
	mustRun(t, c, addPVC)
	for _, tc := range []struct{ name, cmd, want string }{
		{"missing slot", `/disk monitor-traffic nope once`, "no such item\n"},
		{"one of several missing", `/disk monitor-traffic pvc-a,nope once`, "no such item\n"},
		{"missing row", `/disk monitor-traffic 9 once`, "no such item\n"},
		{"no items", `/disk monitor-traffic once`, "missing value(s) of argument(s) numbers\n"},
		{"two item arguments", `/disk monitor-traffic pvc-a pvc-a once`, "expected end of command (line 1 column 29)\n"},
		{"unknown argument", `/disk monitor-traffic pvc-a once interval=1`, "expected end of command (line 1 column 34)\n"},
		{"no once", `/disk monitor-traffic pvc-a`, "failure: the simulator answers monitor-traffic with once only\n"},
		{"empty find prints nothing", `/disk monitor-traffic [find slot="nope"] once`, ""},
		{"file menu has none", `/file monitor-traffic x once`, "bad command name monitor-traffic (line 1 column 7)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustRun(t, c, tc.cmd); got != tc.want {
				t.Errorf("%s\n got %q\nwant %q", tc.cmd, got, tc.want)
			}
		})
	}
}

// TestMonitorTrafficMemoryModel: over SSH, several disks in one command and
// one session; counters grow only while a disk is exported, never go back,
// and the pool's column is the sum.
func TestMonitorTrafficMemoryModel(t *testing.T) {
	clk := &clock{t: fixedNow()}
	s := startServer(t, Options{Now: clk.now})
	c := dial(t, s, "admin")
	mustRun(t, c, addPVC) // exported
	mustRun(t, c, `/disk add type=file file-path=storage-pool/volumes/pvc-b.img file-size=1G slot=pvc-b`)
	const cmd = `/disk monitor-traffic pvc-a,pvc-b,storage-pool once`

	before := s.Sessions()
	first := mustRun(t, c, cmd)
	if got := s.Sessions() - before; got != 1 {
		t.Errorf("%d sessions for one batched monitor, want 1", got)
	}
	checkGolden(t, "monitor-traffic-start", first)

	type sample struct{ readOps, writeOps, writeBytes, writeOpsRate int64 }
	take := func(out string, col int) sample {
		return sample{monitorInt(t, out, "read-ops", col), monitorInt(t, out, "write-ops", col),
			monitorInt(t, out, "write-bytes", col), monitorInt(t, out, "write-ops-per-second", col)}
	}
	clk.add(10 * time.Second)
	second := mustRun(t, c, cmd)
	a1, b1, p1 := take(second, 0), take(second, 1), take(second, 2)
	rate := modelWriteOps("pvc-a")
	if a1.writeOps != 10*rate || a1.writeOpsRate != rate || a1.readOps != modelReadPerWrit*a1.writeOps {
		t.Errorf("exported disk after 10 s: %+v, want %d write ops at %d/s", a1, 10*rate, rate)
	}
	if b1 != (sample{}) {
		t.Errorf("unexported disk moved: %+v", b1)
	}
	if p1.writeOps != a1.writeOps+b1.writeOps || p1.writeBytes != a1.writeBytes+b1.writeBytes {
		t.Errorf("pool column %+v is not the sum of %+v and %+v", p1, a1, b1)
	}

	// Export off: the counters stay, the rate drops to zero.
	mustRun(t, c, `/disk set pvc-a nvme-tcp-export=no`)
	clk.add(5 * time.Second)
	third := mustRun(t, c, cmd)
	a2 := take(third, 0)
	if a2.writeOps != a1.writeOps || a2.writeOpsRate != 0 {
		t.Errorf("unexported disk after 5 s: %+v, want %d ops at 0/s", a2, a1.writeOps)
	}
	// A clock that goes back never makes a counter go back.
	mustRun(t, c, `/disk set pvc-a nvme-tcp-export=yes`)
	clk.add(-time.Hour)
	if a3 := take(mustRun(t, c, cmd), 0); a3.writeOps < a2.writeOps {
		t.Errorf("counter went back: %d after %d", a3.writeOps, a2.writeOps)
	}
}

// TestMonitorTrafficFilesBackend: with real files, writes to the image
// (what the kernel target does for a host) raise the write counters; the
// counters survive a restart (state.json).
func TestMonitorTrafficFilesBackend(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: fixedNow()}
	state := filepath.Join(dir, "state.json")
	s := startServer(t, Options{Backend: NewFileBackend(filepath.Join(dir, "files")), Now: clk.now, StatePath: state})
	c := dial(t, s, "admin")
	mustRun(t, c, addPVC)
	const cmd = `/disk monitor-traffic pvc-a once`
	out := mustRun(t, c, cmd)
	if w := monitorInt(t, out, "write-bytes", 0); w != 0 {
		t.Fatalf("write-bytes %d before any write", w)
	}
	img := filepath.Join(dir, "files", "storage-pool", "volumes", "pvc-a.img")
	writeAt(t, img, 1<<20, 256<<10) // 256 KiB of data at 1 MiB
	clk.add(2 * time.Second)
	out = mustRun(t, c, cmd)
	w1 := monitorInt(t, out, "write-bytes", 0)
	if w1 < 256<<10 {
		t.Errorf("write-bytes %d after writing 256 KiB", w1)
	}
	if ops := monitorInt(t, out, "write-ops", 0); ops < 2 {
		t.Errorf("write-ops %d after 256 KiB", ops)
	}
	if r := monitorValue(t, out, "write-rate", 0); r == "0bps" {
		t.Errorf("write-rate %s after a write in the last interval", r)
	}
	// An overwrite in place allocates nothing but moves the mtime.
	future := time.Now().Add(time.Hour) // after the real mtime of the first write
	writeAt(t, img, 1<<20, 4<<10)
	if err := os.Chtimes(img, future, future); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Second)
	w2 := monitorInt(t, mustRun(t, c, cmd), "write-bytes", 0)
	if w2 <= w1 {
		t.Errorf("write-bytes %d after an overwrite, was %d", w2, w1)
	}
	s.Close()

	s2 := startServer(t, Options{Backend: NewFileBackend(filepath.Join(dir, "files")), Now: clk.now, StatePath: state})
	if w3 := monitorInt(t, mustRun(t, dial(t, s2, "admin"), cmd), "write-bytes", 0); w3 < w2 {
		t.Errorf("write-bytes %d after a restart, was %d", w3, w2)
	}
}

func writeAt(t *testing.T, path string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := []byte(strings.Repeat("x", n))
	if _, err := f.WriteAt(buf, off); err != nil {
		t.Fatal(err)
	}
}

// TestSessionLatency: each SSH session pays SessionLatency once, however
// many commands its line holds, and concurrent sessions pay it side by side.
func TestSessionLatency(t *testing.T) {
	const lat = 100 * time.Millisecond
	s := startServer(t, Options{Faults: Faults{SessionLatency: lat}})
	c := dial(t, s, "admin")
	start := time.Now()
	mustRun(t, c, `/disk print count-only; /disk print count-only; /disk print count-only`)
	if d := time.Since(start); d < lat || d >= 3*lat {
		t.Errorf("one session of three commands took %v, want about %v", d, lat)
	}
	const n = 4
	before := s.Sessions()
	start = time.Now()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := run(c, `/disk print count-only`); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if d := time.Since(start); d < lat || d >= n*lat {
		t.Errorf("%d concurrent sessions took %v, want about %v (not %v)", n, d, lat, n*lat)
	}
	if got := s.Sessions() - before; got != n {
		t.Errorf("Sessions() counted %d, want %d", got, n)
	}
}
