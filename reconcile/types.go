// Package reconcile owns the reconciler of rds-reconcile: observing the live
// state (one RDS list, one fabric list), diffing it against the desired state
// (Diff is a pure function), the plan (actions with reasons, drift,
// fingerprint), applying a plan (ordering, bounded parallelism, retry-go
// backoff with jitter, safety rules), per-volume status, the
// level-triggered loop and its Prometheus metrics. It never parses YAML or
// RouterOS text itself, and never renders: package views prints plans,
// results and status, views/jsonplan is the plan's JSON.
package reconcile

import (
	"context"
	"log/slog"
	"time"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/rds"
)

// RDS is what the reconciler needs from the storage side; *rds.SSHClient
// implements it.
type RDS interface {
	List(ctx context.Context) (rds.Inventory, error)
	Create(ctx context.Context, r rds.CreateRequest) error
	SetExport(ctx context.Context, r rds.ExportRequest) error
	Grow(ctx context.Context, slot string, size int64) error
	Delete(ctx context.Context, slot, filePath string) error
	RemoveFile(ctx context.Context, path string) error
	// Copy makes a disk as a copy of another's file (snapshots, restores
	// and clones).
	Copy(ctx context.Context, r rds.CopyRequest) error
}

// Fabric is what the reconciler needs from this host's NVMe side;
// fabric.Host implementations satisfy it.
type Fabric interface {
	List(ctx context.Context) ([]fabric.Controller, error)
	Connect(ctx context.Context, req fabric.ConnectRequest) (fabric.Controller, error)
	SetTimeouts(ctx context.Context, name string, t fabric.Timeouts) error
	Rescan(ctx context.Context, name string) error
	Disconnect(ctx context.Context, name string, force bool) error
	HostNQN(ctx context.Context) (string, error)
}

