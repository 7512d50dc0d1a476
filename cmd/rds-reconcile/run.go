package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/rds-reconcile/rds-reconcile/gitsync"
	"github.com/rds-reconcile/rds-reconcile/reconcile"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

type runFlags struct {
	files       []string
	interval    time.Duration
	listen      string
	stuckAfter  time.Duration
	prune       bool
	massOK      bool
	settle      time.Duration
	parallelism int
	stateDir    string
	git         gitFlags
}

// gitFlags are run's --git options.
type gitFlags struct {
	url        string
	ref        string
	paths      []string
	interval   time.Duration
	knownHosts string
	sshKey     string
	verify     bool
	signers    string
	staleAfter time.Duration
}

func newRunCmd(g *globals) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run (-f FILE [-f FILE...] | --git URL [--ref REF] [--path P...]) --interval D [--listen ADDR] [--settle D] [--stuck-after D]",
		Short: "Reconcile continuously (a pass at start, every interval, on file change, on SIGHUP)",
		Long: `run is the level-triggered loop. It reconciles at once at start (orphan
controllers left by a crash or a reboot are disconnected), then every
--interval (moved by up to 10% either way so hosts do not act in step),
whenever a state file changes (the folders are watched, so git pull and
editors that replace files are seen) and on SIGHUP. Every pass re-reads the
files; a state that does not load skips the pass and changes nothing.

A pass acts only on state files that held still: it hashes them, waits
--settle, loads them and hashes again, and starts over when they changed in
between (or changed during the wait), so a file being written (cp, an
editor, a slow sync) is never acted on half-written. Files that keep
changing for 10 settle intervals skip the pass ("waiting for the state
files to settle" in the log).

A disconnect, a delete or a file removal runs only when two passes in a row
plan it: the first pass holds it (logged, and /status shows the volume
Progressing, "waits for confirmation by the next pass") and the next pass
follows at once, one settle interval later, instead of after --interval. So
orphan controllers found at start are disconnected about one settle
interval after the first pass.

A state that declares no volume for this host, or that would disconnect
more than half of this host's controllers at once, disconnects nothing
(blocked: mass-detach, logged) unless --allow-mass-detach.

A volume whose actions fail backs off on its own (exponential, from the
state's defaults.retry) while the others go on. SIGTERM or Ctrl-C stop it
between steps.

With --listen it serves:
  /metrics   Prometheus metrics (rds_reconcile_*)
  /healthz   200 while the loop runs; 503 when the last pass failed to
             observe, or when a pass has run longer than --stuck-after
             (default the larger of 2 x --interval and 5m), so a liveness
             probe restarts a stuck loop
  /status    the status JSON of the last pass (as status -o json)

--listen :PORT binds every interface; give 127.0.0.1:PORT unless a scraper
on another machine needs it. The server closes connections idle for 60s
(and ones that send no request header within 5s), times out writes after
30s and serves at most 32 connections at once; more wait to be accepted.

With --git URL the state comes from a git repository instead of -f files:
run keeps a private clone in --state-dir (DIR/git), fetches --ref every
--git-interval (and on SIGHUP) and moves the checkout by fast-forward only,
then loads --path (files, or folders of *.yaml) from the checked-out commit
and plans and applies as above, with the same settle, confirmation and
mass-detach rules. A pass starts as soon as a fetch moves the checkout.
A remote whose history was rewritten (force-push, moved tag), and with
--verify-commits a head without a good SSH signature by a key in
--allowed-signers, is not applied: the last synced revision stays in force
and the log, /status ("git") and rds_reconcile_git_sync_errors_total say
why. An unreachable remote changes nothing; /healthz answers 503
(degraded) once the checkout has not matched the remote head for
--git-stale-after. SSH remotes: --git-known-hosts pins the host key,
--git-ssh-key gives the identity.

It holds the state's lock (see apply --help) while it runs.`,
		Example: `  rds-reconcile run -f /etc/rds-reconcile/state.yaml --interval 1m --listen 127.0.0.1:9470
  rds-reconcile run --git ssh://git@git.example.com/infra/rds-state.git --ref main --path targets/rds-1.yaml \
      --git-known-hosts /etc/rds-reconcile/git_known_hosts --git-ssh-key /etc/rds-reconcile/git_key \
      --state-dir /var/lib/rds-reconcile --interval 1m --listen 127.0.0.1:9470`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runLoop(cmd, g, f) },
	}
	addFileFlags(cmd, &f.files)
	// -f or --git: one of them.
	_ = cmd.Flags().SetAnnotation("file", cobra.BashCompOneRequiredFlag, []string{"false"})
	fl := cmd.Flags()
	fl.DurationVar(&f.interval, "interval", time.Minute, "time between passes (jittered by +/-10%)")
	fl.StringVar(&f.listen, "listen", "", "serve /metrics, /healthz and /status on this address (e.g. 127.0.0.1:9470; :9470 binds every interface)")
	fl.DurationVar(&f.stuckAfter, "stuck-after", 0, "/healthz answers 503 once a pass has run this long (default: the larger of 2 x --interval and 5m)")
	fl.BoolVar(&f.prune, "prune", false, "also delete managed RDS disks that no volume declares (never protected ones, never with an empty state)")
	fl.BoolVar(&f.massOK, "allow-mass-detach", false, massDetachHelp)
	fl.DurationVar(&f.settle, "settle", reconcile.DefaultSettle, "how long the state files must stay unchanged before a pass acts on them; also the delay before the pass that confirms a disconnect or delete")
	fl.IntVar(&f.parallelism, "parallelism", reconcile.DefaultParallelism, "host actions run at once")
	fl.StringVar(&f.stateDir, "state-dir", "", "folder for the lock file (default: the first state file's folder) and, with --git, the private clone (default $STATE_DIRECTORY)")
	gf := &f.git
	addGitFlags(cmd, gf, "follow the state in this git repository (https://, ssh://, user@host:path, file://) instead of -f files",
		"with --git: time between fetches; a new commit starts a pass at once")
	fl.DurationVar(&gf.staleAfter, "git-stale-after", 0, "with --git: /healthz answers 503 (degraded) when the checkout has not matched the remote head for this long (default: the larger of 5 x --git-interval and 10m)")
	cmd.MarkFlagsOneRequired("file", "git")
	return cmd
}

