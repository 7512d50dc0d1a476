// Package gitsync keeps a private clone of a git remote in step with one
// branch or tag: it fetches, and moves the checkout forward only by
// fast-forward, and (when asked) only to a head commit that carries an SSH
// signature by a trusted key. A history rewrite on the remote, an
// unsigned head or an unreachable remote leave the checkout where it is
// and are reported.
//
// It drives the git CLI (os/exec): the clone is an ordinary repository a
// user can inspect with the same git, ssh and credential setup they debug
// with, and SSH signatures are checked by git verify-commit itself.
package gitsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrRewritten: the remote head does not descend from the checked-out
// commit (a force-push, a moved tag); the checkout stays.
var ErrRewritten = errors.New("the remote history was rewritten")

// ErrUnverified: the remote head has no good SSH signature by an allowed
// signer; the checkout stays.
var ErrUnverified = errors.New("the remote head is not verified")

// ErrNoCheckout: nothing was synced yet (or the checked-out commit is not
// verified while verification is asked), so there is no state to read.
var ErrNoCheckout = errors.New("no verified commit checked out yet")

// Options configure a Repo.
type Options struct {
	// URL of the remote: https://, ssh://, user@host:path or file://.
	URL string
	// Ref is the branch or tag to follow; "" follows the remote's HEAD.
	Ref string
	// Dir is the private clone (created when missing).
	Dir string
	// Paths are the state files or folders (every *.yaml and *.yml in
	// it, in name order) inside the repository; "" or "." is its root.
	Paths []string
	// KnownHostsFile pins the SSH host keys of the remote: ssh runs with
	// UserKnownHostsFile=it and StrictHostKeyChecking=yes.
	KnownHostsFile string
	// SSHKeyFile is the SSH identity for the remote (optional).
	SSHKeyFile string
	// AllowedSigners, when set, is a gpg.ssh.allowedSignersFile: only a
	// head commit with a good SSH signature by one of its keys is checked
	// out.
	AllowedSigners string
	// Git is the git binary (default "git" from PATH).
	Git string
	// Timeout bounds each git command (default 2m).
	Timeout time.Duration
	// Logger (default: discard).
	Logger *slog.Logger
	// OnSync receives the status after every sync, failed or not.
	OnSync func(Status, error)
}

