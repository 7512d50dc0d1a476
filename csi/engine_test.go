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

// TestOneSessionPerCall: CreateVolume, ControllerExpandVolume and
// DeleteVolume cost one RDS session each in the common case (the guarded
// write and the read of the one slot in one command line), counted by the
// simulator; the RDS shows the effect.
func TestOneSessionPerCall(t *testing.T) {
	e := newEnv(t, 1<<40)
	_, conn, _ := e.serve(t, ModeController)
	cc := csi.NewControllerClient(conn)
	ctx := context.Background()
	// Warm up: the connection and the release probe.
	if _, err := cc.GetCapacity(ctx, &csi.GetCapacityRequest{}); err != nil {
		t.Fatal(err)
	}
	sessions := func(what string, fn func() error) {
		t.Helper()
		s0 := e.srv.Sessions()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if n := e.srv.Sessions() - s0; n != 1 {
			t.Errorf("%s: %d RDS sessions, want 1", what, n)
		}
	}
	sessions("create", func() error { _, err := cc.CreateVolume(ctx, createReq("pvc-one", 16*mib, nil)); return err })
	sessions("create again (idempotent)", func() error { _, err := cc.CreateVolume(ctx, createReq("pvc-one", 16*mib, nil)); return err })
	sessions("expand", func() error {
		_, err := cc.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: "pvc-one",
			CapacityRange: &csi.CapacityRange{RequiredBytes: 32 * mib}})
		return err
	})
	d, err := e.client.Get(ctx, "pvc-one")
	if err != nil || d.Size != 32*mib {
		t.Fatalf("after expand: %+v %v", d, err)
	}
	sessions("delete", func() error {
		_, err := cc.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: "pvc-one"})
		return err
	})
	if ds := e.srv.Disks(); len(ds) != 0 {
		t.Errorf("disks after delete: %+v", ds)
	}
	for _, f := range e.srv.Files() {
		if f.Name == "storage-pool/volumes/pvc-one.img" {
			t.Errorf("the file stayed")
		}
	}
}

// TestConcurrentCreatesOneFails: concurrent creates share sessions; the
// one the pool cannot hold fails alone (ResourceExhausted, RouterOS's
// text), the others are created.
func TestConcurrentCreatesOneFails(t *testing.T) {
	e := newEnv(t, 512*mib)
	_, conn, _ := e.serve(t, ModeController)
	cc := csi.NewControllerClient(conn)
	ctx := context.Background()
	const n = 12
	errs := make([]error, n)
	var wg sync.WaitGroup
	s0 := e.srv.Sessions()
	for i := range n {
		size := int64(16 * mib)
		if i == 5 {
			size = 1 << 30 // more than the pool
		}
		wg.Go(func() { _, errs[i] = cc.CreateVolume(ctx, createReq(fmt.Sprintf("pvc-c%02d", i), size, nil)) })
	}
	wg.Wait()
	for i, err := range errs {
		switch {
		case i == 5:
			if status.Code(err) != codes.ResourceExhausted {
				t.Errorf("the big one: %v, want ResourceExhausted", err)
			}
		case err != nil:
			t.Errorf("create %d: %v", i, err)
		}
	}
	if got := len(e.srv.Disks()); got != n-1 {
		t.Errorf("%d disks, want %d", got, n-1)
	}
	t.Logf("%d RDS sessions for %d concurrent creates (one of them failing)", e.srv.Sessions()-s0, n)
}
