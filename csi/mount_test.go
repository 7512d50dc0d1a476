package csi

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"

	"github.com/rds-reconcile/rds-reconcile/fabric"
)

// TestNodeMountLifecycle drives one mount volume through the node with the
// real LinuxMounter on a loop device: format only when blank, data kept
// across unstage and stage, read-only publish, online grow, cleanup.
func TestNodeMountLifecycle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loop devices and mount(2)")
	}
	e := newEnv(t, 1<<30)
	_, conn, _ := e.serve(t, ModeAll)
	cc, nc := csi.NewControllerClient(conn), csi.NewNodeClient(conn)
	ctx := context.Background()
	vol, err := cc.CreateVolume(ctx, createReq("pvc-m", 16*mib, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: "pvc-m", NodeId: e.nodeID, VolumeCapability: mountCap()}); err != nil {
		t.Fatal(err)
	}
	staging, target := filepath.Join(e.kubelet, "stage"), filepath.Join(e.kubelet, "pod", "mnt")
	t.Cleanup(func() { // after a failure, leave no mount behind
		_ = unix.Unmount(target, unix.MNT_DETACH)
		_ = unix.Unmount(staging, unix.MNT_DETACH)
	})
	stage := func() {
		t.Helper()
		if _, err := nc.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: "pvc-m", StagingTargetPath: staging,
			VolumeCapability: mountCap(), VolumeContext: vol.GetVolume().GetVolumeContext()}); err != nil {
			t.Fatal(err)
		}
	}
	unstage := func() {
		t.Helper()
		if _, err := nc.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: "pvc-m", StagingTargetPath: staging}); err != nil {
			t.Fatal(err)
		}
	}
	// Someone put an ext3 filesystem with data on the volume before: it
	// must be mounted as it is, never reformatted to the requested ext4.
	// (The node resolves the same loop device once the volume is staged.)
	dev, err := e.loops.resolve(ctx, "pvc-m", fabric.Namespace{Size: 16 * mib})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext3", "-F", "-q", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext3: %v %s", err, out)
	}
	stage()
	if ok, _ := (LinuxMounter{}).IsMountPoint(staging); !ok {
		t.Fatal("staging path is not a mount point")
	}
	if fs, _ := (LinuxMounter{}).BlkidType(ctx, dev); fs != "ext3" {
		t.Fatalf("filesystem %q after stage, want the existing ext3", fs)
	}
	if err := os.WriteFile(filepath.Join(staging, "data"), []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	unstage()
	if ok, _ := (LinuxMounter{}).IsMountPoint(staging); ok {
		t.Fatal("still mounted after unstage")
	}
	stage()
	stage() // idempotent
	if b, err := os.ReadFile(filepath.Join(staging, "data")); err != nil || string(b) != "kept" {
		t.Fatalf("data after restage: %q %v", b, err)
	}

	// Read-only publish: writes through the target fail with EROFS.
	if _, err := nc.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "pvc-m", StagingTargetPath: staging,
		TargetPath: target, VolumeCapability: mountCap(), Readonly: true}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(target, "data")); err != nil || string(b) != "kept" {
		t.Fatalf("read through target: %q %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(target, "x"), nil, 0o600); !errors.Is(err, unix.EROFS) {
		t.Fatalf("write to a read-only publish: %v, want EROFS", err)
	}

	// Grow online: controller grows the disk, node rescans and resizes.
	// ext4 online resize needs CAP_SYS_RESOURCE, which some containers drop.
	if hasCap(t, capSysResource) {
		growOnline(t, cc, nc, target)
	} else {
		t.Log("no CAP_SYS_RESOURCE here: online filesystem grow not tested")
	}
	st, err := nc.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: "pvc-m", VolumePath: target})
	if err != nil || len(st.GetUsage()) != 2 || st.GetUsage()[0].GetTotal() <= 0 || st.GetUsage()[1].GetUnit() != csi.VolumeUsage_INODES {
		t.Errorf("stats: %v %v", st, err)
	}

	for range 2 {
		if _, err := nc.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "pvc-m", TargetPath: target}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target left after unpublish: %v", err)
	}
	unstage()
	if got := connectedNQNs(t, e.host); len(got) != 0 {
		t.Errorf("connected after unstage: %v", got)
	}
}

func growOnline(t *testing.T, cc csi.ControllerClient, nc csi.NodeClient, target string) {
	t.Helper()
	ctx := context.Background()
	var before unix.Statfs_t
	_ = unix.Statfs(target, &before)
	if _, err := cc.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: "pvc-m",
		CapacityRange: &csi.CapacityRange{RequiredBytes: 64 * mib}}); err != nil {
		t.Fatal(err)
	}
	// The simulated host learns the new size on rescan; the test's
	// resolver then grows the loop device, as the kernel would the namespace.
	ex, err := nc.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: "pvc-m", VolumePath: target})
	if err != nil {
		t.Fatal(err)
	}
	var after unix.Statfs_t
	_ = unix.Statfs(target, &after)
	if ex.GetCapacityBytes() != 64*mib || after.Blocks*uint64(after.Bsize) <= before.Blocks*uint64(before.Bsize)*3 {
		t.Errorf("after expand: capacity %d, filesystem %d -> %d bytes", ex.GetCapacityBytes(),
			before.Blocks*uint64(before.Bsize), after.Blocks*uint64(after.Bsize))
	}
}

const capSysResource = 24

// hasCap reports whether this process has capability bit c in effect.
func hasCap(t *testing.T, c uint) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && n&(1<<c) != 0
		}
	}
	return false
}
