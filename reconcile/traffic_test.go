package reconcile

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rds-reconcile/rds-reconcile/rds/sim"
)

var updateTraffic = flag.Bool("update-traffic", false, "rewrite testdata/traffic-*.golden")

// testClock is a settable clock shared by the simulator and Traffic.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// trafficNames are the series Traffic publishes.
var trafficNames = []string{"rds_reconcile_disk_read_bytes_total", "rds_reconcile_disk_write_bytes_total", "rds_reconcile_disk_read_ops_total",
	"rds_reconcile_disk_write_ops_total", "rds_reconcile_disk_flush_ops_total", "rds_reconcile_disk_traffic_errors_total",
	"rds_reconcile_disk_traffic_timestamp_seconds"}

// series renders what reg serves of the traffic series, one sorted line
// each: TYPE name{labels} value.
func series(t *testing.T, reg prometheus.Gatherer) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if !slices.Contains(trafficNames, mf.GetName()) {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := m.GetGauge().GetValue()
			if m.GetCounter() != nil {
				v = m.GetCounter().GetValue()
			}
			out = append(out, fmt.Sprintf("%s %s{%s} %s", mf.GetType(), mf.GetName(), strings.Join(labels, ","), strconv.FormatFloat(v, 'f', -1, 64)))
		}
	}
	slices.Sort(out)
	return out
}

// count is how many lines of series name has.
func count(lines []string, name string) int {
	return len(slices.DeleteFunc(slices.Clone(lines), func(l string) bool { return !strings.Contains(l, " "+name+"{") }))
}

// trafficGolden compares the traffic series of reg with testdata/traffic-NAME.golden.
func trafficGolden(t *testing.T, reg prometheus.Gatherer, name string) {
	t.Helper()
	p := filepath.Join("testdata", "traffic-"+name+".golden")
	got := strings.Join(series(t, reg), "\n") + "\n"
	if *updateTraffic {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("series:\n%s\nwant (%s):\n%s", got, p, want)
	}
}

// TestTrafficOverSSH: the real client against the simulator's memory
// model, with one pinned clock: the counters of every managed disk in one
// round trip, published as counters by volume; a second sample within
// Every sends nothing; a failing sample keeps the last good one.
func TestTrafficOverSSH(t *testing.T) {
	clk := &testClock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	srv, c := simClient(t, sim.Options{Now: clk.now})
	st := benchState(t, 3, "16Mi", "")
	ctx := context.Background()
	r := New(Options{RDS: c})
	if res, err := r.Reconcile(ctx, st, Full(false)); err != nil || res.Err() != nil {
		t.Fatalf("creating the disks: %v %v", err, res.Err())
	}
	s, err := r.StatusIn(ctx, st, Full(false))
	if err != nil {
		t.Fatal(err)
	}
	slots := TrafficSlots(s)
	inv, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"b-00000", "b-00001", "b-00002"}; !slices.Equal(slots, want) || !slices.Equal(slices.Sorted(slices.Values(ManagedSlots(inv))), want) {
		t.Fatalf("slots %v (status) %v (inventory), want %v", slots, ManagedSlots(inv), want)
	}
	reg := prometheus.NewPedanticRegistry()
	tr, err := NewTraffic(reg, c, TrafficOptions{Every: time.Minute, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if asked, err := tr.Sample(ctx, slots); !asked || err != nil {
		t.Fatalf("first sample: %v %v", asked, err)
	}
	clk.add(30 * time.Second)
	before := c.RoundTrips()
	if asked, err := tr.Sample(ctx, slots); asked || err != nil || c.RoundTrips() != before {
		t.Fatalf("a sample within Every: asked %v, %v, %d round trips", asked, err, c.RoundTrips()-before)
	}
	clk.add(31 * time.Second)
	if asked, err := tr.Sample(ctx, slots); !asked || err != nil {
		t.Fatalf("sample after Every: %v %v", asked, err)
	}
	if n := c.RoundTrips() - before; n != 1 {
		t.Errorf("%d round trips for 3 disks, want 1", n)
	}
	trafficGolden(t, reg, "61s")

	// The RDS fails the next sample: the counters stay, the error counts.
	clk.add(time.Minute)
	srv.SetFaults(sim.Faults{FailNext: []string{"failure: busy"}})
	if asked, err := tr.Sample(ctx, slots); !asked || err == nil {
		t.Fatalf("failing sample: %v %v", asked, err)
	}
	after := series(t, reg)
	if !slices.Contains(after, "COUNTER rds_reconcile_disk_traffic_errors_total{} 1") {
		t.Errorf("errors not counted: %q", after)
	}
	if count(after, "rds_reconcile_disk_write_ops_total") != 3 {
		t.Errorf("the last good sample is gone after a failure: %q", after)
	}
	// A volume gone from the sample leaves the series.
	clk.add(time.Minute)
	if _, err := tr.Sample(ctx, slots[:1]); err != nil {
		t.Fatal(err)
	}
	if n := count(series(t, reg), "rds_reconcile_disk_write_ops_total"); n != 1 {
		t.Errorf("%d write_ops series after sampling one disk, want 1", n)
	}
}

// TestTrafficPoll: Poll samples what list gives at once and every Every
// until ctx ends; a failing list counts as an error.
func TestTrafficPoll(t *testing.T) {
	_, c := simClient(t, sim.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	r := New(Options{RDS: c})
	if res, err := r.Reconcile(ctx, benchState(t, 2, "16Mi", ""), Full(false)); err != nil || res.Err() != nil {
		t.Fatalf("creating the disks: %v %v", err, res.Err())
	}
	reg := prometheus.NewPedanticRegistry()
	tr, err := NewTraffic(reg, c, TrafficOptions{Every: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	calls := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr.Poll(ctx, func(ctx context.Context) ([]string, error) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if calls == 2 {
				return nil, context.DeadlineExceeded
			}
			inv, err := c.List(ctx)
			return ManagedSlots(inv), err
		})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for s := series(t, reg); count(s, "rds_reconcile_disk_read_ops_total") != 2 || slices.Contains(s, "COUNTER rds_reconcile_disk_traffic_errors_total{} 0"); s = series(t, reg) {
		if time.Now().After(deadline) {
			t.Fatalf("Poll: %q", s)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Poll did not return after cancel")
	}
	var nilTraffic *Traffic
	if asked, err := nilTraffic.Sample(ctx, []string{"b-00000"}); asked || err != nil {
		t.Errorf("nil Traffic sampled: %v %v", asked, err)
	}
}