// Status is the state of the clone.
type Status struct {
	URL string `json:"url"` // without a password
	Ref string `json:"ref"`
	// Revision is the checked-out commit; Short its first 12 digits.
	Revision string    `json:"revision,omitempty"`
	Short    string    `json:"short,omitempty"`
	Time     time.Time `json:"time,omitzero"` // its committer time
	// Remote is the remote head last fetched; Behind counts its commits
	// that are not checked out (0 when in sync).
	Remote string `json:"remoteRevision,omitempty"`
	Behind int    `json:"behind"`
	// LastFetch is the last successful fetch; LastSync the last sync that
	// left the checkout at the remote head.
	LastFetch time.Time `json:"lastFetch,omitzero"`
	LastSync  time.Time `json:"lastSync,omitzero"`
	Verify    bool      `json:"verifyCommits"`
	// Error is why the last sync failed ("" after a good one); Reason
	// its kind: fetch, rewritten, unverified, checkout.
	Error  string `json:"error,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Repo is a private clone. Its methods are safe for concurrent use: a
// sync never changes the tree while Read runs.
type Repo struct {
	o   Options
	log *slog.Logger
	env []string

	mu        sync.Mutex // the clone: git commands and readers of the tree
	untrusted bool       // the checkout predates --verify-commits and failed it

	smu sync.Mutex
	st  Status
}

// Open opens the clone in o.Dir, creating it (git init, no templates) when
// missing, and points its origin at o.URL. It does not fetch.
func Open(ctx context.Context, o Options) (*Repo, error) {
	if o.URL == "" {
		return nil, errors.New("gitsync: no remote URL")
	}
	if o.Dir == "" {
		return nil, errors.New("gitsync: no folder for the clone")
	}
	if o.Git == "" {
		o.Git = "git"
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if len(o.Paths) == 0 {
		o.Paths = []string{"."}
	}
	for _, p := range o.Paths {
		if _, err := relPath(p); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct{ name, path string }{{"known_hosts file", o.KnownHostsFile}, {"SSH key", o.SSHKeyFile},
		{"allowed signers file", o.AllowedSigners}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return nil, fmt.Errorf("gitsync: %s: %w", f.name, err)
		}
	}
	if o.AllowedSigners != "" {
		abs, err := filepath.Abs(o.AllowedSigners)
		if err != nil {
			return nil, fmt.Errorf("gitsync: %w", err)
		}
		o.AllowedSigners = abs
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("gitsync: %w", err)
	}
	o.Dir = dir
	r := &Repo{o: o, log: o.Logger, env: gitEnv(o)}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.st = Status{URL: Redact(o.URL), Ref: o.Ref, Verify: o.AllowedSigners != ""}
	if r.st.Ref == "" {
		r.st.Ref = "HEAD"
	}
	if _, err := os.Stat(filepath.Join(dir, ".git")); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("gitsync: %w", err)
		}
		// --template= : no hooks, no sample files (and no need for the
		// templates folder a minimal install may lack).
		if _, err := r.git(ctx, "init", "-q", "--template=", dir); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("gitsync: %w", err)
	}
	if cur, err := r.git(ctx, "config", "--get", "remote.origin.url"); err != nil || cur != o.URL {
		verb := "add"
		if err == nil {
			verb = "set-url"
			r.log.Warn("the clone followed another remote; now following this one (a history that does not descend from the checkout is refused)",
				"was", Redact(cur), "url", Redact(o.URL))
		}
		if _, err := r.git(ctx, "remote", verb, "origin", o.URL); err != nil {
			return nil, err
		}
	}
	head, err := r.rev(ctx, "HEAD")
	if err != nil {
		return nil, err
	}
	if head != "" {
		r.setCheckout(ctx, head)
		if o.AllowedSigners != "" {
			if err := r.verify(ctx, head); err != nil {
				r.untrusted = true
				r.log.Warn("the checked-out commit is not verified: it is not used until a verified commit is synced", "revision", short(head), "err", err)
			}
		}
	}
	return r, nil
}

// Status returns the clone's status.
func (r *Repo) Status() Status {
	r.smu.Lock()
	defer r.smu.Unlock()
	return r.st
}

// Sync fetches the ref and, when the remote head descends from the
// checkout (and is verified, when asked), checks it out. moved says the
// checkout changed. On any error the checkout stays as it was.
func (r *Repo) Sync(ctx context.Context) (moved bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reason := ""
	defer func() {
		r.smu.Lock()
		if err != nil {
			r.st.Error, r.st.Reason = err.Error(), reason
		} else {
			r.st.Error, r.st.Reason = "", ""
		}
		st := r.st
		r.smu.Unlock()
		if r.o.OnSync != nil {
			r.o.OnSync(st, err)
		}
	}()
	ref := r.o.Ref
	if ref == "" {
		ref = "HEAD"
	}
	if _, err := r.git(ctx, "fetch", "-q", "--no-tags", "--no-recurse-submodules", "--no-write-fetch-head",
		"origin", "+"+ref+":refs/rds-reconcile/remote"); err != nil {
		reason = "fetch"
		return false, fmt.Errorf("fetch %s from %s: %w", ref, Redact(r.o.URL), err)
	}
	remote, err := r.rev(ctx, "refs/rds-reconcile/remote")
	if err != nil || remote == "" {
		reason = "fetch"
		return false, fmt.Errorf("fetch %s: no commit: %w", ref, err)
	}
	head, err := r.rev(ctx, "HEAD")
	if err != nil {
		reason = "checkout"
		return false, err
	}
	now := time.Now()
	r.smu.Lock()
	r.st.Remote, r.st.LastFetch = remote, now
	r.smu.Unlock()
	if head == remote && !r.untrusted {
		r.setBehind(0, now)
		return false, nil
	}
	if head != "" && head != remote {
		if _, err := r.git(ctx, "merge-base", "--is-ancestor", head, remote); err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				reason = "checkout"
				return false, err
			}
			r.setBehind(r.count(ctx, head, remote), time.Time{})
			reason = "rewritten"
			return false, fmt.Errorf("%w: %s of %s (%s) does not descend from the synced %s; syncing stopped at %s until the remote history descends from it again (or the clone in %s is removed)",
				ErrRewritten, ref, Redact(r.o.URL), short(remote), short(head), short(head), r.o.Dir)
		}
	}
	if r.o.AllowedSigners != "" {
		if err := r.verify(ctx, remote); err != nil {
			r.setBehind(r.count(ctx, head, remote), time.Time{})
			reason = "unverified"
			return false, fmt.Errorf("%w: %s (%s): %w; the last verified revision %s stays in force", ErrUnverified, ref, short(remote), err, orNone(short(head)))
		}
	}
	if _, err := r.git(ctx, "-c", "advice.detachedHead=false", "checkout", "-q", "--force", "--detach", remote); err != nil {
		reason = "checkout"
		return false, err
	}
	if _, err := r.git(ctx, "clean", "-q", "-ffdx"); err != nil {
		reason = "checkout"
		return false, err
	}
	r.untrusted = false
	r.setCheckout(ctx, remote)
	r.setBehind(0, now)
	r.log.Info("git checkout moved", "from", orNone(short(head)), "to", short(remote), "ref", ref)
	return head != remote, nil
}

// Read calls fn with the state files (Options.Paths) of the checked-out
// commit while no sync can change the tree, and returns the status that
// names that commit.
func (r *Repo) Read(ctx context.Context, fn func(files []string) error) (Status, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.Status()
	if st.Revision == "" || r.untrusted {
		return st, ErrNoCheckout
	}
	files, err := r.files()
	if err != nil {
		return st, err
	}
	return st, fn(files)
}

// Poll syncs every interval and whenever kick receives, until ctx ends,
// and calls after with whether the checkout moved and whether the sync was
// kicked. A failed sync is logged and retried at the next interval.
func (r *Repo) Poll(ctx context.Context, interval time.Duration, kick <-chan struct{}, after func(moved, kicked bool)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		kicked := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
			kicked = true
		}
		moved, err := r.Sync(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			st := r.Status()
			r.log.Warn("git sync failed; the last synced revision stays in force", "err", err, "reason", st.Reason,
				"revision", orNone(st.Short), "behind", st.Behind)
		}
		if after != nil {
			after(moved, kicked)
		}
	}
}

// files resolves Options.Paths in the work tree.
func (r *Repo) files() ([]string, error) {
	root, err := filepath.EvalSymlinks(r.o.Dir)
	if err != nil {
		return nil, fmt.Errorf("gitsync: %w", err)
	}
	var out []string
	for _, p := range r.o.Paths {
		rel, _ := relPath(p)
		full := filepath.Join(root, rel)
		real, err := filepath.EvalSymlinks(full)
		if err != nil {
			return nil, fmt.Errorf("%s at %s: %w", p, short(r.st.Revision), err)
		}
		if real != root && !strings.HasPrefix(real, root+string(filepath.Separator)) {
			return nil, fmt.Errorf("%s at %s: a link out of the repository", p, short(r.st.Revision))
		}
		fi, err := os.Stat(real)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if !fi.IsDir() {
			out = append(out, full)
			continue
		}
		ents, err := os.ReadDir(full)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		n := len(out)
		for _, e := range ents {
			if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
				out = append(out, filepath.Join(full, e.Name()))
			}
		}
		if len(out) == n {
			return nil, fmt.Errorf("%s at %s: no .yaml file in the folder", p, short(r.st.Revision))
		}
	}
	return out, nil
}

// relPath checks that p names something inside the repository.
func relPath(p string) (string, error) {
	c := filepath.Clean(p)
	if c == "" || filepath.IsAbs(c) || c == ".." || strings.HasPrefix(c, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("gitsync: path %q: want a path inside the repository (relative, no ..)", p)
	}
	return c, nil
}

// verify checks rev's SSH signature against the allowed signers file.
func (r *Repo) verify(ctx context.Context, rev string) error {
	raw, err := r.git(ctx, "cat-file", "commit", rev)
	if err != nil {
		return err
	}
	hdr, _, _ := strings.Cut(raw, "\n\n")
	if !strings.Contains(hdr, "\ngpgsig ") {
		return errors.New("the commit is not signed")
	}
	if !strings.Contains(hdr, "-----BEGIN SSH SIGNATURE-----") {
		return errors.New("the commit is not signed with an SSH key (only SSH signatures are checked)")
	}
	if _, err := r.git(ctx, "-c", "gpg.ssh.allowedSignersFile="+r.o.AllowedSigners, "verify-commit", rev); err != nil {
		return fmt.Errorf("bad signature or a signer not in %s: %w", r.o.AllowedSigners, err)
	}
	return nil
}

func (r *Repo) setCheckout(ctx context.Context, rev string) {
	t := time.Time{}
	if s, err := r.git(ctx, "show", "-s", "--format=%ct", rev); err == nil {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			t = time.Unix(n, 0).UTC()
		}
	}
	r.smu.Lock()
	r.st.Revision, r.st.Short, r.st.Time = rev, short(rev), t
	r.smu.Unlock()
}

func (r *Repo) setBehind(n int, synced time.Time) {
	r.smu.Lock()
	r.st.Behind = n
	if !synced.IsZero() {
		r.st.LastSync = synced
	}
	r.smu.Unlock()
}

// count is the number of commits in to not in from (-1 when unknown).
func (r *Repo) count(ctx context.Context, from, to string) int {
	rng := to
	if from != "" {
		rng = from + ".." + to
	}
	s, err := r.git(ctx, "rev-list", "--count", rng)
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// rev resolves name to a commit hash ("" when it does not exist).
func (r *Repo) rev(ctx context.Context, name string) (string, error) {
	out, err := r.git(ctx, "rev-parse", "-q", "--verify", name+"^{commit}")
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 1 {
			return "", nil
		}
		return "", err
	}
	return out, nil
}

// git runs git in the clone and returns its trimmed stdout.
func (r *Repo) git(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.o.Git, append([]string{"-C", r.o.Dir}, args...)...)
	cmd.Env = r.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if r.o.URL != "" {
			msg = strings.ReplaceAll(msg, r.o.URL, Redact(r.o.URL))
		}
		if lines := strings.Split(msg, "\n"); len(lines) > 4 {
			msg = strings.Join(lines[len(lines)-4:], "\n")
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (timeout %s)", ctx.Err(), r.o.Timeout)
		}
		if msg != "" {
			return "", fmt.Errorf("git %s: %w: %s", args[0], err, msg)
		}
		return "", fmt.Errorf("git %s: %w", args[0], err)
	}
	return strings.TrimSpace(out.String()), nil
}

// gitEnv is the environment of every git command: never prompt, and the
// SSH options that pin the remote's host key.
func gitEnv(o Options) []string {
	env := append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C")
	if o.KnownHostsFile != "" || o.SSHKeyFile != "" {
		ssh := "ssh -o BatchMode=yes"
		if o.KnownHostsFile != "" {
			ssh += " -o UserKnownHostsFile=" + shellQuote(o.KnownHostsFile) + " -o StrictHostKeyChecking=yes"
		}
		if o.SSHKeyFile != "" {
			ssh += " -i " + shellQuote(o.SSHKeyFile) + " -o IdentitiesOnly=yes"
		}
		env = append(env, "GIT_SSH_COMMAND="+ssh)
	}
	return env
}

// SSHCommand is the GIT_SSH_COMMAND o sets ("" when none).
func SSHCommand(o Options) string {
	for _, e := range gitEnv(o) {
		if s, ok := strings.CutPrefix(e, "GIT_SSH_COMMAND="); ok {
			return s
		}
	}
	return ""
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Redact drops the password of a URL (https://user:token@host/...).
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return u
	}
	if _, ok := p.User.Password(); !ok {
		return u
	}
	return p.Redacted()
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
