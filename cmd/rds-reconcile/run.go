package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/rds-reconcile/rds-reconcile/reconcile"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

type runFlags struct {
	files       []string
	interval    time.Duration
	listen      string
	prune       bool
	massOK      bool
	settle      time.Duration
	parallelism int
	stateDir    string
}

func newRunCmd(g *globals) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run -f FILE [-f FILE...] --interval D [--listen ADDR] [--settle D]",
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
  /healthz   200 while the loop runs; 503 when the last pass failed to observe
  /status    the status JSON of the last pass (as status -o json)

It holds the state's lock (see apply --help) while it runs.`,
		Example: `  rds-reconcile run -f /etc/rds-reconcile/state.yaml --interval 1m --listen 127.0.0.1:9470`,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runLoop(cmd, g, f) },
	}
	addFileFlags(cmd, &f.files)
	fl := cmd.Flags()
	fl.DurationVar(&f.interval, "interval", time.Minute, "time between passes (jittered by +/-10%)")
	fl.StringVar(&f.listen, "listen", "", "serve /metrics, /healthz and /status on this address (e.g. 127.0.0.1:9470)")
	fl.BoolVar(&f.prune, "prune", false, "also delete managed RDS disks that no volume declares (never protected ones, never with an empty state)")
	fl.BoolVar(&f.massOK, "allow-mass-detach", false, massDetachHelp)
	fl.DurationVar(&f.settle, "settle", reconcile.DefaultSettle, "how long the state files must stay unchanged before a pass acts on them; also the delay before the pass that confirms a disconnect or delete")
	fl.IntVar(&f.parallelism, "parallelism", reconcile.DefaultParallelism, "host actions run at once")
	fl.StringVar(&f.stateDir, "state-dir", "", "folder for the lock file (default: the first state file's folder)")
	return cmd
}

// loopState is what the HTTP endpoints show.
type loopState struct {
	mu       sync.Mutex
	status   *reconcile.Status
	lastErr  error
	lastPass time.Time
	passes   int
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
	// The loop reloads the state on every pass; this first load checks it
	// and builds the wiring.
	_, w, release, err := openLocked(ctx, g, f.files, f.stateDir)
	if err != nil {
		return err
	}
	defer release()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := reconcile.NewMetrics(reg)
	if err != nil {
		return fail(err)
	}
	m.SetRevision(w.rev)
	r := w.reconciler(g, f.parallelism, m)
	ls := &loopState{}

	if f.listen != "" {
		ln, err := net.Listen("tcp", f.listen)
		if err != nil {
			return fail(fmt.Errorf("--listen: %w", err))
		}
		srv := &http.Server{Handler: loopHandler(reg, ls), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server", "err", err)
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		log.Info("serving /metrics, /healthz and /status", "addr", ln.Addr().String())
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	trigger := make(chan struct{})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case trigger <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	log.Info("reconcile loop started", "files", f.files, "interval", f.interval, "settle", f.settle,
		"allow_mass_detach", f.massOK, "host", g.host, "revision", w.rev)
	err = r.Run(ctx, reconcile.LoopOptions{
		Interval: f.interval,
		Files:    f.files,
		Trigger:  trigger,
		Prune:    f.prune,
		Settle:   f.settle,

		AllowMassDetach: f.massOK,
		Load: func(ctx context.Context) (*spec.State, string, error) {
			st, err := loadState(f.files)
			if err != nil {
				return nil, "", err
			}
			w.sizes.update(st)
			return st, reconcile.Revision(ctx, f.files), nil
		},
		OnPass: func(p reconcile.PassResult) {
			ls.mu.Lock()
			defer ls.mu.Unlock()
			ls.passes++
			ls.lastPass = time.Now()
			ls.lastErr = p.Err
			if p.Status != nil {
				ls.status = p.Status
			}
		},
	})
	log.Info("reconcile loop stopped")
	if err != nil {
		return fail(err)
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
		ls.mu.Unlock()
		if s == nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "no pass finished yet"})
			return
		}
		writeJSON(w, http.StatusOK, s)
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
