package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	fabsim "github.com/rds-reconcile/rds-reconcile/fabric/sim"
	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/reconcile"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// wiring is what a command needs to observe and change the world.
type wiring struct {
	rds    *rds.SSHClient // nil when the state has no target.ssh
	fabric reconcile.Fabric
	rev    string
	sizes  *sizeTable // simulated fabric only
	// applied is the record of what apply last made true (beside the
	// lock), which tells drift from a change of the state.
	applied string
}

// sizeTable gives the simulated host the namespace size of each NQN: the
// size the state gives the volume, since the simulated host cannot read
// the RDS and a converged RDS exports exactly that size. run updates it
// on every reload.
type sizeTable struct {
	mu    sync.Mutex
	sizes map[string]int64
}

func (t *sizeTable) update(st *spec.State) {
	if t == nil {
		return
	}
	m := map[string]int64{}
	for _, v := range st.Volumes {
		m[st.NQN(v.Name)] = v.Size.Bytes
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sizes = m
}

func (t *sizeTable) get(nqn string) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sizes[nqn]
}

func (w *wiring) close() {
	if w.rds != nil {
		_ = w.rds.Close()
	}
}

// reconciler builds a Reconciler for st from the global flags.
func (w *wiring) reconciler(g *globals, parallelism int, m *reconcile.Metrics) *reconcile.Reconciler {
	opts := reconcile.Options{Fabric: w.fabric, Host: g.host, Parallelism: parallelism, Logger: g.logger(),
		Metrics: m, Revision: w.rev, AppliedFile: w.applied}
	if w.rds != nil {
		opts.RDS = w.rds
	}
	return reconcile.New(opts)
}

// wire builds the RDS client from st.Target.SSH and the host fabric from
// --fabric. files name the state (for the git revision).
func wire(ctx context.Context, g *globals, st *spec.State, files []string) (*wiring, error) {
	w := &wiring{rev: reconcile.Revision(ctx, files), applied: reconcile.AppliedPath("", files)}
	var err error
	if w.rds, err = newRDSClient(g, st); err != nil {
		return nil, err
	}
	if w.fabric, w.sizes, err = newFabric(g, st); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

// newRDSClient returns nil, nil when the state has no ssh section: the RDS
// side is then neither observed nor changed (a host-only machine).
func newRDSClient(g *globals, st *spec.State) (*rds.SSHClient, error) {
	if st.Target == nil {
		return nil, errors.New("the state has no target section: add target.address, target.basePath and target.ssh")
	}
	s := st.Target.SSH
	if s.Address == "" {
		g.logger().Info("no target.ssh in the state: the RDS side is not observed nor changed")
		return nil, nil
	}
	cfg := rds.Config{
		Address: s.Address, User: s.User, KnownHostsFile: s.KnownHostsFile,
		InsecureIgnoreHostKey: s.InsecureIgnoreHostKey, Timeout: s.Timeout.Duration,
		CommandTimeout: s.CommandTimeout.Duration, MaxSessions: s.MaxSessions,
		SlotPrefix: st.Target.SlotPrefix, BasePath: strings.TrimPrefix(st.Target.BasePath, "/"),
		Logger: g.logger().With("component", "rds"),
	}
	if s.PrivateKeyFile != "" {
		key, err := os.ReadFile(s.PrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("target.ssh.privateKeyFile: %w (for the simulator, start `rds-reconcile sim --dir DIR` and point privateKeyFile at DIR/client_key)", err)
		}
		cfg.PrivateKey = key
		pp, err := s.Passphrase()
		switch {
		case err == nil:
			cfg.Passphrase = []byte(pp)
		case !errors.Is(err, spec.ErrNoSecret):
			return nil, err
		}
	}
	pw, err := s.Password()
	switch {
	case err == nil:
		cfg.Password = pw
	case !errors.Is(err, spec.ErrNoSecret):
		return nil, err
	}
	if s.KnownHostsFile != "" {
		if _, err := os.Stat(s.KnownHostsFile); err != nil {
			return nil, fmt.Errorf("target.ssh.knownHostsFile: %w (add the RDS host key with ssh-keyscan, or the known_hosts `rds-reconcile sim` writes)", err)
		}
	}
	c, err := rds.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("RDS client: %w", err)
	}
	return c, nil
}

