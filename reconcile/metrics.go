package reconcile

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the reconciler's Prometheus metrics. A nil *Metrics records
// nothing, so callers need not check.
type Metrics struct {
	reconciles  *prometheus.CounterVec
	errors      prometheus.Counter
	duration    prometheus.Histogram
	drift       prometheus.Gauge
	planned     prometheus.Gauge
	blocked     prometheus.Gauge
	controllers *prometheus.GaugeVec
	actions     *prometheus.CounterVec
	info        *prometheus.GaugeVec
	lastSuccess prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	const ns = "rds_reconcile"
	m := &Metrics{
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "reconciles_total",
			Help: "Reconcile passes by result (ok, error)."}, []string{"result"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "reconcile_errors_total",
			Help: "Reconcile passes that failed or did not converge."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "reconcile_duration_seconds",
			Help: "Duration of reconcile passes (observe, apply, verify).", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
		drift: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "drift",
			Help: "Differences between desired and live state found by the last plan (changed outside rds-reconcile)."}),
		planned: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "planned_actions",
			Help: "Actions in the last plan, blocked ones included."}),
		blocked: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "blocked_actions",
			Help: "Actions in the last plan a safety rule stops."}),
		controllers: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "controllers",
			Help: "NVMe-oF controllers on this host by kernel state, from the last observation."}, []string{"state"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "actions_total",
			Help: "Actions applied by kind and result (ok, error, skipped)."}, []string{"kind", "result"}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "state_info",
			Help: "Always 1; the revision label names the desired state's git commit."}, []string{"revision"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "last_success_timestamp_seconds",
			Help: "Unix time of the last reconcile pass that converged."}),
	}
	if err := register(reg, m.reconciles, m.errors, m.duration, m.drift, m.planned, m.blocked,
		m.controllers, m.actions, m.info, m.lastSuccess); err != nil {
		return nil, err
	}
	return m, nil
}

// SetRevision publishes the desired state's revision.
func (m *Metrics) SetRevision(rev string) {
	if m == nil {
		return
	}
	m.info.Reset()
	if rev == "" {
		rev = "unknown"
	}
	m.info.WithLabelValues(rev).Set(1)
}

func (m *Metrics) observePlan(p *Plan, obs *Observed) {
	if m == nil {
		return
	}
	m.observe(len(p.Drift), len(p.Actions), p.Summary().Blocked, obs)
}

func (m *Metrics) observeStatus(s *Status, obs *Observed) {
	if m == nil {
		return
	}
	n := s.Plan.Create + s.Plan.Change + s.Plan.Disconnect + s.Plan.Delete + s.Plan.Blocked
	m.observe(len(s.Drift), n, s.Plan.Blocked, obs)
}

func (m *Metrics) observe(drift, planned, blocked int, obs *Observed) {
	m.drift.Set(float64(drift))
	m.planned.Set(float64(planned))
	m.blocked.Set(float64(blocked))
	if obs.Fabric {
		m.controllers.Reset()
		for _, c := range obs.Controllers {
			m.controllers.WithLabelValues(string(c.State)).Inc()
		}
	}
}

func (m *Metrics) action(k Kind, result string) {
	if m == nil {
		return
	}
	m.actions.WithLabelValues(string(k), result).Inc()
}

func (m *Metrics) reconciled(d time.Duration, err error) {
	if m == nil {
		return
	}
	m.duration.Observe(d.Seconds())
	if err != nil {
		m.reconciles.WithLabelValues("error").Inc()
		m.errors.Inc()
		return
	}
	m.reconciles.WithLabelValues("ok").Inc()
	m.lastSuccess.SetToCurrentTime()
}

// SyncMetrics describe the git remote run --git follows. A nil
// *SyncMetrics records nothing.
type SyncMetrics struct {
	info       *prometheus.GaugeVec
	commitTime prometheus.Gauge
	lastSync   prometheus.Gauge
	behind     prometheus.Gauge
	errors     *prometheus.CounterVec
}

// GitSync is one sync of the git remote, as SyncMetrics publish it.
type GitSync struct {
	Ref        string
	Revision   string    // the checked-out commit
	CommitTime time.Time // its committer time
	LastSync   time.Time // the last sync that reached the remote head
	Behind     int       // remote commits not checked out
	// Failure is the kind of a failed sync (fetch, rewritten, unverified,
	// checkout); "" for a good one.
	Failure string
}

// NewSyncMetrics creates the git sync metrics and registers them with reg.
func NewSyncMetrics(reg prometheus.Registerer) (*SyncMetrics, error) {
	const ns = "rds_reconcile"
	m := &SyncMetrics{
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "git_sync_info",
			Help: "Always 1; revision is the commit of the followed ref that is checked out and in force."}, []string{"ref", "revision"}),
		commitTime: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "git_revision_timestamp_seconds",
			Help: "Committer time of the checked-out commit."}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "git_last_sync_timestamp_seconds",
			Help: "Unix time of the last sync that left the checkout at the remote head."}),
		behind: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "git_behind_commits",
			Help: "Commits of the remote head that are not checked out (refused or not fetched yet); -1 unknown."}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "git_sync_errors_total",
			Help: "Failed syncs by reason (fetch, rewritten, unverified, checkout)."}, []string{"reason"}),
	}
	if err := register(reg, m.info, m.commitTime, m.lastSync, m.behind, m.errors); err != nil {
		return nil, err
	}
	return m, nil
}

// Synced publishes s.
func (m *SyncMetrics) Synced(s GitSync) {
	if m == nil {
		return
	}
	m.info.Reset()
	if s.Revision != "" {
		m.info.WithLabelValues(s.Ref, s.Revision).Set(1)
	}
	if !s.CommitTime.IsZero() {
		m.commitTime.Set(float64(s.CommitTime.Unix()))
	}
	if !s.LastSync.IsZero() {
		m.lastSync.Set(float64(s.LastSync.UnixNano()) / 1e9)
	}
	m.behind.Set(float64(s.Behind))
	if s.Failure != "" {
		m.errors.WithLabelValues(s.Failure).Inc()
	}
}

// register registers every collector, stopping at the first error.
func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
