package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func TestCSIFlagErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"csi", "--mode", "both", "--state-dir", t.TempDir()}, 2, `--mode "both"`},
		{[]string{"csi", "--mode", "controller", "--state-dir", t.TempDir()}, 2, "pass -f base.yaml"},
		{[]string{"csi", "--mode", "node", "--fabric", "none", "--state-dir", t.TempDir(), "--endpoint", "unix://" + t.TempDir() + "/s.sock"}, 1, "needs a host fabric"},
	} {
		var out, errb strings.Builder
		code := run(tt.args, strings.NewReader(""), &out, &errb)
		if code != tt.code || !strings.Contains(errb.String(), tt.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", tt.args, code, errb.String(), tt.code, tt.msg)
		}
	}
}

// TestCSICommand runs `rds-reconcile csi --mode all` against `rds-reconcile
// sim` and a simulated host, creates and publishes a volume over gRPC, and
// checks that `plan -f base -f <csi layer>` agrees there is nothing to do:
// the git layer and the CSI layer never fight.
func TestCSICommand(t *testing.T) {
	tg, _ := startSimCmd(t)
	dir := t.TempDir()
	base := filepath.Join(dir, "base.yaml")
	err := os.WriteFile(base, []byte(fmt.Sprintf(`apiVersion: rds-reconcile/v1
kind: State
target:
  address: 127.0.0.1
  basePath: %s
  ssh: {address: %q, user: %s, privateKeyFile: %q, knownHostsFile: %q}
`, tg.BasePath, tg.SSH.Address, tg.SSH.User, tg.SSH.PrivateKeyFile, tg.SSH.KnownHostsFile)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "csi.sock")
	stateDir := filepath.Join(dir, "state")
	fabricDir := filepath.Join(dir, "host")
	var out, errb syncBuffer
	root := newRootCmd(strings.NewReader(""), &out, &errb)
	root.SetArgs([]string{"csi", "--mode", "all", "--endpoint", "unix://" + sock, "--state-dir", stateDir,
		"-f", base, "--node-id", "node-a", "--host", "node-a", "--fabric", "sim:" + fabricDir})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("csi returned %v\n%s", err, errb.String())
			}
		case <-time.After(10 * time.Second):
			t.Error("csi did not stop on cancel")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("csi exited early: %v\n%s", err, errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket; stderr:\n%s", errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	info, err := csipb.NewIdentityClient(conn).GetPluginInfo(ctx, &csipb.GetPluginInfoRequest{})
	if err != nil || info.GetName() != "rds.csi.rds-reconcile.io" {
		t.Fatalf("GetPluginInfo: %v %v", info, err)
	}
	cc := csipb.NewControllerClient(conn)
	mount := &csipb.VolumeCapability{AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
		AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}
	if _, err := cc.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: "pvc-1", CapacityRange: &csipb.CapacityRange{RequiredBytes: 64 << 20},
		VolumeCapabilities: []*csipb.VolumeCapability{mount}, Parameters: map[string]string{"ctrlLossTmo": "120"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.ControllerPublishVolume(ctx, &csipb.ControllerPublishVolumeRequest{VolumeId: "pvc-1", NodeId: "node-a", VolumeCapability: mount}); err != nil {
		t.Fatal(err)
	}
	// Plan over both layers, RDS side only: connecting the published
	// volume is the node's job (NodeStage), not the plan's concern here.
	var pout, perr strings.Builder
	code := run([]string{"plan", "-f", base, "-f", filepath.Join(stateDir, "csi-volumes.yaml"), "--fabric", "none",
		"--host", "node-a", "--detailed-exitcode"}, strings.NewReader(""), &pout, &perr)
	if code != 0 || !strings.Contains(pout.String(), "No changes") {
		t.Errorf("plan over base + CSI layer: exit %d\n%s\n%s", code, pout.String(), perr.String())
	}
}
