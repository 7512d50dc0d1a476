package csi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

// ControllerConfig configures the controller service.
type ControllerConfig struct {
	// BaseFiles are the git-managed state files (-f): target, defaults,
	// hosts and volumes the CSI mode must never delete.
	BaseFiles []string
	// Base, instead of BaseFiles, gives the base state files at each
	// request (a git checkout: rds-reconcile csi --git).
	Base BaseSource
	// Layer is the layer the controller owns: the volumes Kubernetes
	// created (a file, <state-dir>/csi-volumes.yaml, or a ConfigMap).
	Layer ControllerLayer
	// Reconciler converges the RDS side of one volume.
	Reconciler Reconciler
	// Pool answers GetCapacity and the Probe.
	Pool Pool
	// Inventory, when set, answers ControllerGetVolumeHealth and
	// ControllerListVolumeHealth (condition.go) from the RDS's disks.
	Inventory Inventory
	// DefaultSize is the size of a volume created without a capacity
	// (1 GiB when zero).
	DefaultSize int64
	// Gather is how long concurrent calls wait to share one layer write
	// (crowd.go): zero means DefaultGather, negative none. The
	// Reconciler's RDS sessions have their own (EngineOptions.Gather).
	Gather time.Duration
}

// controller is the CSI Controller service.
type controller struct {
	csi.UnimplementedControllerServer
	cfg   ControllerConfig
	log   *slog.Logger
	locks keyLocks
	calls crowd    // volume calls in flight, for the batchers (crowd.go)
	memo  loadMemo // the last state loaded, by its bytes (memo.go)

	revMu   sync.Mutex
	lastRev string // the base revision last loaded (logged when it changes)
}

// BaseSource gives the controller its base state files, read afresh for
// every request. rds-reconcile csi --git implements it with a git clone.
type BaseSource interface {
	// Read calls fn with the base state files of the last good revision;
	// they do not change while fn runs. It returns that revision, or an
	// error wrapping ErrNoBase while there is none yet.
	Read(fn func(files []string) error) (revision string, err error)
}

// ControllerLayer is where the controller keeps its desired-state layer:
// *spec.Store (a file) or *kube.ConfigMapLayer (a Kubernetes ConfigMap, so
// that the truth survives any node). Every call reads it afresh; nothing
// is cached, so two controllers on one layer see each other's edits.
type ControllerLayer interface {
	// Name names the layer in messages; it is also the Source of the
	// layer's volumes (how the controller tells its volumes from the
	// base's).
	Name() string
	// Load returns the layer as a state document (YAML), nil or empty for
	// an empty layer.
	Load(ctx context.Context) ([]byte, error)
	// Update runs fn on the current layer and stores the result
	// atomically: no concurrent Update, in this process or another, is
	// lost. fn may run more than once (each time on a fresh read, after
	// another writer won) and must depend only on the state it is given.
	// An error from fn is returned and nothing is stored.
	Update(ctx context.Context, fn func(*spec.State) error) error
}

// ErrNoBase: the BaseSource has no base state yet (nothing synced).
var ErrNoBase = errors.New("the base state is not there yet")

func newController(cfg ControllerConfig, log *slog.Logger) (*controller, error) {
	switch {
	case len(cfg.BaseFiles) == 0 && cfg.Base == nil:
		return nil, errors.New("controller: the base state (-f) is required: it names the RDS target")
	case len(cfg.BaseFiles) > 0 && cfg.Base != nil:
		return nil, errors.New("controller: base files and a base source exclude each other")
	case cfg.Layer == nil || cfg.Reconciler == nil || cfg.Pool == nil:
		return nil, errors.New("controller: layer, reconciler and pool are required")
	}
	if cfg.DefaultSize <= 0 {
		cfg.DefaultSize = defaultVolumeSize
	}
	if cfg.DefaultSize > spec.MaxVolumeSize {
		return nil, fmt.Errorf("controller: the default volume size %d is more than %d (%s), the largest volume size",
			cfg.DefaultSize, spec.MaxVolumeSize, spec.Quantity{Bytes: spec.MaxVolumeSize})
	}
	c := &controller{cfg: cfg, log: log}
	// Concurrent edits share one layer write (layerbatch.go).
	switch {
	case cfg.Gather < 0:
		c.cfg.Layer = newLayerBatch(cfg.Layer, nil, 0)
	case cfg.Gather == 0:
		c.cfg.Layer = newLayerBatch(cfg.Layer, &c.calls, DefaultGather)
	default:
		c.cfg.Layer = newLayerBatch(cfg.Layer, &c.calls, cfg.Gather)
	}
	return c, nil
}

