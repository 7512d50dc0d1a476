package csi

import (
	"context"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

const (
	nqnA = "nqn.2014-08.org.nvmexpress:uuid:0a0a0a0a-0000-4000-8000-00000000000a"
	nqnB = "nqn.2014-08.org.nvmexpress:uuid:0b0b0b0b-0000-4000-8000-00000000000b"
)

func TestNodeID(t *testing.T) {
	long := strings.Repeat("n", MaxNodeIDLen-len(nqnA)) // name + "@" + NQN is one byte too many
	for _, tc := range []struct {
		name, nqn, id string
	}{
		{"node-1", nqnA, "node-1@" + nqnA},
		{"node-1", "", "node-1"},
		{long[1:], nqnA, long[1:] + "@" + nqnA}, // exactly MaxNodeIDLen
		{long, nqnA, long},                      // would be 193 bytes: the plain name
	} {
		id := NodeIDFor(tc.name, tc.nqn)
		if id != tc.id || len(id) > MaxNodeIDLen {
			t.Errorf("NodeIDFor(%q, %q) = %q, want %q", tc.name, tc.nqn, id, tc.id)
		}
		name, nqn, err := parseNodeID(id)
		wantNQN := tc.nqn
		if id == tc.name {
			wantNQN = ""
		}
		if err != nil || name != tc.name || nqn != wantNQN {
			t.Errorf("parseNodeID(%q) = %q, %q, %v", id, name, nqn, err)
		}
	}
	for _, bad := range []string{"", "node@", "@" + nqnA, "node 1", "node@nqn", "node@" + nqnA + "@x", "node@nqn.bad nqn", "../x@" + nqnA} {
		if _, _, err := parseNodeID(bad); err == nil {
			t.Errorf("parseNodeID(%q): no error", bad)
		}
	}
}

// TestNodesJoinWithoutConfig: a node the base does not declare is usable
// once its node plugin registered (its node id carries its host NQN): the
// controller records it in the layer at the first publish. A base host
// wins: the same NQN is fine and not copied, another is refused; a host
// the layer learned follows a reinstalled node's new NQN; a plain id must
// still be declared.
func TestNodesJoinWithoutConfig(t *testing.T) {
	e := newEnv(t, 64<<30)
	if err := addHost(e, "pinned"); err != nil { // nqn ...-000000000001
		t.Fatal(err)
	}
	_, conn, _ := e.serve(t, ModeController)
	cc := csi.NewControllerClient(conn)
	ctx := context.Background()
	for _, n := range []string{"pvc-1", "pvc-2", "pvc-3"} {
		if _, err := cc.CreateVolume(ctx, createReq(n, 8*mib, nil)); err != nil {
			t.Fatal(err)
		}
	}
	layer := func() *spec.State {
		t.Helper()
		l, err := spec.OpenStore(e.controllerConfig().Layer.Name()).Read()
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	publish := func(vol, node string) error {
		_, err := cc.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: vol, NodeId: node, VolumeCapability: mountCap()})
		return err
	}

	// A new node, registered by the node plugin.
	if err := publish("pvc-1", "worker-7@"+nqnA); err != nil {
		t.Fatal(err)
	}
	l := layer()
	if l.Hosts["worker-7"].HostNQN != nqnA || strings.Join(l.Volume("pvc-1").Attachments, ",") != "worker-7" {
		t.Errorf("layer after the first publish: hosts %v, attachments %v", l.Hosts, l.Volume("pvc-1").Attachments)
	}
	gv, err := cc.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: "pvc-1"})
	if err != nil || strings.Join(gv.GetStatus().GetPublishedNodeIds(), ",") != "worker-7,worker-7@"+nqnA {
		t.Errorf("published node ids %v, %v", gv.GetStatus().GetPublishedNodeIds(), err)
	}
	// Idempotent; a plain id of a learned host works too.
	if err := publish("pvc-1", "worker-7@"+nqnA); err != nil {
		t.Error(err)
	}
	if err := publish("pvc-2", "worker-7"); err != nil {
		t.Error(err)
	}
	// Unpublish by the encoded id removes the attachment.
	if _, err := cc.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: "pvc-1", NodeId: "worker-7@" + nqnA}); err != nil {
		t.Fatal(err)
	}
	if a := layer().Volume("pvc-1").Attachments; len(a) != 0 {
		t.Errorf("attachments after unpublish: %v", a)
	}

	// The node is reinstalled with a new NQN: the layer follows it.
	if err := publish("pvc-1", "worker-7@"+nqnB); err != nil {
		t.Fatal(err)
	}
	if got := layer().Hosts["worker-7"].HostNQN; got != nqnB {
		t.Errorf("the learned host's NQN is %s, want %s", got, nqnB)
	}

	// A base host: the same NQN publishes and is not copied to the layer;
	// another NQN is refused, naming both.
	pinned := "nqn.2014-08.org.nvmexpress:uuid:0d6e3b1c-0000-4000-8000-000000000001"
	if err := publish("pvc-3", "pinned@"+pinned); err != nil {
		t.Fatal(err)
	}
	if _, ok := layer().Hosts["pinned"]; ok {
		t.Error("a base host was copied into the layer")
	}
	if _, err := cc.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: "pvc-3", NodeId: "pinned@" + pinned}); err != nil {
		t.Fatal(err)
	}
	err = publish("pvc-3", "pinned@"+nqnA)
	wantCode(t, err, codes.FailedPrecondition, "the base state declares hosts.pinned.hostNQN "+pinned)
	if a := layer().Volume("pvc-3").Attachments; len(a) != 0 {
		t.Errorf("a refused publish attached: %v", a)
	}

	// A plain id nobody declared, and ids that are not ours.
	wantCode(t, publish("pvc-3", "stranger"), codes.NotFound, "carries no host NQN")
	wantCode(t, publish("pvc-3", "stranger@not-an-nqn"), codes.NotFound, "valid host NQN")

	// The whole truth still loads as plan reads it.
	if _, err := spec.Load(e.base, e.controllerConfig().Layer.Name()); err != nil {
		t.Errorf("base + layer: %v", err)
	}
}

func TestNodeGetInfoCarriesTheHostNQN(t *testing.T) {
	e := newEnv(t, 64<<30)
	_, conn, _ := e.serve(t, ModeNode)
	info, err := csi.NewNodeClient(conn).NodeGetInfo(context.Background(), &csi.NodeGetInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	nqn, err := e.host.HostNQN(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.GetNodeId() != e.nodeID+"@"+nqn {
		t.Errorf("node id %q, want %s@%s", info.GetNodeId(), e.nodeID, nqn)
	}
}
