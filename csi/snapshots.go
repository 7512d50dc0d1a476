package csi

// Snapshots, restores and clones: CreateSnapshot, DeleteSnapshot and
// ListSnapshots, and the content source of CreateVolume. A snapshot lives
// in the controller's layer like a volume (spec.Snapshot), and the same
// reconciler makes it on the RDS: a copy of the volume's disk, never
// exported (docs/csi.md, "Controller"; docs/reconcile.md, "Snapshots,
// restores and clones").

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

// SnapshotName maps a CSI snapshot name to the snapshot's name (its RDS
// slot): a DNS label already in the snapshots' name space (slotPrefix +
// "snap-") is kept; anything else (external-snapshotter's
// "snapshot-<uuid>") becomes slotPrefix + "snap-csi-" + the first 20 hex
// digits of its SHA-256. A pure function, as VolumeName: CreateSnapshot
// stays idempotent by name without storing the CSI name.
func SnapshotName(csiName, slotPrefix string) string {
	prefix := slotPrefix + spec.SnapshotInfix
	if len(csiName) <= spec.MaxVolumeNameLen && dnsLabelRE.MatchString(csiName) &&
		strings.HasPrefix(csiName, prefix) && len(csiName) > len(prefix) && !strings.HasPrefix(csiName, prefix+hashedNamePrefix) {
		return csiName
	}
	sum := sha256.Sum256([]byte(csiName))
	return prefix + hashedNamePrefix + hex.EncodeToString(sum[:])[:20]
}

// validSnapshotID reports whether id can name a snapshot at all.
func validSnapshotID(id string) bool {
	return validVolumeID(id) && strings.Contains(id, spec.SnapshotInfix)
}

// snapshotCaps are the controller capabilities snapshots add.
func snapshotCaps() []csi.ControllerServiceCapability_RPC_Type {
	return []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
		csi.ControllerServiceCapability_RPC_GET_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
	}
}

// ownedSnapshot reports whether s lives in the CSI layer.
func (c *controller) ownedSnapshot(s *spec.Snapshot) bool { return s.Source == c.cfg.Layer.Name() }

// csiSnapshot is what CreateSnapshot and ListSnapshots say of s: its size
// is its volume's (the copy takes the source's size), its creation time
// the one recorded, and it is ready once it is in the state and listed,
// since CreateSnapshot returns only after the copy exists.
func csiSnapshot(st *spec.State, s *spec.Snapshot) *csi.Snapshot {
	out := &csi.Snapshot{SnapshotId: s.Name, SourceVolumeId: s.Volume, ReadyToUse: true}
	if v := st.Volume(s.Volume); v != nil {
		out.SizeBytes = v.Size.Bytes
	}
	if t, err := time.Parse(time.RFC3339, s.CreatedAt); err == nil {
		out.CreationTime = timestamppb.New(t)
	} else {
		// Declared by hand without createdAt: the zero time would read
		// as "unknown" to some sidecars; the Unix epoch says the same
		// and is never mistaken for now.
		out.CreationTime = timestamppb.New(time.Unix(0, 0))
	}
	return out
}