// selfHost is this node when one process serves both controller and node.
type selfHost struct{ name, nqn string }

// start creates the layer file (Load needs it to exist) and, when this
// process is also the node, declares it as a host so that it can be
// published to. A host the base declares is left to the base.
func (c *controller) start(ctx context.Context, self *selfHost) error {
	var baseHosts map[string]spec.Host
	noBase := false
	if self != nil {
		base, err := c.loadBase()
		switch {
		case errors.Is(err, ErrNoBase):
			// Not synced yet: the layer declares this node (a base that
			// declares it later with the same NQN agrees with it).
			noBase = true
			c.log.WarnContext(ctx, "no base state yet: this node is declared in the CSI layer", "node", self.name, "err", err)
		case err != nil:
			return fmt.Errorf("loading the base state: %w", err)
		default:
			baseHosts = base.Hosts
		}
	}
	err := c.cfg.Layer.Update(ctx, func(l *spec.State) error {
		if self == nil {
			return nil
		}
		if _, ok := baseHosts[self.name]; ok {
			return nil
		}
		if l.Hosts == nil {
			l.Hosts = map[string]spec.Host{}
		}
		l.Hosts[self.name] = spec.Host{HostNQN: self.nqn}
		return nil
	})
	if err != nil {
		return fmt.Errorf("preparing the CSI layer %s: %w", c.cfg.Layer.Name(), err)
	}
	// The merged state must load now, or every call would fail later.
	// Without a base yet, the calls answer Unavailable until one is synced.
	if _, err := c.desired(ctx); err != nil {
		if noBase || (c.cfg.Base != nil && status.Code(err) == codes.Unavailable) {
			c.log.WarnContext(ctx, "no base state yet: volume calls answer Unavailable until the first sync", "err", err)
			return nil
		}
		return err
	}
	return nil
}

// loadBase loads the base state alone (ErrNoBase from a BaseSource
// without one).
func (c *controller) loadBase() (*spec.State, error) {
	if c.cfg.Base == nil {
		return spec.Load(c.cfg.BaseFiles...)
	}
	var st *spec.State
	var lerr error
	rev, err := c.cfg.Base.Read(func(files []string) error {
		st, lerr = spec.Load(files...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if lerr != nil {
		return nil, fmt.Errorf("base at %s: %w", rev, lerr)
	}
	return st, nil
}

// baseReady is nil when the base state can be read (always with
// BaseFiles).
func (c *controller) baseReady() error {
	if c.cfg.Base == nil {
		return nil
	}
	_, err := c.cfg.Base.Read(func([]string) error { return nil })
	return err
}

// desired is the whole truth: the base files layered with the CSI layer,
// defaulted and validated exactly as `rds-reconcile plan -f base -f layer`
// sees it.
//
// With a BaseSource the base files are those of its last good revision,
// read afresh each time; before the first one every call is Unavailable.
// Calls that read the same bytes share one parse (memo.go).
func (c *controller) desired(ctx context.Context) (*spec.State, error) {
	layer, err := c.cfg.Layer.Load(ctx)
	if err != nil {
		if s := statusOf("", err); status.Code(s) == codes.DeadlineExceeded || status.Code(s) == codes.Canceled {
			return nil, s
		}
		return nil, status.Errorf(codes.Unavailable, "reading the CSI layer %s: %v", c.cfg.Layer.Name(), err)
	}
	if c.cfg.Base == nil {
		st, err := c.memo.load(c.cfg.BaseFiles, c.cfg.Layer.Name(), layer)
		if err != nil {
			return nil, status.Errorf(codes.FailedPrecondition, "loading the desired state: %v", err)
		}
		return st, nil
	}
	var st *spec.State
	var lerr error
	rev, err := c.cfg.Base.Read(func(files []string) error {
		st, lerr = c.memo.load(files, c.cfg.Layer.Name(), layer)
		return nil
	})
	if errors.Is(err, ErrNoBase) {
		return nil, status.Errorf(codes.Unavailable, "%v; volume calls wait for the first good sync of the base state (target, defaults, hosts)", err)
	}
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "reading the base state: %v", err)
	}
	if lerr != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "loading the desired state (base at revision %s): %v", rev, lerr)
	}
	c.revMu.Lock()
	if rev != c.lastRev {
		c.log.Info("base state", "revision", rev, "was", c.lastRev)
		c.lastRev = rev
	}
	c.revMu.Unlock()
	return st, nil
}

