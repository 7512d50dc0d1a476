package spec

import (
	"fmt"
	"strings"
	"time"
)

// SnapshotInfix follows the slot prefix in every snapshot name: snapshots
// are RDS disks too (never exported), and a name rule of their own is what
// keeps one from ever being taken for a volume, pruned as an undeclared
// volume or exported. Volume names may not start with it.
const SnapshotInfix = "snap-"

// Snapshot is a point-in-time copy of a volume's disk on the RDS (RouterOS
// /disk add copy-from: copy-on-write on a Btrfs pool). It is a disk of its
// own, never exported: volumes are restored from it (Volume.From), and it
// lives on when its volume is deleted.
type Snapshot struct {
	// Name is the RDS slot and file name (<basePath>/<name>.img): a
	// DNS-1123 label starting with slotPrefix + "snap-".
	Name string `yaml:"name" json:"name" validate:"required"`
	// Volume is the volume copied when the snapshot is made; required
	// when present. A snapshot that exists is never made again, whatever
	// its volume holds since.
	Volume  string `yaml:"volume,omitempty" json:"volume,omitempty"`
	State   string `yaml:"state,omitempty" json:"state,omitempty" validate:"oneof=present absent"`
	Protect bool   `yaml:"protect,omitempty" json:"protect,omitempty"`
	// CreatedAt is when the snapshot was asked for (RFC 3339), as the CSI
	// layer records it for CreateSnapshot's answer; informational only,
	// never compared with the RDS.
	CreatedAt string `yaml:"createdAt,omitempty" json:"createdAt,omitempty"`
	// Source is the file the snapshot was declared in (set by Load, not
	// YAML), as Volume.Source.
	Source string `yaml:"-" json:"-"`
}

// VolumeSource is what a new volume is copied from: exactly one of a
// snapshot and a volume (a clone).
type VolumeSource struct {
	Snapshot string `yaml:"snapshot,omitempty" json:"snapshot,omitempty"`
	Volume   string `yaml:"volume,omitempty" json:"volume,omitempty"`
}

// Name is the slot the source names (the snapshot's or the volume's).
func (s *VolumeSource) Name() string {
	if s == nil {
		return ""
	}
	if s.Snapshot != "" {
		return s.Snapshot
	}
	return s.Volume
}

// String is "snapshot NAME" or "volume NAME", as plans show it.
func (s *VolumeSource) String() string {
	switch {
	case s == nil:
		return ""
	case s.Snapshot != "":
		return "snapshot " + s.Snapshot
	}
	return "volume " + s.Volume
}

// SnapshotPrefix is the prefix of every snapshot name (and slot) of the
// state: slotPrefix + SnapshotInfix.
func (s *State) SnapshotPrefix() string {
	if s.Target == nil {
		return SnapshotInfix
	}
	return s.Target.SlotPrefix + SnapshotInfix
}

// IsSnapshotName reports whether name (a slot) is in the snapshots' name
// space of a state whose slot prefix is slotPrefix.
func IsSnapshotName(name, slotPrefix string) bool {
	return strings.HasPrefix(name, slotPrefix+SnapshotInfix)
}

// Snapshot returns the snapshot called name, or nil.
func (s *State) Snapshot(name string) *Snapshot {
	for i := range s.Snapshots {
		if s.Snapshots[i].Name == name {
			return &s.Snapshots[i]
		}
	}
	return nil
}

// snapshots checks the snapshots section and every volume's source.
// complete means a whole state (references to volumes and snapshots
// checked); a Store layer alone cannot see the other layers.
func (c *checker) snapshots(st *State, complete bool) {
	var slotPrefix string
	if st.Target != nil {
		slotPrefix = st.Target.SlotPrefix
	}
	prefix := slotPrefix + SnapshotInfix
	for i, s := range st.Snapshots {
		path := fmt.Sprintf("snapshots[%d]", i)
		switch {
		case s.Name == "":
			// reported by the required tag
		case len(s.Name) > MaxVolumeNameLen || !dnsLabelRE.MatchString(s.Name):
			c.add(path+".name", "%q must be a DNS-1123 label: at most %d lowercase letters, digits and '-', starting and ending with a letter or digit", clip(s.Name), MaxVolumeNameLen)
		case (slotPrefix == "" || validSlotPrefix(slotPrefix)) && !strings.HasPrefix(s.Name, prefix):
			c.add(path+".name", "%q must start with %q: snapshots have slot names of their own so they are never taken for volumes; rename it to %q",
				clip(s.Name), prefix, clip(prefix+strings.TrimPrefix(s.Name, slotPrefix)))
		case len(s.Name) == len(prefix):
			c.add(path+".name", "%q is only the snapshot prefix; add a name after it", clip(s.Name))
		}
		if s.CreatedAt != "" {
			if _, err := time.Parse(time.RFC3339, s.CreatedAt); err != nil {
				c.add(path+".createdAt", "%q must be an RFC 3339 time such as 2026-01-02T03:04:05Z, or left out", clip(s.CreatedAt))
			}
		}
		switch s.State {
		case Present:
			switch v := st.Volume(s.Volume); {
			case s.Volume == "":
				c.add(path+".volume", "is required for a present snapshot: the volume to copy")
			case !complete:
			case v == nil:
				c.add(path+".volume", "volume %q is not declared%s; a deleted volume stays declared with state: absent while a snapshot names it", clip(s.Volume), declaredVolumes(st))
			}
			// A snapshot of an absent volume is valid: snapshots outlive
			// their volumes, and the tombstone keeps the name. The plan
			// says when such a snapshot cannot be made (nothing to copy).
		case Absent:
			if s.Protect {
				c.add(path+".protect", "a protected snapshot is never deleted; remove protect: true first, then set state: absent")
			}
		}
	}
	for i, v := range st.Volumes {
		if v.From == nil {
			continue
		}
		path := fmt.Sprintf("volumes[%d].source", i)
		src := v.From
		switch {
		case src.Snapshot != "" && src.Volume != "":
			c.add(path, "names both snapshot %q and volume %q; keep one", clip(src.Snapshot), clip(src.Volume))
		case src.Snapshot == "" && src.Volume == "":
			c.add(path, "names nothing; give snapshot: NAME or volume: NAME, or remove source")
		case v.State == Absent:
			c.add(path, "an absent volume is deleted, not created; remove source")
		case src.Volume == v.Name:
			c.add(path+".volume", "a volume cannot be copied from itself")
		case !complete:
		case src.Snapshot != "" && st.Snapshot(src.Snapshot) == nil:
			c.add(path+".snapshot", "snapshot %q is not declared%s", clip(src.Snapshot), declaredSnapshots(st))
		case src.Volume != "" && st.Volume(src.Volume) == nil:
			c.add(path+".volume", "volume %q is not declared%s", clip(src.Volume), declaredVolumes(st))
		}
	}
}

func declaredVolumes(st *State) string {
	var names []string
	for _, v := range st.Volumes {
		if v.State != Absent {
			names = append(names, v.Name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return " (declared: " + clip(strings.Join(names, ", ")) + ")"
}

func declaredSnapshots(st *State) string {
	var names []string
	for _, s := range st.Snapshots {
		names = append(names, s.Name)
	}
	if len(names) == 0 {
		return "; declare it under snapshots"
	}
	return " (declared: " + clip(strings.Join(names, ", ")) + ")"
}
