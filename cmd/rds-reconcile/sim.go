package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rds-reconcile/rds-reconcile/rds/sim"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// simFlags are the flags of `rds-reconcile sim`.
type simFlags struct {
	listen           string
	dir              string
	backend          string
	json             bool
	version          string
	width            int
	poolSize         string
	nvmetAddr        string
	configfs         string
	passwordEnv      string
	latency          time.Duration
	handshakeLatency time.Duration
	sessionLatency   time.Duration
	dropAfter        int
	dropProbability  float64
	failNext         []string
	maxSessions      int
	crlf             bool
}

func newSimCmd(g *globals) *cobra.Command {
	f := &simFlags{}
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Serve a simulated RDS (RouterOS over SSH) for tests and demos",
		Long: `sim serves a RouterOS simulator over real SSH: /disk, /file, :serialize and
/system resource as a MikroTik RDS answers them, with a finite storage pool and
optional fault injection. Keys and state live in --dir:

  host_key, client_key(.pub)   created when missing; client_key is authorized
  known_hosts                  rewritten at every start for the listen address
  state.json                   disks and files, kept across restarts
  files/                       the disk images (--backend files or nvmet)

It prints a target: block for a state file that reaches it as it is, then
serves until interrupted. --backend nvmet really exports each disk through the
kernel NVMe/TCP target (configfs, root) on --nvmet-addr.`,
		Example: `  rds-reconcile sim --listen 127.0.0.1:2222 --dir /tmp/rds-sim
  rds-reconcile sim --dir /tmp/rds-sim --latency 50ms --drop-after 20 --fail-next "failure: not enough space"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSim(cmd, g, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:2222", "SSH listen address (port 0 picks a free one)")
	fl.StringVar(&f.dir, "dir", "rds-sim", "folder for keys, known_hosts, state and disk images")
	fl.StringVar(&f.backend, "backend", "memory", "where disks live: memory, files (sparse files in DIR/files) or nvmet (files exported by the kernel NVMe target)")
	fl.BoolVar(&f.json, "json", true, "support :serialize to=json (RouterOS >= 7.13); --json=false acts like an older RouterOS")
	fl.StringVar(&f.version, "routeros-version", "", `RouterOS release to play (`+strings.Join(sim.Versions, ", ")+`, or any 7.x): what /system resource reports, :serialize from 7.13, json.no-string-conversion from 7.17, /disk nvme-tcp-server-nqn from 7.21 (nvme-tcp-name before); default `+sim.NewestVersion+`, or 7.12 with --json=false`)
	fl.IntVar(&f.width, "width", 80, "console width print detail wraps at (a login name such as admin+ct120w overrides it)")
	fl.StringVar(&f.poolSize, "pool-size", "1Ti", "storage pool size (bytes or 100Gi, 1Ti, ...)")
	fl.StringVar(&f.nvmetAddr, "nvmet-addr", "127.0.0.1", "IPv4 address hosts connect to for NVMe/TCP (nvmet ports listen here)")
	fl.StringVar(&f.configfs, "configfs", sim.DefaultConfigFS, "nvmet configfs folder (--backend nvmet)")
	fl.StringVar(&f.passwordEnv, "password-env", "", "also accept password login, the password read from this environment variable")
	fl.DurationVar(&f.latency, "latency", 0, "delay before answering each command")
	fl.DurationVar(&f.handshakeLatency, "handshake-latency", 0, "delay before each SSH handshake")
	fl.DurationVar(&f.sessionLatency, "session-latency", 0, "delay charged once per SSH session (a round trip), e.g. 20ms for benchmarks")
	fl.IntVar(&f.dropAfter, "drop-after", 0, "drop the TCP connection instead of answering every (N+1)th command (0 = never)")
	fl.Float64Var(&f.dropProbability, "drop-probability", 0, "probability (0..1) of dropping the connection instead of answering a command")
	fl.StringArrayVar(&f.failNext, "fail-next", nil, "answer the next command with this text instead of running it (repeatable, in order)")
	fl.IntVar(&f.maxSessions, "max-sessions", 0, "cap on concurrent SSH sessions (0 = none)")
	fl.BoolVar(&f.crlf, "crlf", false, `end output lines with CR LF as a RouterOS console does`)
	return cmd
}

func runSim(cmd *cobra.Command, g *globals, f *simFlags) error {
	usage := func(err error) error { return &exitError{code: 2, err: err} }
	pool, err := spec.ParseQuantity(f.poolSize)
	if err != nil || pool.Bytes <= 0 {
		return usage(fmt.Errorf("--pool-size: %q is not a positive size", f.poolSize))
	}
	if f.dropProbability < 0 || f.dropProbability > 1 {
		return usage(errors.New("--drop-probability must be between 0 and 1"))
	}
	if f.width < 20 {
		return usage(errors.New("--width must be at least 20"))
	}
	if f.dropAfter < 0 || f.maxSessions < 0 || f.latency < 0 || f.handshakeLatency < 0 || f.sessionLatency < 0 {
		return usage(errors.New("--drop-after, --max-sessions and latencies cannot be negative"))
	}
	dir, err := filepath.Abs(f.dir)
	if err != nil {
		return usage(fmt.Errorf("--dir: %w", err))
	}
	var backend sim.Backend
	switch f.backend {
	case "memory":
		backend = sim.NewMemoryBackend(pool.Bytes)
	case "files":
		backend = sim.NewFileBackend(filepath.Join(dir, "files"))
	case "nvmet":
		if _, err := os.Stat(f.configfs); err != nil {
			return fmt.Errorf("--backend nvmet needs the kernel NVMe target (modprobe nvmet nvmet-tcp; configfs mounted): %w", err)
		}
		backend = sim.NewNVMetBackend(filepath.Join(dir, "files"), f.configfs, f.nvmetAddr)
	default:
		return usage(fmt.Errorf("--backend %q: want memory, files or nvmet", f.backend))
	}
	opts := sim.Options{
		Backend:  backend,
		PoolSize: pool.Bytes,
		JSON:     f.json,
		Version:  f.version,
		Width:    f.width,
		Logger:   g.logger(),
		CRLF:     f.crlf,
	}
	if f.passwordEnv != "" {
		if opts.Password = os.Getenv(f.passwordEnv); opts.Password == "" {
			return usage(fmt.Errorf("--password-env: $%s is empty or unset", f.passwordEnv))
		}
	}
	opts.Faults = sim.Faults{
		Latency:          f.latency,
		HandshakeLatency: f.handshakeLatency,
		SessionLatency:   f.sessionLatency,
		DropAfter:        f.dropAfter,
		DropProbability:  f.dropProbability,
		FailNext:         f.failNext,
		MaxSessions:      f.maxSessions,
	}
	ctx := cmd.Context()
	s, err := sim.ServeDir(ctx, dir, f.listen, opts)
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	defer s.Close()
	fmt.Fprint(g.stdout, s.TargetYAML(f.nvmetAddr))
	g.logger().Info("serving RouterOS simulator; stop with Ctrl-C", "addr", s.Addr(), "dir", dir, "backend", f.backend)
	<-ctx.Done()
	g.logger().Info("RouterOS simulator stopping", "addr", s.Addr())
	return nil
}