// owned reports whether v lives in the CSI layer (and so may be changed).
func (c *controller) owned(v *spec.Volume) bool { return v.Source == c.cfg.Layer.Name() }

// errUnchanged ends a Store.Update without writing.
var errUnchanged = errors.New("unchanged")

// update is Layer.Update that treats errUnchanged as success.
func (c *controller) update(ctx context.Context, fn func(*spec.State) error) error {
	err := c.cfg.Layer.Update(ctx, fn)
	if errors.Is(err, errUnchanged) {
		return nil
	}
	return err
}

// reconcile converges name toward a fresh read of the desired state and
// returns that state: the caller answers from it instead of reading and
// parsing the layer once more (the volume's lock keeps it current).
func (c *controller) reconcile(ctx context.Context, name string) (*spec.State, error) {
	st, err := c.desired(ctx)
	if err != nil {
		return nil, err
	}
	return st, c.cfg.Reconciler.Reconcile(ctx, st, Scope{Volumes: []string{name}, crowd: &c.calls})
}

func (c *controller) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, t := range append([]csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_PUBLISH_UNPUBLISH_VOLUME,
		csi.ControllerServiceCapability_RPC_LIST_VOLUMES,
		csi.ControllerServiceCapability_RPC_LIST_VOLUMES_PUBLISHED_NODES,
		csi.ControllerServiceCapability_RPC_GET_CAPACITY,
		csi.ControllerServiceCapability_RPC_EXPAND_VOLUME,
		csi.ControllerServiceCapability_RPC_GET_VOLUME,
	}, append(c.healthCaps(), snapshotCaps()...)...) {
		caps = append(caps, &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{
			Rpc: &csi.ControllerServiceCapability_RPC{Type: t}}})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

// sameParams reports whether an existing volume was made with params.
func sameParams(v *spec.Volume, p Params) bool {
	eq := func(a, b *int) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
	return eq(v.Connection.CtrlLossTmo, p.Connection.CtrlLossTmo) &&
		eq(v.Connection.ReconnectDelay, p.Connection.ReconnectDelay) &&
		eq(v.Connection.KeepAliveTmo, p.Connection.KeepAliveTmo) &&
		v.FSType == p.FSType
}

