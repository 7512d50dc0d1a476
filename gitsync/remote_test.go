package gitsync

import (
	"context"
	"net"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// helper returns the path of a git program in git's exec path, or skips.
func helper(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Skipf("git --exec-path: %v", err)
	}
	p := filepath.Join(strings.TrimSpace(string(out)), name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s is not installed with git here: %v", name, err)
	}
	return p
}

// TestSyncOverGitDaemon follows a repository served by git daemon on
// loopback (git:// URL).
func TestSyncOverGitDaemon(t *testing.T) {
	rm := newRemote(t)
	// git-daemon itself, not `git daemon`: the git wrapper would leave
	// it running when killed.
	daemon := helper(t, "git-daemon")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	base := filepath.Dir(rm.bare)
	d := exec.Command(daemon, "--reuseaddr", "--listen=127.0.0.1", "--port="+strconv.Itoa(port),
		"--export-all", "--base-path="+base, base)
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Process.Kill(); _ = d.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("git daemon does not listen")
		}
	}
	a := rm.commit(map[string]string{"s.yaml": "one"}, false)
	r := open(t, Options{URL: "git://" + addr + "/remote.git", Ref: "main", Paths: []string{"s.yaml"}})
	ctx := context.Background()
	if moved, err := r.Sync(ctx); err != nil || !moved || r.Status().Revision != a {
		t.Fatalf("first sync over git://: moved %v, %v, %+v", moved, err, r.Status())
	}
	b := rm.commit(map[string]string{"s.yaml": "two"}, false)
	if moved, err := r.Sync(ctx); err != nil || !moved {
		t.Fatalf("second sync over git://: moved %v, %v", moved, err)
	}
	if got, st, err := read(t, r); err != nil || got["s.yaml"] != "two" || st.Revision != b {
		t.Fatalf("after the second sync: %v %+v %v", got, st, err)
	}
	// The daemon gone: the checkout stays.
	_ = d.Process.Kill()
	_ = d.Wait()
	if _, err := r.Sync(ctx); err == nil || r.Status().Reason != "fetch" || r.Status().Revision != b {
		t.Fatalf("sync with the daemon gone: %v %+v", err, r.Status())
	}
}

// TestSyncOverHTTP follows a repository served by git http-backend (smart
// HTTP, the transport of https:// remotes) on loopback; a password in the
// URL never shows in the status or errors.
func TestSyncOverHTTP(t *testing.T) {
	rm := newRemote(t)
	backend := helper(t, "git-http-backend")
	helper(t, "git-remote-http")
	srv := httptest.NewServer(&cgi.Handler{Path: backend, Env: []string{
		"GIT_PROJECT_ROOT=" + filepath.Dir(rm.bare), "GIT_HTTP_EXPORT_ALL=1",
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
	}})
	a := rm.commit(map[string]string{"s.yaml": "one"}, false)
	url := strings.Replace(srv.URL, "http://", "http://bot:s3cret@", 1) + "/remote.git"
	r := open(t, Options{URL: url, Ref: "main"})
	ctx := context.Background()
	if moved, err := r.Sync(ctx); err != nil || !moved || r.Status().Revision != a {
		t.Fatalf("sync over http: moved %v, %v, %+v", moved, err, r.Status())
	}
	if st := r.Status(); strings.Contains(st.URL, "s3cret") || !strings.Contains(st.URL, "bot") {
		t.Errorf("status URL: %s", st.URL)
	}
	srv.Close()
	_, err := r.Sync(ctx)
	if err == nil || strings.Contains(err.Error(), "s3cret") || strings.Contains(r.Status().Error, "s3cret") {
		t.Fatalf("sync with the server gone: %v", err)
	}
}
