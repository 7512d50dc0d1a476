package csi

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/rds-reconcile/rds-reconcile/fabric"
)

func blockCap() *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
}

func connectedNQNs(t *testing.T, h fabric.Host) []string {
	t.Helper()
	cs, err := h.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cs {
		out = append(out, c.SubsysNQN)
	}
	slices.Sort(out)
	return out
}

// TestNodeRestart: the node layer in the state dir survives the plugin. A
// new plugin on the same dir reconnects a staged volume whose controller
// the kernel dropped, disconnects a managed controller nothing staged (the
// seed's startup orphan cleanup) and still serves the staged volume.
// Block access keeps it free of mount and root.
func TestNodeRestart(t *testing.T) {
	e := newEnv(t, 1<<30)
	nc := e.nodeConfig()
	nc.ResolveDevice = func(_ context.Context, volume string, _ fabric.Namespace) (string, error) {
		p := filepath.Join(e.dir, volume+".dev")
		return p, os.WriteFile(p, nil, 0o600)
	}
	d, err := New(Options{Mode: ModeAll, NodeID: e.nodeID, Controller: e.controllerConfig(), Node: nc})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	vol, err := d.controller.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-r", CapacityRange: &csi.CapacityRange{RequiredBytes: 8 * mib},
		VolumeCapabilities: []*csi.VolumeCapability{blockCap()}, Parameters: map[string]string{"ctrlLossTmo": "30"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.controller.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: "pvc-r", NodeId: e.nodeID, VolumeCapability: blockCap()}); err != nil {
		t.Fatal(err)
	}
	staging := filepath.Join(e.kubelet, "staging")
	if _, err := d.node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: "pvc-r", StagingTargetPath: staging,
		VolumeCapability: blockCap(), VolumeContext: vol.GetVolume().GetVolumeContext()}); err != nil {
		t.Fatal(err)
	}
	cs, _ := e.host.List(ctx)
	if len(cs) != 1 || cs[0].Timeouts.CtrlLossTmo != 30 {
		t.Fatalf("after stage: %+v, want one controller with ctrl_loss_tmo 30", cs)
	}

	// The plugin dies; meanwhile the kernel gives up the controller and
	// something else connects a managed subsystem nobody staged.
	if err := e.host.Disconnect(ctx, cs[0].Name, true); err != nil {
		t.Fatal(err)
	}
	hostNQN, _ := e.host.HostNQN(ctx)
	if _, err := e.host.Connect(ctx, fabric.ConnectRequest{NQN: testNQNPrefix + "stray", Address: "127.0.0.1", Port: 4420, HostNQN: hostNQN,
		Timeouts: fabric.Timeouts{CtrlLossTmo: -1, ReconnectDelay: 5}, DeviceWait: time.Second}); err != nil {
		t.Fatal(err)
	}

	d2, err := New(Options{Mode: ModeNode, NodeID: e.nodeID, Node: nc})
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := connectedNQNs(t, e.host); !slices.Equal(got, []string{testNQNPrefix + "pvc-r"}) {
		t.Errorf("after restart: connected %v, want only the staged volume", got)
	}
	h, err := d2.node.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{VolumeId: "pvc-r"})
	if err != nil || len(h.GetVolumeHealth().GetHealthStatuses()) != 0 {
		t.Errorf("health after restart: %v %v", h, err)
	}
	// The target goes away: the volume is reported inaccessible.
	if err := e.host.SetTargetDown("127.0.0.1", 4420, true); err != nil {
		t.Fatal(err)
	}
	h, err = d2.node.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{VolumeId: "pvc-r"})
	if err != nil || len(h.GetVolumeHealth().GetHealthStatuses()) != 1 ||
		h.GetVolumeHealth().GetHealthStatuses()[0].GetStatus() != csi.VolumeHealthErrorType_INACCESSIBLE {
		t.Errorf("health with the target down: %v %v", h, err)
	}
	if err := e.host.SetTargetDown("127.0.0.1", 4420, false); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := d2.node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: "pvc-r", StagingTargetPath: staging}); err != nil {
			t.Fatal(err)
		}
	}
	if got := connectedNQNs(t, e.host); len(got) != 0 {
		t.Errorf("after unstage: connected %v", got)
	}
	_, err = d2.node.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: "pvc-r", VolumePath: staging})
	wantCode(t, err, codes.NotFound, "not staged")
}

func TestNodeStageRejectsBadContext(t *testing.T) {
	e := newEnv(t, 1<<30)
	d, err := New(Options{Mode: ModeNode, NodeID: e.nodeID, Node: e.nodeConfig()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.node.NodeStageVolume(context.Background(), &csi.NodeStageVolumeRequest{VolumeId: "pvc-x", StagingTargetPath: filepath.Join(e.kubelet, "staging"),
		VolumeCapability: mountCap(), VolumeContext: map[string]string{CtxAddress: "10.0.0.1", CtxPort: "4420",
			CtxNQN: "nqn.2000-02.com.mikrotik:other", CtxNQNPrefix: "nqn.2000-02.com.mikrotik:", CtxBasePath: "p", CtxCtrlLossTmo: "-7"}})
	wantCode(t, err, codes.InvalidArgument, "ctrlLossTmo: -7 is out of range")
	if got := connectedNQNs(t, e.host); len(got) != 0 {
		t.Errorf("a rejected stage connected %v", got)
	}
}