// loopState is what the HTTP endpoints show.
type loopState struct {
	mu       sync.Mutex
	status   *reconcile.Status
	lastErr  error
	lastPass time.Time
	passes   int
	// interval and stuckAfter judge whether the loop is stuck: a pass
	// running longer than stuckAfter (since its first Load), or no pass
	// ending for stuckAfter past the longest wait between passes.
	interval   time.Duration
	stuckAfter time.Duration
	started    time.Time // the loop's start
	running    time.Time // the running pass's first Load; zero between passes
	// git is the --git clone's status (nil without --git); /healthz is
	// degraded when the checkout has not matched the remote head for
	// gitStaleAfter.
	git           func() gitsync.Status
	gitStaleAfter time.Duration
}

// defaultStuckAfter is --stuck-after's default: the larger of two
// intervals and 5 minutes, so a slow RDS or a long apply (retries wait
// inline) is not taken for a stuck loop.
func defaultStuckAfter(interval time.Duration) time.Duration {
	return max(2*interval, 5*time.Minute)
}

func newLoopState(interval, stuckAfter time.Duration) *loopState {
	if stuckAfter <= 0 {
		stuckAfter = defaultStuckAfter(interval)
	}
	return &loopState{interval: interval, stuckAfter: stuckAfter, started: time.Now()}
}

// track wraps lo's Load and OnPass so that ls knows when a pass runs: a
// pass starts with its first Load (a pass may load several times while
// the files settle) and ends with OnPass.
func (ls *loopState) track(lo reconcile.LoopOptions) reconcile.LoopOptions {
	load, onPass := lo.Load, lo.OnPass
	lo.Load = func(ctx context.Context) (*spec.State, string, error) {
		ls.mu.Lock()
		if ls.running.IsZero() {
			ls.running = time.Now()
		}
		ls.mu.Unlock()
		return load(ctx)
	}
	lo.OnPass = func(p reconcile.PassResult) {
		ls.mu.Lock()
		ls.passes++
		ls.lastPass = time.Now()
		ls.running = time.Time{}
		ls.lastErr = p.Err
		if p.Status != nil {
			ls.status = p.Status
		}
		ls.mu.Unlock()
		if onPass != nil {
			onPass(p)
		}
	}
	return lo
}

