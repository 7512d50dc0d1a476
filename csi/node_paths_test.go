package csi

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rds-reconcile/rds-reconcile/fabric"
)

// recordingMounter mounts nothing and records what the node asked of it.
type recordingMounter struct {
	mu    sync.Mutex
	calls []string
}

func (m *recordingMounter) record(s string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, s)
}

func (m *recordingMounter) Mount(_ context.Context, source, target, _ string, _ []string) error {
	m.record("mount " + source + " " + target)
	return nil
}

func (m *recordingMounter) BindMount(_ context.Context, source, target string, _ bool) error {
	m.record("bind " + source + " " + target)
	return nil
}

func (m *recordingMounter) Unmount(_ context.Context, target string) error {
	m.record("unmount " + target)
	return nil
}

func (m *recordingMounter) IsMountPoint(string) (bool, error)                    { return false, nil }
func (m *recordingMounter) BlkidType(context.Context, string) (string, error)    { return "ext4", nil }
func (m *recordingMounter) Format(context.Context, string, string) error         { return nil }
func (m *recordingMounter) Resize(context.Context, string, string, string) error { return nil }

func (m *recordingMounter) take() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.calls
	m.calls = nil
	return c
}

// stagedNode is a driver (mode all) with volume pvc-p created, published
// to the node and staged (block access: no root needed) at staging below
// the kubelet directory; outside is a folder outside it holding a canary.
type stagedNode struct {
	e        *env
	d        *Driver
	m        *recordingMounter
	staging  string
	outside  string
	canary   string // outside/canary, a file with content
	kubelet  string
	volCtx   map[string]string
	targetOK string // a target path the node accepts
}

func newStagedNode(t *testing.T) *stagedNode {
	t.Helper()
	e := newEnv(t, 1<<30)
	m := &recordingMounter{}
	nc := e.nodeConfig()
	nc.Mounter = m
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
	vol, err := d.controller.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-p", CapacityRange: &csi.CapacityRange{RequiredBytes: 8 * mib},
		VolumeCapabilities: []*csi.VolumeCapability{blockCap()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.controller.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: "pvc-p", NodeId: e.nodeID, VolumeCapability: blockCap()}); err != nil {
		t.Fatal(err)
	}
	s := &stagedNode{e: e, d: d, m: m, kubelet: e.kubelet, volCtx: vol.GetVolume().GetVolumeContext(),
		staging:  filepath.Join(e.kubelet, "plugins", "kubernetes.io", "csi", "pv", "pvc-p", "globalmount"),
		outside:  filepath.Join(e.dir, "outside"),
		targetOK: filepath.Join(e.kubelet, "pods", "uid-1", "volumeDevices", "pvc-p")}
	if _, err := d.node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: "pvc-p", StagingTargetPath: s.staging,
		VolumeCapability: blockCap(), VolumeContext: s.volCtx}); err != nil {
		t.Fatal(err)
	}
	s.canary = filepath.Join(s.outside, "canary")
	if err := os.MkdirAll(s.outside, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.canary, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	m.take()
	return s
}

// mustSurvive fails unless path still holds what it held.
func mustSurvive(t *testing.T, path, content string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || string(b) != content {
		t.Errorf("%s after the call: %q %v; want it untouched", path, b, err)
	}
}

// noMountCalls fails if the node mounted or unmounted anything.
func (s *stagedNode) noMountCalls(t *testing.T) {
	t.Helper()
	if c := s.m.take(); len(c) > 0 {
		t.Errorf("the node called the mounter: %q", c)
	}
}