func (c *controller) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	defer c.calls.enter()() // in flight from the start: the batchers wait for it (crowd.go)
	if req.GetName() == "" {
		return nil, invalid("name is required")
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, invalid("%v", err)
	}
	params, err := ParseParams(req.GetParameters())
	if err != nil {
		return nil, invalid("%v", err)
	}
	access := accessFor(req.GetVolumeCapabilities())
	if access != "" {
		params.FSType = "" // a raw block device several nodes share: no filesystem
	}
	size, err := sizeFor(req.GetCapacityRange(), c.cfg.DefaultSize)
	if err != nil {
		return nil, err
	}
	st, err := c.desired(ctx)
	if err != nil {
		return nil, err
	}
	from, srcSize, err := contentSource(st, req.GetVolumeContentSource())
	if err != nil {
		return nil, err
	}
	if size, err = sourceSize(size, srcSize, req.GetCapacityRange()); err != nil {
		return nil, err
	}
	name := VolumeName(req.GetName(), st.Target.SlotPrefix)
	unlock, err := c.locks.lock(ctx, name)
	if err != nil {
		return nil, statusOf("waiting for the volume lock", err)
	}
	defer unlock()

	if v := st.Volume(name); v != nil && !c.owned(v) {
		return nil, status.Errorf(codes.AlreadyExists, "volume %q is declared in %s, not by CSI; choose another name", name, v.Source)
	}
	created := false
	err = c.update(ctx, func(l *spec.State) error {
		created = false // the edit may run again on a fresh read
		if v := l.Volume(name); v != nil && v.State != spec.Absent {
			rng := req.GetCapacityRange()
			if v.Size.Bytes < rng.GetRequiredBytes() || (rng.GetLimitBytes() > 0 && v.Size.Bytes > rng.GetLimitBytes()) {
				return status.Errorf(codes.AlreadyExists, "volume %q exists with size %d, outside the requested range [%d, %d]",
					name, v.Size.Bytes, rng.GetRequiredBytes(), rng.GetLimitBytes())
			}
			if !sameParams(v, params) {
				return status.Errorf(codes.AlreadyExists, "volume %q exists with other parameters", name)
			}
			if !sameAccess(v.Access, access) {
				return status.Errorf(codes.AlreadyExists, "volume %q exists with another access mode (single node or multi-writer block)", name)
			}
			if !sameSource(v.From, from) {
				return status.Errorf(codes.AlreadyExists, "volume %q exists with another content source", name)
			}
			size = v.Size.Bytes
			return errUnchanged
		}
		nv := spec.Volume{Name: name, State: spec.Present, Size: spec.Quantity{Bytes: size},
			Connection: params.Connection, FSType: params.FSType, Access: access, From: from}
		if v := l.Volume(name); v != nil {
			*v = nv // a tombstone left by an unfinished delete
		} else {
			l.Volumes = append(l.Volumes, nv)
		}
		created = true
		return nil
	})
	if err != nil {
		return nil, statusOf("recording the volume", err)
	}
	if st, err = c.reconcile(ctx, name); err != nil {
		s := statusOf("creating the volume on the RDS", err)
		if status.Code(s) == codes.ResourceExhausted && created {
			c.forget(ctx, name)
		}
		return nil, s
	}
	v := st.Volume(name)
	if v == nil {
		return nil, status.Errorf(codes.Aborted, "volume %q was deleted while being created", name)
	}
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId:      name,
		CapacityBytes: size,
		VolumeContext: volumeContext(st, v),
		ContentSource: csiContentSource(v.From),
	}}, nil
}

// forget drops a volume that could not be created (the pool is full) so the
// layer does not keep asking for it. Best effort: a later retry of
// CreateVolume or DeleteVolume cleans up as well.
func (c *controller) forget(ctx context.Context, name string) {
	err := c.update(ctx, func(l *spec.State) error {
		i := slices.IndexFunc(l.Volumes, func(v spec.Volume) bool { return v.Name == name })
		if i < 0 {
			return errUnchanged
		}
		l.Volumes = slices.Delete(l.Volumes, i, i+1)
		return nil
	})
	if err != nil {
		c.log.WarnContext(ctx, "could not drop the failed volume from the layer", "volume", name, "error", err)
	}
}