// stuck reports how long the running pass has run when that is longer
// than stuckAfter. Without a pass in sight (the loop hangs before its
// first Load), it counts from the last pass's end (or the start) past the
// longest wait between passes (the interval plus 10% jitter).
func (ls *loopState) stuck(now time.Time) (time.Duration, bool) {
	if !ls.running.IsZero() {
		d := now.Sub(ls.running)
		return d, d > ls.stuckAfter
	}
	since := ls.started
	if ls.lastPass.After(since) {
		since = ls.lastPass
	}
	wait := ls.interval + ls.interval/10
	d := now.Sub(since) - wait
	return d, d > ls.stuckAfter
}

func runLoop(cmd *cobra.Command, g *globals, f *runFlags) error {
	fail := func(err error) error { return &exitError{code: 1, err: err} }
	if f.interval <= 0 {
		return fail(errors.New("--interval must be positive"))
	}
	if f.settle <= 0 {
		return fail(errors.New("--settle must be positive"))
	}
	ctx := cmd.Context()
	log := g.logger()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := reconcile.NewMetrics(reg)
	if err != nil {
		return fail(err)
	}
	// The loop reloads the state on every pass; this first load checks it
	// and builds the wiring.
	repo, w, release, err := openRunState(cmd, g, f, reg)
	if err != nil {
		return err
	}
	defer release()
	rev := w.rev
	if repo != nil {
		rev = repo.Status().Short
	}
	m.SetRevision(rev)
	r := w.reconciler(g, f.parallelism, m)
	traffic, err := runTraffic(reg, w, f, log)
	if err != nil {
		return fail(err)
	}
	ls := newLoopState(f.interval, f.stuckAfter)
	if repo != nil {
		ls.git = repo.Status
		ls.gitStaleAfter = f.git.staleAfter
		if ls.gitStaleAfter <= 0 {
			ls.gitStaleAfter = max(5*f.git.interval, 10*time.Minute)
		}
	}
	if f.listen != "" {
		shutdown, err := serveLoopHTTP(ctx, f.listen, loopHandler(reg, ls), log)
		if err != nil {
			return fail(err)
		}
		defer shutdown()
	}
	// gctx ends the trigger helpers before the wiring is released.
	gctx, stop := context.WithCancel(ctx)
	trigger, helpers := runTriggers(gctx, repo, f.git.interval)
	defer helpers.Wait()
	defer stop()
	log.Info("reconcile loop started", "files", runSource(repo, f), "interval", f.interval, "settle", f.settle,
		"allow_mass_detach", f.massOK, "host", g.host, "revision", rev)
	lo := reconcile.LoopOptions{
		Interval: f.interval,
		Files:    f.files,
		Trigger:  trigger,
		Prune:    f.prune,
		Settle:   f.settle,

		AllowMassDetach: f.massOK,
		Load:            runLoader(w, repo, f.files),
		OnPass: func(p reconcile.PassResult) {
			_, _ = traffic.Sample(ctx, reconcile.TrafficSlots(p.Status)) // logged and counted by Traffic
		},
	}
	err = r.Run(ctx, ls.track(lo))
	log.Info("reconcile loop stopped")
	if err != nil {
		return fail(err)
	}
	return nil
}

// openRunState takes the lock and wires the first load of the state: from
// git (repo non-nil) or from the files.
func openRunState(cmd *cobra.Command, g *globals, f *runFlags, reg *prometheus.Registry) (*gitsync.Repo, *wiring, func(), error) {
	if f.git.url != "" {
		return openGit(cmd.Context(), g, f, reg)
	}
	if err := noGitFlags(cmd); err != nil {
		return nil, nil, nil, &exitError{code: 1, err: err}
	}
	_, w, release, err := openLocked(cmd.Context(), g, f.files, f.stateDir)
	return nil, w, release, err
}