// newFabric returns this host's NVMe side: "linux" (the kernel), "sim:DIR"
// (the simulated host in DIR) or "none" (no host side).
func newFabric(g *globals, st *spec.State) (reconcile.Fabric, *sizeTable, error) {
	prefixes := []string{st.ManagedNQNPrefix()}
	switch {
	case g.fabric == "none":
		return nil, nil, nil
	case g.fabric == "linux":
		l := fabric.NewLinux(fabric.LinuxOptions{ManagedPrefixes: prefixes, Logger: g.logger(), ReadOnly: g.readOnly})
		if err := l.Usable(context.Background()); err != nil {
			g.logger().Warn("this host cannot connect NVMe/TCP: connects will fail (modprobe nvme-tcp as root; "+
				"--fabric none on a machine that is no NVMe host; --fabric sim:DIR to try rds-reconcile out)", "err", err)
		}
		return l, nil, nil
	case strings.HasPrefix(g.fabric, "sim:"):
		dir := strings.TrimPrefix(g.fabric, "sim:")
		if dir == "" {
			return nil, nil, errors.New(`--fabric sim:DIR needs a folder, e.g. --fabric sim:/tmp/rds-demo/host`)
		}
		dir, err := filepath.Abs(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("--fabric: %w", err)
		}
		opts := fabsim.Options{ManagedPrefixes: prefixes, Logger: g.logger()}
		if h, ok := st.Hosts[g.host]; ok {
			opts.HostNQN = h.HostNQN
		}
		sizes := &sizeTable{}
		sizes.update(st)
		opts.SizeOf = sizes.get
		h, err := fabsim.Open(dir, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("--fabric %s: %w", g.fabric, err)
		}
		return h, sizes, nil
	}
	return nil, nil, fmt.Errorf(`--fabric %q: want "linux", "sim:DIR" or "none"`, g.fabric)
}

// loadOrReport loads the state files; validation problems are reported one
// a line on stderr and end the command with status 1 (an error, no panic).
func loadOrReport(g *globals, files []string) (*spec.State, error) {
	st, err := loadState(files)
	if err != nil {
		var es *spec.Errors
		if errors.As(err, &es) {
			fmt.Fprintln(g.stderr, es.Error())
			return nil, &exitError{code: 1, err: errors.New("the desired state is not valid; nothing was planned or changed")}
		}
		return nil, &exitError{code: 1, err: err}
	}
	return st, nil
}

// openLocked loads the state, takes its apply lock and wires the RDS and
// the fabric: what every converging command (apply, run) starts with. The
// returned release closes the wiring, then the lock.
func openLocked(ctx context.Context, g *globals, files []string, stateDir string) (*spec.State, *wiring, func(), error) {
	st, err := loadOrReport(g, files)
	if err != nil {
		return nil, nil, nil, err
	}
	lock, err := reconcile.AcquireLock(reconcile.LockPath(stateDir, files), "rds-reconcile "+strings.Join(os.Args[1:], " "))
	if err != nil {
		return nil, nil, nil, &exitError{code: 1, err: err}
	}
	w, err := wire(ctx, g, st, files)
	if err != nil {
		lock.Release()
		return nil, nil, nil, &exitError{code: 1, err: err}
	}
	w.applied = reconcile.AppliedPath(stateDir, files)
	return st, w, func() { w.close(); lock.Release() }, nil
}

// absFiles makes the state file names absolute, for saved plans.
func absFiles(files []string) []string {
	out := make([]string, len(files))
	for i, f := range files {
		if abs, err := filepath.Abs(f); err == nil {
			f = abs
		}
		out[i] = f
	}
	return out
}

// scopeFor is the scope of a whole-state CLI run.
func scopeFor(st *spec.State, prune, allowMassDetach bool) reconcile.Scope {
	sc := reconcile.Full(prune || (st.Policy != nil && st.Policy.Prune))
	sc.AllowMassDetach = allowMassDetach
	return sc
}

// massDetachHelp is the help of --allow-mass-detach (plan, apply, run).
const massDetachHelp = "disconnect even when the state declares no volume for this host, or drops more than half of this host's volumes at once (held back by default: that is what a half-written or emptied file looks like)"
