package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rds-reconcile/rds-reconcile/csi"
	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/gitsync"
	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/reconcile"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// csiFlags are the flags of `rds-reconcile csi`.
type csiFlags struct {
	endpoint      string
	mode          string
	nodeID        string
	stateDir      string
	files         []string
	metricsListen string
	// trafficEvery is how often the controller samples the RDS disk
	// counters for /metrics (0: never).
	trafficEvery time.Duration
	driverName   string
	maxVolumes   int64
	kubeletDir   string
	git          gitFlags
	layer        string // "" (the file in the state dir) or configmap://NS/NAME
	// gather is how long the controller's concurrent volume calls wait to
	// share a layer write and an RDS session (0: each call alone).
	gather     time.Duration
	kubeconfig string
	// registrationPath is the node's CSI socket as the kubelet sees it;
	// when set the node serves the kubelet's plugin registration itself.
	registrationPath string
}

func newCSICmd(g *globals) *cobra.Command {
	f := &csiFlags{}
	cmd := &cobra.Command{
		Use:   "csi --endpoint unix:///csi/csi.sock --mode controller|node|all --state-dir DIR [-f base.yaml | --git URL [--ref REF] [--path P...]]",
		Short: "Serve the Kubernetes CSI (controller, node or both)",
		Long: `Serve the Container Storage Interface so that Kubernetes can provision RDS
volumes. A CSI request edits a desired-state layer and reconciles the volume
it concerns; it returns when the change converged or failed.

The controller owns a layer, the volumes Kubernetes created, layered over the
base state given with -f (target, defaults, hosts and git-managed volumes):
<state-dir>/csi-volumes.yaml by default, or, with --layer
configmap://NAMESPACE/NAME, key csi-volumes.yaml of that ConfigMap, read at
every call and written with optimistic concurrency (resourceVersion), so the
truth survives any node and several controllers never lose each other's
edits. The API server comes from --kubeconfig, else the pod's service
account. At start, an existing <state-dir>/csi-volumes.yaml is imported once
into a ConfigMap that holds no layer yet, then renamed to *.imported.
` + "`rds-reconcile plan -f base.yaml -f <state-dir>/csi-volumes.yaml`" + ` (or the file
` + "`rds-reconcile csi-layer`" + ` writes) shows the whole truth.

With --git URL the controller takes its base state from a git repository
instead of -f files: it keeps a private clone in <state-dir>/csi-git, fetches
--ref every --git-interval and moves the checkout by fast-forward only (with
--verify-commits, only to a head commit signed by a key in --allowed-signers).
Every controller call reads the base afresh from the last good revision and
layers csi-volumes.yaml on it, as with -f; a failed fetch, a rewritten history
or an unverified head keep the last good revision. Until the first good sync
the volume calls answer Unavailable and the Probe is not ready. The RDS client
is built from the first base's target.ssh: a later revision naming another
RDS is refused until the controller restarts.

The node keeps <state-dir>/node-<node-id>.yaml on the host, so a
restarted plugin still knows its staged volumes; at start it reconnects them
and disconnects orphaned managed controllers.`,
		Example: `  rds-reconcile csi --mode controller --endpoint unix:///csi/csi.sock \
      --state-dir /var/lib/rds-reconcile -f /etc/rds-reconcile/base.yaml
  rds-reconcile csi --mode controller --endpoint unix:///csi/csi.sock \
      --state-dir /var/lib/rds-reconcile -f /etc/rds-reconcile/base.yaml \
      --layer configmap://rds-reconcile/rds-csi-volumes
  rds-reconcile csi --mode controller --endpoint unix:///csi/csi.sock \
      --state-dir /var/lib/rds-reconcile --git ssh://git@git.example.com/infra/rds-state.git --ref main \
      --path clusters/prod/base.yaml --git-known-hosts /etc/rds-reconcile/git/known_hosts \
      --git-ssh-key /etc/rds-reconcile/git/key
  rds-reconcile csi --mode node --node-id "$NODE_NAME" --endpoint unix:///csi/csi.sock \
      --state-dir /var/lib/rds-reconcile`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.git.url == "" {
				if err := noGitFlags(cmd); err != nil {
					return &exitError{code: 2, err: err}
				}
			}
			return runCSI(cmd.Context(), g, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.endpoint, "endpoint", "unix:///csi/csi.sock", "CSI endpoint: unix:///path or tcp://host:port")
	fl.StringVar(&f.mode, "mode", "all", "services to serve: controller, node or all")
	fl.StringVar(&f.nodeID, "node-id", "", "this node's name (Kubernetes node name); defaults to --host")
	fl.StringVar(&f.stateDir, "state-dir", "/var/lib/rds-reconcile", "folder of the CSI layers (csi-volumes.yaml, node-<id>.yaml)")
	fl.StringArrayVarP(&f.files, "file", "f", nil, "base state file (repeatable); required for the controller")
	fl.StringVar(&f.metricsListen, "metrics-listen", "", "serve Prometheus /metrics and /healthz on this address (e.g. :9808)")
	fl.DurationVar(&f.trafficEvery, "traffic-interval", time.Minute, "controller with --metrics-listen: how often to read the RDS disk I/O counters for /metrics (0: never)")
	fl.DurationVar(&f.gather, "gather-window", csi.DefaultGather, "controller: how long concurrent volume calls wait to share one layer write and one RDS session (a lone call waits a quarter of it; 0: each call alone)")
	fl.StringVar(&f.driverName, "driver-name", csi.DefaultDriverName, "CSI driver name")
	fl.Int64Var(&f.maxVolumes, "max-volumes-per-node", 0, "volumes a node may hold (0: no limit)")
	fl.StringVar(&f.kubeletDir, "kubelet-dir", csi.DefaultKubeletDir, "the kubelet's root directory: the node mounts, unmounts and removes only below it")
	fl.StringVar(&f.layer, "layer", "", "controller: where the CSI layer lives: configmap://NAMESPACE/NAME (Kubernetes), or leave it out for <state-dir>/csi-volumes.yaml")
	fl.StringVar(&f.registrationPath, "kubelet-registration-path", "", "node: register with the kubelet (no node-driver-registrar needed): serve <kubelet-dir>/plugins_registry/<driver-name>-reg.sock, naming this path, the --endpoint socket as the kubelet sees it (e.g. /var/lib/kubelet/plugins/rds.csi.rds-reconcile.io/csi.sock)")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "with --layer configmap://...: kubeconfig file for the API server (default: the pod's service account)")
	addGitFlags(cmd, &f.git, "controller: take the base state from this git repository (https://, ssh://, user@host:path, file://) instead of -f files",
		"with --git: time between fetches; each controller call reads the last good revision")
	return cmd
}

