package reconcile

import (
	"fmt"
	"slices"
)

// Kind is what an action does.
type Kind string

// Action kinds. Everything else about a kind is in kindTable below.
const (
	KindCreate           Kind = "create"            // create disk (+ file, export)
	KindFixExport        Kind = "fix-export"        // export off, wrong NQN, port, mount-filesystem or allow list
	KindGrow             Kind = "grow"              // grow disk file
	KindDelete           Kind = "delete"            // delete disk and its file
	KindRemoveFile       Kind = "remove-file"       // remove a leftover .img file
	KindConnect          Kind = "connect"           // connect this host
	KindSetTimeouts      Kind = "set-timeouts"      // update timeouts in place
	KindRescan           Kind = "rescan"            // rescan namespaces after grow
	KindReconnect        Kind = "reconnect"         // disconnect then connect
	KindDisconnect       Kind = "disconnect"        // volume no longer attached here
	KindDisconnectOrphan Kind = "disconnect-orphan" // undeclared managed controller
	KindBlocked          Kind = "blocked"           // a safety rule stops the action
	// Snapshots, restores and clones (snapshots.go).
	KindCreateSnapshot Kind = "create-snapshot" // copy a volume's disk into a snapshot disk, never exported
	KindCreateFrom     Kind = "create-from"     // create a volume's disk as a copy of a snapshot or volume, exported
	KindDeleteSnapshot Kind = "delete-snapshot" // delete a snapshot's disk and its file
)

// Side is what an action changes: the RDS or this host.
type Side string

// Sides.
const (
	SideRDS  Side = "rds"
	SideHost Side = "host"
)

// Bucket is the Summary count an action kind adds to.
type Bucket string

// Buckets, named as Summary's JSON fields.
const (
	BucketCreate     Bucket = "create"
	BucketChange     Bucket = "change"
	BucketDisconnect Bucket = "disconnect"
	BucketDelete     Bucket = "delete"
	BucketBlocked    Bucket = "blocked"
)

// kindSpec is everything the planner, apply, the loop, status and the
// views need to know about one action kind.
type kindSpec struct {
	kind Kind
	// mark is the plan mark: + create, ~ change in place, -/+ reconnect,
	// x disconnect (data kept), - delete (data destroyed), ! blocked.
	mark string
	// phase is when apply runs it (Phase order); a blocked action takes
	// the phase of what it would have done (Action.Wanted).
	phase Phase
	// side is what it changes; a blocked action changes nothing.
	side Side
	// bucket is the Summary count it adds to.
	bucket Bucket
	// destructive: it removes something (a controller, a disk, a file)
	// that a later pass could not simply put back. The loop runs these
	// only when two passes in a row plan them, and apply's verification
	// lets a caller hold them back.
	destructive bool
	// needs are the earlier kinds of the same volume it waits for: when
	// one of them failed or was skipped in this apply, it is skipped.
	needs []Kind
}

// kindTable describes every action kind, in plan order within a phase of
// the documentation. It is the one place a kind's properties are written
// down: the methods of Kind read it, and docs/reconcile.md ("Action
// kinds") is checked against it by TestKindTableDoc. Read-only.
var kindTable = [...]kindSpec{
	{kind: KindCreate, mark: "+", phase: PhaseRDS, side: SideRDS, bucket: BucketCreate},
	{kind: KindFixExport, mark: "~", phase: PhaseRDS, side: SideRDS, bucket: BucketChange},
	{kind: KindGrow, mark: "~", phase: PhaseRDS, side: SideRDS, bucket: BucketChange},
	// A snapshot runs after the creates and grows of its volume's phase;
	// a copy after the snapshots it may be made from (Action.Source: a
	// copy whose source's create failed is skipped, see sourceNeeds).
	{kind: KindCreateSnapshot, mark: "+", phase: PhaseRDSSnapshot, side: SideRDS, bucket: BucketCreate},
	{kind: KindCreateFrom, mark: "+", phase: PhaseRDSCopy, side: SideRDS, bucket: BucketCreate},
	{kind: KindConnect, mark: "+", phase: PhaseHost, side: SideHost, bucket: BucketCreate,
		needs: []Kind{KindCreate, KindCreateFrom, KindFixExport}},
	{kind: KindSetTimeouts, mark: "~", phase: PhaseHost, side: SideHost, bucket: BucketChange},
	{kind: KindRescan, mark: "~", phase: PhaseHost, side: SideHost, bucket: BucketChange,
		needs: []Kind{KindCreate, KindCreateFrom, KindGrow, KindFixExport}},
	{kind: KindReconnect, mark: "-/+", phase: PhaseHost, side: SideHost, bucket: BucketChange,
		needs: []Kind{KindCreate, KindCreateFrom, KindFixExport}},
	{kind: KindDisconnect, mark: "x", phase: PhaseHostDetach, side: SideHost, bucket: BucketDisconnect, destructive: true},
	{kind: KindDisconnectOrphan, mark: "x", phase: PhaseHostDetach, side: SideHost, bucket: BucketDisconnect, destructive: true},
	{kind: KindDelete, mark: "-", phase: PhaseRDSDelete, side: SideRDS, bucket: BucketDelete, destructive: true,
		needs: []Kind{KindDisconnect}},
	{kind: KindRemoveFile, mark: "-", phase: PhaseRDSDelete, side: SideRDS, bucket: BucketDelete, destructive: true,
		needs: []Kind{KindDisconnect, KindDelete}},
	{kind: KindDeleteSnapshot, mark: "-", phase: PhaseRDSDelete, side: SideRDS, bucket: BucketDelete, destructive: true},
	// The phase of a blocked action is its Wanted's (Diff sets it); PhaseRDS
	// here only keeps Kind.Phase total.
	{kind: KindBlocked, mark: "!", phase: PhaseRDS, bucket: BucketBlocked},
}

