package csi

import (
	"context"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

func TestSnapshotName(t *testing.T) {
	tests := []struct{ csiName, prefix, want string }{
		{"snap-nightly", "", "snap-nightly"},
		{"pvc-snap-a", "pvc-", "pvc-snap-a"},
		{"snapshot-6f1b8a52-0c4e-4d2a-9a57-3f0d2c9e1a01", "", "snap-csi-"},
		{"snap-", "", "snap-csi-"},
		{"snap-csi-forged", "", "snap-csi-"},
		{"Snap_1", "", "snap-csi-"},
	}
	for _, tt := range tests {
		got := SnapshotName(tt.csiName, tt.prefix)
		if !strings.HasPrefix(got, tt.want) || (!strings.HasSuffix(tt.want, "-") && got != tt.want) || len(got) > spec.MaxVolumeNameLen {
			t.Errorf("SnapshotName(%q, %q) = %q, want %q...", tt.csiName, tt.prefix, got, tt.want)
		}
		if SnapshotName(tt.csiName, tt.prefix) != got {
			t.Errorf("SnapshotName(%q) is not stable", tt.csiName)
		}
	}
	// A volume name in the snapshots' name space is hashed, so a volume
	// never takes a snapshot's slot.
	if got := VolumeName("snap-x", ""); got == "snap-x" || spec.IsSnapshotName(got, "") {
		t.Errorf("VolumeName(snap-x) = %q", got)
	}
}

// TestSnapshotRestoreCloneOverSSH: the controller against the simulator
// over SSH: a snapshot is a disk of its own, never exported, listed; a
// restore and a clone are exported disks of their own; deleting the
// snapshot and the source volume leaves the copies; every call is
// idempotent and the errors are the CSI spec's.
func TestSnapshotRestoreCloneOverSSH(t *testing.T) {
	e := newEnv(t, 64<<30)
	_, conn, _ := e.serve(t, ModeController)
	cc := csi.NewControllerClient(conn)
	ctx := context.Background()
	src, err := cc.CreateVolume(ctx, createReq("pvc-src", 16*mib, nil))
	if err != nil {
		t.Fatal(err)
	}
	srcID := src.GetVolume().GetVolumeId()
	snapReq := &csi.CreateSnapshotRequest{Name: "snapshot-1", SourceVolumeId: srcID}
	snap, err := cc.CreateSnapshot(ctx, snapReq)
	if err != nil {
		t.Fatal(err)
	}
	s := snap.GetSnapshot()
	if !s.GetReadyToUse() || s.GetSizeBytes() != 16*mib || s.GetSourceVolumeId() != srcID || s.GetCreationTime().AsTime().IsZero() {
		t.Errorf("snapshot = %+v", s)
	}
	again, err := cc.CreateSnapshot(ctx, snapReq)
	if err != nil || again.GetSnapshot().GetSnapshotId() != s.GetSnapshotId() {
		t.Errorf("CreateSnapshot again: %v %+v", err, again)
	}
	other, err := cc.CreateVolume(ctx, createReq("pvc-other", 16*mib, nil))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cc.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "snapshot-1", SourceVolumeId: other.GetVolume().GetVolumeId()})
	wantCode(t, err, codes.AlreadyExists, "")
	_, err = cc.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "snapshot-2", SourceVolumeId: "pvc-nope"})
	wantCode(t, err, codes.NotFound, "")

	disks := map[string]bool{} // slot -> exported
	for _, d := range e.srv.Disks() {
		disks[d.Slot] = d.Export
	}
	if exported, ok := disks[s.GetSnapshotId()]; !ok || exported {
		t.Fatalf("snapshot disk %s: present %v exported %v (%v)", s.GetSnapshotId(), ok, exported, disks)
	}

	fromSnap := createReq("pvc-restored", 32*mib, nil)
	fromSnap.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
		Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: s.GetSnapshotId()}}}
	restored, err := cc.CreateVolume(ctx, fromSnap)
	if err != nil {
		t.Fatal(err)
	}
	if restored.GetVolume().GetContentSource().GetSnapshot().GetSnapshotId() != s.GetSnapshotId() || restored.GetVolume().GetCapacityBytes() != 32*mib {
		t.Errorf("restored = %+v", restored.GetVolume())
	}
	if _, err := cc.CreateVolume(ctx, fromSnap); err != nil {
		t.Errorf("restore again: %v", err)
	}
	clone := createReq("pvc-clone", 0, nil)
	clone.CapacityRange = nil // the source's size
	clone.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{
		Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: srcID}}}
	cl, err := cc.CreateVolume(ctx, clone)
	if err != nil {
		t.Fatal(err)
	}
	if cl.GetVolume().GetCapacityBytes() != 16*mib {
		t.Errorf("clone size %d, want the source's", cl.GetVolume().GetCapacityBytes())
	}
	small := createReq("pvc-small", 8*mib, nil)
	small.CapacityRange.LimitBytes = 8 * mib
	small.VolumeContentSource = clone.VolumeContentSource
	_, err = cc.CreateVolume(ctx, small)
	wantCode(t, err, codes.OutOfRange, "")
	missing := createReq("pvc-missing", 16*mib, nil)
	missing.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
		Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: "snap-nope"}}}
	_, err = cc.CreateVolume(ctx, missing)
	wantCode(t, err, codes.NotFound, "")

	got, err := cc.GetSnapshot(ctx, &csi.GetSnapshotRequest{SnapshotId: s.GetSnapshotId()})
	if err != nil || got.GetSnapshot().GetSourceVolumeId() != srcID {
		t.Errorf("GetSnapshot: %v %+v", err, got)
	}
	_, err = cc.GetSnapshot(ctx, &csi.GetSnapshotRequest{SnapshotId: "snap-nope"})
	wantCode(t, err, codes.NotFound, "")
	list, err := cc.ListSnapshots(ctx, &csi.ListSnapshotsRequest{SourceVolumeId: srcID})
	if err != nil || len(list.GetEntries()) != 1 {
		t.Fatalf("ListSnapshots by source: %v %+v", err, list)
	}
	// The source goes first, then the snapshot: the copies stay.
	if _, err := cc.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: srcID}); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: s.GetSnapshotId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: s.GetSnapshotId()}); err != nil {
		t.Errorf("DeleteSnapshot again: %v", err)
	}
	list, err = cc.ListSnapshots(ctx, &csi.ListSnapshotsRequest{})
	if err != nil || len(list.GetEntries()) != 0 {
		t.Errorf("ListSnapshots after delete: %v %+v", err, list)
	}
	disks = map[string]bool{}
	for _, d := range e.srv.Disks() {
		disks[d.Slot] = d.Export
	}
	for _, v := range []string{restored.GetVolume().GetVolumeId(), cl.GetVolume().GetVolumeId()} {
		if !disks[v] {
			t.Errorf("copy %s gone or not exported: %v", v, disks)
		}
	}
	if _, ok := disks[s.GetSnapshotId()]; ok {
		t.Errorf("snapshot disk still there: %v", disks)
	}
	if _, ok := disks[srcID]; ok {
		t.Errorf("source disk still there: %v", disks)
	}
	// The layer still loads: the tombstones the copies name are kept.
	if _, err := cc.ListVolumes(ctx, &csi.ListVolumesRequest{}); err != nil {
		t.Errorf("ListVolumes: %v", err)
	}
	caps, err := cc.ControllerGetCapabilities(ctx, &csi.ControllerGetCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, c := range caps.GetCapabilities() {
		have = append(have, c.GetRpc().GetType().String())
	}
	for _, want := range []string{"CREATE_DELETE_SNAPSHOT", "LIST_SNAPSHOTS", "GET_SNAPSHOT", "CLONE_VOLUME"} {
		if !strings.Contains(strings.Join(have, " "), want) {
			t.Errorf("capability %s not advertised: %v", want, have)
		}
	}
}

// TestCreateSnapshotPoolFull: a snapshot the pool cannot hold is
// ResourceExhausted and leaves nothing in the layer or on the RDS.
func TestCreateSnapshotPoolFull(t *testing.T) {
	e := newEnv(t, 40*mib) // the volume fits, its copy does not
	_, conn, _ := e.serve(t, ModeController)
	cc := csi.NewControllerClient(conn)
	ctx := context.Background()
	v, err := cc.CreateVolume(ctx, createReq("pvc-big", 24*mib, nil))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cc.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "snapshot-big", SourceVolumeId: v.GetVolume().GetVolumeId()})
	wantCode(t, err, codes.ResourceExhausted, "")
	list, err := cc.ListSnapshots(ctx, &csi.ListSnapshotsRequest{})
	if err != nil || len(list.GetEntries()) != 0 {
		t.Errorf("ListSnapshots: %v %+v", err, list)
	}
	if n := len(e.srv.Disks()); n != 1 {
		t.Errorf("%d disks on the RDS, want the volume only", n)
	}
}
