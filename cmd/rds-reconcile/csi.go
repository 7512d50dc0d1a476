package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/rds-reconcile/rds-reconcile/csi"
	"github.com/rds-reconcile/rds-reconcile/fabric"
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
	driverName    string
	maxVolumes    int64
	kubeletDir    string
}

func newCSICmd(g *globals) *cobra.Command {
	f := &csiFlags{}
	cmd := &cobra.Command{
		Use:   "csi --endpoint unix:///csi/csi.sock --mode controller|node|all --state-dir DIR [-f base.yaml]",
		Short: "Serve the Kubernetes CSI (controller, node or both)",
		Long: `Serve the Container Storage Interface so that Kubernetes can provision RDS
volumes. A CSI request edits a desired-state layer and reconciles the volume
it concerns; it returns when the change converged or failed.

The controller owns <state-dir>/csi-volumes.yaml, layered over the base state
given with -f (target, defaults, hosts and git-managed volumes).
` + "`rds-reconcile plan -f base.yaml -f <state-dir>/csi-volumes.yaml`" + ` shows the
whole truth. The node keeps <state-dir>/node-<node-id>.yaml on the host, so a
restarted plugin still knows its staged volumes; at start it reconnects them
and disconnects orphaned managed controllers.`,
		Example: `  rds-reconcile csi --mode controller --endpoint unix:///csi/csi.sock \
      --state-dir /var/lib/rds-reconcile -f /etc/rds-reconcile/base.yaml
  rds-reconcile csi --mode node --node-id "$NODE_NAME" --endpoint unix:///csi/csi.sock \
      --state-dir /var/lib/rds-reconcile`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
	fl.StringVar(&f.driverName, "driver-name", csi.DefaultDriverName, "CSI driver name")
	fl.Int64Var(&f.maxVolumes, "max-volumes-per-node", 0, "volumes a node may hold (0: no limit)")
	fl.StringVar(&f.kubeletDir, "kubelet-dir", csi.DefaultKubeletDir, "the kubelet's root directory: the node mounts, unmounts and removes only below it")
	return cmd
}

func runCSI(ctx context.Context, g *globals, f *csiFlags) error {
	log := g.logger().With("component", "csi")
	mode := csi.Mode(f.mode)
	switch mode {
	case csi.ModeController, csi.ModeNode, csi.ModeAll:
	default:
		return &exitError{code: 2, err: fmt.Errorf("--mode %q: use controller, node or all", f.mode)}
	}
	if f.nodeID == "" {
		f.nodeID = g.host
	}
	if mode != csi.ModeNode && len(f.files) == 0 {
		return &exitError{code: 2, err: errors.New("the controller needs the base state: pass -f base.yaml (target, defaults, hosts)")}
	}
	if !filepath.IsAbs(f.kubeletDir) || filepath.Clean(f.kubeletDir) != f.kubeletDir {
		return &exitError{code: 2, err: fmt.Errorf("--kubelet-dir %q: give an absolute, clean path such as %s", f.kubeletDir, csi.DefaultKubeletDir)}
	}
	// The state dir holds the layers and their locks: the owner's only,
	// whatever mode an older version or the umask gave it.
	if err := os.MkdirAll(f.stateDir, stateDirMode); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("--state-dir: %w", err)}
	}
	if err := os.Chmod(f.stateDir, stateDirMode); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("--state-dir: %w", err)}
	}
	reg := prometheus.NewRegistry()
	rm, err := reconcile.NewMetrics(reg)
	if err != nil {
		return err
	}
	opts := csi.Options{Name: f.driverName, Version: version, Mode: mode, NodeID: f.nodeID, Logger: log, Registerer: reg}

	var base *spec.State
	if len(f.files) > 0 {
		if base, err = mustLoad(g, f.files); err != nil {
			return err
		}
	}
	if mode != csi.ModeNode {
		client, err := newRDSClient(g, base)
		if err != nil {
			return &exitError{code: 1, err: err}
		}
		if client == nil {
			return &exitError{code: 1, err: errors.New("the controller needs target.ssh in the base state to reach the RDS")}
		}
		defer client.Close()
		opts.Controller = &csi.ControllerConfig{
			BaseFiles:  absFiles(f.files),
			Layer:      spec.OpenStore(filepath.Join(f.stateDir, "csi-volumes.yaml")),
			Reconciler: csi.FromEngine(reconcile.New(reconcile.Options{RDS: client, Logger: log.With("side", "rds"), Metrics: rm})),
			Pool:       client,
		}
	}
	if mode != csi.ModeController {
		layer := spec.OpenStore(filepath.Join(f.stateDir, "node-"+f.nodeID+".yaml"))
		host, err := nodeFabric(g, base, layer)
		if err != nil {
			return &exitError{code: 1, err: err}
		}
		opts.Node = &csi.NodeConfig{
			Layer: layer,
			Host:  host,
			Reconciler: csi.FromEngine(reconcile.New(reconcile.Options{Fabric: host, Host: f.nodeID,
				Logger: log.With("side", "host"), Metrics: rm})),
			MaxVolumes: f.maxVolumes,
			KubeletDir: f.kubeletDir,
		}
	}
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
	}
	log.Info("serving CSI", "endpoint", f.endpoint, "mode", mode, "node", f.nodeID, "stateDir", f.stateDir)
	return d.Serve(ctx, lis)
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
