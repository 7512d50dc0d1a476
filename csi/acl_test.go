package csi

import (
	"context"
	"os"
	"slices"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/rds-reconcile/rds-reconcile/rds"
)

// TestPublishAdmitsNode: with policy.exportACL: attached a new volume
// admits no host; ControllerPublish admits the node's host NQN on the RDS
// before it answers (the node connects next) and ControllerUnpublish
// closes the disk again.
func TestPublishAdmitsNode(t *testing.T) {
	e := newEnv(t, 64*mib)
	if err := addHost(e, "node-x"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(e.base)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.base, append(b, "policy: {exportACL: attached}\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	_, conn, _ := e.serve(t, ModeController)
	cc := csi.NewControllerClient(conn)
	ctx := context.Background()
	allow := func(step string, want ...string) {
		t.Helper()
		d, err := e.client.Get(ctx, "pvc-a")
		if err != nil || !slices.Equal(d.AllowHosts, want) {
			t.Fatalf("%s: allow list %q, %v; want %q", step, d.AllowHosts, err, want)
		}
	}
	if _, err := cc.CreateVolume(ctx, createReq("pvc-a", 10*mib, nil)); err != nil {
		t.Fatal(err)
	}
	allow("created", rds.NoHostNQN)
	req := &csi.ControllerPublishVolumeRequest{VolumeId: "pvc-a", NodeId: "node-x", VolumeCapability: mountCap()}
	for range 2 {
		if _, err := cc.ControllerPublishVolume(ctx, req); err != nil {
			t.Fatal(err)
		}
		allow("published", "nqn.2014-08.org.nvmexpress:uuid:0d6e3b1c-0000-4000-8000-000000000001")
	}
	if _, err := cc.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: "pvc-a", NodeId: "node-x"}); err != nil {
		t.Fatal(err)
	}
	allow("unpublished", rds.NoHostNQN)
}
