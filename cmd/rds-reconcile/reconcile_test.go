package main

// Integration tests of plan, apply, status, export and run: the real rds
// client over SSH to rds/sim, the simulated fabric in a temp folder.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	fabsim "github.com/rds-reconcile/rds-reconcile/fabric/sim"
	"github.com/rds-reconcile/rds-reconcile/rds/sim"
	"github.com/rds-reconcile/rds-reconcile/reconcile"
)

// env is one simulated RDS and one simulated host.
type env struct {
	t       *testing.T
	srv     *sim.Server
	dir     string
	hostDir string
	state   string // path of the state file
}

const testNQNPrefix = "nqn.2000-02.com.mikrotik:"

func newEnv(t *testing.T, volumes string) *env {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := sim.ServeDir(ctx, filepath.Join(dir, "rds"), "127.0.0.1:0", sim.Options{JSON: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	e := &env{t: t, srv: srv, dir: dir, hostDir: filepath.Join(dir, "host"), state: filepath.Join(dir, "state.yaml")}
	e.write(volumes)
	return e
}

// write (re)writes the state file with these volumes.
func (e *env) write(volumes string) {
	e.t.Helper()
	src := fmt.Sprintf(`apiVersion: rds-reconcile/v1
kind: State
target:
  address: 127.0.0.1
  nvmePort: 4420
  ssh:
    address: %s
    user: admin
    privateKeyFile: rds/client_key
    knownHostsFile: rds/known_hosts
    timeout: 5s
  basePath: storage-pool/volumes
  nqnPrefix: "%s"
  slotPrefix: t-
defaults:
  connection: {ctrlLossTmo: -1, reconnectDelay: 5, keepAliveTmo: 0}
  retry: {attempts: 10, initialDelay: 5ms, maxDelay: 50ms, multiplier: 2, jitter: 0.1}
policy: {orphans: disconnect}
hosts:
  node-a: {hostNQN: "nqn.2014-08.org.nvmexpress:uuid:a"}
  node-b: {hostNQN: "nqn.2014-08.org.nvmexpress:uuid:b"}
volumes:
%s`, e.srv.Addr(), testNQNPrefix, volumes)
	if err := os.WriteFile(e.state, []byte(src), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// cli runs rds-reconcile in-process against this env as node-a.
func (e *env) cli(args ...string) (int, string, string) {
	e.t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{"--fabric", "sim:" + e.hostDir, "--host", "node-a", "--log-level", "warn"}, args...)
	code := run(full, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func (e *env) host() *fabsim.Host {
	e.t.Helper()
	h, err := fabsim.Open(e.hostDir, fabsim.Options{ManagedPrefixes: []string{testNQNPrefix}})
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

func (e *env) mustPlanEmpty() {
	e.t.Helper()
	code, out, errOut := e.cli("plan", "-f", e.state, "--detailed-exitcode")
	if code != 0 {
		e.t.Fatalf("plan after apply: exit %d, want 0 (empty)\n%s\n%s", code, out, errOut)
	}
}

const twoVolumes = `  - {name: t-a, size: 64Mi, attachments: [node-a], connection: {ctrlLossTmo: 600}}
  - {name: t-b, size: 32Mi, attachments: [node-a]}
`

func TestPlanApplyStatusExport(t *testing.T) {
	e := newEnv(t, twoVolumes)
	code, out, errOut := e.cli("plan", "-f", e.state, "--detailed-exitcode")
	if code != 2 {
		t.Fatalf("plan: exit %d, want 2 (changes)\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "Plan: 4 to create, 0 to change, 0 to disconnect, 0 to delete, 0 blocked.") {
		t.Errorf("plan summary:\n%s", out)
	}
	// Not a terminal and no --auto-approve: refused, nothing changed.
	code, _, errOut = e.cli("apply", "-f", e.state)
	if code != 1 || !strings.Contains(errOut, "--auto-approve") {
		t.Fatalf("apply without approval: exit %d, stderr %q", code, errOut)
	}
	if len(e.srv.Disks()) != 0 {
		t.Fatal("apply without approval changed the RDS")
	}
	code, out, errOut = e.cli("apply", "-f", e.state, "--auto-approve")
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"create disk t-a", "done in", "1 attempt", "Apply: 4 done, 0 failed, 0 skipped, 0 blocked"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}
	e.mustPlanEmpty()
	// The connect carried the volume's timeouts (seed truth 1).
	ctrls, err := e.host().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ctrls) != 2 {
		t.Errorf("controllers: %+v", ctrls)
	}
	for _, c := range ctrls {
		if c.SubsysNQN == testNQNPrefix+"t-a" && c.Timeouts.CtrlLossTmo != 600 {
			t.Errorf("t-a connected with %+v, want ctrl_loss_tmo 600", c.Timeouts)
		}
	}

	code, out, _ = e.cli("status", "-f", e.state, "-o", "json")
	var st reconcile.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	for _, v := range st.Volumes {
		if v.Condition != reconcile.ConditionReady || !v.RDS.Exported || v.Host.Controller == "" {
			t.Errorf("status %s: %+v", v.Name, v)
		}
	}
	code, out, _ = e.cli("status", "-f", e.state)
	if code != 0 || !strings.Contains(out, "CONDITION") || !strings.Contains(out, "Ready") {
		t.Errorf("status table: exit %d\n%s", code, out)
	}

	// export: the written state plans empty.
	exported := filepath.Join(e.dir, "exported.yaml")
	code, _, errOut = e.cli("export", "--target-from", e.state, "-o", exported)
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, errOut)
	}
	code, out, errOut = e.cli("plan", "-f", exported, "--detailed-exitcode")
	if code != 0 {
		t.Fatalf("plan of the exported state: exit %d\n%s%s", code, out, errOut)
	}

	// A timeout changed in the file: changed in place, then empty again.
	e.write(strings.Replace(twoVolumes, "ctrlLossTmo: 600", "ctrlLossTmo: 1200", 1))
	code, out, _ = e.cli("plan", "-f", e.state, "-o", "json")
	var p reconcile.Plan
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || p.FormatVersion != "1" {
		t.Fatalf("plan -o json: exit %d\n%s", code, out)
	}
	if len(p.Actions) != 1 || p.Actions[0].Kind != reconcile.KindSetTimeouts {
		t.Fatalf("plan after a timeout change: %+v", p.Actions)
	}
	if code, out, errOut := e.cli("apply", "-f", e.state, "--auto-approve"); code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	e.mustPlanEmpty()
}

func TestApplyConvergesUnderFaults(t *testing.T) {
	e := newEnv(t, `  - {name: t-a, size: 64Mi, attachments: [node-a]}
  - {name: t-b, size: 32Mi, attachments: [node-a]}
  - {name: t-c, size: 32Mi, attachments: [node-a]}
  - {name: t-keep, size: 16Mi, protect: true}
`)
	// Things that are not ours, or protected, must survive everything.
	if out := e.srv.Exec(`/disk add type=file file-path=storage-pool/volumes/other.img file-size=16M slot=other nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn="nqn.2014-08.org.example:other"`); out != "" {
		t.Fatalf("seed foreign disk: %s", out)
	}
	h := e.host()
	foreign, err := h.AddForeign("nqn.2014-08.org.example:foreign", "10.9.9.9", 4420)
	if err != nil {
		t.Fatal(err)
	}
	// An orphan with a managed NQN, as a crash could leave.
	if _, err := h.AddForeign(testNQNPrefix+"t-orphan", "127.0.0.1", 4420); err != nil {
		t.Fatal(err)
	}
	// Dropped connections (every 5th command), latency, a refused connect.
	e.srv.SetFaults(sim.Faults{Latency: 2 * time.Millisecond, DropAfter: 4})
	h.FailNextConnect("connection refused", true)

	code, out, errOut := e.cli("apply", "-f", e.state, "--auto-approve")
	if code != 0 {
		t.Fatalf("apply under faults: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "attempts") {
		t.Logf("no retries were needed:\n%s", out)
	}
	e.srv.SetFaults(sim.Faults{})
	e.mustPlanEmpty()

	// Prune: the undeclared managed disk goes; protected, foreign stay.
	e.write(`  - {name: t-a, size: 64Mi, attachments: [node-a]}
  - {name: t-keep, size: 16Mi, protect: true}
`)
	// Two of three volumes leave this host at once: held back (a truncated
	// file looks the same) until the operator says so.
	code, out, _ = e.cli("plan", "-f", e.state, "--prune", "--detailed-exitcode")
	if code != 3 || !strings.Contains(out, "mass-detach") {
		t.Fatalf("plan dropping 2 of 3 volumes: exit %d, want 3 with a mass-detach block\n%s", code, out)
	}
	code, out, errOut = e.cli("apply", "-f", e.state, "--auto-approve", "--prune", "--allow-mass-detach")
	if code != 0 {
		t.Fatalf("apply --prune: exit %d\n%s%s", code, out, errOut)
	}
	var slots []string
	for _, d := range e.srv.Disks() {
		slots = append(slots, d.Slot)
	}
	slices.Sort(slots)
	if want := []string{"other", "t-a", "t-keep"}; !slices.Equal(slots, want) {
		t.Errorf("disks after prune: %q, want %q", slots, want)
	}
	ctrls, err := h.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range ctrls {
		names = append(names, c.SubsysNQN)
	}
	if !slices.Contains(names, foreign.SubsysNQN) || slices.Contains(names, testNQNPrefix+"t-orphan") || len(names) != 2 {
		t.Errorf("controllers after apply: %q (want the foreign one and t-a)", names)
	}
	code, _, _ = e.cli("plan", "-f", e.state, "--prune", "--detailed-exitcode")
	if code != 0 {
		t.Errorf("plan --prune after apply --prune: exit %d, want 0", code)
	}
}

func TestSavedPlanAndStale(t *testing.T) {
	e := newEnv(t, twoVolumes)
	planFile := filepath.Join(e.dir, "tonight.plan")
	if code, out, errOut := e.cli("plan", "-f", e.state, "--out", planFile); code != 0 {
		t.Fatalf("plan --out: %d\n%s%s", code, out, errOut)
	}
	// The live state changes: a disk appears behind our back.
	if out := e.srv.Exec(`/disk add type=file file-path=storage-pool/volumes/t-x.img file-size=16M slot=t-x nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn="` + testNQNPrefix + `t-x"`); out != "" {
		t.Fatal(out)
	}
	code, _, errOut := e.cli("apply", planFile)
	if code != 1 || !strings.Contains(errOut, "plan is stale") {
		t.Fatalf("stale plan: exit %d, stderr %q", code, errOut)
	}
	if len(e.srv.Disks()) != 1 {
		t.Fatal("a stale plan changed the RDS")
	}
	// A fresh saved plan applies without asking.
	if code, _, errOut := e.cli("plan", "-f", e.state, "--out", planFile); code != 0 {
		t.Fatal(errOut)
	}
	if code, out, errOut := e.cli("apply", planFile); code != 0 {
		t.Fatalf("apply saved plan: exit %d\n%s%s", code, out, errOut)
	}
	e.mustPlanEmpty()
	if code, _, errOut := e.cli("apply", "-f", e.state, planFile); code != 1 || !strings.Contains(errOut, "not both") {
		t.Errorf("files and plan: exit %d %q", code, errOut)
	}
}

func TestApplyLocked(t *testing.T) {
	e := newEnv(t, twoVolumes)
	l, err := reconcile.AcquireLock(reconcile.LockPath("", []string{e.state}), "rds-reconcile run")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	code, _, errOut := e.cli("apply", "-f", e.state, "--auto-approve")
	if code != 1 || !strings.Contains(errOut, fmt.Sprintf("pid %d", os.Getpid())) || !strings.Contains(errOut, "rds-reconcile run") {
		t.Fatalf("locked apply: exit %d, stderr %q", code, errOut)
	}
	// --state-dir moves the lock.
	if code, out, errOut := e.cli("apply", "-f", e.state, "--auto-approve", "--state-dir", t.TempDir()); code != 0 {
		t.Fatalf("apply with --state-dir: %d\n%s%s", code, out, errOut)
	}
}

func TestPlanExitCodes(t *testing.T) {
	e := newEnv(t, `  - {name: t-a, size: 64Mi}
`)
	if code, _, _ := e.cli("apply", "-f", e.state, "--auto-approve"); code != 0 {
		t.Fatal("apply")
	}
	for _, c := range []struct {
		volumes string
		code    int
	}{
		{"  - {name: t-a, size: 64Mi}\n", 0},
		{"  - {name: t-a, size: 128Mi}\n", 2},
		{"  - {name: t-a, size: 32Mi}\n", 3}, // shrink refused: blocked
	} {
		e.write(c.volumes)
		code, out, errOut := e.cli("plan", "-f", e.state, "--detailed-exitcode")
		if code != c.code {
			t.Errorf("%s: exit %d, want %d\n%s%s", strings.TrimSpace(c.volumes), code, c.code, out, errOut)
		}
	}
	// Without --detailed-exitcode a plan with changes exits 0.
	if code, _, _ := e.cli("plan", "-f", e.state); code != 0 {
		t.Errorf("plan without --detailed-exitcode: exit %d", code)
	}
	// An invalid state is an error (1), with positioned messages.
	if err := os.WriteFile(e.state, []byte("apiVersion: nope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := e.cli("plan", "-f", e.state, "--detailed-exitcode"); code != 1 || !strings.Contains(errOut, "state.yaml") {
		t.Errorf("invalid state: exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := e.cli("plan", "-f", e.state, "-o", "yaml"); code != 1 {
		t.Errorf("-o yaml: exit %d", code)
	}
}

func TestRunServesMetricsAndStatus(t *testing.T) {
	e := newEnv(t, twoVolumes)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	root := newRootCmd(strings.NewReader(""), &out, &errb)
	root.SetArgs([]string{"--fabric", "sim:" + e.hostDir, "--host", "node-a", "run", "-f", e.state,
		"--interval", "1h", "--listen", addr})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("run did not stop")
		}
	}()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := get("/status")
		if code == 200 && strings.Contains(body, `"condition": "Ready"`) && !strings.Contains(body, "Progressing") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/status never Ready: %d %s\nstderr: %s", code, body, errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, body := get("/metrics")
	for _, want := range []string{"rds_reconcile_reconciles_total", "rds_reconcile_actions_total{kind=\"create\",result=\"ok\"} 2",
		"rds_reconcile_controllers{state=\"live\"} 2", "rds_reconcile_reconcile_duration_seconds_bucket", "rds_reconcile_drift 0"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, body := get("/healthz"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Errorf("/healthz: %d %s", code, body)
	}
	// The pass ends with one sample of both disks' RDS counters (right
	// after /status has the pass's status).
	for _, want := range []string{`rds_reconcile_disk_write_ops_total{volume="t-a"}`, `rds_reconcile_disk_read_bytes_total{volume="t-b"}`,
		"rds_reconcile_disk_traffic_errors_total 0", "rds_reconcile_disk_traffic_timestamp_seconds "} {
		for code, body := get("/metrics"); code != 200 || !strings.Contains(body, want); code, body = get("/metrics") {
			if time.Now().After(deadline) {
				t.Fatalf("/metrics lacks %q:\n%s", want, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// A second apply while run holds the lock is refused.
	if code, _, errOut := e.cli("apply", "-f", e.state, "--auto-approve"); code != 1 || !strings.Contains(errOut, "locked") {
		t.Errorf("apply during run: exit %d %q", code, errOut)
	}
}

// TestApplyJSON: apply -o json streams one object per line against the
// real rds client and the simulator: the plan, a result per action, the
// summary; it never prompts; a second apply has nothing to do.
func TestApplyJSON(t *testing.T) {
	e := newEnv(t, twoVolumes)
	if code, out, errOut := e.cli("apply", "-f", e.state, "-o", "json"); code != 1 || !strings.Contains(errOut, "--auto-approve") {
		t.Fatalf("apply -o json without approval: exit %d, stderr %q\n%s", code, errOut, out)
	}
	code, out, errOut := e.cli("apply", "-f", e.state, "-o", "json", "--auto-approve")
	if code != 0 {
		t.Fatalf("apply -o json: exit %d\n%s%s", code, out, errOut)
	}
	types, last := jsonLines(t, out)
	if want := "plan result result result result summary"; strings.Join(types, " ") != want {
		t.Errorf("line types %q, want %q\n%s", types, want, out)
	}
	if last["done"] != 4.0 || last["failed"] != 0.0 {
		t.Errorf("summary %v", last)
	}
	e.mustPlanEmpty()
	code, out, _ = e.cli("apply", "-f", e.state, "-o", "json", "--auto-approve")
	if types, last := jsonLines(t, out); code != 0 || strings.Join(types, " ") != "plan summary" || last["done"] != 0.0 {
		t.Errorf("second apply: exit %d\n%s", code, out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"apply", "-f", e.state, "-o", "yaml", "--auto-approve"}, `-o/--output "yaml": want text or json`},
		{[]string{"status", "-f", e.state, "-o", "text"}, `-o/--output "text": want table or json`},
	} {
		if code, _, errOut := e.cli(c.args...); code != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("%q: exit %d, stderr %q, want %q", c.args, code, errOut, c.want)
		}
	}
}

// jsonLines parses out as JSON lines: their types and the last object.
func jsonLines(t *testing.T, out string) ([]string, map[string]any) {
	t.Helper()
	var types []string
	var last map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		last = nil
		if err := json.Unmarshal([]byte(l), &last); err != nil {
			t.Fatalf("not a JSON line: %v: %q", err, l)
		}
		types = append(types, fmt.Sprint(last["type"]))
	}
	return types, last
}
