package reconcile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// AppliedFileName is the record of what apply last made true, kept next
// to the lock file.
const AppliedFileName = ".rds-reconcile.applied.json"

// AppliedPath is the record for a state: in stateDir when set, else next
// to the first state file (where the lock is).
func AppliedPath(stateDir string, files []string) string {
	return filepath.Join(filepath.Dir(LockPath(stateDir, files)), AppliedFileName)
}

// Applied records, per volume, the values apply last made true, keyed
// "where field" as Drift names them and written as Drift shows them. It
// is what tells drift (the live value moved away from what was applied,
// behind our back) from a change of the desired state (the live value is
// still what was applied; the state now wants another).
type Applied map[string]map[string]string

// ReadApplied reads the record; a missing file is an empty record.
func ReadApplied(path string) (Applied, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Applied{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the applied record: %w", err)
	}
	a := Applied{}
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("read the applied record %s: %w", path, err)
	}
	return a, nil
}

// Write replaces the record atomically.
func (a Applied) Write(path string) error {
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	return fabric.WriteFileAtomic(path, append(b, '\n'), 0o644)
}

// key names a drift field in the record.
func key(where, field string) string { return where + " " + field }

// desired is what v's fields should read once converged, keyed and written
// as Drift names and shows them (Diff's own Want values).
func (d *differ) desired(v *spec.Volume) map[string]string {
	f := map[string]string{
		key("rds", "file-path"):        d.st.FilePath(v.Name),
		key("rds", "nvme-tcp-export"):  "yes",
		key("rds", "nqn"):              d.st.NQN(v.Name),
		key("rds", "nvme-tcp-port"):    strconv.Itoa(d.port),
		key("rds", "mount-filesystem"): "no",
	}
	if v.Size.Bytes > 0 {
		f[key("rds", "size")] = v.Size.String()
	}
	// The source the disk was made from, so a source changed later is
	// noted as ignored (snapshots.go); "" for an empty disk.
	f[key("rds", "source")] = v.From.String()
	if set, hosts := d.wantAllowHosts(v); set {
		f[key("rds", "allow-hosts")] = fmtAllowHosts(hosts)
	}
	if d.attachedHere(v) {
		f[key("host", "timeouts")] = fmtTimeouts(toFabric(d.st.TimeoutsFor(v)).Effective())
		if d.hostNQN != "" {
			f[key("host", "hostnqn")] = d.hostNQN
		}
	}
	return f
}

// ownValue says whether a live value that differs from the desired one is
// still the value apply last made true: then the desired state changed,
// and the difference is a change, not drift.
func (d *differ) ownValue(dr Drift) bool {
	rec, ok := d.obs.Applied[dr.Volume]
	if !ok || dr.Want == dr.Got {
		return false
	}
	v, ok := rec[key(dr.Where, dr.Field)]
	return ok && v == dr.Got
}

// RecordApplied returns prev updated from a plan made after apply: every
// present volume in after's scope with no action and no drift left is
// recorded with its desired values; absent volumes are dropped. Volumes
// out of scope, or not converged, keep their old record.
func RecordApplied(st *spec.State, host string, after *Plan, prev Applied) Applied {
	out := make(Applied, len(prev))
	for v, f := range prev {
		out[v] = f
	}
	busy := map[string]bool{}
	for _, a := range after.Actions {
		busy[a.Volume] = true
	}
	for _, dr := range after.Drift {
		busy[dr.Volume] = true
	}
	d := newDiffer(st, &Observed{}, host, after.Scope)
	if len(after.Scope.Volumes) == 0 {
		// A full plan: a volume the state no longer declares is gone once
		// nothing is left to do for it (its orphan disconnected).
		for v := range out {
			if st.Volume(v) == nil && !busy[v] {
				delete(out, v)
			}
		}
	}
	for i := range st.Volumes {
		v := &st.Volumes[i]
		if len(after.Scope.Volumes) > 0 && !slices.Contains(after.Scope.Volumes, v.Name) {
			continue
		}
		switch {
		case v.State == spec.Absent:
			delete(out, v.Name)
		case !busy[v.Name]:
			out[v.Name] = d.desired(v)
		}
	}
	return out
}
