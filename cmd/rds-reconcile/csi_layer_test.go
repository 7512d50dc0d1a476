package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rds-reconcile/rds-reconcile/kube"
	"github.com/rds-reconcile/rds-reconcile/kube/kubetest"
)

const nodeANQN = "nqn.2014-08.org.nvmexpress:uuid:0a0a0a0a-0000-4000-8000-00000000000a"

// csiProc is one `rds-reconcile csi` run in-process that a test can stop
// (a controller pod deleted).
type csiProc struct {
	errb *syncBuffer
	cc   csipb.ControllerClient
	stop func()
}

func startCSIProc(t *testing.T, args ...string) *csiProc {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "csi.sock")
	var out, errb syncBuffer
	root := newRootCmd(strings.NewReader(""), &out, &errb)
	root.SetArgs(append([]string{"csi", "--endpoint", "unix://" + sock}, args...))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("csi returned %v\n%s", err, errb.String())
			}
		case <-time.After(10 * time.Second):
			t.Error("csi did not stop on cancel")
		}
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("csi exited early: %v\n%s", err, errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket; stderr:\n%s", errb.String())
		}
	}
	// The socket file exists from bind(2), a moment before listen(2): wait
	// for readiness instead of failing an RPC with "connection refused".
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &csiProc{errb: &errb, cc: csipb.NewControllerClient(conn), stop: stop}
}