func (c *controller) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	defer c.calls.enter()() // in flight from the start: the batchers wait for it (crowd.go)
	id := req.GetVolumeId()
	if id == "" {
		return nil, invalid("volume id is required")
	}
	if !validVolumeID(id) {
		return &csi.DeleteVolumeResponse{}, nil // cannot exist
	}
	unlock, err := c.locks.lock(ctx, id)
	if err != nil {
		return nil, statusOf("waiting for the volume lock", err)
	}
	defer unlock()
	st, err := c.desired(ctx)
	if err != nil {
		return nil, err
	}
	v := st.Volume(id)
	if v == nil {
		return &csi.DeleteVolumeResponse{}, nil
	}
	if !c.owned(v) {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %q is declared in %s; only that file can delete it", id, v.Source)
	}
	if len(v.Attachments) > 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %q is still published to %v", id, v.Attachments)
	}
	err = c.deleteDeclared(ctx, id, "volume", func(l *spec.State) error {
		lv := l.Volume(id)
		if lv == nil || lv.State == spec.Absent {
			return errUnchanged
		}
		*lv = spec.Volume{Name: id, State: spec.Absent}
		return nil
	}, func(l *spec.State) error {
		i := slices.IndexFunc(l.Volumes, func(v spec.Volume) bool { return v.Name == id && v.State == spec.Absent })
		if i < 0 || stillNamed(l, id) {
			// A snapshot or a clone's source still names it: the
			// tombstone keeps the name declared (snapshots.go).
			return errUnchanged
		}
		l.Volumes = slices.Delete(l.Volumes, i, i+1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &csi.DeleteVolumeResponse{}, nil
}

// deleteDeclared deletes what the layer declares as id (a volume or a
// snapshot) in three steps: tombstone writes the tombstone first (the
// reconciler deletes only what the state says is absent, and a crash in
// between leaves an explicit, retryable intent), the reconcile deletes it on
// the RDS, and drop removes the tombstone once nothing names it. The error
// is already a gRPC status.
func (c *controller) deleteDeclared(ctx context.Context, id, what string, tombstone, drop func(*spec.State) error) error {
	if err := c.update(ctx, tombstone); err != nil {
		return statusOf("recording the deletion", err)
	}
	if _, err := c.reconcile(ctx, id); err != nil {
		return statusOf("deleting the "+what+" on the RDS", err)
	}
	if err := c.update(ctx, drop); err != nil {
		return statusOf("dropping the tombstone", err)
	}
	return nil
}

// lookup returns the present volume id, or a NotFound status.
func (c *controller) lookup(ctx context.Context, id string) (*spec.State, *spec.Volume, error) {
	if !validVolumeID(id) {
		return nil, nil, status.Errorf(codes.NotFound, "volume %q does not exist", id)
	}
	st, err := c.desired(ctx)
	if err != nil {
		return nil, nil, err
	}
	v := st.Volume(id)
	if v == nil || v.State == spec.Absent {
		return nil, nil, status.Errorf(codes.NotFound, "volume %q does not exist", id)
	}
	return st, v, nil
}

func (c *controller) ControllerPublishVolume(ctx context.Context, req *csi.ControllerPublishVolumeRequest) (*csi.ControllerPublishVolumeResponse, error) {
	defer c.calls.enter()() // in flight from the start: the batchers wait for it (crowd.go)
	id, nodeID := req.GetVolumeId(), req.GetNodeId()
	switch {
	case id == "":
		return nil, invalid("volume id is required")
	case nodeID == "":
		return nil, invalid("node id is required")
	}
	if err := checkCapability(req.GetVolumeCapability()); err != nil {
		return nil, invalid("%v", err)
	}
	unlock, err := c.locks.lock(ctx, id)
	if err != nil {
		return nil, statusOf("waiting for the volume lock", err)
	}
	defer unlock()
	node, nqn, err := parseNodeID(nodeID)
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "%v", err)
	}
	st, v, err := c.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	learn, err := c.learnHost(ctx, st, node, nqn)
	if err != nil {
		return nil, err
	}
	if !c.owned(v) {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %q is declared in %s; attach it there", id, v.Source)
	}
	if why := accessMismatch(v, []*csi.VolumeCapability{req.GetVolumeCapability()}); why != "" {
		return nil, status.Errorf(codes.FailedPrecondition, "%s", why)
	}
	if a := otherAttachment(v, node); a != "" {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %q is published to node %q; a volume is attached to one node at a time "+
			"unless it was created MULTI_NODE_MULTI_WRITER (block)", id, a)
	}
	err = c.update(ctx, func(l *spec.State) error {
		lv := l.Volume(id)
		if lv == nil || lv.State == spec.Absent {
			return status.Errorf(codes.NotFound, "volume %q does not exist", id)
		}
		changed := false
		if learn && l.Hosts[node].HostNQN != nqn {
			if l.Hosts == nil {
				l.Hosts = map[string]spec.Host{}
			}
			l.Hosts[node] = spec.Host{HostNQN: nqn}
			changed = true
		}
		if !slices.Contains(lv.Attachments, node) {
			lv.Attachments = append(lv.Attachments, node)
			changed = true
		}
		if !changed {
			return errUnchanged
		}
		return nil
	})
	if err != nil {
		return nil, statusOf("recording the attachment", err)
	}
	if err := c.admit(ctx, id); err != nil {
		return nil, statusOf("admitting the node on the RDS", err)
	}
	return &csi.ControllerPublishVolumeResponse{}, nil
}

