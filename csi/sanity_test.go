package csi

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
)

// TestSanity runs csi-sanity against controller and node in one process
// (mode all): the RouterOS simulator over real SSH behind the controller,
// the simulated NVMe host behind the node, loop devices standing in for the
// namespaces, and the real LinuxMounter (mkfs.ext4, mount(2)). It needs
// root for losetup and mount.
func TestSanity(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("csi-sanity needs root: the node formats and mounts loop devices")
	}
	if testing.Short() {
		t.Skip("csi-sanity takes a while; skipped with -short")
	}
	e := newEnv(t, 64<<30)
	addr, _, _ := e.serve(t, ModeAll)
	cfg := sanity.NewTestConfig()
	cfg.Address = addr
	cfg.TargetPath = filepath.Join(e.dir, "target")
	cfg.StagingPath = filepath.Join(e.dir, "staging")
	cfg.TestVolumeSize = 16 << 20
	cfg.TestVolumeExpandSize = 32 << 20
	cfg.IdempotentCount = 2
	cfg.TestVolumeParameters = map[string]string{ParamCtrlLossTmo: "60", ParamReconnectDelay: "2"}
	sanity.Test(t, cfg)
}
