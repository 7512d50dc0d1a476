package gitsync

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// isolate keeps the machine's git configuration out of the test.
func isolate(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: the gitsync tests drive the git CLI")
	}
	for k, v := range map[string]string{
		"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
		"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
		"GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
	} {
		t.Setenv(k, v)
	}
}

// remote is a bare repository and a work tree that pushes to it.
type remote struct {
	t    *testing.T
	bare string
	work string
}

func newRemote(t *testing.T) *remote {
	t.Helper()
	isolate(t)
	d := t.TempDir()
	r := &remote{t: t, bare: filepath.Join(d, "remote.git"), work: filepath.Join(d, "work")}
	runGit(t, d, "init", "-q", "--bare", "-b", "main", r.bare)
	runGit(t, d, "init", "-q", "-b", "main", r.work)
	runGit(t, r.work, "remote", "add", "origin", r.bare)
	return r
}

func (r *remote) url() string { return "file://" + r.bare }

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (an empty content removes one), commits with the
// extra commit args and pushes (forced with force); it returns the commit.
func (r *remote) commit(files map[string]string, force bool, args ...string) string {
	r.t.Helper()
	for name, body := range files {
		p := filepath.Join(r.work, name)
		if body == "" {
			_ = os.Remove(p)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	runGit(r.t, r.work, "add", "-A")
	runGit(r.t, r.work, append([]string{"commit", "-q", "--allow-empty", "-m", "change"}, args...)...)
	spec := "HEAD:refs/heads/main"
	if force {
		spec = "+" + spec
	}
	runGit(r.t, r.work, "push", "-q", "origin", spec)
	return runGit(r.t, r.work, "rev-parse", "HEAD")
}

func open(t *testing.T, o Options) *Repo {
	t.Helper()
	if o.Dir == "" {
		o.Dir = filepath.Join(t.TempDir(), "clone")
	}
	r, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// read returns the state files' contents by name relative to the clone.
func read(t *testing.T, r *Repo) (map[string]string, Status, error) {
	t.Helper()
	got := map[string]string{}
	st, err := r.Read(context.Background(), func(files []string) error {
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(r.o.Dir, f)
			got[rel] = string(b)
		}
		return nil
	})
	return got, st, err
}

func TestSyncFastForwardOnly(t *testing.T) {
	rm := newRemote(t)
	a := rm.commit(map[string]string{"hosts/a.yaml": "one", "README": "x"}, false)
	r := open(t, Options{URL: rm.url(), Ref: "main", Paths: []string{"hosts"}})
	ctx := context.Background()
	if _, _, err := read(t, r); !errors.Is(err, ErrNoCheckout) {
		t.Fatalf("read before the first sync: %v, want ErrNoCheckout", err)
	}
	if moved, err := r.Sync(ctx); err != nil || !moved {
		t.Fatalf("first sync: moved %v, %v", moved, err)
	}
	got, st, err := read(t, r)
	if err != nil || got["hosts/a.yaml"] != "one" || len(got) != 1 || st.Revision != a || st.Short != a[:12] || st.Behind != 0 {
		t.Fatalf("after the first sync: %v %+v %v", got, st, err)
	}
	if st.Time.IsZero() || st.LastSync.IsZero() || st.LastFetch.IsZero() {
		t.Errorf("times not set: %+v", st)
	}
	if moved, err := r.Sync(ctx); err != nil || moved {
		t.Fatalf("sync without a change: moved %v, %v", moved, err)
	}
	b := rm.commit(map[string]string{"hosts/b.yml": "two", "hosts/a.yaml": ""}, false)
	if moved, err := r.Sync(ctx); err != nil || !moved {
		t.Fatalf("sync of a new commit: moved %v, %v", moved, err)
	}
	got, st, _ = read(t, r)
	if got["hosts/b.yml"] != "two" || len(got) != 1 || st.Revision != b {
		t.Fatalf("after the second sync: %v %+v", got, st)
	}

	// A force-push is refused; the checkout stays at b and says why.
	runGit(t, rm.work, "reset", "-q", "--hard", a)
	c := rm.commit(map[string]string{"hosts/a.yaml": "rewritten"}, true)
	moved, err := r.Sync(ctx)
	if !errors.Is(err, ErrRewritten) || moved {
		t.Fatalf("sync of a rewritten history: moved %v, %v", moved, err)
	}
	got, st, _ = read(t, r)
	if got["hosts/b.yml"] != "two" || st.Revision != b || st.Remote != c || st.Reason != "rewritten" ||
		!strings.Contains(st.Error, "does not descend") || st.Behind != 1 {
		t.Fatalf("after a force-push: %v %+v", got, st)
	}
	// A restart does not forget it: the clone's checkout is the base.
	r2 := open(t, Options{URL: rm.url(), Ref: "main", Dir: r.o.Dir, Paths: []string{"hosts"}})
	if _, err := r2.Sync(ctx); !errors.Is(err, ErrRewritten) {
		t.Fatalf("sync after a restart: %v, want ErrRewritten", err)
	}
	// Once the remote descends from b again, syncing resumes.
	runGit(t, rm.work, "reset", "-q", "--hard", b)
	d := rm.commit(map[string]string{"hosts/c.yaml": "three"}, true)
	if moved, err := r.Sync(ctx); err != nil || !moved {
		t.Fatalf("sync after the history was restored: moved %v, %v", moved, err)
	}
	if st := r.Status(); st.Revision != d || st.Error != "" || st.Reason != "" {
		t.Fatalf("status: %+v", st)
	}
}

func TestSyncUnreachableKeepsCheckout(t *testing.T) {
	rm := newRemote(t)
	a := rm.commit(map[string]string{"s.yaml": "one"}, false)
	var seen []error
	r := open(t, Options{URL: rm.url(), Paths: []string{"s.yaml"}, OnSync: func(_ Status, err error) { seen = append(seen, err) }})
	ctx := context.Background()
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(rm.bare, rm.bare+".gone"); err != nil {
		t.Fatal(err)
	}
	moved, err := r.Sync(ctx)
	if err == nil || moved || !strings.Contains(err.Error(), "fetch") {
		t.Fatalf("sync of an unreachable remote: moved %v, %v", moved, err)
	}
	got, st, rerr := read(t, r)
	if rerr != nil || got["s.yaml"] != "one" || st.Revision != a || st.Reason != "fetch" || st.Error == "" {
		t.Fatalf("after a failed fetch: %v %+v %v", got, st, rerr)
	}
	if len(seen) != 2 || seen[0] != nil || seen[1] == nil {
		t.Errorf("OnSync saw %v", seen)
	}
	// A missing file in the commit fails the read, not the sync.
	if err := os.Rename(rm.bare+".gone", rm.bare); err != nil {
		t.Fatal(err)
	}
	rm.commit(map[string]string{"s.yaml": ""}, false)
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := read(t, r); err == nil || !strings.Contains(err.Error(), "s.yaml") {
		t.Fatalf("read of a removed file: %v", err)
	}
}

func TestPaths(t *testing.T) {
	for _, p := range []string{"/etc", "..", "../x", "a/../../b"} {
		if _, err := Open(context.Background(), Options{URL: "file:///nowhere", Dir: t.TempDir(), Paths: []string{p}}); err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
	rm := newRemote(t)
	outside := filepath.Join(t.TempDir(), "secret.yaml")
	if err := os.WriteFile(outside, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	rm.commit(map[string]string{"empty/README": "x"}, false)
	if err := os.Symlink(outside, filepath.Join(rm.work, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	rm.commit(nil, false)
	for p, want := range map[string]string{"link.yaml": "out of the repository", "empty": "no .yaml file", "missing.yaml": "no such file"} {
		r := open(t, Options{URL: rm.url(), Paths: []string{p}})
		if _, err := r.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, _, err := read(t, r); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("path %s: %v, want %q", p, err, want)
		}
	}
}

func TestSSHCommandAndRedact(t *testing.T) {
	got := SSHCommand(Options{KnownHostsFile: "/etc/rds reconcile/known_hosts", SSHKeyFile: "/k'ey"})
	want := `ssh -o BatchMode=yes -o UserKnownHostsFile='/etc/rds reconcile/known_hosts' -o StrictHostKeyChecking=yes -i '/k'\''ey' -o IdentitiesOnly=yes`
	if got != want {
		t.Errorf("SSHCommand:\n got %s\nwant %s", got, want)
	}
	if SSHCommand(Options{}) != "" {
		t.Error("SSHCommand without options is not empty")
	}
	if got := Redact("https://bot:s3cret@git.example.com/infra/state.git"); strings.Contains(got, "s3cret") {
		t.Errorf("Redact: %s", got)
	}
	if got := Redact("git@github.com:org/state.git"); got != "git@github.com:org/state.git" {
		t.Errorf("Redact: %s", got)
	}
}

// signer is an ed25519 key made with ssh-keygen.
type signer struct{ key, pub string }

func newSigner(t *testing.T, name string) signer {
	t.Helper()
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen is not installed: it makes and checks the SSH commit signatures of this test")
	}
	key := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return signer{key: key, pub: strings.TrimSpace(string(pub))}
}

// signArgs are the commit args that sign with s.
func (s signer) signArgs() []string {
	return []string{"-S", "--gpg-sign=" + s.key}
}

func (s signer) sign(t *testing.T, rm *remote, files map[string]string) string {
	t.Helper()
	runGit(t, rm.work, "config", "gpg.format", "ssh")
	return rm.commit(files, false, s.signArgs()...)
}

func TestVerifyCommits(t *testing.T) {
	rm := newRemote(t)
	good, other := newSigner(t, "ops"), newSigner(t, "stranger")
	allowed := filepath.Join(t.TempDir(), "allowed_signers")
	if err := os.WriteFile(allowed, []byte(`test@example.com namespaces="git" `+good.pub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rm.commit(map[string]string{"s.yaml": "unsigned"}, false)
	r := open(t, Options{URL: rm.url(), Paths: []string{"s.yaml"}, AllowedSigners: allowed})
	if _, err := r.Sync(ctx); !errors.Is(err, ErrUnverified) || !strings.Contains(err.Error(), "not signed") {
		t.Fatalf("unsigned first commit: %v", err)
	}
	if _, _, err := read(t, r); !errors.Is(err, ErrNoCheckout) {
		t.Fatalf("read with no verified commit: %v", err)
	}
	a := good.sign(t, rm, map[string]string{"s.yaml": "signed"})
	if moved, err := r.Sync(ctx); err != nil || !moved {
		t.Fatalf("signed commit: moved %v, %v", moved, err)
	}
	unsigned := rm.commit(map[string]string{"s.yaml": "unsigned again"}, false)
	if _, err := r.Sync(ctx); !errors.Is(err, ErrUnverified) {
		t.Fatalf("unsigned head: %v", err)
	}
	got, st, _ := read(t, r)
	if got["s.yaml"] != "signed" || st.Revision != a || st.Remote != unsigned || st.Behind != 1 || st.Reason != "unverified" {
		t.Fatalf("after an unsigned head: %v %+v", got, st)
	}
	runGit(t, rm.work, "config", "gpg.format", "ssh")
	rm.commit(map[string]string{"s.yaml": "stranger"}, false, other.signArgs()...)
	if _, err := r.Sync(ctx); !errors.Is(err, ErrUnverified) || !strings.Contains(err.Error(), "bad signature or a signer") {
		t.Fatalf("head signed by a stranger: %v", err)
	}
	if st := r.Status(); st.Revision != a || st.Behind != 2 {
		t.Fatalf("after a stranger's head: %+v", st)
	}
	// A signed head is applied, with the unsigned commits before it.
	b := good.sign(t, rm, map[string]string{"s.yaml": "signed again"})
	if moved, err := r.Sync(ctx); err != nil || !moved {
		t.Fatalf("signed head: moved %v, %v", moved, err)
	}
	if got, st, _ := read(t, r); got["s.yaml"] != "signed again" || st.Revision != b || st.Behind != 0 {
		t.Fatalf("after a signed head: %v %+v", got, st)
	}
	// A clone whose checkout was made without verification is not read
	// once verification is asked, until a verified commit is synced.
	plain := open(t, Options{URL: rm.url(), Paths: []string{"s.yaml"}})
	rm.commit(map[string]string{"s.yaml": "unsigned 3"}, false)
	if _, err := plain.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	strict := open(t, Options{URL: rm.url(), Paths: []string{"s.yaml"}, Dir: plain.o.Dir, AllowedSigners: allowed})
	if _, _, err := read(t, strict); !errors.Is(err, ErrNoCheckout) {
		t.Fatalf("unverified checkout read: %v", err)
	}
}

func TestPollSyncsAndKicks(t *testing.T) {
	rm := newRemote(t)
	rm.commit(map[string]string{"s.yaml": "one"}, false)
	r := open(t, Options{URL: rm.url()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type ev struct{ moved, kicked bool }
	evs := make(chan ev, 16)
	kick := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Poll(ctx, 50*time.Millisecond, kick, func(m, k bool) { evs <- ev{m, k} })
	}()
	if e := <-evs; !e.moved || e.kicked {
		t.Fatalf("first poll: %+v", e)
	}
	kick <- struct{}{}
	for e := range evs {
		if e.kicked {
			if e.moved {
				t.Fatalf("kick without a change moved")
			}
			break
		}
	}
	cancel()
	<-done
}
