// Package csi owns the Kubernetes Container Storage Interface of
// rds-reconcile: the Identity, Controller and Node services, mounting and
// formatting. A CSI request is served by editing a desired-state layer
// (spec.Store) and reconciling the volume it concerns; the package reaches
// the RDS and the kernel only through the Reconciler, Pool and fabric.Host
// interfaces it is given.
package csi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// DefaultDriverName is the CSI driver name (CSIDriver object, StorageClass
// provisioner).
const DefaultDriverName = "rds.csi.rds-reconcile.io"

// Mode says which CSI services a process serves.
type Mode string

// Modes.
const (
	ModeController Mode = "controller"
	ModeNode       Mode = "node"
	ModeAll        Mode = "all"
)

// LayerStore is a state layer file edited under a lock; *spec.Store is one.
type LayerStore interface {
	Path() string
	Read() (*spec.State, error)
	Update(ctx context.Context, fn func(*spec.State) error) error
}

// Scope narrows a reconcile to some volumes.
type Scope struct {
	// Volumes are the volume names to converge; empty means all.
	Volumes []string
	// Orphans also disconnects managed controllers the state does not
	// declare for this host (node side only).
	Orphans bool

	// crowd counts the controller's calls in flight: the one-session path
	// (gatherer) waits a moment for them to share its RDS session. Nil
	// outside the controller.
	crowd *crowd
}

// Reconciler converges the live state toward st within scope and returns
// when it has converged (nil) or failed. The controller's reconciler has only
// the RDS side, the node's only the host side.
type Reconciler interface {
	Reconcile(ctx context.Context, st *spec.State, scope Scope) error
}

// Pool reports the RDS storage pool; the controller's GetCapacity and Probe.
type Pool interface {
	Capacity(ctx context.Context) (rds.Capacity, error)
}

// Options configure a Driver.
type Options struct {
	Name    string // DefaultDriverName when empty
	Version string
	Mode    Mode
	// NodeID is this node's name (Kubernetes node name); the node service's
	// identity and, in ModeAll, the host the controller knows.
	NodeID     string
	Controller *ControllerConfig // required in ModeController and ModeAll
	Node       *NodeConfig       // required in ModeNode and ModeAll
	Logger     *slog.Logger
	// Registerer receives the CSI metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
}

// Driver is one CSI plugin process.
type Driver struct {
	opts       Options
	log        *slog.Logger
	metrics    *metrics
	controller *controller
	node       *node
}

// New checks the options and builds the driver. It does no I/O.
func New(opts Options) (*Driver, error) {
	if opts.Name == "" {
		opts.Name = DefaultDriverName
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Driver{opts: opts, log: opts.Logger}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("registering CSI metrics: %w", err)
	}
	d.metrics = m
	switch opts.Mode {
	case ModeController, ModeNode, ModeAll:
	default:
		return nil, fmt.Errorf("mode %q: use controller, node or all", opts.Mode)
	}
	if opts.Mode != ModeNode {
		if opts.Controller == nil {
			return nil, errors.New("controller mode needs a controller configuration")
		}
		c, err := newController(*opts.Controller, opts.Logger)
		if err != nil {
			return nil, err
		}
		d.controller = c
	}
	if opts.Mode != ModeController {
		if opts.Node == nil {
			return nil, errors.New("node mode needs a node configuration")
		}
		if !validNodeID(opts.NodeID) {
			return nil, fmt.Errorf("node id %q: give the Kubernetes node name (--node-id): letters, digits, '.', '_' or '-', at most 253", opts.NodeID)
		}
		n, err := newNode(opts.NodeID, *opts.Node, opts.Logger)
		if err != nil {
			return nil, err
		}
		d.node = n
	}
	return d, nil
}