// TestCSIConfigMapLayer: the controller keeps its layer in a ConfigMap.
// An old layer file is imported once; the controller is stopped and a new
// one started with an empty state dir (a pod rescheduled to another node)
// keeps every volume, and deletes, expansions and publishes of the old
// volumes work; csi-layer writes the layer for plan, which then has nothing
// to do.
func TestCSIConfigMapLayer(t *testing.T) {
	tg, _ := startSimCmd(t)
	api := kubetest.New()
	defer api.Close()
	api.Token = "tok-never-logged-7f3a"
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	if err := api.WriteKubeconfig(kc); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "base.yaml")
	if err := os.WriteFile(base, []byte(fmt.Sprintf(`apiVersion: rds-reconcile/v1
kind: State
target:
  address: 127.0.0.1
  basePath: %s
  ssh: {address: %q, user: %s, privateKeyFile: %q, knownHostsFile: %q}
hosts:
  node-a: {hostNQN: %q}
`, tg.BasePath, tg.SSH.Address, tg.SSH.User, tg.SSH.PrivateKeyFile, tg.SSH.KnownHostsFile, nodeANQN)), 0o600); err != nil {
		t.Fatal(err)
	}
	// The layer file an older version kept in its state dir (on a PVC).
	oldDir := filepath.Join(dir, "old-state")
	if err := os.MkdirAll(oldDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(oldDir, "csi-volumes.yaml"), []byte(`apiVersion: rds-reconcile/v1
kind: State
volumes:
  - name: pvc-old
    size: 64Mi
`), 0o600); err != nil {
		t.Fatal(err)
	}
	layer := "configmap://rds-reconcile/rds-csi-volumes"
	args := func(stateDir string) []string {
		return []string{"--mode", "controller", "--state-dir", stateDir, "-f", base, "--layer", layer, "--kubeconfig", kc}
	}
	ctx := context.Background()
	mount := &csipb.VolumeCapability{AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
		AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}
	create := func(p *csiProc, name string) {
		t.Helper()
		if _, err := p.cc.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: name, CapacityRange: &csipb.CapacityRange{RequiredBytes: 64 << 20},
			VolumeCapabilities: []*csipb.VolumeCapability{mount}}); err != nil {
			t.Fatalf("CreateVolume %s: %v", name, err)
		}
	}
	publish := func(p *csiProc, name string) {
		t.Helper()
		if _, err := p.cc.ControllerPublishVolume(ctx, &csipb.ControllerPublishVolumeRequest{VolumeId: name, NodeId: "node-a", VolumeCapability: mount}); err != nil {
			t.Fatalf("ControllerPublish %s: %v", name, err)
		}
	}
	list := func(p *csiProc) []string {
		t.Helper()
		resp, err := p.cc.ListVolumes(ctx, &csipb.ListVolumesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range resp.GetEntries() {
			// Each host is reported by name and by <name>@<host NQN>.
			var hosts []string
			for _, id := range e.GetStatus().GetPublishedNodeIds() {
				name, nqn, long := strings.Cut(id, "@")
				if long && nqn != nodeANQN {
					t.Errorf("%s: published node id %q, want the host's NQN %s", e.GetVolume().GetVolumeId(), id, nodeANQN)
				}
				if !long {
					hosts = append(hosts, name)
				}
			}
			out = append(out, e.GetVolume().GetVolumeId()+"@"+strings.Join(hosts, ","))
		}
		return out
	}

	first := startCSIProc(t, args(oldDir)...)
	if !strings.Contains(first.errb.String(), "imported the CSI layer file into the ConfigMap") {
		t.Errorf("the import is not logged:\n%s", first.errb.String())
	}
	if _, err := os.Stat(filepath.Join(oldDir, "csi-volumes.yaml.imported")); err != nil {
		t.Errorf("the imported file was not renamed: %v", err)
	}
	create(first, "pvc-old") // the imported volume, made on the RDS
	for i := range 6 {
		create(first, fmt.Sprintf("pvc-%d", i))
	}
	for _, n := range []string{"pvc-old", "pvc-0", "pvc-1"} {
		publish(first, n)
	}
	want := []string{"pvc-0@node-a", "pvc-1@node-a", "pvc-2@", "pvc-3@", "pvc-4@", "pvc-5@", "pvc-old@node-a"}
	if got := list(first); !slices.Equal(got, want) {
		t.Fatalf("first controller lists %v, want %v", got, want)
	}
	first.stop() // the pod is deleted; its filesystem goes with it

	second := startCSIProc(t, args(filepath.Join(t.TempDir(), "empty-state"))...)
	if got := list(second); !slices.Equal(got, want) {
		t.Fatalf("after the restart with an empty state dir: %v, want %v", got, want)
	}
	if _, err := second.cc.ControllerUnpublishVolume(ctx, &csipb.ControllerUnpublishVolumeRequest{VolumeId: "pvc-old", NodeId: "node-a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := second.cc.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: "pvc-old"}); err != nil {
		t.Fatal(err)
	}
	if _, err := second.cc.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: "pvc-2"}); err != nil {
		t.Fatal(err)
	}
	resp, err := second.cc.ControllerExpandVolume(ctx, &csipb.ControllerExpandVolumeRequest{VolumeId: "pvc-3",
		CapacityRange: &csipb.CapacityRange{RequiredBytes: 128 << 20}, VolumeCapability: mount})
	if err != nil || resp.GetCapacityBytes() != 128<<20 {
		t.Fatalf("expand: %v %v", resp, err)
	}
	publish(second, "pvc-4")
	want = []string{"pvc-0@node-a", "pvc-1@node-a", "pvc-3@", "pvc-4@node-a", "pvc-5@"}
	if got := list(second); !slices.Equal(got, want) {
		t.Errorf("after deletes, expand, publish: %v, want %v", got, want)
	}

	// The workstation: csi-layer writes the layer, plan over base + layer
	// has nothing to do on the RDS.
	layerFile := filepath.Join(dir, "csi-volumes.yaml")
	code, out, errOut := runCLI(t, "csi-layer", "--layer", layer, "--kubeconfig", kc, "-o", layerFile)
	if code != 0 {
		t.Fatalf("csi-layer: exit %d\n%s%s", code, out, errOut)
	}
	data, err := os.ReadFile(layerFile)
	if err != nil || !strings.Contains(string(data), "size: 128Mi") || strings.Contains(string(data), "pvc-old") {
		t.Errorf("csi-layer wrote %q, %v", data, err)
	}
	if api.Data("rds-reconcile", "rds-csi-volumes")[kube.LayerKey] != string(data) {
		t.Error("csi-layer did not write the ConfigMap's layer as it is")
	}
	code, out, errOut = runCLI(t, "plan", "-f", base, "-f", layerFile, "--fabric", "none", "--host", "node-a", "--detailed-exitcode")
	if code != 0 || !strings.Contains(out, "No changes") {
		t.Errorf("plan over base + the ConfigMap's layer: exit %d\n%s\n%s", code, out, errOut)
	}
	if api.Count("unconditional") != 0 {
		t.Errorf("%d updates without resourceVersion", api.Count("unconditional"))
	}
	for _, log := range []string{first.errb.String(), second.errb.String(), errOut} {
		if strings.Contains(log, api.Token) {
			t.Errorf("the token reached a log:\n%s", log)
		}
	}
}

func TestCSILayerFlagErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"csi", "--mode", "node", "--state-dir", dir, "--layer", "configmap://a/b"}, "--layer and --kubeconfig are the controller's"},
		{[]string{"csi", "--mode", "controller", "--state-dir", dir, "-f", demo, "--layer", "/tmp/x.yaml"}, "give configmap://NAMESPACE/NAME"},
		{[]string{"csi", "--mode", "controller", "--state-dir", dir, "-f", demo, "--layer", "configmap://A/b"}, "not a Kubernetes namespace name"},
		{[]string{"csi", "--mode", "controller", "--state-dir", dir, "-f", demo, "--kubeconfig", "kc"}, "--kubeconfig goes with --layer"},
		{[]string{"csi-layer", "--layer", "configmap://a/b", "--kubeconfig", filepath.Join(dir, "missing")}, "kubeconfig"},
	} {
		code, _, errOut := runCLI(t, tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, errOut, tc.want)
		}
	}
}