// learnHost decides whether ControllerPublish records node (with the host
// NQN its node id carries) in the layer: a node the node plugin registered
// is usable at once, without a hosts: entry in git. A host the base state
// declares wins: the same NQN is fine, another is an error. A host the
// layer learned before is learned again when its NQN changed (the node
// was reinstalled). A plain node id (an older node plugin, or a name too
// long to carry the NQN) must be declared.
func (c *controller) learnHost(ctx context.Context, st *spec.State, node, nqn string) (bool, error) {
	h, declared := st.Hosts[node]
	switch {
	case nqn == "" && !declared:
		return false, status.Errorf(codes.NotFound,
			"node %q is not a declared host and its node id carries no host NQN; add it under hosts in the base state with its hostNQN, or run this version's node plugin on it (its node id is <name>@<host NQN>)", node)
	case nqn == "" || h.HostNQN == nqn:
		return false, nil
	case !declared:
		c.log.InfoContext(ctx, "a new node: its host NQN is recorded in the CSI layer", "node", node, "hostNQN", nqn)
		return true, nil
	}
	base, err := c.loadBase()
	if err != nil {
		return false, statusOf("loading the base state", err)
	}
	if bh, ok := base.Hosts[node]; ok {
		return false, status.Errorf(codes.FailedPrecondition,
			"node %q reports host NQN %s, but the base state declares hosts.%s.hostNQN %s; the base state wins: fix it there, or the node's /etc/nvme/hostnqn",
			node, nqn, node, bh.HostNQN)
	}
	c.log.WarnContext(ctx, "a node reports another host NQN than the CSI layer recorded; the layer follows the node", "node", node, "was", h.HostNQN, "hostNQN", nqn)
	return true, nil
}

// admit brings the volume's allow list on the RDS in step with its
// attachments when policy.exportACL manages allow lists: with "attached"
// the node's connect (NodeStage) is refused until its host NQN is on the
// list, so ControllerPublish admits it before answering, and
// ControllerUnpublish (which comes after NodeUnstage) drops it. Without
// the policy nothing is sent.
func (c *controller) admit(ctx context.Context, id string) error {
	st, err := c.desired(ctx)
	if err != nil {
		return err
	}
	if st.Policy == nil || st.Policy.ExportACL == "" {
		return nil
	}
	if v := st.Volume(id); v == nil || v.State == spec.Absent {
		return nil
	}
	_, err = c.reconcile(ctx, id)
	return err
}

