package csi

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	fabsim "github.com/rds-reconcile/rds-reconcile/fabric/sim"
	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// healthOf flattens health entries to "STATUS: reason" lines.
func healthOf(hs []*csi.VolumeHealth_VolumeHealthEntry) string {
	var out []string
	for _, h := range hs {
		out = append(out, h.GetStatus().String()+": "+h.GetReason())
	}
	return strings.Join(out, "\n")
}

// editFabric changes the simulated kernel's state file the way the kernel
// would change sysfs under the plugin (a reset, a teardown, a namespace
// that goes away): fn edits each controller's JSON.
func editFabric(t *testing.T, h *fabsim.Host, fn func(c map[string]any)) {
	t.Helper()
	p := filepath.Join(h.Dir(), fabsim.StateFile)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	for _, c := range st["controllers"].([]any) {
		fn(c.(map[string]any))
	}
	if b, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestNodeVolumeHealth: NodeGetVolumeHealth of a staged block volume on the
// fabric simulator, for every reason it reports the volume abnormal, and
// healthy again once the reason is gone.
func TestNodeVolumeHealth(t *testing.T) {
	e := newEnv(t, 1<<30)
	nc := e.nodeConfig()
	dev := filepath.Join(e.dir, "pvc-h.dev")
	nc.ResolveDevice = func(context.Context, string, fabric.Namespace) (string, error) { return dev, nil }
	d, err := New(Options{Mode: ModeAll, NodeID: e.nodeID, Controller: e.controllerConfig(), Node: nc})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	vol, err := d.controller.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-h", CapacityRange: &csi.CapacityRange{RequiredBytes: 8 * mib},
		VolumeCapabilities: []*csi.VolumeCapability{blockCap()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.controller.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: "pvc-h", NodeId: e.nodeID, VolumeCapability: blockCap()}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	staging := filepath.Join(e.kubelet, "staging")
	if _, err := d.node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: "pvc-h", StagingTargetPath: staging,
		VolumeCapability: blockCap(), VolumeContext: vol.GetVolume().GetVolumeContext()}); err != nil {
		t.Fatal(err)
	}
	setState := func(s fabric.State) func(*testing.T) {
		return func(t *testing.T) { editFabric(t, e.host, func(c map[string]any) { c["state"] = string(s) }) }
	}
	snapshot, err := os.ReadFile(filepath.Join(e.host.Dir(), fabsim.StateFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		cause func(*testing.T)
		want  string // "" = healthy
	}{
		{"healthy", func(*testing.T) {}, ""},
		{"target down: connecting", func(t *testing.T) {
			if err := e.host.SetTargetDown("127.0.0.1", 4420, true); err != nil {
				t.Fatal(err)
			}
		}, "INACCESSIBLE: NVMe controller nvme0 is connecting: the kernel is reconnecting"},
		{"resetting", setState(fabric.StateResetting), "INACCESSIBLE: NVMe controller nvme0 is resetting: the kernel is resetting it"},
		{"deleting", setState(fabric.StateDeleting), "INACCESSIBLE: NVMe controller nvme0 is deleting: the kernel is tearing it down"},
		{"deleting (no IO)", setState(fabric.StateDeletingNoIO), "INACCESSIBLE: NVMe controller nvme0 is deleting (no IO): the kernel is tearing it down"},
		{"dead", setState(fabric.StateDead), "INACCESSIBLE: NVMe controller nvme0 is dead: the kernel gave up on it"},
		{"namespace gone", func(t *testing.T) {
			editFabric(t, e.host, func(c map[string]any) { c["namespaces"] = []any{} })
		}, "INACCESSIBLE: NVMe controller nvme0 is live but its namespace is gone"},
		{"device missing", func(t *testing.T) {
			if err := os.Remove(dev); err != nil {
				t.Fatal(err)
			}
		}, "INACCESSIBLE: the block device of namespace nvme0n1 is missing: " + dev + " does not exist"},
		{"not connected", func(t *testing.T) {
			if err := e.host.Disconnect(ctx, "nvme0", true); err != nil {
				t.Fatal(err)
			}
		}, `INACCESSIBLE: volume "pvc-h" (` + testNQNPrefix + `pvc-h) is not connected`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cause(t)
			t.Cleanup(func() {
				if err := e.host.SetTargetDown("127.0.0.1", 4420, false); err != nil {
					t.Error(err)
				}
				if err := os.WriteFile(filepath.Join(e.host.Dir(), fabsim.StateFile), snapshot, 0o600); err != nil {
					t.Error(err)
				}
				if err := os.WriteFile(dev, nil, 0o600); err != nil {
					t.Error(err)
				}
			})
			h, err := d.node.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{VolumeId: "pvc-h"})
			if err != nil {
				t.Fatal(err)
			}
			got := healthOf(h.GetVolumeHealth().GetHealthStatuses())
			if (tc.want == "") != (got == "") || !strings.HasPrefix(got, tc.want) {
				t.Errorf("health %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRDSHealthTable(t *testing.T) {
	st := &spec.State{Target: &spec.Target{NQNPrefix: testNQNPrefix}}
	v := &spec.Volume{Name: "pvc-x", Size: spec.Quantity{Bytes: 16 * mib}}
	good := rds.Disk{Slot: "pvc-x", Export: true, NQN: testNQNPrefix + "pvc-x", Size: 16 * mib}
	with := func(fn func(*rds.Disk)) rds.Inventory {
		d := good
		fn(&d)
		return rds.Inventory{Disks: []rds.Disk{d}}
	}
	for _, tc := range []struct {
		name string
		inv  rds.Inventory
		want string
	}{
		{"healthy", with(func(*rds.Disk) {}), ""},
		{"disk missing", rds.Inventory{Disks: []rds.Disk{{Slot: "pvc-y", Export: true}}}, "INACCESSIBLE: the RDS has no disk pvc-x"},
		{"export off", with(func(d *rds.Disk) { d.Export = false }), "INACCESSIBLE: disk pvc-x is not exported over NVMe/TCP (nvme-tcp-export=no)"},
		{"wrong NQN", with(func(d *rds.Disk) { d.NQN = testNQNPrefix + "other" }), "INACCESSIBLE: disk pvc-x is exported as " + testNQNPrefix + "other, not " + testNQNPrefix + "pvc-x"},
		{"smaller than declared", with(func(d *rds.Disk) { d.Size = 8 * mib }), "DEGRADED: disk pvc-x has 8388608 bytes, less than the 16777216 declared"},
		{"export off and small", with(func(d *rds.Disk) { d.Export, d.Size = false, 8*mib }), "INACCESSIBLE: disk pvc-x is not exported over NVMe/TCP (nvme-tcp-export=no): no node can connect\nDEGRADED: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := healthOf(rdsHealth(st, v, tc.inv))
			if (tc.want == "") != (got == "") || !strings.HasPrefix(got, tc.want) {
				t.Errorf("health %q, want %q", got, tc.want)
			}
		})
	}
}

// TestControllerVolumeHealth: with the RDS inventory the controller
// advertises GET_VOLUME_HEALTH and LIST_VOLUME_HEALTH and reports, over SSH
// against the simulator, a disk removed or re-exported behind its back.
func TestControllerVolumeHealth(t *testing.T) {
	e := newEnv(t, 1<<30)
	cfg := e.controllerConfig()
	cfg.Inventory = e.client
	_, conn, _ := e.serveWith(t, cfg)
	cc := csi.NewControllerClient(conn)
	ctx := context.Background()
	caps, err := cc.ControllerGetCapabilities(ctx, &csi.ControllerGetCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[csi.ControllerServiceCapability_RPC_Type]bool{}
	for _, c := range caps.GetCapabilities() {
		have[c.GetRpc().GetType()] = true
	}
	if !have[csi.ControllerServiceCapability_RPC_GET_VOLUME_HEALTH] || !have[csi.ControllerServiceCapability_RPC_LIST_VOLUME_HEALTH] {
		t.Errorf("capabilities %v lack the volume health ones", caps.GetCapabilities())
	}
	for _, n := range []string{"pvc-1", "pvc-2", "pvc-3"} {
		if _, err := cc.CreateVolume(ctx, createReq(n, 8*mib, nil)); err != nil {
			t.Fatal(err)
		}
	}
	get := func(id string) string {
		t.Helper()
		r, err := cc.ControllerGetVolumeHealth(ctx, &csi.ControllerGetVolumeHealthRequest{VolumeId: id})
		if err != nil {
			t.Fatal(err)
		}
		return healthOf(r.GetVolumeHealth().GetHealthStatuses())
	}
	if got := get("pvc-1"); got != "" {
		t.Errorf("fresh volume: %q", got)
	}
	// Behind the driver's back: pvc-1's disk is deleted, pvc-2 exported
	// under another name.
	if err := e.client.Delete(ctx, "pvc-1", "storage-pool/volumes/pvc-1.img"); err != nil {
		t.Fatal(err)
	}
	if err := e.client.SetExport(ctx, rds.ExportRequest{Slot: "pvc-2", Port: 4420, NQN: testNQNPrefix + "elsewhere"}); err != nil {
		t.Fatal(err)
	}
	if got := get("pvc-1"); !strings.HasPrefix(got, "INACCESSIBLE: the RDS has no disk pvc-1") {
		t.Errorf("deleted disk: %q", got)
	}
	before := e.client.RoundTrips()
	var entries []*csi.VolumeHealth
	token := ""
	for {
		r, err := cc.ControllerListVolumeHealth(ctx, &csi.ControllerListVolumeHealthRequest{MaxEntries: 2, StartingToken: token})
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, r.GetEntries()...)
		if token = r.GetNextToken(); token == "" {
			break
		}
	}
	if n := e.client.RoundTrips() - before; n != 2 {
		t.Errorf("%d RDS round trips for 2 pages, want one per page", n)
	}
	var got []string
	for _, h := range entries {
		got = append(got, h.GetVolumeId()+" "+healthOf(h.GetHealthStatuses()))
	}
	want := []string{"git-owned INACCESSIBLE: the RDS has no disk git-owned", "pvc-1 INACCESSIBLE: the RDS has no disk pvc-1",
		"pvc-2 INACCESSIBLE: disk pvc-2 is exported as " + testNQNPrefix + "elsewhere", "pvc-3 "}
	if len(got) != len(want) {
		t.Fatalf("entries %q, want %q", got, want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("entry %d: %q, want %q...", i, got[i], want[i])
		}
	}
	_, err = cc.ControllerGetVolumeHealth(ctx, &csi.ControllerGetVolumeHealthRequest{VolumeId: "pvc-none"})
	wantCode(t, err, codes.NotFound, "does not exist")
	_, err = cc.ControllerGetVolumeHealth(ctx, &csi.ControllerGetVolumeHealthRequest{})
	wantCode(t, err, codes.InvalidArgument, "volume id")
}
