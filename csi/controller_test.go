package csi

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

const mib = 1 << 20

func createReq(name string, size int64, params map[string]string) *csi.CreateVolumeRequest {
	return &csi.CreateVolumeRequest{Name: name, CapacityRange: &csi.CapacityRange{RequiredBytes: size},
		VolumeCapabilities: []*csi.VolumeCapability{mountCap()}, Parameters: params}
}

func wantCode(t *testing.T, err error, code codes.Code, msgPart string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want code %v", err, code)
	}
	if msgPart != "" && !strings.Contains(status.Convert(err).Message(), msgPart) {
		t.Fatalf("message %q does not mention %q", status.Convert(err).Message(), msgPart)
	}
}

// TestParallelCreateVolume: 50 concurrent creates of different volumes all
// land in the layer file and on the RDS; the per-volume locks and the
// store's flock lose nothing.
func TestParallelCreateVolume(t *testing.T) {
	e := newEnv(t, 64<<30)
	_, conn, _ := e.serve(t, ModeController)
	cc := csi.NewControllerClient(conn)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := cc.CreateVolume(context.Background(), createReq(fmt.Sprintf("pvc-%02d", i), 8*mib, nil))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	layer, err := spec.OpenStore(e.controllerConfig().Layer.Name()).Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(layer.Volumes) != n {
		t.Errorf("layer holds %d volumes, want %d", len(layer.Volumes), n)
	}
	inv, err := e.client.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Disks) != n {
		t.Errorf("RDS holds %d disks, want %d", len(inv.Disks), n)
	}
	// The whole truth loads as `plan -f base -f layer` would read it.
	if _, err := spec.Load(e.base, e.controllerConfig().Layer.Name()); err != nil {
		t.Errorf("base + layer do not load: %v", err)
	}
}

func TestCreateVolumeRules(t *testing.T) {
	e := newEnv(t, 64*mib)
	_, conn, _ := e.serve(t, ModeController)
	cc := csi.NewControllerClient(conn)
	ctx := context.Background()

	r, err := cc.CreateVolume(ctx, createReq("pvc-a", 10*mib+1, map[string]string{"ctrlLossTmo": "60"}))
	if err != nil {
		t.Fatal(err)
	}
	v := r.GetVolume()
	if v.GetCapacityBytes() != 11*mib {
		t.Errorf("capacity %d, want 11 MiB (rounded up to 1 MiB)", v.GetCapacityBytes())
	}
	for k, want := range map[string]string{CtxAddress: "127.0.0.1", CtxPort: "4420", CtxNQN: testNQNPrefix + "pvc-a",
		CtxCtrlLossTmo: "60", CtxReconnectDelay: "5", CtxKeepAliveTmo: "0", CtxFSType: "ext4"} {
		if got := v.GetVolumeContext()[k]; got != want {
			t.Errorf("volume context %s = %q, want %q", k, got, want)
		}
	}
	// Idempotent by name with the same request...
	r2, err := cc.CreateVolume(ctx, createReq("pvc-a", 10*mib+1, map[string]string{"ctrlLossTmo": "60"}))
	if err != nil || r2.GetVolume().GetVolumeId() != v.GetVolumeId() {
		t.Fatalf("repeat: %v %v", r2, err)
	}
	// ...AlreadyExists with other parameters or a size outside the range.
	_, err = cc.CreateVolume(ctx, createReq("pvc-a", 10*mib, map[string]string{"ctrlLossTmo": "61"}))
	wantCode(t, err, codes.AlreadyExists, "other parameters")
	_, err = cc.CreateVolume(ctx, createReq("pvc-a", 20*mib, map[string]string{"ctrlLossTmo": "60"}))
	wantCode(t, err, codes.AlreadyExists, "outside the requested range")
	_, err = cc.CreateVolume(ctx, createReq("pvc-b", 10*mib, map[string]string{"reconnectDelay": "0"}))
	wantCode(t, err, codes.InvalidArgument, "reconnectDelay: 0 is out of range")
	_, err = cc.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-b", VolumeCapabilities: []*csi.VolumeCapability{mountCap()},
		CapacityRange: &csi.CapacityRange{RequiredBytes: mib + 1, LimitBytes: mib + 2}})
	wantCode(t, err, codes.OutOfRange, "")
	// A git-declared volume is not CSI's.
	_, err = cc.CreateVolume(ctx, createReq("git-owned", 16*mib, nil))
	wantCode(t, err, codes.AlreadyExists, "base.yaml")
	_, err = cc.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: "git-owned"})
	wantCode(t, err, codes.FailedPrecondition, "only that file can delete it")

	// The pool (64 MiB) cannot hold 60 MiB more: ResourceExhausted, and
	// the layer forgets the volume so nothing keeps asking for it.
	_, err = cc.CreateVolume(ctx, createReq("pvc-big", 60*mib, nil))
	wantCode(t, err, codes.ResourceExhausted, "")
	layer, err := spec.OpenStore(e.controllerConfig().Layer.Name()).Read()
	if err != nil {
		t.Fatal(err)
	}
	if layer.Volume("pvc-big") != nil {
		t.Error("the volume that did not fit stayed in the layer")
	}
	// Expanding past the pool fails the same way and keeps the old size.
	_, err = cc.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: "pvc-a", CapacityRange: &csi.CapacityRange{RequiredBytes: 100 * mib}})
	wantCode(t, err, codes.ResourceExhausted, "")
	layer, _ = spec.OpenStore(e.controllerConfig().Layer.Name()).Read()
	if got := layer.Volume("pvc-a").Size.Bytes; got != 11*mib {
		t.Errorf("size after a failed grow = %d, want 11 MiB", got)
	}

	// Publish: unknown nodes are NotFound; a published volume cannot be
	// deleted; unpublish and delete are idempotent; the tombstone goes.
	_, err = cc.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: "pvc-a", NodeId: "nowhere", VolumeCapability: mountCap()})
	wantCode(t, err, codes.NotFound, "not a declared host")
	if err := addHost(e, "node-x"); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: "pvc-a", NodeId: "node-x", VolumeCapability: mountCap()}); err != nil {
		t.Fatal(err)
	}
	gv, err := cc.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: "pvc-a"})
	// The host's name and the node id this version's node plugin reports.
	if err != nil || strings.Join(gv.GetStatus().GetPublishedNodeIds(), ",") != "node-x,node-x@nqn.2014-08.org.nvmexpress:uuid:0d6e3b1c-0000-4000-8000-000000000001" {
		t.Errorf("ControllerGetVolume: %v %v", gv, err)
	}
	_, err = cc.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: "pvc-a"})
	wantCode(t, err, codes.FailedPrecondition, "still published")
	for range 2 {
		if _, err := cc.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: "pvc-a", NodeId: "node-x"}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := cc.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: "pvc-a"}); err != nil {
			t.Fatal(err)
		}
	}
	layer, _ = spec.OpenStore(e.controllerConfig().Layer.Name()).Read()
	if len(layer.Volumes) != 0 {
		t.Errorf("layer after delete: %+v", layer.Volumes)
	}
	if d, _ := e.client.Get(ctx, "pvc-a"); d != nil {
		t.Errorf("disk still on the RDS: %+v", d)
	}
}

