package csi

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
)

// sanityAccessEnv selects the access type TestSanity runs with; Ginkgo runs
// one suite per process, so TestSanityBlock re-runs this test binary.
const sanityAccessEnv = "RDS_RECONCILE_SANITY_ACCESS"

// TestSanity runs csi-sanity against controller and node in one process
// (mode all): the RouterOS simulator over real SSH and the real reconcile
// engine behind the controller, the simulated NVMe host behind the node,
// loop devices standing in for the namespaces, and the real LinuxMounter
// (mkfs.ext4, mount(2)). It needs root for losetup and mount.
func TestSanity(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("csi-sanity needs root: the node formats and mounts loop devices")
	}
	if testing.Short() {
		t.Skip("csi-sanity is skipped with -short")
	}
	access := os.Getenv(sanityAccessEnv)
	if access == "" {
		access = "mount"
	}
	e := newEnv(t, 64<<30)
	addr, _, _ := e.serve(t, ModeAll)
	cfg := sanity.NewTestConfig()
	cfg.Address = addr
	cfg.TargetPath = filepath.Join(e.kubelet, "target")
	cfg.StagingPath = filepath.Join(e.kubelet, "staging")
	cfg.TestVolumeSize = 16 << 20
	cfg.TestVolumeExpandSize = 32 << 20
	cfg.TestVolumeAccessType = access
	cfg.IdempotentCount = 2
	cfg.TestVolumeParameters = map[string]string{ParamCtrlLossTmo: "60", ParamReconnectDelay: "2"}
	sanity.Test(t, cfg)
}

// TestSanityBlock runs the same suite with raw block volumes (no format, the
// device file bind-mounted onto a file target), in a child process.
func TestSanityBlock(t *testing.T) {
	if os.Getenv(sanityAccessEnv) != "" {
		t.Skip("running inside the child process")
	}
	if os.Geteuid() != 0 {
		t.Skip("csi-sanity needs root: the node uses loop devices and bind mounts")
	}
	if testing.Short() {
		t.Skip("csi-sanity is skipped with -short")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSanity$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), sanityAccessEnv+"=block")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestSanity") {
		t.Fatalf("block-mode csi-sanity: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "Passed") {
			t.Log(strings.TrimSpace(line))
		}
	}
}