func runCSI(ctx context.Context, g *globals, f *csiFlags) error {
	log := g.logger().With("component", "csi")
	mode, err := checkCSIFlags(g, f)
	if err != nil {
		return err
	}
	if err := prepareStateDir(f.stateDir); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	rm, err := reconcile.NewMetrics(reg)
	if err != nil {
		return err
	}
	opts := csi.Options{Name: f.driverName, Version: version, Mode: mode, NodeID: f.nodeID, Logger: log, Registerer: reg}

	var base *spec.State
	if len(f.files) > 0 {
		if base, err = loadOrReport(g, f.files); err != nil {
			return err
		}
	}
	var layer controllerLayerStore
	if mode != csi.ModeNode {
		if layer, err = controllerLayer(ctx, f, log); err != nil {
			return err
		}
	}
	var gb *gitBase
	if f.git.url != "" {
		if gb, err = openGitBase(ctx, g, f, log, reg, rm); err != nil {
			return err
		}
		defer gb.close()
		if base, err = gb.load(); err != nil && !errors.Is(err, csi.ErrNoBase) {
			return &exitError{code: 1, err: fmt.Errorf("--git: %w", err)}
		}
		opts.Controller = &csi.ControllerConfig{Base: gb, Layer: layer, Reconciler: gb, Pool: gb, Inventory: gb}
	}
	if mode != csi.ModeNode && gb == nil {
		cfg, closeRDS, err := fileController(g, f, base, layer, log, rm)
		if err != nil {
			return err
		}
		defer closeRDS()
		opts.Controller = cfg
	}
	if mode != csi.ModeController {
		if opts.Node, err = nodeConfig(g, f, base, log, rm); err != nil {
			return err
		}
	}
	return serveCSI(ctx, f, opts, gb, layer, reg, log)
}

