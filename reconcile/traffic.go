package reconcile

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rds-reconcile/rds-reconcile/rds"
)

// TrafficSource reads per-disk I/O counters from the RDS in one round trip
// (*rds.SSHClient).
type TrafficSource interface {
	Traffic(ctx context.Context, slots []string) (map[string]rds.DiskTraffic, error)
}

// Traffic publishes the RDS's per-disk I/O counters as Prometheus
// counters, labelled by volume: rds_reconcile_disk_read_bytes_total and
// the like. The RDS keeps the counts; Traffic only samples them (Sample,
// Poll), at most once per interval whatever asks, and a scrape serves the
// last sample, never a round trip. The values are the RDS's own totals,
// so they are const metrics of type counter: they only grow until the RDS
// restarts or resets them, which Prometheus' rate() takes as a counter
// reset. A volume that leaves the sample leaves the series. A nil
// *Traffic records nothing.
type Traffic struct {
	src   TrafficSource
	every time.Duration
	now   func() time.Time
	log   *slog.Logger

	mu     sync.Mutex
	tried  time.Time // the last sample asked for (good or not)
	sample map[string]rds.DiskTraffic

	descs   []trafficDesc
	errors  prometheus.Counter
	sampled prometheus.Gauge
}

// trafficDesc is one counter series and the field of rds.DiskTraffic it
// reads.
type trafficDesc struct {
	desc  *prometheus.Desc
	value func(rds.DiskTraffic) int64
}

// TrafficOptions configure NewTraffic.
type TrafficOptions struct {
	// Every is the shortest time between two samples (the run interval,
	// or the CSI controller's timer).
	Every  time.Duration
	Logger *slog.Logger
	Now    func() time.Time // time.Now when nil
}

// NewTraffic creates the per-disk traffic metrics of src and registers them
// with reg.
func NewTraffic(reg prometheus.Registerer, src TrafficSource, opts TrafficOptions) (*Traffic, error) {
	const ns = "rds_reconcile"
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	counter := func(name, help string, v func(rds.DiskTraffic) int64) trafficDesc {
		return trafficDesc{desc: prometheus.NewDesc(prometheus.BuildFQName(ns, "disk", name), help, []string{"volume"}, nil), value: v}
	}
	t := &Traffic{src: src, every: opts.Every, now: opts.Now, log: opts.Logger,
		descs: []trafficDesc{
			counter("read_bytes_total", "Bytes read from the volume's RDS disk, as the RDS counts them (/disk monitor-traffic read-bytes).",
				func(d rds.DiskTraffic) int64 { return d.ReadBytes }),
			counter("write_bytes_total", "Bytes written to the volume's RDS disk, as the RDS counts them (write-bytes).",
				func(d rds.DiskTraffic) int64 { return d.WriteBytes }),
			counter("read_ops_total", "Read operations on the volume's RDS disk (read-ops).",
				func(d rds.DiskTraffic) int64 { return d.ReadOps }),
			counter("write_ops_total", "Write operations on the volume's RDS disk (write-ops).",
				func(d rds.DiskTraffic) int64 { return d.WriteOps }),
			counter("flush_ops_total", "Flush operations on the volume's RDS disk (flush-ops).",
				func(d rds.DiskTraffic) int64 { return d.FlushOps }),
		},
		errors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "disk_traffic_errors_total",
			Help: "Samples of the RDS disk counters that failed (the last good sample stays)."}),
		sampled: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "disk_traffic_timestamp_seconds",
			Help: "Unix time of the last good sample of the RDS disk counters."}),
	}
	if err := register(reg, t, t.errors, t.sampled); err != nil {
		return nil, err
	}
	return t, nil
}

// Describe implements prometheus.Collector (the per-volume counters).
func (t *Traffic) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range t.descs {
		ch <- d.desc
	}
}

// Collect implements prometheus.Collector: the last sample, no I/O.
func (t *Traffic) Collect(ch chan<- prometheus.Metric) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for slot, sample := range t.sample {
		for _, d := range t.descs {
			ch <- prometheus.MustNewConstMetric(d.desc, prometheus.CounterValue, float64(d.value(sample)), slot)
		}
	}
}

// Sample reads the counters of slots unless a sample was asked for less
// than Every ago; it reports whether it asked. An error keeps the last
// good sample (counted in disk_traffic_errors_total); the next attempt
// waits Every all the same, so a failing RDS is not asked every pass.
func (t *Traffic) Sample(ctx context.Context, slots []string) (bool, error) {
	if t == nil {
		return false, nil
	}
	now := t.now()
	t.mu.Lock()
	if !t.tried.IsZero() && now.Sub(t.tried) < t.every {
		t.mu.Unlock()
		return false, nil
	}
	t.tried = now
	t.mu.Unlock()
	got, err := t.src.Traffic(ctx, slots)
	if err != nil {
		t.errors.Inc()
		t.log.WarnContext(ctx, "reading the RDS disk counters failed; the last sample stays", "disks", len(slots), "err", err)
		return true, err
	}
	t.mu.Lock()
	t.sample = got
	t.mu.Unlock()
	t.sampled.Set(float64(t.now().UnixNano()) / 1e9)
	return true, nil
}

// Poll samples the slots lists every Every until ctx ends (the CSI
// controller, which has no pass to follow). A failing list counts as a
// failed sample.
func (t *Traffic) Poll(ctx context.Context, list func(ctx context.Context) ([]string, error)) {
	if t == nil || t.every <= 0 {
		return
	}
	tick := time.NewTicker(t.every)
	defer tick.Stop()
	for {
		slots, err := list(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			t.errors.Inc()
			t.log.WarnContext(ctx, "listing the RDS disks for their counters failed", "err", err)
		} else {
			_, _ = t.Sample(ctx, slots)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// TrafficSlots are the volumes of a pass's status whose disk the RDS has:
// the disks to sample.
func TrafficSlots(s *Status) []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, v := range s.Volumes {
		if v.RDS != nil && v.RDS.Present {
			out = append(out, v.Name)
		}
	}
	return out
}

// ManagedSlots are the slots of the managed disks of an inventory.
func ManagedSlots(inv rds.Inventory) []string {
	out := make([]string, 0, len(inv.Disks))
	for _, d := range inv.Disks {
		out = append(out, d.Slot)
	}
	return out
}
