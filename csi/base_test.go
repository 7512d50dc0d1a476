package csi

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeBase is a BaseSource whose files and revision the test sets.
type fakeBase struct {
	mu    sync.Mutex
	files []string
	rev   string
}

func (b *fakeBase) set(rev string, files ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rev, b.files = rev, files
}

func (b *fakeBase) Read(fn func([]string) error) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.files == nil {
		return "", fmt.Errorf("%w: nothing synced", ErrNoBase)
	}
	return b.rev, fn(b.files)
}

// TestControllerBaseSource: without a base the controller starts, answers
// volume calls Unavailable and is not ready; once the source has one, the
// calls use it.
func TestControllerBaseSource(t *testing.T) {
	e := newEnv(t, 1<<30)
	src := &fakeBase{}
	cfg := e.controllerConfig()
	cfg.BaseFiles, cfg.Base = nil, src
	d, err := New(Options{Mode: ModeController, Controller: cfg})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		t.Fatalf("Start without a base: %v", err)
	}
	req := &csi.CreateVolumeRequest{Name: "pvc-1", CapacityRange: &csi.CapacityRange{RequiredBytes: 16 << 20},
		VolumeCapabilities: []*csi.VolumeCapability{mountCap()}}
	if _, err := d.controller.CreateVolume(ctx, req); status.Code(err) != codes.Unavailable {
		t.Errorf("CreateVolume without a base: %v, want Unavailable", err)
	}
	if _, err := d.controller.ListVolumes(ctx, &csi.ListVolumesRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("ListVolumes without a base: %v, want Unavailable", err)
	}
	id := &identity{d: d}
	if p, err := id.Probe(ctx, &csi.ProbeRequest{}); err != nil || p.GetReady().GetValue() {
		t.Errorf("Probe without a base: %v %v, want not ready", p, err)
	}

	src.set("abc123", e.base)
	if _, err := d.controller.CreateVolume(ctx, req); err != nil {
		t.Fatalf("CreateVolume with a base: %v", err)
	}
	if p, err := id.Probe(ctx, &csi.ProbeRequest{}); err != nil || !p.GetReady().GetValue() {
		t.Errorf("Probe with a base: %v %v, want ready", p, err)
	}
	// The base's own volume is there, and not the CSI's to delete.
	if _, err := d.controller.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: "git-owned"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("DeleteVolume of the base's volume: %v, want FailedPrecondition", err)
	}

	cfg.BaseFiles = []string{e.base}
	if _, err := New(Options{Mode: ModeController, Controller: cfg}); err == nil {
		t.Error("New with both base files and a base source: no error")
	}
}
