package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/internal/retryable"
	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// Observed is the live state one run saw.
type Observed struct {
	// RDS is nil when the RDS side is not observed (no client).
	RDS *rds.Inventory `json:"rds,omitempty"`
	// Fabric says whether this host's controllers were observed.
	Fabric      bool                `json:"fabric"`
	Controllers []fabric.Controller `json:"controllers,omitempty"`
	// HostNQN is the NQN this host presents (when Fabric).
	HostNQN string `json:"hostNQN,omitempty"`
	// Applied is the record of what apply last made true (Options.
	// AppliedFile); it tells drift from a change of the desired state.
	// Not part of the fingerprint.
	Applied Applied   `json:"-"`
	At      time.Time `json:"-"`
}

// Reconciler observes, plans and applies. It is safe for concurrent use,
// but callers serialise applies on one state with Lock.
type Reconciler struct {
	opts Options
	log  *slog.Logger
}

// New returns a Reconciler; zero options get their defaults.
func New(opts Options) *Reconciler {
	if opts.Parallelism <= 0 {
		opts.Parallelism = DefaultParallelism
	}
	if opts.RDSParallelism <= 0 {
		opts.RDSParallelism = DefaultRDSParallelism
	}
	if opts.DeviceWait <= 0 {
		opts.DeviceWait = DefaultDeviceWait
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if opts.Revision != "" {
		log = log.With("revision", opts.Revision)
	}
	return &Reconciler{opts: opts, log: log}
}

// Host is this host's name.
func (r *Reconciler) Host() string { return r.opts.Host }

// Observe reads the live state: one RDS List and one fabric List,
// whatever the number of volumes.
// Read errors that may go away (a dropped SSH connection, a busy RouterOS)
// are retried with the seed's backoff.
func (r *Reconciler) Observe(ctx context.Context) (*Observed, error) {
	return r.observe(ctx, defaultRetry)
}

func (r *Reconciler) observe(ctx context.Context, pol RetryPolicy) (*Observed, error) {
	obs := &Observed{At: r.opts.Now()}
	if r.opts.RDS != nil {
		var inv rds.Inventory
		_, err := pol.doNotify(ctx, retryable.Is, func(uint) error {
			var err error
			inv, err = r.opts.RDS.List(ctx)
			return err
		}, func(n uint, err error, next time.Duration) {
			r.log.Warn("reading the RDS failed, retrying", "attempt", n, "attempts", pol.Attempts, "next", next, "err", err)
		})
		if err != nil {
			return nil, fmt.Errorf("observe RDS: %w", err)
		}
		obs.RDS = &inv
	}
	if r.opts.Fabric != nil {
		var ctrls []fabric.Controller
		_, err := pol.do(ctx, retryable.Is, func(uint) error {
			var err error
			ctrls, err = r.opts.Fabric.List(ctx)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("observe host controllers: %w", err)
		}
		obs.Fabric = true
		obs.Controllers = ctrls
		nqn, err := r.opts.Fabric.HostNQN(ctx)
		if err == nil {
			obs.HostNQN = nqn
		}
	}
	if r.opts.AppliedFile != "" {
		rec, err := ReadApplied(r.opts.AppliedFile)
		if err != nil {
			// Without the record every difference reads as drift: worse
			// wording, never a wrong action.
			r.log.Warn("ignoring the applied record", "err", err)
			rec = Applied{}
		}
		obs.Applied = rec
	}
	obs.sort()
	return obs, nil
}

// Record keeps what p (made from the live state) shows as converged in the
// applied record, when the record changes. Read-only callers never call it.
func (r *Reconciler) Record(st *spec.State, p *Plan) {
	if r.opts.AppliedFile == "" || p == nil {
		return
	}
	prev, err := ReadApplied(r.opts.AppliedFile)
	if err != nil {
		prev = Applied{}
	}
	next := RecordApplied(st, r.opts.Host, p, prev)
	if reflect.DeepEqual(prev, next) {
		return
	}
	if err := next.Write(r.opts.AppliedFile); err != nil {
		r.log.Warn("could not keep the applied record", "file", r.opts.AppliedFile, "err", err)
	}
}

// sort puts the observed lists in a canonical order so fingerprints and
// renderings do not depend on listing order.
func (o *Observed) sort() {
	if o.RDS != nil {
		slices.SortFunc(o.RDS.Disks, func(a, b rds.Disk) int { return strings.Compare(a.Slot, b.Slot) })
		slices.SortFunc(o.RDS.Exports, func(a, b rds.Disk) int { return strings.Compare(a.Slot, b.Slot) })
		slices.SortFunc(o.RDS.Snapshots, func(a, b rds.Disk) int { return strings.Compare(a.Slot, b.Slot) })
		slices.SortFunc(o.RDS.Files, func(a, b rds.File) int { return strings.Compare(a.Name, b.Name) })
	}
	slices.SortFunc(o.Controllers, func(a, b fabric.Controller) int {
		if c := strings.Compare(a.SubsysNQN, b.SubsysNQN); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// Plan observes and diffs.
func (r *Reconciler) Plan(ctx context.Context, st *spec.State, sc Scope) (*Plan, error) {
	obs, err := r.observe(ctx, PolicyFrom(st))
	if err != nil {
		return nil, err
	}
	p := Diff(st, obs, r.opts.Host, sc)
	p.Revision = r.opts.Revision
	p.CreatedAt = r.opts.Now().UTC()
	r.opts.Metrics.observePlan(p, obs)
	return p, nil
}