// Options configure a Reconciler.
type Options struct {
	// RDS nil: the RDS side is neither observed nor changed (CSI node mode).
	RDS RDS
	// Fabric nil: no host side (CSI controller mode, or not a host).
	Fabric Fabric
	// Host is this host's name in State.Hosts.
	Host string
	// Parallelism bounds host actions run at once (default 4).
	Parallelism int
	// RDSParallelism bounds RDS changes run at once (default
	// DefaultRDSParallelism). The SSH client multiplexes sessions over one
	// connection, so a few in flight hide the per-command latency.
	RDSParallelism int
	// DeviceWait bounds the wait for a block device after connect (default 30s).
	DeviceWait time.Duration
	Logger     *slog.Logger
	// Metrics is optional.
	Metrics *Metrics
	// Revision names the desired state's commit in logs, plans and status.
	Revision string
	// AppliedFile keeps the record of what apply last made true (see
	// Applied); "" keeps none, and every difference is then reported as
	// drift.
	AppliedFile string
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Defaults of Options.
const (
	DefaultParallelism = 4
	// DefaultRDSParallelism: measured with 20 ms per command on the
	// simulator, 4 sessions cut wall time of 100 creates ~4x compared with
	// serial, and RouterOS allows few concurrent SSH sessions, so 4 is also
	// the rds client's default MaxSessions.
	DefaultRDSParallelism = 4
	DefaultDeviceWait     = 30 * time.Second
)

// Action is one step of a plan.
type Action struct {
	Kind   Kind   `json:"kind"`
	Volume string `json:"volume,omitempty"`
	// Controller is the kernel controller concerned ("nvme3"), if any.
	Controller string `json:"controller,omitempty"`
	Reason     string `json:"reason"`
	// Blocked names the safety rule that stops the action (Kind blocked).
	Blocked string `json:"blocked,omitempty"`
	// Wanted is what a blocked action would have done.
	Wanted Kind  `json:"wanted,omitempty"`
	Phase  Phase `json:"phase"`

	// RDS side.
	Slot     string `json:"slot,omitempty"`
	FilePath string `json:"filePath,omitempty"`
	Size     int64  `json:"size,omitempty"`
	FromSize int64  `json:"fromSize,omitempty"`
	Port     int    `json:"port,omitempty"`
	NQN      string `json:"nqn,omitempty"`
	// SetAllowHosts: create and fix-export set the disk's allow list to
	// AllowHosts (policy.exportACL; empty = any host).
	SetAllowHosts bool     `json:"setAllowHosts,omitempty"`
	AllowHosts    []string `json:"allowHosts,omitempty"`
	// Source is the slot a create-snapshot or create-from copies, and
	// SourceKind what it is ("volume" or "snapshot"): a copy waits for its
	// source's create in the same apply.
	Source     string `json:"source,omitempty"`
	SourceKind string `json:"sourceKind,omitempty"`

	// Host side.
	Address      string           `json:"address,omitempty"`
	HostNQN      string           `json:"hostNQN,omitempty"`
	Timeouts     *fabric.Timeouts `json:"timeouts,omitempty"`
	FromTimeouts *fabric.Timeouts `json:"fromTimeouts,omitempty"`
}

// Drift is a difference between desired and live state on something that
// exists, i.e. changed outside rds-reconcile.
type Drift struct {
	Volume     string `json:"volume,omitempty"`
	Controller string `json:"controller,omitempty"`
	Where      string `json:"where"` // "rds" or "host"
	Field      string `json:"field"`
	Want       string `json:"want,omitempty"`
	Got        string `json:"got"`
}

// PlanFormatVersion is the version of the plan's JSON schema.
const PlanFormatVersion = "1"

// Plan is the ordered list of actions that converge the live state.
type Plan struct {
	FormatVersion string    `json:"format_version"`
	Version       int       `json:"version"`
	Host          string    `json:"host,omitempty"`
	Revision      string    `json:"revision,omitempty"`
	Files         []string  `json:"files,omitempty"`
	Scope         Scope     `json:"scope"`
	CreatedAt     time.Time `json:"createdAt"`
	// Fingerprint is the sha256 of the canonical observed and desired state.
	Fingerprint string   `json:"fingerprint"`
	Actions     []Action `json:"actions"`
	Drift       []Drift  `json:"drift"`
	// Notes are things worth saying that are no action (orphans reported
	// under policy "report", undeclared disks kept because prune is off).
	Notes []string `json:"notes,omitempty"`
	// Reconnecting lists this state's controllers the kernel is
	// reconnecting (connecting, resetting): no action, but not "all well".
	Reconnecting []Reconnecting `json:"reconnecting,omitempty"`
	// Foreign lists the controllers under the managed NQN prefix that are
	// not this state's (another target, port or unmanaged disk): never
	// touched.
	Foreign []ForeignController `json:"foreign,omitempty"`
}

// Reconnecting is a controller of a declared volume that the kernel is
// reconnecting on its own.
type Reconnecting struct {
	Volume     string `json:"volume"`
	Controller string `json:"controller"`
	State      string `json:"state"`
	Reason     string `json:"reason"`
}

// Scope limits what a plan considers.
type Scope struct {
	// Volumes empty means all.
	Volumes []string `json:"volumes,omitempty"`
	// Prune deletes managed disks no volume declares.
	Prune bool `json:"prune,omitempty"`
	// Orphans considers undeclared managed controllers (true on full runs).
	Orphans bool `json:"orphans,omitempty"`
	// AllowMassDetach lifts the mass-detach guard of full runs: a state
	// that declares no volume attached to this host, or a plan that would
	// disconnect more than half of this host's owned controllers, normally
	// disconnects nothing (a half-written or emptied file looks like that).
	AllowMassDetach bool `json:"allowMassDetach,omitempty"`
}

// Full is the scope of a whole-state run.
func Full(prune bool) Scope { return Scope{Prune: prune, Orphans: true} }

// Summary counts a plan's actions by what they do.
type Summary struct {
	Create     int `json:"create"`
	Change     int `json:"change"`
	Disconnect int `json:"disconnect"`
	Delete     int `json:"delete"`
	Blocked    int `json:"blocked"`
}

// Summary counts p's actions.
func (p *Plan) Summary() Summary {
	var s Summary
	for _, a := range p.Actions {
		s.add(a.Kind)
	}
	return s
}

// add counts one action of kind k in its bucket (see kindTable).
func (s *Summary) add(k Kind) {
	switch k.Bucket() {
	case BucketCreate:
		s.Create++
	case BucketChange:
		s.Change++
	case BucketDisconnect:
		s.Disconnect++
	case BucketDelete:
		s.Delete++
	case BucketBlocked:
		s.Blocked++
	}
}

// Empty says whether the plan has nothing to do and nothing blocked.
func (p *Plan) Empty() bool { return len(p.Actions) == 0 }

// HasChanges says whether there is at least one action that is not blocked.
func (p *Plan) HasChanges() bool {
	for _, a := range p.Actions {
		if a.Kind != KindBlocked {
			return true
		}
	}
	return false
}

// HasBlocked says whether a safety rule stopped at least one action.
func (p *Plan) HasBlocked() bool { return p.Summary().Blocked > 0 }