func (c *controller) CreateSnapshot(ctx context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	defer c.calls.enter()() // in flight from the start: the batchers wait for it (crowd.go)
	switch {
	case req.GetName() == "":
		return nil, invalid("name is required")
	case req.GetSourceVolumeId() == "":
		return nil, invalid("source volume id is required")
	}
	src := req.GetSourceVolumeId()
	if !validVolumeID(src) {
		return nil, status.Errorf(codes.NotFound, "volume %q does not exist", src)
	}
	// The volume first, then the snapshot: the only order two locks are
	// ever taken in, so no two calls wait for each other.
	unlockVol, err := c.locks.lock(ctx, src)
	if err != nil {
		return nil, statusOf("waiting for the volume lock", err)
	}
	defer unlockVol()
	st, v, err := c.lookup(ctx, src)
	if err != nil {
		return nil, err
	}
	name := SnapshotName(req.GetName(), st.Target.SlotPrefix)
	unlock, err := c.locks.lock(ctx, name)
	if err != nil {
		return nil, statusOf("waiting for the snapshot lock", err)
	}
	defer unlock()
	if s := st.Snapshot(name); s != nil && !c.ownedSnapshot(s) {
		return nil, status.Errorf(codes.AlreadyExists, "snapshot %q is declared in %s, not by CSI; choose another name", name, s.Source)
	}
	now := time.Now().UTC().Truncate(time.Second).Format(time.RFC3339)
	created := false
	err = c.update(ctx, func(l *spec.State) error {
		created = false // the edit may run again on a fresh read
		if s := l.Snapshot(name); s != nil && s.State != spec.Absent {
			if s.Volume != v.Name {
				return status.Errorf(codes.AlreadyExists, "snapshot %q exists of volume %q, not %q", name, s.Volume, v.Name)
			}
			return errUnchanged
		}
		ns := spec.Snapshot{Name: name, Volume: v.Name, State: spec.Present, CreatedAt: now}
		if s := l.Snapshot(name); s != nil {
			*s = ns // a tombstone left by an unfinished delete
		} else {
			l.Snapshots = append(l.Snapshots, ns)
		}
		created = true
		return nil
	})
	if err != nil {
		return nil, statusOf("recording the snapshot", err)
	}
	if st, err = c.reconcile(ctx, name); err != nil {
		s := statusOf("making the snapshot on the RDS", err)
		if status.Code(s) == codes.ResourceExhausted && created {
			c.forgetSnapshot(ctx, name) // as CreateVolume: the layer does not keep asking for it
		}
		return nil, s
	}
	s := st.Snapshot(name)
	if s == nil || s.State == spec.Absent {
		return nil, status.Errorf(codes.Aborted, "snapshot %q was deleted while being made", name)
	}
	return &csi.CreateSnapshotResponse{Snapshot: csiSnapshot(st, s)}, nil
}