// maxGather bounds --gather-window: every concurrent call may wait ten
// windows, so a second would stall a burst far past the sidecars' timeouts.
const maxGather = 100 * time.Millisecond

// gatherOptions turns --gather-window into the engine's options (0 there
// means the default; negative, none).
func gatherOptions(f *csiFlags) csi.EngineOptions {
	if f.gather == 0 {
		return csi.EngineOptions{Gather: -1}
	}
	return csi.EngineOptions{Gather: f.gather}
}

// checkCSIFlags checks the flags that need no I/O and returns the mode;
// --node-id defaults to --host.
func checkCSIFlags(g *globals, f *csiFlags) (csi.Mode, error) {
	usage := func(err error) (csi.Mode, error) { return "", &exitError{code: 2, err: err} }
	mode := csi.Mode(f.mode)
	switch mode {
	case csi.ModeController, csi.ModeNode, csi.ModeAll:
	default:
		return usage(fmt.Errorf("--mode %q: use controller, node or all", f.mode))
	}
	if f.nodeID == "" {
		f.nodeID = g.host
	}
	if mode != csi.ModeNode && len(f.files) == 0 && f.git.url == "" {
		return usage(errors.New("the controller needs the base state: pass -f base.yaml (target, defaults, hosts) or --git URL"))
	}
	if f.git.url != "" {
		if err := checkCSIGitFlags(mode, f); err != nil {
			return usage(err)
		}
	}
	if mode == csi.ModeNode && (f.layer != "" || f.kubeconfig != "") {
		return usage(errors.New("--layer and --kubeconfig are the controller's: --mode node keeps its layer on the host"))
	}
	if f.gather < 0 || f.gather > maxGather {
		return usage(fmt.Errorf("--gather-window %v: give 0 (no gathering) up to %v; the default is %v", f.gather, maxGather, csi.DefaultGather))
	}
	if !filepath.IsAbs(f.kubeletDir) || filepath.Clean(f.kubeletDir) != f.kubeletDir {
		return usage(fmt.Errorf("--kubelet-dir %q: give an absolute, clean path such as %s", f.kubeletDir, csi.DefaultKubeletDir))
	}
	if f.registrationPath != "" {
		if mode == csi.ModeController {
			return usage(errors.New("--kubelet-registration-path registers the node plugin with the kubelet: use it with --mode node or all"))
		}
		if !filepath.IsAbs(f.registrationPath) || filepath.Clean(f.registrationPath) != f.registrationPath {
			return usage(fmt.Errorf("--kubelet-registration-path %q: give the CSI socket as the kubelet sees it, an absolute, clean path such as /var/lib/kubelet/plugins/%s/csi.sock", f.registrationPath, f.driverName))
		}
	}
	return mode, nil
}

// prepareStateDir makes the state dir, which holds the layers and their
// locks: the owner's only, whatever mode an older version or the umask
// gave it.
func prepareStateDir(dir string) error {
	if err := os.MkdirAll(dir, stateDirMode); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("--state-dir: %w", err)}
	}
	if err := os.Chmod(dir, stateDirMode); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("--state-dir: %w", err)}
	}
	return nil
}

// fileController is the controller over base files: its own RDS client
// (closed by the returned func).
func fileController(g *globals, f *csiFlags, base *spec.State, layer controllerLayerStore, log *slog.Logger, rm *reconcile.Metrics) (*csi.ControllerConfig, func(), error) {
	client, err := newRDSClient(g, base)
	if err != nil {
		return nil, nil, &exitError{code: 1, err: err}
	}
	if client == nil {
		return nil, nil, &exitError{code: 1, err: errors.New("the controller needs target.ssh in the base state to reach the RDS")}
	}
	return &csi.ControllerConfig{
		BaseFiles:  absFiles(f.files),
		Layer:      layer,
		Reconciler: csi.FromEngineWith(reconcile.New(reconcile.Options{RDS: client, Logger: log.With("side", "rds"), Metrics: rm}), gatherOptions(f)),
		Pool:       client,
		Inventory:  client,
		Gather:     gatherOptions(f).Gather,
	}, func() { client.Close() }, nil
}

