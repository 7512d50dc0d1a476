package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"gopkg.in/yaml.v3"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

// syncBuffer is an io.Writer the test can read while the command writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startSimCmd runs `rds-reconcile sim ...` in-process until the test ends and
// returns the target it printed.
func startSimCmd(t *testing.T, args ...string) (*spec.Target, *syncBuffer) {
	t.Helper()
	tg, _, errb := startSimCmdFull(t, args...)
	return tg, errb
}

// startSimCmdOut is startSimCmd returning the printed text.
func startSimCmdOut(t *testing.T, args ...string) (*spec.Target, string) {
	t.Helper()
	tg, out, _ := startSimCmdFull(t, args...)
	return tg, out
}

func startSimCmdFull(t *testing.T, args ...string) (*spec.Target, string, *syncBuffer) {
	t.Helper()
	var out, errb syncBuffer
	root := newRootCmd(strings.NewReader(""), &out, &errb)
	base := []string{"sim", "--listen", "127.0.0.1:0"}
	if !slices.Contains(args, "--dir") {
		// Never fall back to the default ./rds-sim inside the source tree.
		base = append(base, "--dir", t.TempDir())
	}
	root.SetArgs(append(base, args...))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("sim returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("sim did not stop on cancel")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "basePath:") {
		select {
		case err := <-done:
			t.Fatalf("sim exited early: %v\n%s", err, errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no target printed; stderr:\n%s", errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var doc struct {
		Target spec.Target `yaml:"target"`
	}
	if err := yaml.Unmarshal([]byte(out.String()), &doc); err != nil {
		t.Fatalf("target block: %v\n%s", err, out.String())
	}
	return &doc.Target, out.String(), &errb
}

// dialTarget connects exactly as the printed target says.
func dialTarget(t *testing.T, tg *spec.Target) *ssh.Client {
	t.Helper()
	key, err := os.ReadFile(tg.SSH.PrivateKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := knownhosts.New(tg.SSH.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", tg.SSH.Address, &ssh.ClientConfig{User: tg.SSH.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: hk, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func simRun(c *ssh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.Output(cmd)
	return string(out), err
}

func TestSimCommandServesTarget(t *testing.T) {
	dir := t.TempDir()
	tg, _ := startSimCmd(t, "--dir", dir, "--backend", "files", "--pool-size", "10Gi")
	if tg.Address != "127.0.0.1" || tg.NVMePort != 4420 || tg.BasePath != "/storage-pool/volumes" ||
		!filepath.IsAbs(tg.SSH.PrivateKeyFile) || !filepath.IsAbs(tg.SSH.KnownHostsFile) {
		t.Fatalf("target %+v", tg)
	}
	c := dialTarget(t, tg)
	add := `/disk add type=file file-path=storage-pool/volumes/pvc-a.img file-size=1G slot=pvc-a nvme-tcp-export=yes`
	if out, err := simRun(c, add); err != nil || out != "" {
		t.Fatalf("add: %q %v", out, err)
	}
	out, err := simRun(c, `:put [:serialize to=json [/disk print detail as-value where slot~"^pvc-"]]`)
	if err != nil || !strings.Contains(out, `"slot":"pvc-a"`) {
		t.Fatalf("json list: %q %v", out, err)
	}
	if out, _ := simRun(c, `/disk add type=file file-path=storage-pool/volumes/big.img file-size=20G slot=big`); out != "failure: not enough space\n" {
		t.Errorf("pool size flag not applied: %q", out)
	}
	if st, err := os.Stat(filepath.Join(dir, "files", "storage-pool", "volumes", "pvc-a.img")); err != nil || st.Size() != 1<<30 {
		t.Errorf("image file: %v %v", st, err)
	}
	for _, f := range []string{"host_key", "client_key", "client_key.pub", "known_hosts", "state.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
}

func TestSimCommandFaultFlags(t *testing.T) {
	tg, _ := startSimCmd(t, "--dir", t.TempDir(), "--json=false", "--drop-after", "2",
		"--fail-next", "failure: not enough space", "--latency", "20ms")
	c := dialTarget(t, tg)
	start := time.Now()
	if out, err := simRun(c, `:put one`); err != nil || out != "failure: not enough space\n" {
		t.Errorf("fail-next: %q %v", out, err)
	}
	if time.Since(start) < 20*time.Millisecond {
		t.Error("latency not applied")
	}
	if out, err := simRun(c, `:put [:serialize to=json [/disk print as-value]]`); err != nil || !strings.HasPrefix(out, "bad command name serialize") {
		t.Errorf("--json=false: %q %v", out, err)
	}
	if _, err := simRun(c, `:put three`); err == nil {
		t.Error("--drop-after 2 did not drop the third command")
	}
}

func TestSimCommandBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"sim", "--backend", "floppy", "--dir", t.TempDir()},
		{"sim", "--pool-size", "lots", "--dir", t.TempDir()},
		{"sim", "--drop-probability", "2", "--dir", t.TempDir()},
		{"sim", "--password-env", "RDS_SIM_TEST_UNSET_VAR", "--dir", t.TempDir()},
	} {
		code, _, errOut := runCLI(t, args...)
		if code != 2 || !strings.Contains(errOut, "Error:") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
}

// TestSimTargetValidates: the printed block, pasted into a state file as it
// is, passes validate.
func TestSimTargetValidates(t *testing.T) {
	dir := t.TempDir()
	_, out := startSimCmdOut(t, "--dir", filepath.Join(dir, "sim"))
	state := "apiVersion: rds-reconcile/v1\nkind: State\n" + out +
		"volumes:\n  - name: pvc-demo\n    size: 1Gi\n"
	path := filepath.Join(dir, "state.yaml")
	if err := os.WriteFile(path, []byte(state), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runCLI(t, "validate", "-f", path); code != 0 {
		t.Errorf("validate exit %d: %s%s\n%s", code, stdout, stderr, state)
	}
}
