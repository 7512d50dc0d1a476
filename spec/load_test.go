package spec

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the .golden files from the current output")

// golden compares got with the file at path, or rewrites it with -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./spec -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update if the change is intended)\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
}

// TestGolden loads every testdata/*.yaml (each a bad input) and compares the
// error text with testdata/*.golden.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			st, err := Load(f)
			if err == nil {
				t.Fatalf("Load(%s) succeeded: %+v", f, st)
			}
			var es *Errors
			if !errors.As(err, &es) {
				t.Fatalf("Load error is %T, want *Errors", err)
			}
			golden(t, strings.TrimSuffix(f, ".yaml")+".golden", err.Error()+"\n")
		})
	}
}

// TestLayerGolden covers problems that span files.
func TestLayerGolden(t *testing.T) {
	tests := []struct {
		name  string
		files []string
	}{
		{"conflicts", []string{"testdata/layers/base.yaml", "testdata/layers/conflicting.yaml"}},
		{"missing-target", []string{"testdata/layers/volumes-only.yaml"}},
		{"missing-file", []string{"testdata/layers/base.yaml", "testdata/layers/does-not-exist.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.files...)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			golden(t, filepath.Join("testdata/layers", tt.name+".golden"), err.Error()+"\n")
		})
	}
}

var posLineRE = regexp.MustCompile(`^testdata/three-errors\.yaml:\d+:\d+: \S+: .+$`)

// TestThreeErrors is the acceptance case: an unknown field, a bad
// timeout and an attachment to an undeclared host give exactly three
// FILE:LINE:COL errors, in file order.
func TestThreeErrors(t *testing.T) {
	_, err := Load("testdata/three-errors.yaml")
	var es *Errors
	if !errors.As(err, &es) {
		t.Fatalf("want *Errors, got %v", err)
	}
	if len(*es) != 3 {
		t.Fatalf("want 3 errors, got %d:\n%v", len(*es), err)
	}
	wantPaths := []string{"defaults.connection.reconnectDelay", "policy.prunne", "volumes[0].attachments[0]"}
	for i, e := range *es {
		if e.Path != wantPaths[i] {
			t.Errorf("error %d path = %q, want %q", i, e.Path, wantPaths[i])
		}
		if !posLineRE.MatchString(e.Error()) {
			t.Errorf("error %d = %q, not FILE:LINE:COL: path: message", i, e.Error())
		}
	}
	if (*es)[0].Line != 8 || (*es)[0].Col != 21 {
		t.Errorf("bad timeout at %d:%d, want 8:21", (*es)[0].Line, (*es)[0].Col)
	}
}

func TestLoadDemo(t *testing.T) {
	st, err := Load("../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.Target.SSH.PrivateKeyFile, filepath.Join("../examples", "demo/client_key"); got != want {
		t.Errorf("privateKeyFile = %q, want %q (relative to the YAML file)", got, want)
	}
	if got := st.FilePath("demo-db"); got != "storage-pool/volumes/demo-db.img" {
		t.Errorf("FilePath = %q", got)
	}
	if got := st.NQN("demo-db"); got != "nqn.2000-02.com.mikrotik:demo-db" {
		t.Errorf("NQN = %q", got)
	}
	db := st.Volume("demo-db")
	if db == nil || !db.Protect || db.Source != "../examples/demo.yaml" {
		t.Fatalf("demo-db = %+v", db)
	}
	if got := st.TimeoutsFor(db); got != (Timeouts{600, 2, 15}) {
		t.Errorf("TimeoutsFor(demo-db) = %+v", got)
	}
	if got := st.TimeoutsFor(st.Volume("demo-web")); got != (Timeouts{-1, 5, 0}) {
		t.Errorf("TimeoutsFor(demo-web) = %+v", got)
	}
	if st.Volume("nope") != nil {
		t.Error("Volume(nope) != nil")
	}
	if got := strings.Join(st.HostNames(), ","); got != "node-a,node-b" {
		t.Errorf("HostNames = %q", got)
	}
}

func TestLoadHomelab(t *testing.T) {
	if _, err := Load("../examples/homelab.yaml"); err != nil {
		t.Fatal(err)
	}
}

const minimal = `apiVersion: rds-reconcile/v1
kind: State
target:
  address: 10.0.0.1
  basePath: /pool
volumes:
  - name: v
    size: 1Gi
`