// TestNodeUnpublishRefuses: NodeUnpublishVolume removes and unmounts only
// below the kubelet directory, only for a volume staged here, and follows
// no symlink out; everything else is refused with nothing touched.
func TestNodeUnpublishRefuses(t *testing.T) {
	s := newStagedNode(t)
	ctx := context.Background()
	inside := filepath.Join(s.kubelet, "pods", "uid-2", "volumes", "other")
	if err := os.MkdirAll(inside, 0o750); err != nil {
		t.Fatal(err)
	}
	insideCanary := filepath.Join(inside, "data")
	if err := os.WriteFile(insideCanary, []byte("other volume"), 0o600); err != nil {
		t.Fatal(err)
	}
	kubeletConfig := filepath.Join(s.kubelet, "config.yaml")
	if err := os.WriteFile(kubeletConfig, []byte("kind: KubeletConfiguration"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(s.kubelet, "pods", "uid-3")
	if err := os.Symlink(s.outside, link); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, id, target string
		code             codes.Code
		msg              string
	}{
		{"unknown id, target outside", "pvc-never", s.canary, codes.InvalidArgument, "not below the kubelet directory"},
		{"unknown id, folder outside", "pvc-never", s.outside, codes.InvalidArgument, "not below the kubelet directory"},
		{"staged id, target outside", "pvc-p", s.canary, codes.InvalidArgument, "not below the kubelet directory"},
		{"unknown id, target inside", "pvc-never", inside, codes.NotFound, "not staged"},
		{"dot-dot id, target inside", "../../x", inside, codes.NotFound, ""},
		{"dot-dot id, target outside", "../../x", s.outside, codes.InvalidArgument, ""},
		{"dot-dot target", "pvc-p", s.kubelet + "/../outside/canary", codes.InvalidArgument, "not a clean path"},
		{"relative target", "pvc-p", "outside/canary", codes.InvalidArgument, "absolute"},
		{"the kubelet dir itself", "pvc-p", s.kubelet, codes.InvalidArgument, "not below"},
		{"symlink out of the kubelet dir", "pvc-p", filepath.Join(link, "canary"), codes.InvalidArgument, "symbolic link"},
		{"symlink as the target", "pvc-p", link, codes.InvalidArgument, "symbolic link"},
		{"a file the node did not make", "pvc-p", kubeletConfig, codes.Internal, "kept"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.d.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: tt.id, TargetPath: tt.target})
			mustSurvive(t, s.canary, "keep me")
			mustSurvive(t, insideCanary, "other volume")
			mustSurvive(t, kubeletConfig, "kind: KubeletConfiguration")
			if tt.code != codes.Internal {
				s.noMountCalls(t)
			}
			s.m.take()
			wantCode(t, err, tt.code, tt.msg)
		})
	}
	// The staged volume's own target is unpublished, twice (idempotent).
	if _, err := s.d.node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "pvc-p", StagingTargetPath: s.staging,
		TargetPath: s.targetOK, VolumeCapability: blockCap()}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := s.d.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "pvc-p", TargetPath: s.targetOK}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Lstat(s.targetOK); !os.IsNotExist(err) {
		t.Errorf("target after unpublish: %v", err)
	}
}

// TestNodePublishRefuses: NodePublishVolume bind-mounts only the staging
// path NodeStage recorded for a volume staged here, onto a target below the
// kubelet directory.
func TestNodePublishRefuses(t *testing.T) {
	s := newStagedNode(t)
	ctx := context.Background()
	other := filepath.Join(s.kubelet, "plugins", "kubernetes.io", "csi", "pv", "pvc-other", "globalmount")
	if err := os.MkdirAll(other, 0o750); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(s.kubelet, "pods", "uid-9")
	if err := os.MkdirAll(filepath.Dir(link), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(s.outside, link); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, id, staging, target string
		code                      codes.Code
		msg                       string
	}{
		{"staging /etc", "pvc-p", "/etc", s.targetOK, codes.InvalidArgument, "not below the kubelet directory"},
		{"another volume's staging path", "pvc-p", other, s.targetOK, codes.InvalidArgument, "not where volume \"pvc-p\" is staged"},
		{"staging path with dot-dot", "pvc-p", s.staging + "/../../pvc-other/globalmount", s.targetOK, codes.InvalidArgument, "not a clean path"},
		{"target outside", "pvc-p", s.staging, filepath.Join(s.outside, "t"), codes.InvalidArgument, "not below the kubelet directory"},
		{"target through a symlink", "pvc-p", s.staging, filepath.Join(link, "t"), codes.InvalidArgument, "symbolic link"},
		{"relative target", "pvc-p", s.staging, "pods/t", codes.InvalidArgument, "absolute"},
		{"unknown id", "pvc-never", s.staging, s.targetOK, codes.NotFound, "not staged"},
		{"dot-dot id", "../../x", s.staging, s.targetOK, codes.NotFound, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.d.node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: tt.id, StagingTargetPath: tt.staging,
				TargetPath: tt.target, VolumeCapability: blockCap()})
			s.noMountCalls(t)
			if _, err := os.Lstat(filepath.Join(s.outside, "t")); !os.IsNotExist(err) {
				t.Errorf("a target was created outside the kubelet directory: %v", err)
			}
			wantCode(t, err, tt.code, tt.msg)
		})
	}
	// The recorded staging path and a target below the kubelet dir work.
	if _, err := s.d.node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "pvc-p", StagingTargetPath: s.staging,
		TargetPath: s.targetOK, VolumeCapability: blockCap()}); err != nil {
		t.Fatal(err)
	}
	if c := s.m.take(); len(c) != 1 || !strings.HasPrefix(c[0], "bind ") || !strings.HasSuffix(c[0], " "+s.targetOK) {
		t.Errorf("mounter calls %q, want one bind onto %s", c, s.targetOK)
	}
}