func (c *controller) ControllerUnpublishVolume(ctx context.Context, req *csi.ControllerUnpublishVolumeRequest) (*csi.ControllerUnpublishVolumeResponse, error) {
	defer c.calls.enter()() // in flight from the start: the batchers wait for it (crowd.go)
	id, nodeID := req.GetVolumeId(), req.GetNodeId()
	if id == "" {
		return nil, invalid("volume id is required")
	}
	if !validVolumeID(id) {
		return &csi.ControllerUnpublishVolumeResponse{}, nil
	}
	node := ""
	if nodeID != "" {
		n, _, err := parseNodeID(nodeID)
		if err != nil {
			return &csi.ControllerUnpublishVolumeResponse{}, nil // never published there
		}
		node = n
	}
	unlock, err := c.locks.lock(ctx, id)
	if err != nil {
		return nil, statusOf("waiting for the volume lock", err)
	}
	defer unlock()
	err = c.update(ctx, func(l *spec.State) error {
		lv := l.Volume(id)
		if lv == nil {
			return errUnchanged // gone already: nothing is attached
		}
		kept := slices.DeleteFunc(slices.Clone(lv.Attachments), func(a string) bool { return node == "" || a == node })
		if len(kept) == len(lv.Attachments) {
			return errUnchanged
		}
		lv.Attachments = kept
		return nil
	})
	if err != nil {
		return nil, statusOf("removing the attachment", err)
	}
	if err := c.admit(ctx, id); err != nil {
		return nil, statusOf("dropping the node on the RDS", err)
	}
	return &csi.ControllerUnpublishVolumeResponse{}, nil
}

func (c *controller) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, invalid("volume id is required")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, invalid("volume capabilities are required")
	}
	_, v, err := c.lookup(ctx, req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		if errors.Is(err, errMultiWriterMount) {
			return nil, invalid("%v", err)
		}
		return &csi.ValidateVolumeCapabilitiesResponse{Message: err.Error()}, nil
	}
	if why := accessMismatch(v, req.GetVolumeCapabilities()); why != "" {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: why}, nil
	}
	if _, err := ParseParams(req.GetParameters()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: err.Error()}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
	}}, nil
}

// csiVolume describes a volume of st for ListVolumes and ControllerGetVolume.
func csiVolume(st *spec.State, v *spec.Volume) (*csi.Volume, []string) {
	return &csi.Volume{VolumeId: v.Name, CapacityBytes: v.Size.Bytes, VolumeContext: volumeContext(st, v), ContentSource: csiContentSource(v.From)},
		publishedIDs(st, v.Attachments)
}

// volumePage is one page of the declared (not absent) volumes' names in
// order, as ListVolumes and ControllerListVolumeHealth page them; a token
// this driver did not issue is Aborted.
func volumePage(st *spec.State, token string, maxEntries int32) ([]string, string, error) {
	var names []string
	for _, v := range st.Volumes {
		if v.State != spec.Absent {
			names = append(names, v.Name)
		}
	}
	slices.Sort(names)
	sel, next, err := page(names, token, int(maxEntries))
	if err != nil {
		return nil, "", status.Errorf(codes.Aborted, "starting_token %q is not one this driver issued", token)
	}
	return sel, next, nil
}