// nodeConfig is the node plugin: its layer on the host (node-<id>.yaml)
// and this host's fabric.
func nodeConfig(g *globals, f *csiFlags, base *spec.State, log *slog.Logger, rm *reconcile.Metrics) (*csi.NodeConfig, error) {
	layer := spec.OpenStore(filepath.Join(f.stateDir, "node-"+f.nodeID+".yaml"))
	host, err := nodeFabric(g, base, layer)
	if err != nil {
		return nil, &exitError{code: 1, err: err}
	}
	return &csi.NodeConfig{
		Layer: layer,
		Host:  host,
		Reconciler: csi.FromEngine(reconcile.New(reconcile.Options{Fabric: host, Host: f.nodeID,
			Logger: log.With("side", "host"), Metrics: rm})),
		MaxVolumes: f.maxVolumes,
		KubeletDir: f.kubeletDir,
	}, nil
}

// serveCSI starts the driver, then serves CSI (and with --metrics-listen
// the metrics and the traffic poll; with --git the base's polling) until
// ctx ends.
func serveCSI(ctx context.Context, f *csiFlags, opts csi.Options, gb *gitBase, layer controllerLayerStore, reg *prometheus.Registry, log *slog.Logger) error {
	d, err := csi.New(opts)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = d.Start(startCtx)
	cancel()
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	lis, err := csi.Listen(f.endpoint)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	if f.metricsListen != "" {
		stop, err := serveCSIMetrics(ctx, f.metricsListen, reg)
		if err != nil {
			lis.Close()
			return &exitError{code: 1, err: err}
		}
		defer stop()
		stopTraffic, err := pollTraffic(ctx, f, opts.Controller, reg, log)
		if err != nil {
			lis.Close()
			return &exitError{code: 1, err: err}
		}
		defer stopTraffic()
	}
	attrs := []any{"endpoint", f.endpoint, "mode", opts.Mode, "node", f.nodeID, "stateDir", f.stateDir, "layer", layerName(layer)}
	if gb != nil {
		gctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { gb.repo.Poll(gctx, f.git.interval, nil, func(bool, bool) { gb.warm() }) })
		// Stopped before gb.close (deferred by the caller, so run later).
		defer func() { stop(); wg.Wait() }()
		st := gb.repo.Status()
		attrs = append(attrs, "git", st.URL, "ref", st.Ref, "revision", revOrNone(st.Short))
	}
	if f.registrationPath != "" {
		return serveWithRegistration(ctx, f, d, lis, log, attrs)
	}
	log.Info("serving CSI", attrs...)
	return d.Serve(ctx, lis)
}

// serveWithRegistration serves CSI and, once the endpoint listens (the
// kubelet calls NodeGetInfo on it right after reading the registration),
// the kubelet's plugin registration. A registration that cannot be served
// stops the plugin with its error: a node plugin the kubelet never finds
// would otherwise look healthy while no volume can mount.
func serveWithRegistration(ctx context.Context, f *csiFlags, d *csi.Driver, lis net.Listener, log *slog.Logger, attrs []any) error {
	sock := csi.RegistrationSocket(f.kubeletDir, f.driverName)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rerr := make(chan error, 1)
	go func() {
		err := csi.ServeRegistration(sctx, csi.Registration{Driver: f.driverName, Endpoint: f.registrationPath, Socket: sock, Logger: log})
		cancel()
		rerr <- err
	}()
	log.Info("serving CSI", append(attrs, "registration", sock)...)
	err := d.Serve(sctx, lis)
	cancel()
	if regErr := <-rerr; regErr != nil {
		return &exitError{code: 1, err: fmt.Errorf("--kubelet-registration-path: %w", regErr)}
	}
	return err
}

func layerName(l controllerLayerStore) string {
	if l == nil {
		return "(none)"
	}
	return l.Name()
}

// stateDirMode is the mode `csi` gives its --state-dir.
const stateDirMode = 0o700

// nodeFabric builds this host's NVMe side. The managed NQN prefix comes from
// the base state when given, else from what the node layer recorded at its
// last stage, else the RouterOS default.
func nodeFabric(g *globals, base *spec.State, layer *spec.Store) (fabric.Host, error) {
	st := base
	if st == nil {
		raw, err := layer.Read()
		if err != nil {
			return nil, err
		}
		st = raw
	}
	if st.Target == nil {
		st = &spec.State{Target: &spec.Target{NQNPrefix: spec.DefaultNQNPrefix}, Hosts: st.Hosts}
	}
	rf, _, err := newFabric(g, st)
	if err != nil {
		return nil, err
	}
	h, ok := rf.(fabric.Host)
	if !ok || rf == nil {
		return nil, fmt.Errorf("--fabric %q: the CSI node needs a host fabric (linux or sim:DIR)", g.fabric)
	}
	return h, nil
}