// TestNodeStageUnstagePaths: staging paths follow the same rules; a volume
// is staged at one path; unstage of a volume not staged here is OK (the CSI
// spec) and touches nothing, of an impossible id NotFound.
func TestNodeStageUnstagePaths(t *testing.T) {
	s := newStagedNode(t)
	ctx := context.Background()
	stage := func(id, staging string) error {
		_, err := s.d.node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging,
			VolumeCapability: blockCap(), VolumeContext: s.volCtx})
		return err
	}
	unstage := func(id, staging string) error {
		_, err := s.d.node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging})
		return err
	}
	link := filepath.Join(s.kubelet, "link")
	if err := os.Symlink(s.outside, link); err != nil {
		t.Fatal(err)
	}
	wantCode(t, stage("pvc-p", "/etc"), codes.InvalidArgument, "not below the kubelet directory")
	wantCode(t, stage("pvc-p", filepath.Join(link, "g")), codes.InvalidArgument, "symbolic link")
	wantCode(t, stage("pvc-p", filepath.Join(s.kubelet, "elsewhere")), codes.FailedPrecondition, "is staged at")
	if err := stage("pvc-p", s.staging); err != nil {
		t.Errorf("restage at the recorded path: %v", err)
	}
	wantCode(t, unstage("pvc-p", s.outside), codes.InvalidArgument, "not below the kubelet directory")
	wantCode(t, unstage("pvc-p", filepath.Join(s.kubelet, "elsewhere")), codes.InvalidArgument, "not where volume")
	wantCode(t, unstage("../../x", s.staging), codes.NotFound, "")
	if err := unstage("pvc-never", filepath.Join(s.kubelet, "x")); err != nil {
		t.Errorf("unstage of a volume not staged here: %v, want OK", err)
	}
	s.noMountCalls(t)
	mustSurvive(t, s.canary, "keep me")
	for range 2 {
		if err := unstage("pvc-p", s.staging); err != nil {
			t.Fatal(err)
		}
	}
	if got := connectedNQNs(t, s.e.host); len(got) != 0 {
		t.Errorf("after unstage: connected %v", got)
	}
	// Unstaged: its staging path is forgotten, a new one is accepted.
	if err := stage("pvc-p", filepath.Join(s.kubelet, "elsewhere")); err != nil {
		t.Errorf("stage at a new path after unstage: %v", err)
	}
}