// runTraffic samples per-disk I/O counters after a pass's closing
// observation, at most once per 0.9 x --interval (the shortest jittered
// wait), so every timed pass samples and file-triggered passes do not add
// round trips. Only with an RDS to ask (nil otherwise; Sample on nil is a
// no-op).
func runTraffic(reg *prometheus.Registry, w *wiring, f *runFlags, log *slog.Logger) (*reconcile.Traffic, error) {
	if w.rds == nil {
		return nil, nil
	}
	return reconcile.NewTraffic(reg, w.rds, reconcile.TrafficOptions{Every: f.interval * 9 / 10, Logger: log})
}

// runLoader loads the state for one pass: the files, or with --git the
// checkout, where Read holds syncs off while the files are read, so every
// load sees one whole commit.
func runLoader(w *wiring, repo *gitsync.Repo, files []string) func(context.Context) (*spec.State, string, error) {
	if repo == nil {
		return func(ctx context.Context) (*spec.State, string, error) {
			st, err := loadState(files)
			if err != nil {
				return nil, "", err
			}
			w.sizes.update(st)
			return st, reconcile.Revision(ctx, files), nil
		}
	}
	return func(ctx context.Context) (*spec.State, string, error) {
		var st *spec.State
		gs, err := repo.Read(ctx, func(files []string) error {
			var err error
			st, err = loadState(files)
			return err
		})
		if err != nil {
			return nil, gs.Short, err
		}
		w.sizes.update(st)
		return st, gs.Short, nil
	}
}

// serveLoopHTTP serves /metrics, /healthz and /status on addr until the
// returned shutdown is called.
func serveLoopHTTP(ctx context.Context, addr string, h http.Handler, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	srv, ln := newHTTPServer(ln, h, defaultHTTPLimits)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "err", err)
		}
	}()
	log.Info("serving /metrics, /healthz and /status", "addr", ln.Addr().String())
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

// runTriggers turns SIGHUP (and with --git, a fetch that moved the
// checkout) into passes: the returned channel. With --git, SIGHUP fetches
// first; a pass follows every fetch that moved the checkout, and every
// SIGHUP. The helpers end with ctx; wait for them with the WaitGroup.
func runTriggers(ctx context.Context, repo *gitsync.Repo, gitInterval time.Duration) (chan struct{}, *sync.WaitGroup) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	trigger := make(chan struct{})
	var helpers sync.WaitGroup
	send := func(c chan<- struct{}) bool {
		select {
		case c <- struct{}{}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	kick := trigger
	if repo != nil {
		kick = make(chan struct{})
		helpers.Go(func() {
			repo.Poll(ctx, gitInterval, kick, func(moved, kicked bool) {
				if moved || kicked {
					send(trigger)
				}
			})
		})
	}
	helpers.Go(func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if !send(kick) {
					return
				}
			}
		}
	})
	return trigger, &helpers
}

// runSource names what the loop follows, for its first log line.
func runSource(repo *gitsync.Repo, f *runFlags) any {
	if repo == nil {
		return f.files
	}
	gs := repo.Status()
	return fmt.Sprintf("%s %s %v", gs.URL, gs.Ref, f.git.paths)
}

