package rds_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/rds/sim"
)

// threeColumns is the layout the simulator prints for several slots (the
// docs/sim.md sample): right-aligned columns two spaces apart, values with
// thousands separators narrower and wider than their slot names.
const threeColumns = `                  slot:      pvc-a   pvc-b  storage-pool
              read-ops:      1 880       0         1 880
   read-ops-per-second:        188       0           188
            read-bytes: 30 801 920       0    30 801 920
             read-rate:   24.6Mbps    0bps      24.6Mbps
             write-ops:        940       7           947
           write-bytes: 15 400 960  28 672    15 429 632
             flush-ops:         10       1            11
`

func TestParseTraffic(t *testing.T) {
	capture, err := os.ReadFile(filepath.Join("sim", "testdata", "monitor-traffic-rds-csi.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		out  string
		want []rds.DiskTraffic
		err  string
	}{
		{"the rds-csi RDS capture", string(capture), []rds.DiskTraffic{{Slot: "storage-pool", ReadOps: 243401, ReadBytes: 33131503616,
			WriteOps: 17667231, WriteBytes: 515659673600}}, ""},
		{"three columns", threeColumns, []rds.DiskTraffic{
			{Slot: "pvc-a", ReadOps: 1880, ReadBytes: 30801920, WriteOps: 940, WriteBytes: 15400960, FlushOps: 10},
			{Slot: "pvc-b", WriteOps: 7, WriteBytes: 28672, FlushOps: 1},
			{Slot: "storage-pool", ReadOps: 1880, ReadBytes: 30801920, WriteOps: 947, WriteBytes: 15429632, FlushOps: 11}}, ""},
		{"CRLF", strings.ReplaceAll(threeColumns, "\n", "\r\n"), []rds.DiskTraffic{
			{Slot: "pvc-a", ReadOps: 1880, ReadBytes: 30801920, WriteOps: 940, WriteBytes: 15400960, FlushOps: 10},
			{Slot: "pvc-b", WriteOps: 7, WriteBytes: 28672, FlushOps: 1},
			{Slot: "storage-pool", ReadOps: 1880, ReadBytes: 30801920, WriteOps: 947, WriteBytes: 15429632, FlushOps: 11}}, ""},
		{"nothing (an empty find)", "", nil, ""},
		{"no slot row", "  read-ops: 1\n", nil, "does not start with a slot row"},
		{"row out of line", "  slot: pvc-a\nread-ops: 1\n", nil, "not aligned"},
		{"a counter with a unit", "      slot: pvc-a\n  read-ops:  1.2k\n", nil, `read-ops of pvc-a: "  1.2k" is not a count`},
		{"a column missing", "      slot: pvc-a  pvc-b\n  read-ops:     1\n", nil, "no value for pvc-b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rds.ParseTraffic(tc.out)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, rds.ErrRejected) {
					t.Fatalf("got %v, want an ErrRejected with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("column %d: %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// clock is a settable time for the simulator.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)} }

// TestSimTraffic: Traffic over SSH against the simulator's memory model,
// every disk in one round trip; counters grow with the (pinned) clock;
// names are validated before anything is sent.
func TestSimTraffic(t *testing.T) {
	clk := newClock()
	srv := startSim(t, sim.Options{Now: clk.now})
	c := newClient(t, clientConfig(t, srv))
	ctx := ctxT(t)
	for _, s := range []string{"pvc-a", "pvc-b"} {
		if err := c.Create(ctx, createReq(s, 1<<30)); err != nil {
			t.Fatal(err)
		}
	}
	first, err := c.Traffic(ctx, []string{"pvc-a", "pvc-b", "pvc-a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 {
		t.Fatalf("first sample %+v, want pvc-a and pvc-b once each", first)
	}
	clk.add(10 * time.Second)
	before := c.RoundTrips()
	got, err := c.Traffic(ctx, []string{"pvc-b", "pvc-a"})
	if err != nil {
		t.Fatal(err)
	}
	if n := c.RoundTrips() - before; n != 1 {
		t.Errorf("%d round trips for two disks, want 1", n)
	}
	for _, s := range []string{"pvc-a", "pvc-b"} {
		tr, f := got[s], first[s]
		w := tr.WriteOps - f.WriteOps
		// The memory model: 20..99 writes a second, two reads per write,
		// 16 KiB each, a flush a second, while exported.
		if w < 200 || w > 990 || tr.WriteBytes-f.WriteBytes != w*16<<10 || tr.ReadOps-f.ReadOps != 2*w ||
			tr.ReadBytes-f.ReadBytes != 2*w*16<<10 || tr.FlushOps-f.FlushOps != 10 || tr.Slot != s {
			t.Errorf("%s over 10 s: %+v from %+v", s, tr, f)
		}
	}
	for _, tc := range []struct {
		name  string
		slots []string
		is    error
	}{
		{"outside the slot prefix", []string{"pvc-a", "other"}, rds.ErrInvalid},
		{"not a DNS label", []string{"pvc-a,pvc-b"}, rds.ErrInvalid},
		{"injection", []string{"pvc-a once; /disk remove pvc-a"}, rds.ErrInvalid},
		{"a disk the RDS does not have", []string{"pvc-a", "pvc-gone"}, rds.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := c.RoundTrips()
			_, err := c.Traffic(ctx, tc.slots)
			if !errors.Is(err, tc.is) {
				t.Fatalf("got %v, want %v", err, tc.is)
			}
			if sent := c.RoundTrips() - before; errors.Is(tc.is, rds.ErrInvalid) && sent != 0 {
				t.Errorf("%d round trips for an invalid name", sent)
			}
		})
	}
	before = c.RoundTrips()
	if m, err := c.Traffic(ctx, nil); err != nil || len(m) != 0 || c.RoundTrips() != before {
		t.Errorf("no slots: %v %v, %d round trips", m, err, c.RoundTrips()-before)
	}
	if d, err := c.Get(ctx, "pvc-a"); err != nil || d == nil {
		t.Fatalf("pvc-a after the injection attempt: %v %v", d, err)
	}
}
