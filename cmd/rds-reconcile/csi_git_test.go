package main

// csi --git: the controller's base state from a real git repository made
// here (a bare repository on disk, file:// URL) against `rds-reconcile sim`.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

// csiGitBase is a base state naming the simulated RDS with this default
// ctrlLossTmo.
func csiGitBase(tg *spec.Target, ctrlLossTmo int) string {
	return fmt.Sprintf(`apiVersion: rds-reconcile/v1
kind: State
target:
  address: 127.0.0.1
  basePath: %s
  ssh: {address: %q, user: %s, privateKeyFile: %q, knownHostsFile: %q}
defaults:
  connection: {ctrlLossTmo: %d}
`, tg.BasePath, tg.SSH.Address, tg.SSH.User, tg.SSH.PrivateKeyFile, tg.SSH.KnownHostsFile, ctrlLossTmo)
}

// csiServer is `rds-reconcile csi` run in-process.
type csiServer struct {
	t       *testing.T
	conn    *grpc.ClientConn
	metrics string
	errb    *syncBuffer
}

func startCSI(t *testing.T, args ...string) *csiServer {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "csi.sock")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	maddr := ln.Addr().String()
	ln.Close()
	errb := runCSICommand(t, sock, append([]string{"csi", "--endpoint", "unix://" + sock, "--metrics-listen", maddr}, args...))
	// The socket file exists from bind(2), a moment before listen(2): wait
	// for readiness instead of failing an RPC with "connection refused".
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &csiServer{t: t, conn: conn, metrics: maddr, errb: errb}
}

var csiMount = &csipb.VolumeCapability{AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
	AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}

func (s *csiServer) create(name string) (*csipb.CreateVolumeResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return csipb.NewControllerClient(s.conn).CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: name,
		CapacityRange: &csipb.CapacityRange{RequiredBytes: 64 << 20}, VolumeCapabilities: []*csipb.VolumeCapability{csiMount}})
}

// ctrlLossTmo creates the volume and returns the ctrlLossTmo its context
// carries (the base's default: the request sets none).
func (s *csiServer) ctrlLossTmo(name string) string {
	s.t.Helper()
	resp, err := s.create(name)
	if err != nil {
		s.t.Fatalf("CreateVolume %s: %v\n%s", name, err, s.errb.String())
	}
	return resp.GetVolume().GetVolumeContext()["ctrlLossTmo"]
}

func (s *csiServer) ready() bool {
	s.t.Helper()
	resp, err := csipb.NewIdentityClient(s.conn).Probe(context.Background(), &csipb.ProbeRequest{})
	if err != nil {
		s.t.Fatalf("Probe: %v", err)
	}
	return resp.GetReady().GetValue()
}

func (s *csiServer) scrape() string {
	resp, err := http.Get("http://" + s.metrics + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitFor polls until ok holds (10s).
func (s *csiServer) waitFor(what string, ok func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %s; stderr:\n%s", what, s.errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCSIGitBase: the controller serves with a base state from git; before
// the first sync it refuses volume calls with Unavailable and is not ready;
// a pushed commit changing a default is seen by a later CreateVolume; a
// force-push is refused and the last good base stays in force.
func TestCSIGitBase(t *testing.T) {
	tg, _ := startSimCmd(t)
	remote := newGitRemote(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	s := startCSI(t, "--mode", "controller", "--state-dir", stateDir, "--git", "file://"+remote.bare, "--ref", "main",
		"--path", "targets", "--git-interval", "100ms")

	// Nothing pushed yet: no base.
	_, err := s.create("pvc-early")
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "first good sync") {
		t.Fatalf("CreateVolume before the first sync: %v, want Unavailable (first good sync)", err)
	}
	t.Logf("before the first sync: %v", err)
	if s.ready() {
		t.Error("Probe ready before the first sync")
	}

	rev1 := remote.commit(csiGitBase(tg, 300), false)
	s.waitFor("the first sync", s.ready)
	if got := s.ctrlLossTmo("pvc-1"); got != "300" {
		t.Errorf("pvc-1 ctrlLossTmo %q, want 300 from the base at %s", got, rev1)
	}
	if m := s.scrape(); !strings.Contains(m, `rds_reconcile_git_sync_info{ref="main",revision="`+rev1+`"}`) {
		t.Errorf("metrics do not name revision %s:\n%s", rev1, m)
	}
	if !strings.Contains(s.errb.String(), rev1) {
		t.Errorf("the log does not name revision %s:\n%s", rev1, s.errb.String())
	}

	// A new default, pushed: a later CreateVolume uses it.
	rev2 := remote.commit(csiGitBase(tg, 600), false)
	s.waitFor("revision "+rev2, func() bool { return strings.Contains(s.scrape(), `revision="`+rev2+`"`) })
	if got := s.ctrlLossTmo("pvc-2"); got != "600" {
		t.Errorf("pvc-2 ctrlLossTmo %q, want 600 from the base at %s", got, rev2)
	}

	// A rewritten history: refused, the base stays at rev2.
	remote.git(remote.work, "reset", "-q", "--hard", "HEAD~1")
	rev3 := remote.commit(csiGitBase(tg, 900), true)
	s.waitFor("the refused force-push", func() bool {
		return strings.Contains(s.errb.String(), "rewritten") && strings.Contains(s.scrape(), `rds_reconcile_git_sync_errors_total{reason="rewritten"}`)
	})
	if got := s.ctrlLossTmo("pvc-3"); got != "600" {
		t.Errorf("pvc-3 ctrlLossTmo %q after the force-push of %s, want 600 (the base at %s stays)", got, rev3, rev2)
	}
	if !s.ready() {
		t.Error("Probe not ready while the last good base stays in force")
	}

	// The whole truth is the checkout's base with the CSI layer on it.
	var pout, perr strings.Builder
	code := run([]string{"plan", "-f", filepath.Join(stateDir, "csi-git", "targets", "rds-1.yaml"), "-f", filepath.Join(stateDir, "csi-volumes.yaml"),
		"--fabric", "none", "--detailed-exitcode"}, strings.NewReader(""), &pout, &perr)
	if code != 0 || !strings.Contains(pout.String(), "No changes") {
		t.Errorf("plan over the git base + CSI layer: exit %d\n%s\n%s", code, pout.String(), perr.String())
	}
}

func TestCSIGitFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--mode", "controller", "--ref", "main", "-f", "base.yaml"}, "--ref is an option of --git"},
		{[]string{"--mode", "controller", "--git", "file:///x", "-f", "base.yaml"}, "exclude each other"},
		{[]string{"--mode", "node", "--git", "file:///x"}, "--mode node takes none"},
		{[]string{"--mode", "controller", "--git", "file:///x", "--verify-commits"}, "--allowed-signers"},
		{[]string{"--mode", "controller", "--git", "file:///x", "--git-interval", "0s"}, "--git-interval must be positive"},
	} {
		var out, errb strings.Builder
		args := append([]string{"csi", "--state-dir", dir}, tt.args...)
		code := run(args, strings.NewReader(""), &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tt.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 mentioning %q", args, code, errb.String(), tt.msg)
		}
	}
}