// Start does the work due before serving: the controller makes sure its
// layer exists (and, in ModeAll, declares this node as a host); the node
// reconciles its layer at once, reconnecting staged volumes the kernel
// dropped and disconnecting orphans (the seed's startup cleanup).
func (d *Driver) Start(ctx context.Context) error {
	if d.controller != nil {
		if fl, ok := d.controller.cfg.Layer.(LayerStore); ok {
			// A file layer: what an interrupted write left. A ConfigMap
			// layer has no temporary files.
			removeStaleTemps(ctx, fl, d.log)
		}
		var self *selfHost
		if d.node != nil {
			nqn, err := d.node.cfg.Host.HostNQN(ctx)
			if err != nil {
				return fmt.Errorf("reading this host's NQN: %w", err)
			}
			self = &selfHost{name: d.opts.NodeID, nqn: nqn}
		}
		if err := d.controller.start(ctx, self); err != nil {
			return err
		}
	}
	if d.node != nil {
		if err := d.node.start(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Serve serves CSI on lis until ctx ends, then stops gracefully.
func (d *Driver) Serve(ctx context.Context, lis net.Listener) error {
	srv := grpc.NewServer(grpc.UnaryInterceptor(d.metrics.interceptor(d.log)))
	csi.RegisterIdentityServer(srv, &identity{d: d})
	if d.controller != nil {
		csi.RegisterControllerServer(srv, d.controller)
	}
	if d.node != nil {
		csi.RegisterNodeServer(srv, d.node)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		srv.GracefulStop()
		<-errc
		return nil
	}
}

// SocketMode is the mode of the CSI unix socket, whatever the umask: the
// owner (and group) may connect, nobody else.
const SocketMode = 0o660

// Listen opens a CSI endpoint: unix:///path/csi.sock (a stale socket file
// is removed first; the socket is made SocketMode) or tcp://host:port.
func Listen(endpoint string) (net.Listener, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	switch u.Scheme {
	case "unix":
		p := u.Path
		if p == "" {
			p = u.Opaque
		}
		if p == "" {
			return nil, fmt.Errorf("endpoint %q has no socket path; write unix:///csi/csi.sock", endpoint)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			return nil, fmt.Errorf("endpoint directory: %w", err)
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("removing stale socket: %w", err)
		}
		lis, err := net.Listen("unix", p)
		if err != nil {
			return nil, err
		}
		// bind(2) creates the socket with the umask's mode (0777 under
		// umask 000); anyone who can connect can delete volumes.
		if err := os.Chmod(p, SocketMode); err != nil {
			lis.Close()
			return nil, fmt.Errorf("socket mode: %w", err)
		}
		return lis, nil
	case "tcp":
		return net.Listen("tcp", u.Host)
	}
	return nil, fmt.Errorf("endpoint %q: scheme must be unix or tcp", endpoint)
}

// identity is the CSI Identity service.
type identity struct {
	csi.UnimplementedIdentityServer
	d *Driver
}

func (i *identity) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	v := i.d.opts.Version
	if v == "" {
		v = "dev"
	}
	return &csi.GetPluginInfoResponse{Name: i.d.opts.Name, VendorVersion: v}, nil
}

func (i *identity) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	var caps []*csi.PluginCapability
	if i.d.controller != nil {
		caps = append(caps, &csi.PluginCapability{Type: &csi.PluginCapability_Service_{
			Service: &csi.PluginCapability_Service{Type: csi.PluginCapability_Service_CONTROLLER_SERVICE}}})
	}
	caps = append(caps, &csi.PluginCapability{Type: &csi.PluginCapability_VolumeExpansion_{
		VolumeExpansion: &csi.PluginCapability_VolumeExpansion{Type: csi.PluginCapability_VolumeExpansion_ONLINE}}})
	return &csi.GetPluginCapabilitiesResponse{Capabilities: caps}, nil
}

// Probe reports ready when the base state is there and the RDS answers (controller) and the host's NVMe
// fabric can be listed (node). Not ready is an answer (ready: false, with
// the reason logged), not an error: the plugin itself is working.
func (i *identity) Probe(ctx context.Context, _ *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	var problems []string
	if c := i.d.controller; c != nil {
		if err := c.baseReady(); err != nil {
			problems = append(problems, "base state: "+err.Error())
		} else if _, err := c.cfg.Pool.Capacity(ctx); err != nil {
			problems = append(problems, "RDS: "+err.Error())
		}
	}
	if n := i.d.node; n != nil {
		if _, err := n.cfg.Host.List(ctx); err != nil {
			problems = append(problems, "NVMe fabric: "+err.Error())
		}
	}
	if len(problems) > 0 {
		i.d.log.WarnContext(ctx, "probe: not ready", "problems", strings.Join(problems, "; "))
		return &csi.ProbeResponse{Ready: wrapperspb.Bool(false)}, nil
	}
	return &csi.ProbeResponse{Ready: wrapperspb.Bool(true)}, nil
}

// nodeIDRE is what a node id may hold: it names a host in the state and
// the node layer file (node-<id>.yaml), so no path separators.
var nodeIDRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)

func validNodeID(id string) bool { return len(id) <= 253 && nodeIDRE.MatchString(id) }

// invalid is an InvalidArgument status.
func invalid(format string, a ...any) error {
	return status.Errorf(codes.InvalidArgument, format, a...)
}