func (c *controller) DeleteSnapshot(ctx context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	defer c.calls.enter()() // in flight from the start: the batchers wait for it (crowd.go)
	id := req.GetSnapshotId()
	if id == "" {
		return nil, invalid("snapshot id is required")
	}
	if !validSnapshotID(id) {
		return &csi.DeleteSnapshotResponse{}, nil // cannot exist
	}
	unlock, err := c.locks.lock(ctx, id)
	if err != nil {
		return nil, statusOf("waiting for the snapshot lock", err)
	}
	defer unlock()
	st, err := c.desired(ctx)
	if err != nil {
		return nil, err
	}
	s := st.Snapshot(id)
	if s == nil {
		return &csi.DeleteSnapshotResponse{}, nil
	}
	if !c.ownedSnapshot(s) {
		return nil, status.Errorf(codes.FailedPrecondition, "snapshot %q is declared in %s; only that file can delete it", id, s.Source)
	}
	// As DeleteVolume. Volumes restored from the snapshot are copies of
	// their own and stay.
	err = c.deleteDeclared(ctx, id, "snapshot", func(l *spec.State) error {
		ls := l.Snapshot(id)
		if ls == nil || ls.State == spec.Absent {
			return errUnchanged
		}
		*ls = spec.Snapshot{Name: id, State: spec.Absent}
		return nil
	}, func(l *spec.State) error {
		i := slices.IndexFunc(l.Snapshots, func(s spec.Snapshot) bool { return s.Name == id && s.State == spec.Absent })
		if i < 0 || stillNamed(l, id) {
			// A volume's source still names it: the tombstone keeps the
			// name declared (it is used only when that volume is created).
			return errUnchanged
		}
		l.Snapshots = slices.Delete(l.Snapshots, i, i+1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

// forgetSnapshot drops a snapshot that could not be made (the pool is
// full). Best effort, as forget.
func (c *controller) forgetSnapshot(ctx context.Context, name string) {
	err := c.update(ctx, func(l *spec.State) error {
		i := slices.IndexFunc(l.Snapshots, func(s spec.Snapshot) bool { return s.Name == name })
		if i < 0 {
			return errUnchanged
		}
		l.Snapshots = slices.Delete(l.Snapshots, i, i+1)
		return nil
	})
	if err != nil {
		c.log.WarnContext(ctx, "could not drop the failed snapshot from the layer", "snapshot", name, "error", err)
	}
}

// stillNamed reports whether a volume's source or a present snapshot of l
// names name, so its tombstone must stay for the layer to load.
func stillNamed(l *spec.State, name string) bool {
	for _, v := range l.Volumes {
		if v.State != spec.Absent && v.From.Name() == name {
			return true
		}
	}
	for _, s := range l.Snapshots {
		if s.State != spec.Absent && s.Volume == name {
			return true
		}
	}
	return false
}

func (c *controller) ListSnapshots(ctx context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	if req.GetMaxEntries() < 0 {
		return nil, invalid("max_entries must not be negative")
	}
	st, err := c.desired(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range st.Snapshots {
		switch {
		case s.State == spec.Absent:
		case req.GetSnapshotId() != "" && s.Name != req.GetSnapshotId():
		case req.GetSourceVolumeId() != "" && s.Volume != req.GetSourceVolumeId():
		default:
			names = append(names, s.Name)
		}
	}
	slices.Sort(names)
	sel, next, err := page(names, req.GetStartingToken(), int(req.GetMaxEntries()))
	if err != nil {
		return nil, status.Errorf(codes.Aborted, "starting_token %q is not one this driver issued", req.GetStartingToken())
	}
	resp := &csi.ListSnapshotsResponse{NextToken: next}
	for _, n := range sel {
		resp.Entries = append(resp.Entries, &csi.ListSnapshotsResponse_Entry{Snapshot: csiSnapshot(st, st.Snapshot(n))})
	}
	return resp, nil
}

func (c *controller) GetSnapshot(ctx context.Context, req *csi.GetSnapshotRequest) (*csi.GetSnapshotResponse, error) {
	id := req.GetSnapshotId()
	if id == "" {
		return nil, invalid("snapshot id is required")
	}
	if !validSnapshotID(id) {
		return nil, status.Errorf(codes.NotFound, "snapshot %q does not exist", id)
	}
	st, err := c.desired(ctx)
	if err != nil {
		return nil, err
	}
	s := st.Snapshot(id)
	if s == nil || s.State == spec.Absent {
		return nil, status.Errorf(codes.NotFound, "snapshot %q does not exist", id)
	}
	return &csi.GetSnapshotResponse{Snapshot: csiSnapshot(st, s)}, nil
}

// contentSource turns CreateVolume's content source into the volume's
// source, with the size the copy has at least (the source volume's; a
// snapshot's is its volume's). A snapshot or volume that does not exist
// is NotFound, as the CSI spec asks.
func contentSource(st *spec.State, cs *csi.VolumeContentSource) (*spec.VolumeSource, int64, error) {
	if cs == nil {
		return nil, 0, nil
	}
	switch t := cs.GetType().(type) {
	case *csi.VolumeContentSource_Snapshot:
		id := t.Snapshot.GetSnapshotId()
		s := st.Snapshot(id)
		if id == "" || s == nil || s.State == spec.Absent {
			return nil, 0, status.Errorf(codes.NotFound, "snapshot %q does not exist", id)
		}
		var size int64
		if v := st.Volume(s.Volume); v != nil {
			size = v.Size.Bytes
		}
		return &spec.VolumeSource{Snapshot: id}, size, nil
	case *csi.VolumeContentSource_Volume:
		id := t.Volume.GetVolumeId()
		v := st.Volume(id)
		if id == "" || v == nil || v.State == spec.Absent {
			return nil, 0, status.Errorf(codes.NotFound, "volume %q does not exist", id)
		}
		return &spec.VolumeSource{Volume: id}, v.Size.Bytes, nil
	}
	return nil, 0, invalid("volume content source: give a snapshot or a volume")
}

// sourceSize settles the size of a volume copied from a source of
// srcSize bytes: never smaller than the source (a copy cannot shrink);
// without a capacity range the source's size, else the range must admit
// it (OutOfRange when its limit is below the source).
func sourceSize(size, srcSize int64, rng *csi.CapacityRange) (int64, error) {
	if srcSize > 0 && rng.GetRequiredBytes() == 0 && rng.GetLimitBytes() == 0 {
		return srcSize, nil // no size asked: the copy's own, not the default
	}
	if srcSize <= size {
		return size, nil
	}
	if lim := rng.GetLimitBytes(); lim > 0 && lim < srcSize {
		return 0, status.Errorf(codes.OutOfRange, "the source is %d bytes, more than the limit of %d", srcSize, lim)
	}
	return srcSize, nil
}

// sameSource reports whether an existing volume was made from src.
func sameSource(a, b *spec.VolumeSource) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// csiContentSource is a volume's source as CSI shows it, or nil.
func csiContentSource(from *spec.VolumeSource) *csi.VolumeContentSource {
	switch {
	case from == nil:
		return nil
	case from.Snapshot != "":
		return &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
			Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: from.Snapshot}}}
	}
	return &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{
		Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: from.Volume}}}
}
