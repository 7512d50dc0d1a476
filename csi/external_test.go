package csi

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
)

// externalEndpointEnv names a running driver (`rds-reconcile csi --mode
// all`) for TestExternalOnlineGrow; the e2e VM sets it to check online
// growth on the real kernel, which csi-sanity does not (it grows before
// staging).
const externalEndpointEnv = "RDS_CSI_TEST_ENDPOINT"

// TestExternalOnlineGrow: a mounted, published volume with data is grown
// by ControllerExpandVolume + NodeExpandVolume; the filesystem grows online
// and the data stays.
func TestExternalOnlineGrow(t *testing.T) {
	ep := os.Getenv(externalEndpointEnv)
	if ep == "" {
		t.Skip(externalEndpointEnv + " is not set (run against a live driver, e.g. in the e2e VM)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	conn := dial(t, ep)
	cc, nc := csi.NewControllerClient(conn), csi.NewNodeClient(conn)
	info, err := nc.NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	staging, target := filepath.Join(dir, "stage"), filepath.Join(dir, "target")
	vol, err := cc.CreateVolume(ctx, createReq("ext-grow", 32*mib, nil))
	if err != nil {
		t.Fatal(err)
	}
	id := vol.GetVolume().GetVolumeId()
	defer func() {
		_, _ = nc.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target})
		_, _ = nc.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging})
		_, _ = cc.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: id, NodeId: info.GetNodeId()})
		if _, err := cc.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}()
	if _, err := cc.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: id, NodeId: info.GetNodeId(), VolumeCapability: mountCap()}); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging,
		VolumeCapability: mountCap(), VolumeContext: vol.GetVolume().GetVolumeContext()}); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging,
		TargetPath: target, VolumeCapability: mountCap()}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "data"), []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	var before, after unix.Statfs_t
	if err := unix.Statfs(target, &before); err != nil {
		t.Fatal(err)
	}
	exp, err := cc.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: id,
		CapacityRange: &csi.CapacityRange{RequiredBytes: 96 * mib}, VolumeCapability: mountCap()})
	if err != nil || !exp.GetNodeExpansionRequired() {
		t.Fatalf("ControllerExpandVolume: %v %v", exp, err)
	}
	ne, err := nc.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: id, VolumePath: target, StagingTargetPath: staging,
		CapacityRange: &csi.CapacityRange{RequiredBytes: 96 * mib}, VolumeCapability: mountCap()})
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Statfs(target, &after); err != nil {
		t.Fatal(err)
	}
	b, a := before.Blocks*uint64(before.Bsize), after.Blocks*uint64(after.Bsize)
	t.Logf("device %d bytes; filesystem %d -> %d bytes", ne.GetCapacityBytes(), b, a)
	if ne.GetCapacityBytes() != 96*mib || a < 2*b {
		t.Errorf("after NodeExpandVolume: device %d bytes, filesystem %d -> %d bytes", ne.GetCapacityBytes(), b, a)
	}
	if got, err := os.ReadFile(filepath.Join(target, "data")); err != nil || string(got) != "kept" {
		t.Errorf("data after grow: %q %v", got, err)
	}
	h, err := nc.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{VolumeId: id})
	if err != nil || len(h.GetVolumeHealth().GetHealthStatuses()) != 0 {
		t.Errorf("health: %v %v", h, err)
	}
}
