package csi

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

func capOf(block bool, mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	c := &csi.VolumeCapability{AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode}}
	if block {
		c.AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
	} else {
		c.AccessType = &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}}
	}
	return c
}

const (
	mnmw = csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER
	snw  = csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER
)

func TestCheckCapabilityAccess(t *testing.T) {
	for _, tc := range []struct {
		name  string
		c     *csi.VolumeCapability
		want  string // "" for supported
		isRWX bool   // the error is errMultiWriterMount
	}{
		{"single writer mount", capOf(false, snw), "", false},
		{"single writer block", capOf(true, snw), "", false},
		{"multi writer block", capOf(true, mnmw), "", false},
		{"multi writer mount", capOf(false, mnmw), "block volumes only", true},
		{"multi reader", capOf(true, csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY), "MULTI_NODE_READER_ONLY is not supported", false},
		{"multi single writer", capOf(true, csi.VolumeCapability_AccessMode_MULTI_NODE_SINGLE_WRITER), "is not supported", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkCapability(tc.c)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			case errors.Is(err, errMultiWriterMount) != tc.isRWX:
				t.Fatalf("errMultiWriterMount: got %v, want %v", errors.Is(err, errMultiWriterMount), tc.isRWX)
			}
		})
	}
}

// declareHosts adds hosts to the test's base state, as an operator would.
func declareHosts(t *testing.T, e *env, names ...string) {
	t.Helper()
	b, err := os.ReadFile(e.base)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, "hosts:\n"...)
	for i, n := range names {
		b = append(b, "  "+n+": {hostNQN: \"nqn.2014-08.org.nvmexpress:uuid:0d6e3b1c-0000-4000-8000-00000000000"+string(rune('a'+i))+"\"}\n"...)
	}
	if err := os.WriteFile(e.base, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestMultiWriterBlock: MULTI_NODE_MULTI_WRITER maps onto access:
// multi-writer-block in the layer, is refused for filesystems in every
// call that takes a capability, and lets a second node publish only a
// volume created that way (KubeVirt's live-migration window).
func TestMultiWriterBlock(t *testing.T) {
	e := newEnv(t, 256*mib)
	declareHosts(t, e, "node-a", "node-b")
	_, conn, _ := e.serve(t, ModeController)
	cc := csi.NewControllerClient(conn)
	ctx := context.Background()
	create := func(name string, c *csi.VolumeCapability, params map[string]string) error {
		_, err := cc.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: name, CapacityRange: &csi.CapacityRange{RequiredBytes: 8 * mib},
			VolumeCapabilities: []*csi.VolumeCapability{c}, Parameters: params})
		return err
	}
	layer := func() *spec.State {
		t.Helper()
		l, err := spec.OpenStore(e.controllerConfig().Layer.Name()).Read()
		if err != nil {
			t.Fatal(err)
		}
		return l
	}

	wantCode(t, create("pvc-fs", capOf(false, mnmw), nil), codes.InvalidArgument, "block volumes only")
	if l := layer(); l.Volume("pvc-fs") != nil {
		t.Fatal("a refused multi-writer filesystem volume reached the layer")
	}
	// fsType from the StorageClass means nothing for a raw device.
	if err := create("pvc-rwx", capOf(true, mnmw), map[string]string{ParamFSType: "xfs"}); err != nil {
		t.Fatal(err)
	}
	if err := create("pvc-rwo", capOf(true, snw), nil); err != nil {
		t.Fatal(err)
	}
	if v := layer().Volume("pvc-rwx"); v == nil || v.Access != spec.AccessMultiWriterBlock || v.FSType != "" {
		t.Fatalf("pvc-rwx in the layer: %+v, want access %s and no fsType", v, spec.AccessMultiWriterBlock)
	}
	if v := layer().Volume("pvc-rwo"); v == nil || v.Access != "" {
		t.Fatalf("pvc-rwo in the layer: %+v, want the default access", v)
	}
	if err := create("pvc-rwx", capOf(true, mnmw), map[string]string{ParamFSType: "xfs"}); err != nil {
		t.Fatalf("repeat: %v", err)
	}
	wantCode(t, create("pvc-rwx", capOf(true, snw), nil), codes.AlreadyExists, "another access mode")
	wantCode(t, create("pvc-rwo", capOf(true, mnmw), nil), codes.AlreadyExists, "another access mode")

	for _, tc := range []struct {
		vol       string
		c         *csi.VolumeCapability
		code      codes.Code
		confirmed bool
		msg       string
	}{
		{"pvc-rwx", capOf(true, mnmw), codes.OK, true, ""},
		{"pvc-rwx", capOf(true, snw), codes.OK, true, ""},
		{"pvc-rwx", capOf(false, mnmw), codes.InvalidArgument, false, "block volumes only"},
		{"pvc-rwo", capOf(true, mnmw), codes.OK, false, "created for a single node"},
		{"pvc-rwo", capOf(false, snw), codes.OK, true, ""},
	} {
		r, err := cc.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: tc.vol,
			VolumeCapabilities: []*csi.VolumeCapability{tc.c}})
		if tc.code != codes.OK {
			wantCode(t, err, tc.code, tc.msg)
			continue
		}
		if err != nil {
			t.Fatalf("validate %s %v: %v", tc.vol, tc.c, err)
		}
		if (r.GetConfirmed() != nil) != tc.confirmed || !strings.Contains(r.GetMessage(), tc.msg) {
			t.Errorf("validate %s %v: confirmed %v message %q, want confirmed %v and %q", tc.vol, tc.c, r.GetConfirmed() != nil, r.GetMessage(), tc.confirmed, tc.msg)
		}
	}

	publish := func(vol, node string, c *csi.VolumeCapability) error {
		_, err := cc.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: vol, NodeId: node, VolumeCapability: c})
		return err
	}
	for _, tc := range []struct {
		vol, node string
		c         *csi.VolumeCapability
		code      codes.Code
		msg       string
	}{
		{"pvc-rwx", "node-a", capOf(true, mnmw), codes.OK, ""},
		{"pvc-rwx", "node-b", capOf(true, mnmw), codes.OK, ""},
		{"pvc-rwx", "node-b", capOf(true, mnmw), codes.OK, ""}, // idempotent
		{"pvc-rwx", "node-a", capOf(false, mnmw), codes.InvalidArgument, "block volumes only"},
		{"pvc-rwo", "node-a", capOf(true, mnmw), codes.FailedPrecondition, "created for a single node"},
		{"pvc-rwo", "node-a", capOf(true, snw), codes.OK, ""},
		{"pvc-rwo", "node-b", capOf(true, snw), codes.FailedPrecondition, `published to node "node-a"`},
	} {
		err := publish(tc.vol, tc.node, tc.c)
		if tc.code == codes.OK {
			if err != nil {
				t.Fatalf("publish %s to %s: %v", tc.vol, tc.node, err)
			}
			continue
		}
		wantCode(t, err, tc.code, tc.msg)
	}
	if got := layer().Volume("pvc-rwx").Attachments; !slices.Equal(got, []string{"node-a", "node-b"}) {
		t.Errorf("pvc-rwx attachments %v, want both nodes", got)
	}
	if got := layer().Volume("pvc-rwo").Attachments; !slices.Equal(got, []string{"node-a"}) {
		t.Errorf("pvc-rwo attachments %v, want node-a alone", got)
	}
	// The migration ends: the source node lets go, the target keeps it.
	if _, err := cc.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: "pvc-rwx", NodeId: "node-a"}); err != nil {
		t.Fatal(err)
	}
	if got := layer().Volume("pvc-rwx").Attachments; !slices.Equal(got, []string{"node-b"}) {
		t.Errorf("pvc-rwx attachments after unpublish %v, want node-b", got)
	}
	// The whole truth loads as `plan -f base -f layer` reads it.
	if _, err := spec.Load(e.base, e.controllerConfig().Layer.Name()); err != nil {
		t.Errorf("base + layer do not load: %v", err)
	}
}
