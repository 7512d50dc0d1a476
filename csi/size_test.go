package csi

import (
	"context"
	"math"
	"strconv"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

// TestSizeForEdges: requests at the edges of the size range round up to
// MiB or are refused as OutOfRange; none is cut to a smaller size.
func TestSizeForEdges(t *testing.T) {
	const maxSize = spec.MaxVolumeSize
	tests := []struct {
		req, lim int64
		want     int64
		code     codes.Code
	}{
		{0, 0, 1 << 30, codes.OK},
		{1, 0, mib, codes.OK},
		{mib - 1, 0, mib, codes.OK},
		{maxSize - 1, 0, maxSize, codes.OK},
		{maxSize, 0, maxSize, codes.OK},
		{maxSize, math.MaxInt64, maxSize, codes.OK},
		{maxSize + 1, 0, 0, codes.OutOfRange},
		{math.MaxInt64 - mib + 2, 0, 0, codes.OutOfRange}, // rounding up would wrap
		{math.MaxInt64, 0, 0, codes.OutOfRange},
		{math.MaxInt64, math.MaxInt64, 0, codes.OutOfRange},
		{0, math.MaxInt64, 1 << 30, codes.OK},
	}
	for _, tt := range tests {
		got, err := sizeFor(&csi.CapacityRange{RequiredBytes: tt.req, LimitBytes: tt.lim}, 1<<30)
		if status.Code(err) != tt.code || got != tt.want {
			t.Errorf("sizeFor(%d, %d) = %d, %v; want %d, %v", tt.req, tt.lim, got, err, tt.want, tt.code)
		}
		if err == nil && (got < tt.req || got%mib != 0) {
			t.Errorf("sizeFor(%d, %d) = %d: smaller than required or not aligned", tt.req, tt.lim, got)
		}
	}
	// A default over the largest size is refused too, not cut.
	if _, err := sizeFor(&csi.CapacityRange{}, math.MaxInt64); status.Code(err) != codes.OutOfRange {
		t.Errorf("huge default: %v", err)
	}
}

// TestHugeSizes: CreateVolume and ControllerExpandVolume with sizes near
// 2^63 answer OutOfRange (beyond the largest volume) or ResourceExhausted
// (beyond the pool), and the recorded size never changes to a wrong one.
func TestHugeSizes(t *testing.T) {
	e := newEnv(t, 64*mib)
	_, conn, _ := e.serve(t, ModeController)
	cc := csi.NewControllerClient(conn)
	ctx := context.Background()
	if _, err := cc.CreateVolume(ctx, createReq("pvc-a", 10*mib, nil)); err != nil {
		t.Fatal(err)
	}
	size := func() int64 {
		t.Helper()
		layer, err := spec.OpenStore(e.controllerConfig().Layer.Name()).Read()
		if err != nil {
			t.Fatal(err)
		}
		return layer.Volume("pvc-a").Size.Bytes
	}
	for _, tt := range []struct {
		req  int64
		code codes.Code
	}{
		{math.MaxInt64, codes.OutOfRange},
		{math.MaxInt64 - mib + 2, codes.OutOfRange},
		{spec.MaxVolumeSize + 1, codes.OutOfRange},
		{spec.MaxVolumeSize, codes.ResourceExhausted},
		{65 * mib, codes.ResourceExhausted},
	} {
		r, err := cc.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: "pvc-a",
			CapacityRange: &csi.CapacityRange{RequiredBytes: tt.req}})
		if status.Code(err) != tt.code {
			t.Errorf("expand to %d: %v (capacity %d), want %v", tt.req, err, r.GetCapacityBytes(), tt.code)
		}
		if got := size(); got != 10*mib {
			t.Errorf("after expanding to %d the layer says %d, want 10 MiB", tt.req, got)
		}
		_, err = cc.CreateVolume(ctx, createReq("pvc-b", tt.req, nil))
		if status.Code(err) != tt.code {
			t.Errorf("create with %d: %v, want %v", tt.req, err, tt.code)
		}
	}
	inv, err := e.client.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range inv.Disks {
		if d.Slot == "pvc-a" && d.Size != 10*mib {
			t.Errorf("the RDS disk has %d bytes, want 10 MiB", d.Size)
		}
		if d.Slot == "pvc-b" {
			t.Errorf("pvc-b exists on the RDS: %+v", d)
		}
	}
}

// TestVolumeContextSize: the node takes a size from 1 MiB up to the largest
// volume size, MiB-aligned.
func TestVolumeContextSize(t *testing.T) {
	st := &spec.State{Target: &spec.Target{Address: "10.0.0.1", BasePath: "pool/v", NQNPrefix: "nqn.2000-02.com.mikrotik:"}}
	v := &spec.Volume{Name: "pvc-1", Size: spec.Quantity{Bytes: mib}}
	for _, tt := range []struct {
		size string
		ok   bool
	}{
		{"0", false}, {"1", false}, {strconv.Itoa(mib - 1), false}, {strconv.Itoa(mib), true},
		{strconv.FormatInt(spec.MaxVolumeSize, 10), true},
		{strconv.FormatInt(spec.MaxVolumeSize+mib, 10), false},
		{strconv.FormatInt(math.MaxInt64, 10), false},
		{"9223372036854775808", false},
	} {
		vc := volumeContext(st, v)
		vc[CtxSize] = tt.size
		if _, err := parseVolumeContext("pvc-1", vc); (err == nil) != tt.ok {
			t.Errorf("size %s: %v, want ok=%v", tt.size, err, tt.ok)
		}
	}
}