func (c *controller) ListVolumes(ctx context.Context, req *csi.ListVolumesRequest) (*csi.ListVolumesResponse, error) {
	if req.GetMaxEntries() < 0 {
		return nil, invalid("max_entries must not be negative")
	}
	st, err := c.desired(ctx)
	if err != nil {
		return nil, err
	}
	sel, next, err := volumePage(st, req.GetStartingToken(), req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	resp := &csi.ListVolumesResponse{NextToken: next}
	for _, n := range sel {
		vol, nodes := csiVolume(st, st.Volume(n))
		resp.Entries = append(resp.Entries, &csi.ListVolumesResponse_Entry{Volume: vol, Status: &csi.ListVolumesResponse_VolumeStatus{
			PublishedNodeIds: nodes}})
	}
	return resp, nil
}

func (c *controller) ControllerGetVolume(ctx context.Context, req *csi.ControllerGetVolumeRequest) (*csi.ControllerGetVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, invalid("volume id is required")
	}
	st, v, err := c.lookup(ctx, req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	vol, nodes := csiVolume(st, v)
	return &csi.ControllerGetVolumeResponse{Volume: vol, Status: &csi.ControllerGetVolumeResponse_VolumeStatus{
		PublishedNodeIds: nodes}}, nil
}

func (c *controller) GetCapacity(ctx context.Context, req *csi.GetCapacityRequest) (*csi.GetCapacityResponse, error) {
	if caps := req.GetVolumeCapabilities(); len(caps) > 0 {
		if err := checkCapabilities(caps); err != nil {
			return &csi.GetCapacityResponse{}, nil // nothing fits an unsupported capability
		}
	}
	pc, err := c.cfg.Pool.Capacity(ctx)
	if err != nil {
		return nil, statusOf("reading the RDS pool", err)
	}
	free := pc.Free / spec.SizeAlign * spec.SizeAlign // what a volume can actually get
	return &csi.GetCapacityResponse{AvailableCapacity: free}, nil
}

func (c *controller) ControllerExpandVolume(ctx context.Context, req *csi.ControllerExpandVolumeRequest) (*csi.ControllerExpandVolumeResponse, error) {
	defer c.calls.enter()() // in flight from the start: the batchers wait for it (crowd.go)
	id := req.GetVolumeId()
	if id == "" {
		return nil, invalid("volume id is required")
	}
	if req.GetCapacityRange() == nil {
		return nil, invalid("capacity range is required")
	}
	want, err := sizeFor(req.GetCapacityRange(), 0)
	if err != nil {
		return nil, err
	}
	unlock, err := c.locks.lock(ctx, id)
	if err != nil {
		return nil, statusOf("waiting for the volume lock", err)
	}
	defer unlock()
	_, v, err := c.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	if !c.owned(v) {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %q is declared in %s; grow it there", id, v.Source)
	}
	nodeExpansion := req.GetVolumeCapability().GetBlock() == nil
	old := v.Size.Bytes
	if want <= old {
		// Never shrink: an equal or smaller request is satisfied by the
		// size the layer already says, once the RDS has it (a retry after
		// a failed grow lands here, so reconcile rather than trust).
		if _, err := c.reconcile(ctx, id); err != nil {
			return nil, statusOf("growing the volume on the RDS", err)
		}
		return &csi.ControllerExpandVolumeResponse{CapacityBytes: old, NodeExpansionRequired: nodeExpansion}, nil
	}
	setSize := func(size int64) func(*spec.State) error {
		return func(l *spec.State) error {
			lv := l.Volume(id)
			if lv == nil || lv.State == spec.Absent {
				return status.Errorf(codes.NotFound, "volume %q does not exist", id)
			}
			lv.Size.Bytes = size
			return nil
		}
	}
	if err := c.update(ctx, setSize(want)); err != nil {
		return nil, statusOf("recording the new size", err)
	}
	if _, err := c.reconcile(ctx, id); err != nil {
		s := statusOf("growing the volume on the RDS", err)
		if status.Code(s) == codes.ResourceExhausted {
			if rerr := c.update(ctx, setSize(old)); rerr != nil {
				c.log.WarnContext(ctx, "could not restore the size after a failed grow", "volume", id, "error", rerr)
			}
		}
		return nil, s
	}
	return &csi.ControllerExpandVolumeResponse{CapacityBytes: want, NodeExpansionRequired: nodeExpansion}, nil
}