func TestDefaultsFilled(t *testing.T) {
	st, err := LoadBytes("dir/min.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	tg := st.Target
	if tg.NVMePort != 4420 || tg.NQNPrefix != DefaultNQNPrefix || tg.SSH.Timeout.Duration != 10*time.Second {
		t.Errorf("target defaults: %+v", tg)
	}
	c := st.Defaults.Connection
	if c.CtrlLossTmo == nil || *c.CtrlLossTmo != -1 || c.ReconnectDelay == nil || *c.ReconnectDelay != 5 || c.KeepAliveTmo == nil || *c.KeepAliveTmo != 0 {
		t.Errorf("connection defaults: %+v", c)
	}
	r := st.Defaults.Retry
	if r != (Retry{5, Duration{time.Second}, Duration{30 * time.Second}, 2, 0.1}) {
		t.Errorf("retry defaults: %+v", r)
	}
	if st.Defaults.FSType != "ext4" || st.Policy.Orphans != "disconnect" || st.Policy.Prune {
		t.Errorf("defaults/policy: %+v %+v", st.Defaults, st.Policy)
	}
	v := st.Volumes[0]
	if v.State != Present || v.FSType != "ext4" || v.Source != "dir/min.yaml" {
		t.Errorf("volume defaults: %+v", v)
	}
	if got := st.FilePath("v"); got != "pool/v.img" {
		t.Errorf("FilePath with a leading / = %q, want pool/v.img", got)
	}
}

// TestExplicitZeroKept: a value set to zero on purpose is kept (jitter: 0
// turns jitter off) or rejected, never replaced by the default.
func TestExplicitZeroKept(t *testing.T) {
	st, err := LoadBytes("z.yaml", []byte(minimal+"defaults:\n  retry: {jitter: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Defaults.Retry.Jitter != 0 || st.Defaults.Retry.Attempts != 5 {
		t.Errorf("retry = %+v", st.Defaults.Retry)
	}
	_, err = LoadBytes("z.yaml", []byte(minimal+"defaults:\n  retry: {attempts: 0}\n"))
	if err == nil || !strings.Contains(err.Error(), "defaults.retry.attempts: must be at least 1") {
		t.Errorf("attempts: 0 gave %v", err)
	}
}

func TestSSHDefaultPort(t *testing.T) {
	tests := []struct{ in, want string }{
		{"10.0.0.1", "10.0.0.1:22"},
		{"rds.lan", "rds.lan:22"},
		{"rds.lan:2222", "rds.lan:2222"},
		{"fd00::1", "[fd00::1]:22"},
		{"[fd00::1]", "[fd00::1]:22"},
		{"[fd00::1]:2200", "[fd00::1]:2200"},
	}
	for _, tt := range tests {
		if got := withDefaultPort(tt.in); got != tt.want {
			t.Errorf("withDefaultPort(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

const sshOK = `    user: admin
    privateKeyFile: key
    knownHostsFile: /etc/kh
`

// TestValidation mutates a valid file one rule at a time; each case must
// fail with the path and a message fragment, and nothing else.
func TestValidation(t *testing.T) {
	head := "apiVersion: rds-reconcile/v1\nkind: State\n"
	target := func(extra string) string {
		return head + "target:\n  address: 10.0.0.1\n  basePath: pool/vols\n" + extra
	}
	vol := func(v string) string {
		return target("hosts:\n  h1: {hostNQN: nqn.2014-08.org.nvmexpress:uuid:1}\n  h2: {hostNQN: nqn.2014-08.org.nvmexpress:uuid:2}\nvolumes:\n" + v)
	}
	tests := []struct {
		name, doc, path, msg string
	}{
		{"ok", vol("  - {name: a, size: 1Gi, attachments: [h1]}\n"), "", ""},
		{"wrong apiVersion", strings.Replace(target(""), "v1", "v9", 1), "apiVersion", `must be "rds-reconcile/v1"`},
		{"wrong kind", strings.Replace(target(""), "State", "Thing", 1), "kind", `must be "State"`},
		{"name not a label", vol("  - {name: Data_1, size: 1Gi}\n"), "volumes[0].name", "DNS-1123 label"},
		{"name too long", vol("  - {name: " + strings.Repeat("a", 64) + ", size: 1Gi}\n"), "volumes[0].name", "at most 63"},
		{"nqn too long", target("  nqnPrefix: 'nqn." + strings.Repeat("x", 170) + ":'\nvolumes:\n  - {name: " + strings.Repeat("a", 60) + ", size: 1Gi}\n"), "volumes[0].name", "over the limit of 223"},
		{"slot prefix", target("  slotPrefix: pvc-\nvolumes:\n  - {name: data, size: 1Gi}\n"), "volumes[0].name", `rename it to "pvc-data"`},
		{"bad slot prefix", target("  slotPrefix: -x\n"), "target.slotPrefix", "lowercase"},
		{"misaligned", vol("  - {name: a, size: 1000000001}\n"), "volumes[0].size", "use 953Mi or 954Mi"},
		{"zero size", vol("  - {name: a, size: 0}\n"), "volumes[0].size", "is required"},
		{"size at max", vol("  - {name: a, size: 1Pi}\n"), "", ""},
		{"size over max", vol("  - {name: a, size: 1025Ti}\n"), "volumes[0].size", "size 1025Ti (1126999418470400 bytes) is more than 1Pi, the largest volume size"},
		{"size 2^63-1", vol("  - {name: a, size: 9223372036854775807}\n"), "volumes[0].size", "is more than 1Pi"},
		{"size 2^63", vol("  - {name: a, size: 9223372036854775808}\n"), "volumes[0].size", "too large"},
		{"size one byte", vol("  - {name: a, size: 1}\n"), "volumes[0].size", "not a positive multiple of 1Mi"},
		{"size MiB-1", vol("  - {name: a, size: 1048575}\n"), "volumes[0].size", "the smallest valid size is 1Mi"},
		{"no size", vol("  - {name: a}\n"), "volumes[0].size", "is required for a present volume"},
		{"absent with size", vol("  - {name: a, state: absent, size: 1Gi}\n"), "volumes[0].size", "remove size"},
		{"absent attached", vol("  - {name: a, state: absent, attachments: [h1]}\n"), "volumes[0].attachments", "remove attachments"},
		{"absent protected", vol("  - {name: a, state: absent, protect: true}\n"), "volumes[0].protect", "remove protect"},
		{"bad state", vol("  - {name: a, state: gone}\n"), "volumes[0].state", "must be one of present, absent"},
		{"bad fsType", vol("  - {name: a, size: 1Gi, fsType: zfs}\n"), "volumes[0].fsType", "ext4, xfs"},
		{"undeclared host", vol("  - {name: a, size: 1Gi, attachments: [h3]}\n"), "volumes[0].attachments[0]", `host "h3" is not declared`},
		{"double attach", vol("  - {name: a, size: 1Gi, attachments: [h1, h1], access: multi-writer-block}\n"), "volumes[0].attachments[1]", "listed twice"},
		{"two hosts on one filesystem", vol("  - {name: a, size: 1Gi, attachments: [h1, h2]}\n"), "volumes[0].attachments", "corrupts it"},
		{"shared block with a filesystem", vol("  - {name: a, size: 1Gi, fsType: xfs, access: multi-writer-block, attachments: [h1, h2]}\n"), "volumes[0].fsType", "remove fsType"},
		{"unknown access mode", vol("  - {name: a, size: 1Gi, access: shared}\n"), "volumes[0].access", "must be one of single-host, multi-writer-block"},
		{"shared block on two hosts", vol("  - {name: a, size: 1Gi, access: multi-writer-block, attachments: [h1, h2]}\n"), "", ""},
		{"ctrlLossTmo", vol("  - {name: a, size: 1Gi, connection: {ctrlLossTmo: -5}}\n"), "volumes[0].connection.ctrlLossTmo", "-1 (reconnect forever)"},
		{"reconnectDelay", vol("  - {name: a, size: 1Gi, connection: {reconnectDelay: 0}}\n"), "volumes[0].connection.reconnectDelay", "at least 1"},
		{"keepAliveTmo", vol("  - {name: a, size: 1Gi, connection: {keepAliveTmo: -1}}\n"), "volumes[0].connection.keepAliveTmo", ">= 0"},
		{"duplicate volume", vol("  - {name: a, size: 1Gi}\n  - {name: a, size: 2Gi}\n"), "volumes[1].name", "already declared"},
		{"host nqn shape", target("hosts:\n  h1: {hostNQN: 'iqn.2020:x'}\n"), "hosts.h1.hostNQN", `must start with "nqn."`},
		{"host nqn quote", target("hosts:\n  h1: {hostNQN: 'nqn.2020\"x'}\n"), "hosts.h1.hostNQN", "is not an NQN"},
		{"host nqn long", target("hosts:\n  h1: {hostNQN: nqn." + strings.Repeat("x", 230) + "}\n"), "hosts.h1.hostNQN", "the limit is 223"},
		{"host nqn missing", target("hosts:\n  h1: {}\n"), "hosts.h1.hostNQN", "is required"},
		{"host name", target("hosts:\n  'h 1': {hostNQN: nqn.2014-08.x:1}\n"), "hosts.h 1", "host name"},
		{"basePath dotdot", strings.Replace(target(""), "pool/vols", "pool/../etc", 1), "target.basePath", "'..'"},
		{"basePath double slash", strings.Replace(target(""), "pool/vols", "pool//vols", 1), "target.basePath", "clean folder path"},
		{"basePath trailing slash", strings.Replace(target(""), "pool/vols", "pool/vols/", 1), "target.basePath", "clean folder path"},
		{"basePath metachar", strings.Replace(target(""), "pool/vols", "'pool/$x'", 1), "target.basePath", "'$'"},
		{"basePath bracket", strings.Replace(target(""), "pool/vols", "'pool/[find]'", 1), "target.basePath", "'['"},
		{"address semicolon", strings.Replace(target(""), "10.0.0.1", "'10.0.0.1;x'", 1), "target.address", "';'"},
		{"address with port", strings.Replace(target(""), "10.0.0.1", "'10.0.0.1:4420'", 1), "target.address", "port goes in nvmePort"},
		{"address junk", strings.Replace(target(""), "10.0.0.1", "'-bad-.x'", 1), "target.address", "neither an IP"},
		{"nvmePort", target("  nvmePort: 70000\n"), "target.nvmePort", "1 to 65535"},
		{"nvmePort zero", target("  nvmePort: 0\n"), "target.nvmePort", "1 to 65535"},
		{"nqnPrefix end", target("  nqnPrefix: nqn.2000-02.com.mikrotik\n"), "target.nqnPrefix", "end with ':'"},
		{"nqnPrefix backquote", target("  nqnPrefix: 'nqn.x`y:'\n"), "target.nqnPrefix", "'`'"},
		{"ssh no auth", target("  ssh:\n    address: 10.0.0.1\n    user: admin\n    knownHostsFile: kh\n"), "target.ssh.user", "no way to log in"},
		{"ssh no user", target("  ssh:\n    address: 10.0.0.1\n    privateKeyFile: k\n    knownHostsFile: kh\n"), "target.ssh.user", "is required"},
		{"ssh no address", target("  ssh:\n" + sshOK), "target.ssh.address", "is required"},
		{"ssh bad port", target("  ssh:\n    address: 10.0.0.1:0\n" + sshOK), "target.ssh.address", "1 to 65535"},
		{"ssh no host key", target("  ssh:\n    address: h\n    user: u\n    passwordEnv: P\n"), "target.ssh.knownHostsFile", "insecureIgnoreHostKey"},
		{"ssh both host key", target("  ssh:\n    address: h\n    insecureIgnoreHostKey: true\n" + sshOK), "target.ssh.insecureIgnoreHostKey", "contradicts"},
		{"ssh both passwords", target("  ssh:\n    address: h\n    passwordEnv: P\n    passwordFile: p\n" + sshOK), "target.ssh.passwordFile", "not both"},
		{"ssh passphrase no key", target("  ssh:\n    address: h\n    user: u\n    passwordEnv: P\n    passphraseEnv: Q\n    knownHostsFile: kh\n"), "target.ssh.privateKeyFile", "no privateKeyFile"},
		{"ssh env name", target("  ssh:\n    address: h\n    passphraseEnv: 'A-B'\n" + sshOK), "target.ssh.passphraseEnv", "not an environment variable name"},
		{"ssh timeout", target("  ssh:\n    address: h\n    timeout: 0s\n" + sshOK), "target.ssh.timeout", "positive duration"},
		{"ssh commandTimeout ok", target("  ssh:\n    address: h\n    commandTimeout: 10m\n    maxSessions: 64\n" + sshOK), "", ""},
		{"ssh commandTimeout negative", target("  ssh:\n    address: h\n    commandTimeout: -1s\n" + sshOK), "target.ssh.commandTimeout", "positive duration of at most 10m0s"},
		{"ssh commandTimeout over max", target("  ssh:\n    address: h\n    commandTimeout: 11m\n" + sshOK), "target.ssh.commandTimeout", "at most 10m0s"},
		{"ssh maxSessions over max", target("  ssh:\n    address: h\n    maxSessions: 65\n" + sshOK), "target.ssh.maxSessions", "from 1 to 64"},
		{"ssh maxSessions negative", target("  ssh:\n    address: h\n    maxSessions: -1\n" + sshOK), "target.ssh.maxSessions", "from 1 to 64"},
		{"ssh user space", target("  ssh:\n    address: h\n    user: 'a b'\n    privateKeyFile: k\n    knownHostsFile: kh\n"), "target.ssh.user", "' '"},
		{"retry delays", target("defaults:\n  retry: {initialDelay: 5s, maxDelay: 1s}\n"), "defaults.retry.maxDelay", "shorter than initialDelay"},
		{"retry zero delay", target("defaults:\n  retry: {initialDelay: 0s}\n"), "defaults.retry.initialDelay", "positive"},
		{"retry multiplier", target("defaults:\n  retry: {multiplier: 0.9}\n"), "defaults.retry.multiplier", "at least 1"},
		{"retry jitter", target("defaults:\n  retry: {jitter: 2}\n"), "defaults.retry.jitter", "between 0 and 1"},
		{"retry attempts negative", target("defaults:\n  retry: {attempts: -1}\n"), "defaults.retry.attempts", "whole number"},
		{"nan", target("defaults:\n  retry: {jitter: .nan}\n"), "defaults.retry.jitter", "expected a number"},
		{"retry attempts at max", target("defaults:\n  retry: {attempts: 100}\n"), "", ""},
		{"retry attempts over max", target("defaults:\n  retry: {attempts: 101}\n"), "defaults.retry.attempts", "must be at most 100, got 101"},
		{"retry attempts huge", target("defaults:\n  retry: {attempts: 1000000000}\n"), "defaults.retry.attempts", "must be at most 100"},
		{"retry delays at max", target("defaults:\n  retry: {initialDelay: 1h, maxDelay: 1h}\n"), "", ""},
		{"retry initialDelay over max", target("defaults:\n  retry: {initialDelay: 1000000h}\n"), "defaults.retry.initialDelay", "must be at most 1h, got 1000000h0m0s"},
		{"retry maxDelay over max", target("defaults:\n  retry: {maxDelay: 61m}\n"), "defaults.retry.maxDelay", "must be at most 1h, got 1h1m0s"},
		{"retry multiplier at max", target("defaults:\n  retry: {multiplier: 10}\n"), "", ""},
		{"retry multiplier over max", target("defaults:\n  retry: {multiplier: 10.5}\n"), "defaults.retry.multiplier", "must be at most 10, got 10.5"},
		{"retry multiplier huge", target("defaults:\n  retry: {multiplier: 1e308}\n"), "defaults.retry.multiplier", "must be at most 10, got 1e+308"},
		{"timeouts at max", vol("  - {name: a, size: 1Gi, connection: {ctrlLossTmo: 604800, reconnectDelay: 604800, keepAliveTmo: 604800}}\n"), "", ""},
		{"ctrlLossTmo over max", vol("  - {name: a, size: 1Gi, connection: {ctrlLossTmo: 604801}}\n"), "volumes[0].connection.ctrlLossTmo", "at most 604800 seconds (a week), got 604801"},
		{"reconnectDelay over max", target("defaults:\n  connection: {reconnectDelay: 2147483648}\n"), "defaults.connection.reconnectDelay", "at most 604800 seconds"},
		{"keepAliveTmo over max", vol("  - {name: a, size: 1Gi, connection: {keepAliveTmo: 4294968}}\n"), "volumes[0].connection.keepAliveTmo", "at most 604800 seconds"},
		{"orphans", target("policy: {orphans: delete}\n"), "policy.orphans", "disconnect, report"},
		{"prune type", target("policy: {prune: 1}\n"), "policy.prune", "expected true or false"},
		{"unknown field", target("  adress: x\n"), "target.adress", `did you mean "address"?`},
		{"wrong type", target("volumes: {a: 1}\n"), "volumes", "expected a list"},
		{"string for mapping", target("defaults: fast\n"), "defaults", "expected a mapping"},
		{"duplicate key", target("policy: {prune: true, prune: false}\n"), "policy.prune", "duplicate key"},
		{"merge key", target("x: &a {prune: true}\npolicy:\n  <<: *a\n"), "x", "unknown field"},
		{"two documents", target("---\napiVersion: rds-reconcile/v1\n"), "", "one YAML document"},
		{"empty", "", "", "the file is empty"},
		{"comments only", "# nothing\n", "", "the file is empty"},
		{"not a mapping", "- a\n", "", "a state file is a mapping"},
		{"bare tag", "!", "", "a state file is a mapping"},
		{"no target", head, "target", "no file declares the target"},
		{"bool for string", target("hosts:\n  h1: {hostNQN: true}\n"), "hosts.h1.hostNQN", "expected a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadBytes("t.yaml", []byte(tt.doc))
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("unexpected error:\n%v", err)
				}
				return
			}
			var es *Errors
			if !errors.As(err, &es) {
				t.Fatalf("want *Errors, got %v", err)
			}
			for _, e := range *es {
				if e.Path == tt.path && strings.Contains(e.Msg, tt.msg) {
					if e.File != "t.yaml" || e.Line < 1 || e.Col < 1 {
						t.Errorf("bad position in %q", e.Error())
					}
					if len(*es) > 1 && tt.name != "merge key" {
						t.Errorf("want only this error, got:\n%v", err)
					}
					return
				}
			}
			t.Fatalf("want %s: ...%s..., got:\n%v", tt.path, tt.msg, err)
		})
	}
}

func TestLayering(t *testing.T) {
	st, err := Load("testdata/layers/base.yaml", "testdata/layers/volumes-only.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Volumes) != 3 {
		t.Fatalf("volumes = %+v", st.Volumes)
	}
	src := map[string]string{}
	for _, v := range st.Volumes {
		src[v.Name] = v.Source
	}
	if src["base-vol"] != "testdata/layers/base.yaml" || src["csi-vol"] != "testdata/layers/volumes-only.yaml" {
		t.Errorf("sources = %v", src)
	}
	// The layer repeats node-a with the same NQN (fine) and adds node-b.
	if got := strings.Join(st.HostNames(), ","); got != "node-a,node-b" {
		t.Errorf("hosts = %s", got)
	}
	// The volume layer inherits the base's defaults.
	if got := st.Volume("csi-vol").FSType; got != "xfs" {
		t.Errorf("inherited fsType = %q", got)
	}
}

func TestErrorFormat(t *testing.T) {
	es := Errors{
		{File: "b.yaml", Line: 2, Col: 1, Path: "x", Msg: "m"},
		{File: "a.yaml", Line: 9, Col: 3, Path: "y", Msg: "m"},
		{File: "a.yaml", Line: 9, Col: 3, Path: "y", Msg: "m"},
		{File: "a.yaml", Line: 1, Col: 1, Msg: "syntax"},
		{File: "c.yaml", Msg: "cannot read"},
	}
	sorted := es.sort()
	got := sorted.Error()
	want := "a.yaml:1:1: syntax\na.yaml:9:3: y: m\nb.yaml:2:1: x: m\nc.yaml: cannot read"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestLoadNoFiles(t *testing.T) {
	if _, err := Load(); err == nil {
		t.Fatal("Load() succeeded")
	}
}

// TestAliasBomb: documents that expand through aliases (quadratic here, as
// the types do not nest deeply enough for exponential growth) or that hold
// very many problems are cut off quickly.
func TestAliasBomb(t *testing.T) {
	list := "[" + strings.TrimSuffix(strings.Repeat("a, ", 2000), ", ") + "]"
	vols := "[" + strings.TrimSuffix(strings.Repeat("*v, ", 2000), ", ") + "]"
	tests := []struct{ name, doc, want string }{
		{"alias expansion", "apiVersion: rds-reconcile/v1\nkind: State\nhosts: {h: {hostNQN: &s nqn.x:1}}\n" +
			"volumes: [&v {name: a, size: 1Gi, attachments: " + list + "}, " + vols[1:] + "\n", "through aliases"},
		{"too many problems", "apiVersion: rds-reconcile/v1\nkind: State\nvolumes: [" + strings.TrimSuffix(strings.Repeat("{bogus: 1}, ", 1000), ", ") + "]\n", "more than 200 problems"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := LoadBytes("bomb.yaml", []byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("want an error containing %q, got %v", tt.want, err)
			}
			if n := strings.Count(err.Error(), "\n"); n > 210 {
				t.Errorf("%d error lines", n)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}