// pollTraffic samples the RDS disk counters of every managed disk each
// --traffic-interval for /metrics (a List and a monitor-traffic: two round
// trips), when this process is a controller; the returned stop waits for
// the poller.
func pollTraffic(ctx context.Context, f *csiFlags, cc *csi.ControllerConfig, reg prometheus.Registerer, log *slog.Logger) (func(), error) {
	if cc == nil || f.trafficEvery <= 0 {
		return func() {}, nil
	}
	src, ok := cc.Inventory.(interface {
		reconcile.TrafficSource
		List(ctx context.Context) (rds.Inventory, error)
	})
	if !ok {
		return func() {}, nil
	}
	tr, err := reconcile.NewTraffic(reg, src, reconcile.TrafficOptions{Every: f.trafficEvery, Logger: log.With("component", "traffic")})
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr.Poll(pctx, func(ctx context.Context) ([]string, error) {
			inv, err := src.List(ctx)
			return reconcile.ManagedSlots(inv), err
		})
	}()
	return func() { cancel(); <-done }, nil
}

func serveCSIMetrics(ctx context.Context, addr string, reg *prometheus.Registry) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

// checkCSIGitFlags checks csi's --git options.
func checkCSIGitFlags(mode csi.Mode, f *csiFlags) error {
	switch {
	case mode == csi.ModeNode:
		return errors.New("--git gives the controller its base state: --mode node takes none")
	case len(f.files) > 0:
		return errors.New("-f and --git exclude each other: with --git, --path names the base state files inside the repository")
	case f.git.interval <= 0:
		return errors.New("--git-interval must be positive")
	case f.git.verify != (f.git.signers != ""):
		return errors.New("--verify-commits and --allowed-signers FILE go together: the file names the keys whose signatures are trusted")
	}
	return nil
}

// gitBase is the controller's base state from a git clone (csi --git): its
// csi.BaseSource, and the RDS side (csi.Reconciler, csi.Pool) built from
// the first base that loads, since the base names the RDS.
type gitBase struct {
	repo *gitsync.Repo
	g    *globals
	log  *slog.Logger
	rm   *reconcile.Metrics
	// gather: --gather-window for the engine built from the first base.
	gather csi.EngineOptions

	mu     sync.Mutex
	client *rds.SSHClient
	eng    csi.Reconciler
	target spec.Target // the target the client was built from
	rev    string      // and its revision
}

// openGitBase opens the private clone in <state-dir>/csi-git and syncs it
// once; a failed sync is logged (the clone's last checkout, if any, stays
// the base).
func openGitBase(ctx context.Context, g *globals, f *csiFlags, log *slog.Logger, reg prometheus.Registerer, rm *reconcile.Metrics) (*gitBase, error) {
	sm, err := reconcile.NewSyncMetrics(reg)
	if err != nil {
		return nil, err
	}
	glog := log.With("component", "git")
	gf := f.git
	repo, err := gitsync.Open(ctx, gitsync.Options{
		URL: gf.url, Ref: gf.ref, Dir: filepath.Join(f.stateDir, "csi-git"), Paths: gf.paths,
		KnownHostsFile: gf.knownHosts, SSHKeyFile: gf.sshKey, AllowedSigners: gf.signers, Logger: glog,
		OnSync: func(s gitsync.Status, _ error) {
			sm.Synced(reconcile.GitSync{Ref: s.Ref, Revision: s.Short, CommitTime: s.Time, LastSync: s.LastSync,
				Behind: s.Behind, Failure: s.Reason})
		},
	})
	if err != nil {
		return nil, &exitError{code: 1, err: fmt.Errorf("--git: %w", err)}
	}
	if _, err := repo.Sync(ctx); err != nil {
		st := repo.Status()
		glog.Warn("git sync failed; the base state stays at the last synced revision", "err", err, "reason", st.Reason, "revision", revOrNone(st.Short))
	}
	return &gitBase{repo: repo, g: g, log: log, rm: rm, gather: gatherOptions(f)}, nil
}