// TestNodeStageBadContext: a malformed volume context is the caller's
// mistake (InvalidArgument) and its message names the context key, not a
// line of the node layer, which was never written.
func TestNodeStageBadContext(t *testing.T) {
	e := newEnv(t, 1<<30)
	d, err := New(Options{Mode: ModeNode, NodeID: e.nodeID, Node: e.nodeConfig()})
	if err != nil {
		t.Fatal(err)
	}
	good := map[string]string{CtxAddress: "127.0.0.1", CtxPort: "4420", CtxNQNPrefix: testNQNPrefix, CtxBasePath: "storage-pool/volumes"}
	for _, tt := range []struct {
		key, value, msg string
	}{
		{CtxAddress, "not an address!", "address"},
		{CtxAddress, "rds.example..com", "neither an IP address nor a DNS name"},
		{CtxAddress, "10.0.0.1:4420", "the port goes in nvmePort"},
		{CtxBasePath, "../volumes", "basePath"},
		{CtxNQNPrefix, "not-an-nqn", "nqnPrefix"},
	} {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			vc := map[string]string{}
			for k, v := range good {
				vc[k] = v
			}
			vc[tt.key] = tt.value
			vc[CtxNQN] = vc[CtxNQNPrefix] + "pvc-q"
			_, err := d.node.NodeStageVolume(context.Background(), &csi.NodeStageVolumeRequest{VolumeId: "pvc-q",
				StagingTargetPath: filepath.Join(e.kubelet, "q"), VolumeCapability: blockCap(), VolumeContext: vc})
			wantCode(t, err, codes.InvalidArgument, tt.msg)
			if m := status.Convert(err).Message(); strings.Contains(m, ".yaml") {
				t.Errorf("message %q cites a state file", m)
			}
			if _, err := os.Stat(e.nodeConfig().Layer.Path()); !os.IsNotExist(err) {
				t.Errorf("a rejected stage wrote the node layer: %v", err)
			}
			if got := connectedNQNs(t, e.host); len(got) != 0 {
				t.Errorf("a rejected stage connected %v", got)
			}
		})
	}
}

// TestSocketMode: the CSI socket is 0660 whatever the umask. It changes
// the process umask: not parallel.
func TestSocketMode(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	sock := filepath.Join(t.TempDir(), "csi.sock")
	lis, err := Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660 under umask 000", fi.Mode())
	}
}

// TestStaleTempFiles: temporary files an interrupted layer write left in
// the state dir are removed at start, each logged; nothing else is.
func TestStaleTempFiles(t *testing.T) {
	e := newEnv(t, 1<<30)
	stale := []string{".csi-volumes.yaml.tmp-123456", ".node-node-1.yaml.tmp-42", ".node-node-1.staged.json.tmp-7"}
	kept := []string{"csi-volumes.yaml.tmp-1", ".csi-volumes.yaml.tmp-", ".other.yaml.tmp-1", ".csi-volumes.yaml.tmp",
		".node-node-2.yaml.tmp-1", "notes.txt"}
	for _, n := range append(append([]string{}, stale...), kept...) {
		if err := os.WriteFile(filepath.Join(e.stateDir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A folder of that name, a file of that name in a sub folder and one
	// outside the state dir are not the layer's temp files.
	for _, p := range []string{filepath.Join(e.stateDir, ".csi-volumes.yaml.tmp-dir"), filepath.Join(e.stateDir, "sub")} {
		if err := os.MkdirAll(p, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	outside := []string{filepath.Join(e.stateDir, "sub", ".csi-volumes.yaml.tmp-5"), filepath.Join(e.dir, ".csi-volumes.yaml.tmp-5")}
	for _, p := range outside {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	d, err := New(Options{Mode: ModeAll, NodeID: e.nodeID, Controller: e.controllerConfig(), Node: e.nodeConfig(),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, n := range stale {
		p := filepath.Join(e.stateDir, n)
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s: %v, want removed", n, err)
		}
		if !strings.Contains(logs.String(), p) {
			t.Errorf("removing %s was not logged:\n%s", p, logs.String())
		}
	}
	for _, n := range append(append([]string{}, kept...), ".csi-volumes.yaml.tmp-dir") {
		if _, err := os.Lstat(filepath.Join(e.stateDir, n)); err != nil {
			t.Errorf("%s: %v, want kept", n, err)
		}
	}
	for _, p := range outside {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: %v, want kept", p, err)
		}
	}
}
