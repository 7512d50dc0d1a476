package sim

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"gopkg.in/yaml.v3"
)

// connectWithFiles dials the way a state file's target says: key file and
// known_hosts file, nothing else.
func connectWithFiles(t *testing.T, addr, keyFile, khFile string) *ssh.Client {
	t.Helper()
	pemBytes, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := knownhosts.New(khFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hk, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestServeDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := ServeDir(ctx, dir, "127.0.0.1:0", Options{Version: NewestVersion})
	if err != nil {
		t.Fatal(err)
	}
	var tgt yamlTarget
	if err := yaml.Unmarshal([]byte(s.TargetYAML("127.0.0.1")), &tgt); err != nil {
		t.Fatal(err)
	}
	ts := tgt.Target.SSH
	if ts.Address != s.Addr() || !filepath.IsAbs(ts.PrivateKeyFile) || !filepath.IsAbs(ts.KnownHostsFile) ||
		tgt.Target.BasePath != "/storage-pool/volumes" || tgt.Target.NVMePort != 4420 {
		t.Fatalf("target %+v", tgt.Target)
	}
	c := connectWithFiles(t, ts.Address, ts.PrivateKeyFile, ts.KnownHostsFile)
	mustRun(t, c, addPVC)
	if st, err := os.Stat(filepath.Join(dir, ClientKeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("client key mode: %v %v", st, err)
	}
	hostKey := s.HostKey().Marshal()
	s.Close()

	// Restarted on the same folder: same keys, same disks.
	s2, err := ServeDir(ctx, dir, "127.0.0.1:0", Options{Version: NewestVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if string(s2.HostKey().Marshal()) != string(hostKey) {
		t.Error("host key changed across restarts")
	}
	c2 := connectWithFiles(t, s2.Addr(), ts.PrivateKeyFile, ts.KnownHostsFile)
	if out := mustRun(t, c2, `:put [/disk get pvc-a nvme-tcp-server-nqn]`); out != "nqn.2000-02.com.mikrotik:pvc-a\n" {
		t.Errorf("after restart: %q", out)
	}
}