// Read implements csi.BaseSource: the files of the last good revision,
// under the clone's lock.
func (b *gitBase) Read(fn func(files []string) error) (string, error) {
	st, err := b.repo.Read(context.Background(), fn)
	if errors.Is(err, gitsync.ErrNoCheckout) {
		why := st.Error
		if why == "" {
			why = "waiting for the first sync"
		}
		return st.Short, fmt.Errorf("%w: nothing synced from %s (%s): %s", csi.ErrNoBase, st.URL, st.Ref, why)
	}
	return st.Short, err
}

// load loads the base state alone at the last good revision.
func (b *gitBase) load() (*spec.State, error) {
	var st *spec.State
	var lerr error
	rev, err := b.Read(func(files []string) error {
		st, lerr = spec.Load(files...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if lerr != nil {
		return nil, fmt.Errorf("the base state at revision %s: %w", rev, lerr)
	}
	return st, nil
}

// connect returns the RDS side, building it from st's target the first
// time. A later base that names another RDS (target.ssh, basePath,
// slotPrefix) is refused: the client follows it only after a restart.
func (b *gitBase) connect(st *spec.State, rev string) (csi.Reconciler, *rds.SSHClient, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client != nil {
		if st.Target != nil && !sameRDS(b.target, *st.Target) {
			return nil, nil, status.Errorf(codes.FailedPrecondition,
				"the base state names another RDS (target.ssh, basePath or slotPrefix) than the one the controller connected to at revision %s; restart the controller to follow it", b.rev)
		}
		return b.eng, b.client, nil
	}
	client, err := newRDSClient(b.g, st)
	if err != nil {
		return nil, nil, err
	}
	if client == nil {
		return nil, nil, errors.New("the controller needs target.ssh in the base state to reach the RDS")
	}
	b.client, b.target, b.rev = client, *st.Target, rev
	b.eng = csi.FromEngineWith(reconcile.New(reconcile.Options{RDS: client, Logger: b.log.With("side", "rds"), Metrics: b.rm}), b.gather)
	b.log.Info("RDS client built from the base state", "address", st.Target.SSH.Address, "revision", rev)
	return b.eng, b.client, nil
}

func sameRDS(a, b spec.Target) bool {
	return reflect.DeepEqual(a.SSH, b.SSH) && a.BasePath == b.BasePath && a.SlotPrefix == b.SlotPrefix
}

// Reconcile implements csi.Reconciler (st is the merged state the
// controller loaded from the base).
func (b *gitBase) Reconcile(ctx context.Context, st *spec.State, sc csi.Scope) error {
	eng, _, err := b.connect(st, b.repo.Status().Short)
	if err != nil {
		return err
	}
	return eng.Reconcile(ctx, st, sc)
}

// Capacity implements csi.Pool.
func (b *gitBase) Capacity(ctx context.Context) (rds.Capacity, error) {
	c, err := b.warm()
	if err != nil {
		return rds.Capacity{}, err
	}
	return c.Capacity(ctx)
}

// Traffic reads disk counters with the client of the current base.
func (b *gitBase) Traffic(ctx context.Context, slots []string) (map[string]rds.DiskTraffic, error) {
	c, err := b.warm()
	if err != nil {
		return nil, err
	}
	return c.Traffic(ctx, slots)
}

// List lists the RDS (volume health) with the client of the current base.
func (b *gitBase) List(ctx context.Context) (rds.Inventory, error) {
	c, err := b.warm()
	if err != nil {
		return rds.Inventory{}, err
	}
	return c.List(ctx)
}

// warm builds the RDS client from the base when it is not built yet (after
// every sync, so that the Probe turns ready soon after the first).
func (b *gitBase) warm() (*rds.SSHClient, error) {
	b.mu.Lock()
	c := b.client
	b.mu.Unlock()
	if c != nil {
		return c, nil
	}
	st, err := b.load()
	if err != nil {
		return nil, err
	}
	_, c, err = b.connect(st, b.repo.Status().Short)
	if err != nil {
		b.log.Warn("cannot reach the RDS the base state names", "err", err)
	}
	return c, err
}

func (b *gitBase) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client != nil {
		_ = b.client.Close()
	}
}

func revOrNone(rev string) string {
	if rev == "" {
		return "(none)"
	}
	return rev
}