// openGit takes the lock of the state folder, opens the private clone in
// it, syncs once and loads and wires the checked-out state (openLocked for
// --git). A failed first sync goes on with the clone's last checkout;
// without one, run fails.
func openGit(ctx context.Context, g *globals, f *runFlags, reg prometheus.Registerer) (*gitsync.Repo, *wiring, func(), error) {
	fail := func(err error) error { return &exitError{code: 1, err: err} }
	gf := f.git
	if len(f.files) > 0 {
		return nil, nil, nil, fail(errors.New("-f and --git exclude each other: with --git, --path names the state files inside the repository"))
	}
	if gf.interval <= 0 {
		return nil, nil, nil, fail(errors.New("--git-interval must be positive"))
	}
	if gf.verify != (gf.signers != "") {
		return nil, nil, nil, fail(errors.New("--verify-commits and --allowed-signers FILE go together: the file names the keys whose signatures are trusted"))
	}
	dir := f.stateDir
	if dir == "" {
		// systemd's StateDirectory= (a colon-separated list).
		dir, _, _ = strings.Cut(os.Getenv("STATE_DIRECTORY"), ":")
	}
	if dir == "" {
		return nil, nil, nil, fail(errors.New("--git needs --state-dir DIR: the private clone and the lock live there (e.g. /var/lib/rds-reconcile)"))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, nil, fail(fmt.Errorf("--state-dir: %w", err))
	}
	lock, err := reconcile.AcquireLock(reconcile.LockPath(dir, nil), "rds-reconcile "+strings.Join(os.Args[1:], " "))
	if err != nil {
		return nil, nil, nil, fail(err)
	}
	sm, err := reconcile.NewSyncMetrics(reg)
	if err != nil {
		lock.Release()
		return nil, nil, nil, fail(err)
	}
	log := g.logger().With("component", "git")
	repo, err := gitsync.Open(ctx, gitsync.Options{
		URL: gf.url, Ref: gf.ref, Dir: filepath.Join(dir, "git"), Paths: gf.paths,
		KnownHostsFile: gf.knownHosts, SSHKeyFile: gf.sshKey, AllowedSigners: gf.signers, Logger: log,
		OnSync: func(s gitsync.Status, _ error) {
			sm.Synced(reconcile.GitSync{Ref: s.Ref, Revision: s.Short, CommitTime: s.Time, LastSync: s.LastSync,
				Behind: s.Behind, Failure: s.Reason})
		},
	})
	if err != nil {
		lock.Release()
		return nil, nil, nil, fail(fmt.Errorf("--git: %w", err))
	}
	if _, err := repo.Sync(ctx); err != nil {
		log.Warn("git sync failed; going on with the last synced revision", "err", err, "revision", repo.Status().Short)
	}
	var st *spec.State
	var files []string
	_, err = repo.Read(ctx, func(fs []string) error {
		files = fs
		var err error
		st, err = loadOrReport(g, fs)
		return err
	})
	if err != nil {
		lock.Release()
		if errors.Is(err, gitsync.ErrNoCheckout) {
			err = fail(fmt.Errorf("--git: %w: %s", err, repo.Status().Error))
		}
		var ee *exitError
		if !errors.As(err, &ee) {
			err = fail(err)
		}
		return nil, nil, nil, err
	}
	w, err := wire(ctx, g, st, files)
	if err != nil {
		lock.Release()
		return nil, nil, nil, fail(err)
	}
	// The loop names each pass's revision; the Reconciler is not bound to
	// the first one. The applied record lives in the state dir, never in
	// the checkout (a sync cleans it).
	w.rev = ""
	w.applied = reconcile.AppliedPath(dir, nil)
	return repo, w, func() { w.close(); lock.Release() }, nil
}

// addGitFlags registers the --git options run and csi share (not
// --git-stale-after, run's own); gitHelp and intervalHelp say what --git
// and --git-interval do for the command.
func addGitFlags(cmd *cobra.Command, gf *gitFlags, gitHelp, intervalHelp string) {
	fl := cmd.Flags()
	fl.StringVar(&gf.url, "git", "", gitHelp)
	fl.StringVar(&gf.ref, "ref", "", "with --git: the branch or tag to follow (default: the remote's HEAD)")
	fl.StringSliceVar(&gf.paths, "path", nil, "with --git: a state file, or a folder whose *.yaml files are the state, inside the repository (repeatable; default: the repository's root folder)")
	fl.DurationVar(&gf.interval, "git-interval", time.Minute, intervalHelp)
	fl.StringVar(&gf.knownHosts, "git-known-hosts", "", "with --git over SSH: known_hosts file that pins the remote's host key (ssh -o StrictHostKeyChecking=yes)")
	fl.StringVar(&gf.sshKey, "git-ssh-key", "", "with --git over SSH: private key for the remote")
	fl.BoolVar(&gf.verify, "verify-commits", false, "with --git: apply only a head commit with a good SSH signature by a key in --allowed-signers")
	fl.StringVar(&gf.signers, "allowed-signers", "", "with --verify-commits: the allowed signers file (ssh-keygen ALLOWED SIGNERS format, as git's gpg.ssh.allowedSignersFile)")
}

