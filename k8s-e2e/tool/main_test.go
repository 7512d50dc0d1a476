package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

func TestCerts(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := certs([]string{dir}, strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(read("ca.crt")) {
		t.Fatal("ca.crt holds no certificate")
	}
	blk, _ := pem.Decode(read("apiserver.crt"))
	srv, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	// The clients reach the apiserver at 127.0.0.1 and, in a pod, kubernetes.default.svc.
	for _, name := range []string{"127.0.0.1", "kubernetes.default.svc"} {
		if _, err := srv.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
			t.Errorf("apiserver certificate for %s: %v", name, err)
		}
	}
	csv := string(read("tokens.csv"))
	for _, u := range []string{"admin", "kube-controller-manager"} {
		tok := strings.TrimSpace(string(read(u + ".token")))
		if len(tok) < 32 || !strings.Contains(csv, tok+","+u+","+u+",\"system:masters\"") {
			t.Errorf("token of %s not in tokens.csv as a system:masters user", u)
		}
	}
	if blk, _ := pem.Decode(read("sa.pub")); blk == nil || blk.Type != "PUBLIC KEY" {
		t.Error("sa.pub is not a PEM public key")
	}
}

// TestBasestate: the shipped ConfigMap's base state, pointed at a simulator,
// still loads as a state and keeps what it does not have to change.
func TestBasestate(t *testing.T) {
	var buf bytes.Buffer
	err := basestate([]string{
		"--configmap", "../../examples/kubernetes/configmap.yaml",
		"--controller", "../../examples/kubernetes/controller.yaml",
		"--root", "/w/ctl", "--ssh", "127.0.0.1:2022",
		"--host", "node-a=nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-00000000000a",
	}, nil, &buf)
	if err != nil {
		t.Fatal(err)
	}
	got := buf.String()
	var cm struct {
		Kind     string            `yaml:"kind"`
		Metadata map[string]string `yaml:"metadata"`
		Data     map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal([]byte(got), &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Kind != "ConfigMap" || cm.Metadata["name"] != "rds-base-state" || cm.Metadata["namespace"] != "rds-reconcile" {
		t.Fatalf("not the shipped ConfigMap: %s", got)
	}
	st, err := spec.LoadBytes("base.yaml", []byte(cm.Data["base.yaml"]))
	if err != nil {
		t.Fatalf("%v\n%s", err, cm.Data["base.yaml"])
	}
	if st.Target.Address != "127.0.0.1" || st.Target.SSH.Address != "127.0.0.1:2022" {
		t.Errorf("target %s, ssh %s", st.Target.Address, st.Target.SSH.Address)
	}
	if st.Target.SSH.PrivateKeyFile != "/w/ctl/volumes/ssh/id_ed25519" || st.Target.SSH.KnownHostsFile != "/w/ctl/volumes/ssh/known_hosts" {
		t.Errorf("key paths %s, %s: want them in the ssh volume", st.Target.SSH.PrivateKeyFile, st.Target.SSH.KnownHostsFile)
	}
	if len(st.Hosts) != 1 || st.Hosts["node-a"].HostNQN == "" {
		t.Errorf("hosts %v, want node-a only", st.Hosts)
	}
	if st.Target.BasePath != "storage-pool/volumes" || st.Defaults.Connection.CtrlLossTmo == nil {
		t.Errorf("basePath %q or the defaults were not kept", st.Target.BasePath)
	}
}

// TestBasestateKeepsHosts: without --host the shipped hosts stay (nodes
// register their NQN through their node id).
func TestBasestateKeepsHosts(t *testing.T) {
	var buf bytes.Buffer
	if err := basestate([]string{
		"--configmap", "../../examples/kubernetes/configmap.yaml",
		"--controller", "../../examples/kubernetes/controller.yaml",
		"--root", "/w/ctl", "--ssh", "127.0.0.1:2022",
	}, nil, &buf); err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal(buf.Bytes(), &cm); err != nil {
		t.Fatal(err)
	}
	var shipped struct {
		Data map[string]string `yaml:"data"`
	}
	raw, err := os.ReadFile("../../examples/kubernetes/configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &shipped); err != nil {
		t.Fatal(err)
	}
	want, err := spec.LoadBytes("shipped", []byte(shipped.Data["base.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	got, err := spec.LoadBytes("rewritten", []byte(cm.Data["base.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Hosts) != len(want.Hosts) {
		t.Errorf("hosts %v, want the shipped %v", got.Hosts, want.Hosts)
	}
	for name, h := range want.Hosts {
		if got.Hosts[name].HostNQN != h.HostNQN {
			t.Errorf("host %s: %q, want %q", name, got.Hosts[name].HostNQN, h.HostNQN)
		}
	}
}

func TestProject(t *testing.T) {
	tests := []struct {
		name, obj, mode, file, want string
		perm                        os.FileMode
	}{
		{"configmap", `{"kind":"ConfigMap","data":{"base.yaml":"a: 1\n"}}`, "", "base.yaml", "a: 1\n", 0o644},
		{"secret", `{"kind":"Secret","data":{"id":"c2VjcmV0"}}`, "400", "id", "secret", 0o400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{dir}
			if tt.mode != "" {
				args = append(args, tt.mode)
			}
			var out bytes.Buffer
			if err := project(args, strings.NewReader(tt.obj), &out); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, tt.file)
			b, err := os.ReadFile(p)
			if err != nil || string(b) != tt.want {
				t.Fatalf("%s: %q %v, want %q", p, b, err, tt.want)
			}
			if fi, _ := os.Stat(p); fi.Mode().Perm() != tt.perm {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), tt.perm)
			}
		})
	}
	var out bytes.Buffer
	if err := project([]string{t.TempDir()}, strings.NewReader(`{"kind":"ConfigMap","data":{"../x":"y"}}`), &out); err == nil {
		t.Error("a key with a slash was written")
	}
}

func TestRDSState(t *testing.T) {
	f := filepath.Join(t.TempDir(), "state.json")
	state := `{"nextId":3,"disks":[{"id":1,"slot":"pvc-b","filePath":"storage-pool/volumes/pvc-b.img","export":true,"port":4420},
	{"id":2,"slot":"pvc-a","filePath":"storage-pool/volumes/pvc-a.img","export":false,"port":4420,"nqn":"nqn.x:pvc-a"}],
	"files":[{"id":1,"name":"storage-pool/volumes/pvc-b.img","size":67108864},{"id":2,"name":"storage-pool/volumes/pvc-a.img","size":1048576}]}`
	if err := os.WriteFile(f, []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := rdsState([]string{f}, nil, &out); err != nil {
		t.Fatal(err)
	}
	want := `disk pvc-a storage-pool/volumes/pvc-a.img 1048576 export=no nqn=nqn.x:pvc-a
disk pvc-b storage-pool/volumes/pvc-b.img 67108864 export=yes nqn=pvc-b
file storage-pool/volumes/pvc-a.img 1048576
file storage-pool/volumes/pvc-b.img 67108864
`
	if out.String() != want {
		t.Errorf("got\n%swant\n%s", out.String(), want)
	}
	if err := os.WriteFile(f, []byte(`{"disks":[{"slot":"x","filePath":"gone.img"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rdsState([]string{f}, nil, &out); err == nil {
		t.Error("a disk without its file was accepted")
	}
}