// addHost declares a host in the base state, as an operator would.
func addHost(e *env, name string) error {
	b, err := os.ReadFile(e.base)
	if err != nil {
		return err
	}
	b = append(b, fmt.Sprintf("hosts:\n  %s: {hostNQN: \"nqn.2014-08.org.nvmexpress:uuid:%s\"}\n", name, "0d6e3b1c-0000-4000-8000-000000000001")...)
	return os.WriteFile(e.base, b, 0o600)
}

func TestMetricsAndCapacity(t *testing.T) {
	e := newEnv(t, 64*mib)
	reg := prometheus.NewPedanticRegistry()
	d, err := New(Options{Mode: ModeController, Controller: e.controllerConfig(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lis, err := Listen("unix://" + e.dir + "/m.sock")
	if err != nil {
		t.Fatal(err)
	}
	go d.Serve(ctx, lis)
	cc := csi.NewControllerClient(dial(t, "unix://"+e.dir+"/m.sock"))
	capResp, err := cc.GetCapacity(ctx, &csi.GetCapacityRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if capResp.GetAvailableCapacity() != 64*mib {
		t.Errorf("available %d, want 64 MiB", capResp.GetAvailableCapacity())
	}
	_, _ = cc.CreateVolume(ctx, &csi.CreateVolumeRequest{})
	_, _ = cc.CreateVolume(ctx, createReq("pvc-m", 4*mib, nil))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := []string{mf.GetName()}
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := strings.Join(labels, " ")
			if m.GetCounter() != nil {
				got[key] = m.GetCounter().GetValue()
			} else if m.GetHistogram() != nil {
				got[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	for key, want := range map[string]float64{
		"rds_reconcile_csi_operations_total code=InvalidArgument method=CreateVolume": 1,
		"rds_reconcile_csi_operations_total code=OK method=CreateVolume":              1,
		"rds_reconcile_csi_operations_total code=OK method=GetCapacity":               1,
		"rds_reconcile_csi_operation_duration_seconds method=CreateVolume":            2,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v (all: %v)", key, got[key], want, got)
		}
	}
}