// noGitFlags refuses the --git options without --git.
func noGitFlags(cmd *cobra.Command) error {
	for _, n := range []string{"ref", "path", "git-interval", "git-known-hosts", "git-ssh-key", "verify-commits", "allowed-signers", "git-stale-after"} {
		if cmd.Flags().Changed(n) {
			return fmt.Errorf("--%s is an option of --git URL", n)
		}
	}
	return nil
}

func loopHandler(reg *prometheus.Registry, ls *loopState) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		ls.mu.Lock()
		defer ls.mu.Unlock()
		body := map[string]any{"passes": ls.passes}
		if !ls.lastPass.IsZero() {
			body["lastPass"] = ls.lastPass.UTC().Format(time.RFC3339)
		}
		code := http.StatusOK
		body["status"] = "ok"
		if d, stuck := ls.stuck(time.Now()); stuck {
			// A liveness probe restarts the process; a pass that never
			// ends would otherwise keep the loop dead behind a 200.
			code = http.StatusServiceUnavailable
			body["status"] = "stuck"
			body["stuckFor"] = d.Round(time.Second).String()
			body["stuckAfter"] = ls.stuckAfter.String()
			writeJSON(w, code, body)
			return
		}
		if ls.git != nil {
			gs := ls.git()
			body["git"] = gs
			since := gs.LastSync
			if since.IsZero() {
				since = ls.started
			}
			if d := time.Since(since); d > ls.gitStaleAfter {
				// The last synced revision stays in force; this says that
				// it may be old.
				code = http.StatusServiceUnavailable
				body["status"] = "degraded"
				body["gitStaleFor"] = d.Round(time.Second).String()
				body["gitStaleAfter"] = ls.gitStaleAfter.String()
			}
		}
		if ls.lastErr != nil {
			body["lastError"] = ls.lastErr.Error()
			// A pass that could not observe (RDS unreachable) makes the
			// loop unhealthy; failed actions do not (they back off).
			var ae *reconcile.ApplyError
			if !errors.As(ls.lastErr, &ae) && !errors.Is(ls.lastErr, reconcile.ErrNotConverged) {
				code = http.StatusServiceUnavailable
				body["status"] = "failing"
			}
		}
		writeJSON(w, code, body)
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		ls.mu.Lock()
		s := ls.status
		git := ls.git
		ls.mu.Unlock()
		var gs *gitsync.Status
		if git != nil {
			v := git()
			gs = &v
		}
		if s == nil {
			writeJSON(w, http.StatusServiceUnavailable, struct {
				Status string          `json:"status"`
				Git    *gitsync.Status `json:"git,omitempty"`
			}{"no pass finished yet", gs})
			return
		}
		writeJSON(w, http.StatusOK, struct {
			*reconcile.Status
			Git *gitsync.Status `json:"git,omitempty"`
		}{s, gs})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// httpLimits bound the endpoints' server so idle or slow clients cannot
// pile up connections and goroutines.
type httpLimits struct {
	readHeader time.Duration // to send the request header
	read       time.Duration // to send the whole request
	write      time.Duration // to take the response
	idle       time.Duration // a keep-alive connection may wait for its next request
	maxConns   int           // served at once; more wait in the listen backlog
}

// defaultHTTPLimits suit a Prometheus scraper and a kubelet probe: a few
// connections, small requests, responses well under a second.
var defaultHTTPLimits = httpLimits{
	readHeader: 5 * time.Second,
	read:       10 * time.Second,
	write:      30 * time.Second,
	idle:       60 * time.Second,
	maxConns:   32,
}

// newHTTPServer returns the server for h and ln wrapped to serve at most
// lim.maxConns connections at once; serve on the returned listener.
func newHTTPServer(ln net.Listener, h http.Handler, lim httpLimits) (*http.Server, net.Listener) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.readHeader,
		ReadTimeout:       lim.read,
		WriteTimeout:      lim.write,
		IdleTimeout:       lim.idle,
		MaxHeaderBytes:    16 << 10,
	}
	return srv, &limitListener{Listener: ln, sem: make(chan struct{}, lim.maxConns), done: make(chan struct{})}
}

// limitListener accepts a connection only while fewer than cap(sem) are
// open; until one closes, the others wait in the kernel's backlog.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
