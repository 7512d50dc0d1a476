package main

// run --git against real git repositories made here (a bare repository on
// disk, file:// URL), the simulated RDS and the simulated host.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gitRemote is a bare repository and a work tree that pushes to it.
type gitRemote struct {
	t    *testing.T
	bare string
	work string
}

func newGitRemote(t *testing.T) *gitRemote {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: run --git drives the git CLI")
	}
	// The machine's git configuration stays out.
	for k, v := range map[string]string{
		"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
		"GIT_AUTHOR_NAME": "Ops", "GIT_AUTHOR_EMAIL": "ops@example.com",
		"GIT_COMMITTER_NAME": "Ops", "GIT_COMMITTER_EMAIL": "ops@example.com",
	} {
		t.Setenv(k, v)
	}
	d := t.TempDir()
	g := &gitRemote{t: t, bare: filepath.Join(d, "state.git"), work: filepath.Join(d, "work")}
	g.git(d, "init", "-q", "--bare", "-b", "main", g.bare)
	g.git(d, "init", "-q", "-b", "main", g.work)
	g.git(g.work, "remote", "add", "origin", g.bare)
	return g
}

func (g *gitRemote) git(dir string, args ...string) string {
	g.t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		g.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes the state file targets/rds-1.yaml, commits it (with the
// extra commit args) and pushes (forced with force); it returns the short
// revision run reports.
func (g *gitRemote) commit(state string, force bool, args ...string) string {
	g.t.Helper()
	p := filepath.Join(g.work, "targets", "rds-1.yaml")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		g.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(state), 0o644); err != nil {
		g.t.Fatal(err)
	}
	g.git(g.work, "add", "-A")
	g.git(g.work, append([]string{"commit", "-q", "--allow-empty", "-m", "state"}, args...)...)
	ref := "HEAD:refs/heads/main"
	if force {
		ref = "+" + ref
	}
	g.git(g.work, "push", "-q", "origin", ref)
	return g.git(g.work, "rev-parse", "--short=12", "HEAD")
}

// gitState is the state file of e with these volumes, its key paths
// absolute (the file lives in the clone, not next to the simulator).
func gitState(e *env, volumes string) string {
	e.t.Helper()
	e.write(volumes)
	b, err := os.ReadFile(e.state)
	if err != nil {
		e.t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "rds/client_key", filepath.Join(e.dir, "rds", "client_key"))
	return strings.ReplaceAll(s, "rds/known_hosts", filepath.Join(e.dir, "rds", "known_hosts"))
}

// looper is run in-process with its HTTP endpoints.
type looper struct {
	t    *testing.T
	addr string
	errb *syncBuffer
}

func startRun(t *testing.T, e *env, args ...string) *looper {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	errb, _ := runInProcess(t, append([]string{"--fabric", "sim:" + e.hostDir, "--host", "node-a", "run", "--listen", addr,
		"--interval", "1h", "--settle", "100ms", "--git-interval", "200ms", "--state-dir", filepath.Join(e.dir, "var")}, args...))
	return &looper{t: t, addr: addr, errb: errb}
}

func (l *looper) get(path string) (int, string) {
	resp, err := http.Get("http://" + l.addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// runStatus is the part of /status these tests read.
type runStatus struct {
	Revision string `json:"revision"`
	Volumes  []struct {
		Name      string `json:"name"`
		Condition string `json:"condition"`
	} `json:"volumes"`
	Git struct {
		Revision string `json:"short"`
		Remote   string `json:"remoteRevision"`
		Behind   int    `json:"behind"`
		Error    string `json:"error"`
		Reason   string `json:"reason"`
		Time     string `json:"time"`
		LastSync string `json:"lastSync"`
	} `json:"git"`
}

// waitStatus polls /status until ok holds (10s).
func (l *looper) waitStatus(what string, ok func(s runStatus) bool) runStatus {
	l.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := l.get("/status")
		var s runStatus
		if code == 200 && json.Unmarshal([]byte(body), &s) == nil && ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("/status never showed %s: %d %s\nlog:\n%s", what, code, body, l.errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ready says every volume in names is Ready, and no other volume is listed.
func ready(s runStatus, names ...string) bool {
	if len(s.Volumes) != len(names) {
		return false
	}
	for i, v := range s.Volumes {
		if v.Name != names[i] || v.Condition != "Ready" {
			return false
		}
	}
	return true
}

const oneVolume = `  - {name: t-a, size: 64Mi, attachments: [node-a]}
`

func (e *env) controllers() int {
	e.t.Helper()
	c, err := e.host().List(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return len(c)
}

func TestRunFollowsGit(t *testing.T) {
	e := newEnv(t, oneVolume)
	g := newGitRemote(t)
	a := g.commit(gitState(e, oneVolume), false)
	l := startRun(t, e, "--git", "file://"+g.bare, "--ref", "main", "--path", "targets/rds-1.yaml", "--git-stale-after", "1500ms")
	s := l.waitStatus("t-a Ready at the first commit", func(s runStatus) bool { return ready(s, "t-a") && s.Revision == a })
	if s.Git.Revision != a || s.Git.Behind != 0 || s.Git.Time == "" || s.Git.LastSync == "" || s.Git.Error != "" {
		t.Errorf("/status git: %+v", s.Git)
	}

	// A pushed commit is applied within a few git intervals (the loop's
	// own interval is an hour).
	b := g.commit(gitState(e, twoVolumes), false)
	l.waitStatus("t-b Ready at the second commit", func(s runStatus) bool { return ready(s, "t-a", "t-b") && s.Revision == b })
	if n := len(e.srv.Disks()); n != 2 {
		t.Fatalf("disks: %d, want 2", n)
	}
	code, body := l.get("/metrics")
	for _, want := range []string{
		fmt.Sprintf(`rds_reconcile_git_sync_info{ref="main",revision="%s"} 1`, b),
		fmt.Sprintf(`rds_reconcile_state_info{revision="%s"} 1`, b),
		"rds_reconcile_git_behind_commits 0", "rds_reconcile_git_last_sync_timestamp_seconds 1.",
		"rds_reconcile_git_revision_timestamp_seconds 1.",
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	named := false
	for _, line := range strings.Split(l.errb.String(), "\n") {
		if strings.Contains(line, "msg=action") && strings.Contains(line, "volume=t-b") {
			named = true
			if strings.Count(line, "revision=") != 1 || !strings.Contains(line, "revision="+b) {
				t.Errorf("an action line does not name revision %s once: %s", b, line)
			}
		}
	}
	if !named {
		t.Errorf("no action line for t-b:\n%s", l.errb.String())
	}
	if c, body := l.get("/healthz"); c != 200 {
		t.Errorf("/healthz: %d %s", c, body)
	}

	// A force-push that drops t-b is refused: the state stays at b.
	g.git(g.work, "reset", "-q", "--hard", "HEAD~1")
	forced := g.commit(gitState(e, oneVolume), true)
	s = l.waitStatus("the rewrite refused", func(s runStatus) bool { return s.Git.Reason == "rewritten" })
	if s.Git.Revision != b || s.Git.Remote[:12] != forced || !strings.Contains(s.Git.Error, "does not descend") {
		t.Errorf("/status git after a force-push: %+v", s.Git)
	}
	if _, body := l.get("/metrics"); !strings.Contains(body, `rds_reconcile_git_sync_errors_total{reason="rewritten"}`) {
		t.Error("/metrics does not count the refused rewrite")
	}
	if !strings.Contains(l.errb.String(), "remote history was rewritten") {
		t.Errorf("the log does not say the history was rewritten:\n%s", l.errb.String())
	}
	// It stays refused past the stale bound: /healthz turns degraded, and
	// nothing was disconnected.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, body := l.get("/healthz")
		if c == 503 && strings.Contains(body, `"degraded"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz not degraded: %d %s", c, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := e.controllers(); n != 2 {
		t.Fatalf("controllers after a refused rewrite: %d, want 2", n)
	}

	// The history restored to descend from b, a commit that empties the
	// state is synced but the mass-detach guard disconnects nothing.
	g.git(g.work, "reset", "-q", "--hard", b)
	empty := g.commit(gitState(e, "  []\n"), true)
	l.waitStatus("the empty commit synced", func(s runStatus) bool { return s.Revision == empty && s.Git.Error == "" })
	if c, body := l.get("/healthz"); c != 200 {
		t.Errorf("/healthz once in sync: %d %s", c, body)
	}
	time.Sleep(500 * time.Millisecond) // several settle intervals: a confirming pass would have run
	if n := e.controllers(); n != 2 {
		t.Fatalf("controllers after an emptied state: %d, want 2 (mass-detach guard)", n)
	}
	if !strings.Contains(l.errb.String(), "mass-detach") {
		t.Errorf("the log does not say the mass-detach guard held:\n%s", l.errb.String())
	}

	// An unreachable remote changes nothing and is visible.
	if err := os.Rename(g.bare, g.bare+".gone"); err != nil {
		t.Fatal(err)
	}
	s = l.waitStatus("the failed fetch", func(s runStatus) bool { return s.Git.Reason == "fetch" })
	if s.Git.Revision != empty || s.Revision != empty {
		t.Errorf("/status after a failed fetch: %+v", s)
	}
	if n := e.controllers(); n != 2 || len(e.srv.Disks()) != 2 {
		t.Fatalf("an unreachable remote changed the world: %d controllers", n)
	}
	if _, body := l.get("/metrics"); !strings.Contains(body, `rds_reconcile_git_sync_errors_total{reason="fetch"}`) {
		t.Error("/metrics does not count the failed fetch")
	}
}

func TestRunGitVerifyCommits(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen is not installed: it makes and checks the SSH commit signatures of this test")
	}
	e := newEnv(t, oneVolume)
	g := newGitRemote(t)
	key := filepath.Join(e.dir, "signing_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ops", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	signers := filepath.Join(e.dir, "allowed_signers")
	if err := os.WriteFile(signers, []byte("ops@example.com "+string(pub)), 0o644); err != nil {
		t.Fatal(err)
	}
	g.git(g.work, "config", "gpg.format", "ssh")
	sign := []string{"-S", "--gpg-sign=" + key}
	a := g.commit(gitState(e, oneVolume), false, sign...)
	l := startRun(t, e, "--git", "file://"+g.bare, "--path", "targets", "--verify-commits", "--allowed-signers", signers)
	l.waitStatus("t-a Ready at the signed commit", func(s runStatus) bool { return ready(s, "t-a") && s.Revision == a })

	// An unsigned commit adding t-b is not applied.
	g.commit(gitState(e, twoVolumes), false)
	s := l.waitStatus("the unsigned head refused", func(s runStatus) bool { return s.Git.Reason == "unverified" })
	if s.Git.Revision != a || s.Git.Behind != 1 || !strings.Contains(s.Git.Error, "not signed") {
		t.Errorf("/status git: %+v", s.Git)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(e.srv.Disks()); n != 1 {
		t.Fatalf("disks after an unsigned commit: %d, want 1", n)
	}
	if _, body := l.get("/metrics"); !strings.Contains(body, `rds_reconcile_git_sync_errors_total{reason="unverified"}`) ||
		!strings.Contains(body, "rds_reconcile_git_behind_commits 1") {
		t.Error("/metrics does not show the refused head")
	}
	if !strings.Contains(l.errb.String(), "not verified") {
		t.Errorf("the log does not say why:\n%s", l.errb.String())
	}
	// A signed commit on top is applied.
	c := g.commit(gitState(e, twoVolumes), false, sign...)
	l.waitStatus("t-b Ready at the signed commit", func(s runStatus) bool { return ready(s, "t-a", "t-b") && s.Revision == c })
}

func TestRunGitFlags(t *testing.T) {
	e := newEnv(t, oneVolume)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-f", e.state, "--ref", "main"}, "--ref is an option of --git"},
		{[]string{"--git", "file:///x", "-f", e.state, "--state-dir", e.dir}, "exclude each other"},
		{[]string{"--git", "file:///x"}, "--git needs --state-dir"},
		{[]string{"--git", "file:///x", "--state-dir", e.dir, "--verify-commits"}, "--allowed-signers"},
		{[]string{"--git", "file://" + filepath.Join(e.dir, "none.git"), "--state-dir", filepath.Join(e.dir, "var")}, "no verified commit checked out"},
	} {
		t.Setenv("STATE_DIRECTORY", "")
		code, _, errOut := e.cli(append([]string{"run"}, tc.args...)...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("run %v: exit %d, stderr %q, want %q", tc.args, code, errOut, tc.want)
		}
	}
}