// spec is k's row of kindTable. An unknown kind (a plan from a newer
// version) reads as marked "?", counted nowhere, on no side.
func (k Kind) spec() kindSpec {
	for _, s := range kindTable {
		if s.kind == k {
			return s
		}
	}
	return kindSpec{mark: "?", phase: PhaseRDS}
}

// Kinds lists every action kind in table order.
func Kinds() []Kind {
	ks := make([]Kind, len(kindTable))
	for i, s := range kindTable {
		ks[i] = s.kind
	}
	return ks
}

// Known says whether k is one of the kinds above.
func (k Kind) Known() bool { return k.spec().kind != "" }

// Mark is k's plan mark ("+", "~", "-/+", "x", "-", "!"; "?" when unknown).
func (k Kind) Mark() string { return k.spec().mark }

// Phase returns the phase an action of kind k runs in. A blocked action
// takes the phase of what it would have done (Wanted).
func (k Kind) Phase() Phase { return k.spec().phase }

// Side says what k changes; "" for blocked (and unknown) kinds.
func (k Kind) Side() Side { return k.spec().side }

// OnRDS says whether the action changes the RDS (else this host).
func (k Kind) OnRDS() bool { return k.Side() == SideRDS }

// Bucket is the Summary count k adds to ("" when unknown).
func (k Kind) Bucket() Bucket { return k.spec().bucket }

// Destructive says whether k removes something (a controller, a disk, a
// file) that a later pass could not simply put back: the kinds the loop
// confirms over two passes and apply's verification lets a caller hold.
func (k Kind) Destructive() bool { return k.spec().destructive }

// Needs lists the earlier kinds of the same volume k needs: a connect
// needs the disk and its export, a rescan the grow, a delete the
// disconnect. Timeout updates and disconnects need nothing before them.
func (k Kind) Needs() []Kind { return slices.Clone(k.spec().needs) }

// NeededBy lists the kinds that wait for k (the inverse of Needs).
func (k Kind) NeededBy() []Kind {
	var ks []Kind
	for _, s := range kindTable {
		if slices.Contains(s.needs, k) {
			ks = append(ks, s.kind)
		}
	}
	return ks
}

// needs says whether k waits for dep.
func (k Kind) needs(dep Kind) bool { return slices.Contains(k.spec().needs, dep) }

// Phase orders actions: RDS creates and repairs, then host connects and
// updates, then host disconnects, then RDS deletes last.
type Phase int

// Phases, in execution order.
const (
	PhaseRDS Phase = iota
	// PhaseRDSSnapshot: snapshots, once the volumes they copy exist.
	PhaseRDSSnapshot
	// PhaseRDSCopy: volumes created as copies, once their sources exist.
	PhaseRDSCopy
	PhaseHost
	PhaseHostDetach
	PhaseRDSDelete
)

// phaseSpec is everything about one phase.
type phaseSpec struct {
	phase Phase
	name  string // in JSON
	side  Side   // which parallelism bounds it
	what  string // its title, after the side
}

// phaseTable lists the phases in execution order. Read-only.
var phaseTable = [...]phaseSpec{
	{PhaseRDS, "rds", SideRDS, "create and repair"},
	{PhaseRDSSnapshot, "rds-snapshot", SideRDS, "snapshot"},
	{PhaseRDSCopy, "rds-copy", SideRDS, "restore and clone"},
	{PhaseHost, "host", SideHost, "connect and update"},
	{PhaseHostDetach, "host-detach", SideHost, "disconnect"},
	{PhaseRDSDelete, "rds-delete", SideRDS, "delete"},
}

func (p Phase) spec() (phaseSpec, bool) {
	for _, s := range phaseTable {
		if s.phase == p {
			return s, true
		}
	}
	return phaseSpec{name: "unknown"}, false
}

// Phases lists the phases in execution order.
func Phases() []Phase {
	ps := make([]Phase, len(phaseTable))
	for i, s := range phaseTable {
		ps[i] = s.phase
	}
	return ps
}

func (p Phase) String() string { s, _ := p.spec(); return s.name }

// Side is what the phase's actions change.
func (p Phase) Side() Side { s, _ := p.spec(); return s.side }

// Title names the phase for humans: "RDS: create and repair", "Host
// node-a: disconnect".
func (p Phase) Title(host string) string {
	s, ok := p.spec()
	switch {
	case !ok:
		return s.name
	case s.side == SideRDS:
		return "RDS: " + s.what
	}
	return fmt.Sprintf("Host %s: %s", host, s.what)
}

// MarshalText writes the phase by name in JSON.
func (p Phase) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads a phase name.
func (p *Phase) UnmarshalText(b []byte) error {
	for _, s := range phaseTable {
		if s.name == string(b) {
			*p = s.phase
			return nil
		}
	}
	return fmt.Errorf("unknown phase %q", b)
}
