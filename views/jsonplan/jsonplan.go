// Package jsonplan is the plan's JSON wire format: `plan -o json`, saved
// plans (`plan --out`, read back by `apply PLANFILE`) and the actions in
// `apply -o json`. Its types are apart from reconcile's so that a change
// to the planner's types never changes the document by accident: every
// field here is pinned by a schema test, and a change that would break a
// consumer bumps FormatVersion.
package jsonplan

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/rds-reconcile/rds-reconcile/reconcile"
)

// FormatVersion is the version of the document; ReadPlan refuses others.
const FormatVersion = "1"

// Plan is the document.
type Plan struct {
	FormatVersion string         `json:"format_version"`
	Version       int            `json:"version"`
	Host          string         `json:"host,omitempty"`
	Revision      string         `json:"revision,omitempty"`
	Files         []string       `json:"files,omitempty"`
	Scope         Scope          `json:"scope"`
	CreatedAt     time.Time      `json:"createdAt"`
	Fingerprint   string         `json:"fingerprint"`
	Actions       []Action       `json:"actions"`
	Drift         []Drift        `json:"drift"`
	Notes         []string       `json:"notes,omitempty"`
	Reconnecting  []Reconnecting `json:"reconnecting,omitempty"`
	Foreign       []Foreign      `json:"foreign,omitempty"`
}

// Scope is reconcile.Scope.
type Scope struct {
	Volumes         []string `json:"volumes,omitempty"`
	Prune           bool     `json:"prune,omitempty"`
	Orphans         bool     `json:"orphans,omitempty"`
	AllowMassDetach bool     `json:"allowMassDetach,omitempty"`
}

// Action is one step, in execution order; fields that do not apply to its
// kind are left out.
type Action struct {
	Kind       string `json:"kind"`
	Volume     string `json:"volume,omitempty"`
	Controller string `json:"controller,omitempty"`
	Reason     string `json:"reason"`
	Blocked    string `json:"blocked,omitempty"`
	Wanted     string `json:"wanted,omitempty"`
	// Phase is rds, rds-snapshot, rds-copy, host, host-detach or rds-delete.
	Phase string `json:"phase"`

	Slot          string   `json:"slot,omitempty"`
	FilePath      string   `json:"filePath,omitempty"`
	Size          int64    `json:"size,omitempty"`
	FromSize      int64    `json:"fromSize,omitempty"`
	Port          int      `json:"port,omitempty"`
	NQN           string   `json:"nqn,omitempty"`
	SetAllowHosts bool     `json:"setAllowHosts,omitempty"`
	AllowHosts    []string `json:"allowHosts,omitempty"`
	// Source is what a create-snapshot or create-from copies: a slot,
	// SourceKind "volume" or "snapshot".
	Source     string `json:"source,omitempty"`
	SourceKind string `json:"sourceKind,omitempty"`

	Address      string    `json:"address,omitempty"`
	HostNQN      string    `json:"hostNQN,omitempty"`
	Timeouts     *Timeouts `json:"timeouts,omitempty"`
	FromTimeouts *Timeouts `json:"fromTimeouts,omitempty"`
}

// Timeouts are a controller's connection timeouts, in seconds.
type Timeouts struct {
	CtrlLossTmo    int `json:"ctrlLossTmo"`
	ReconnectDelay int `json:"reconnectDelay"`
	KeepAliveTmo   int `json:"keepAliveTmo"`
}

// Drift is a value changed outside rds-reconcile.
type Drift struct {
	Volume     string `json:"volume,omitempty"`
	Controller string `json:"controller,omitempty"`
	Where      string `json:"where"`
	Field      string `json:"field"`
	Want       string `json:"want,omitempty"`
	Got        string `json:"got"`
}

// Reconnecting is a controller the kernel is reconnecting on its own.
type Reconnecting struct {
	Volume     string `json:"volume"`
	Controller string `json:"controller"`
	State      string `json:"state"`
	Reason     string `json:"reason"`
}

// Foreign is a controller under the managed NQN prefix that is not this
// state's.
type Foreign struct {
	Controller string `json:"controller"`
	NQN        string `json:"nqn"`
	Address    string `json:"address,omitempty"`
	Port       string `json:"port,omitempty"`
	State      string `json:"state,omitempty"`
	Why        string `json:"why"`
}

// Write writes p as the indented document (a saved plan is the same).
func Write(w io.Writer, p *reconcile.Plan) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(FromPlan(p))
}

// ReadPlan decodes a document written by Write. Unknown fields are
// ignored; another format_version is refused.
func ReadPlan(r io.Reader) (*reconcile.Plan, error) {
	var d Plan
	if err := json.NewDecoder(r).Decode(&d); err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	if d.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("read plan: format_version %q is not supported (want %q)", d.FormatVersion, FormatVersion)
	}
	p, err := d.toPlan()
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	return p, nil
}
