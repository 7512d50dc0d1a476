package csi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// NodeConfig configures the node service.
type NodeConfig struct {
	// Layer is this node's own complete state file,
	// <state-dir>/node-<node-id>.yaml, kept on the host so that a restarted
	// plugin still knows what is staged.
	Layer LayerStore
	// Host is the kernel NVMe host (fabric.Linux, or a simulation).
	Host fabric.Host
	// Reconciler converges the host side (connect, disconnect) only.
	Reconciler Reconciler
	// Mounter formats and mounts; LinuxMounter when nil.
	Mounter Mounter
	// ResolveDevice maps a connected namespace to the block device file to
	// format and mount. Nil uses ns.Device, as on a real host; a simulated
	// fabric maps its fake /dev/nvmeXnY names to loop devices here.
	ResolveDevice func(ctx context.Context, volume string, ns fabric.Namespace) (string, error)
	// MaxVolumes is reported by NodeGetInfo; 0 means no limit.
	MaxVolumes int64
	// KubeletDir is the kubelet's root directory (DefaultKubeletDir when
	// empty): the node mounts, unmounts and removes only below it.
	KubeletDir string
}

// node is the CSI Node service.
type node struct {
	csi.UnimplementedNodeServer
	id  string
	cfg NodeConfig
	// kubeletDir is cfg.KubeletDir, absolute and clean.
	kubeletDir string
	log        *slog.Logger
	locks      keyLocks
}

func newNode(id string, cfg NodeConfig, log *slog.Logger) (*node, error) {
	if cfg.Layer == nil || cfg.Host == nil || cfg.Reconciler == nil {
		return nil, errors.New("node: layer, host and reconciler are required")
	}
	if cfg.Mounter == nil {
		cfg.Mounter = LinuxMounter{}
	}
	if cfg.ResolveDevice == nil {
		cfg.ResolveDevice = func(_ context.Context, _ string, ns fabric.Namespace) (string, error) { return ns.Device, nil }
	}
	if cfg.KubeletDir == "" {
		cfg.KubeletDir = DefaultKubeletDir
	}
	if !filepath.IsAbs(cfg.KubeletDir) {
		return nil, fmt.Errorf("node: kubelet directory %q must be an absolute path", cfg.KubeletDir)
	}
	return &node{id: id, cfg: cfg, log: log, kubeletDir: filepath.Clean(cfg.KubeletDir)}, nil
}

// desired loads the node layer as a complete state (defaults filled). ok is
// false when nothing was ever staged here (no target yet).
func (n *node) desired() (st *spec.State, ok bool, err error) {
	raw, err := n.cfg.Layer.Read()
	if err != nil {
		return nil, false, fmt.Errorf("reading the node state: %w", err)
	}
	if raw.Target == nil {
		return raw, false, nil
	}
	st, err = spec.Load(n.cfg.Layer.Path())
	if err != nil {
		return nil, false, fmt.Errorf("loading the node state: %w", err)
	}
	return st, true, nil
}

// start reconciles the whole node layer with orphan cleanup: staged volumes
// whose controllers the kernel dropped are reconnected, managed controllers
// nothing staged are disconnected unless in use.
func (n *node) start(ctx context.Context) error {
	removeStaleTemps(ctx, n.cfg.Layer, n.log, filepath.Base(n.recordPath()))
	st, ok, err := n.desired()
	if err != nil {
		return err
	}
	if !ok {
		n.log.InfoContext(ctx, "node state is empty; nothing to reconnect", "layer", n.cfg.Layer.Path())
		return nil
	}
	if err := n.cfg.Reconciler.Reconcile(ctx, st, Scope{Orphans: true}); err != nil {
		// Not fatal: the plugin must come up to unstage and retry; kubelet
		// retries NodeStage of every volume that is still wanted.
		n.log.WarnContext(ctx, "startup reconcile failed", "error", err)
		return nil
	}
	n.log.InfoContext(ctx, "startup reconcile done", "volumes", len(st.Volumes))
	return nil
}

func (n *node) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	var caps []*csi.NodeServiceCapability
	for _, t := range []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csi.NodeServiceCapability_RPC_EXPAND_VOLUME,
		csi.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
	} {
		caps = append(caps, &csi.NodeServiceCapability{Type: &csi.NodeServiceCapability_Rpc{
			Rpc: &csi.NodeServiceCapability_RPC{Type: t}}})
	}
	return &csi.NodeGetCapabilitiesResponse{Capabilities: caps}, nil
}

// NodeGetInfo reports this node as <node id>@<host NQN> (NodeIDFor), so
// that the controller can record a node no hosts: entry declares the first
// time a volume is published to it; the plain node id when that would not
// fit MaxNodeIDLen.
func (n *node) NodeGetInfo(ctx context.Context, _ *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	nqn, err := n.cfg.Host.HostNQN(ctx)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "reading this host's NVMe host NQN (/etc/nvme/hostnqn): %v", err)
	}
	id := NodeIDFor(n.id, nqn)
	if id == n.id && nqn != "" {
		n.log.WarnContext(ctx, "the node id cannot carry the host NQN (too long): declare this node under hosts in the base state",
			"node", n.id, "hostNQN", nqn, "max", MaxNodeIDLen)
	}
	return &csi.NodeGetInfoResponse{NodeId: id, MaxVolumesPerNode: n.cfg.MaxVolumes}, nil
}

// controllerOf finds the kernel controller of volume name.
func (n *node) controllerOf(ctx context.Context, st *spec.State, name string) (*fabric.Controller, error) {
	ctrls, err := n.cfg.Host.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing NVMe controllers: %w", err)
	}
	nqn := st.NQN(name)
	var found *fabric.Controller
	for i := range ctrls {
		if ctrls[i].SubsysNQN != nqn {
			continue
		}
		// Prefer a live controller with its namespace (the kernel may still
		// list a dying one for a moment).
		if found == nil || (ctrls[i].State == fabric.StateLive && len(ctrls[i].Namespaces) > 0) {
			found = &ctrls[i]
		}
	}
	if found == nil {
		return nil, status.Errorf(codes.Unavailable, "volume %q (%s) is not connected", name, nqn)
	}
	return found, nil
}

// device is the block device file of a connected volume.
func (n *node) device(ctx context.Context, st *spec.State, name string) (string, *fabric.Controller, error) {
	c, err := n.controllerOf(ctx, st, name)
	if err != nil {
		return "", nil, err
	}
	if len(c.Namespaces) == 0 {
		return "", c, status.Errorf(codes.Unavailable, "controller %s of volume %q has no namespace yet", c.Name, name)
	}
	dev, err := n.cfg.ResolveDevice(ctx, name, c.Namespaces[0])
	if err != nil {
		return "", c, fmt.Errorf("resolving the device of %s: %w", c.Namespaces[0].Name, err)
	}
	return dev, c, nil
}

func (n *node) NodeStageVolume(ctx context.Context, req *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	id, staging := req.GetVolumeId(), req.GetStagingTargetPath()
	switch {
	case id == "":
		return nil, invalid("volume id is required")
	case staging == "":
		return nil, invalid("staging target path is required")
	}
	vcap := req.GetVolumeCapability()
	if err := checkCapability(vcap); err != nil {
		return nil, invalid("%v", err)
	}
	if !validVolumeID(id) {
		return nil, status.Errorf(codes.NotFound, "volume %q cannot exist: not a volume name", id)
	}
	nv, err := parseVolumeContext(id, req.GetVolumeContext())
	if err != nil {
		return nil, invalid("%v", err)
	}
	if err := n.checkPath("staging target path", staging); err != nil {
		return nil, err
	}
	unlock, err := n.locks.lock(ctx, id)
	if err != nil {
		return nil, statusOf("waiting for the volume lock", err)
	}
	defer unlock()

	hostNQN, err := n.cfg.Host.HostNQN(ctx)
	if err != nil {
		return nil, statusOf("reading this host's NQN", err)
	}
	edited := false
	err = n.cfg.Layer.Update(ctx, func(l *spec.State) error {
		rec, err := n.readRecord()
		if err != nil {
			return err
		}
		if r, ok := rec.Volumes[id]; ok && r.StagingPath != staging && l.Volume(id) != nil {
			return status.Errorf(codes.FailedPrecondition, "volume %q is staged at %s; unstage it there before staging it at %s",
				id, r.StagingPath, staging)
		}
		t := &spec.Target{Address: nv.Address, NVMePort: nv.Port, BasePath: nv.BasePath, NQNPrefix: nv.NQNPrefix}
		if l.Target != nil && *l.Target != *t && slices.ContainsFunc(l.Volumes, func(v spec.Volume) bool { return v.Name != id }) {
			return status.Errorf(codes.FailedPrecondition, "this node has volumes staged from RDS %s:%d; volume %q comes from %s:%d",
				l.Target.Address, l.Target.NVMePort, id, t.Address, t.NVMePort)
		}
		l.Target = t
		if l.Hosts == nil {
			l.Hosts = map[string]spec.Host{}
		}
		l.Hosts[n.id] = spec.Host{HostNQN: hostNQN}
		ct, rd, ka := nv.Timeouts.CtrlLossTmo, nv.Timeouts.ReconnectDelay, nv.Timeouts.KeepAliveTmo
		v := spec.Volume{Name: id, State: spec.Present, Size: spec.Quantity{Bytes: nv.Size},
			Connection:  spec.Connection{CtrlLossTmo: &ct, ReconnectDelay: &rd, KeepAliveTmo: &ka},
			Attachments: []string{n.id}, FSType: nv.FSType}
		if old := l.Volume(id); old != nil {
			*old = v
		} else {
			l.Volumes = append(l.Volumes, v)
		}
		// Record the staging path first: an entry without its volume in
		// the layer means nothing, a volume without its entry would accept
		// any staging path.
		if err := n.setRecord(id, staging); err != nil {
			return err
		}
		edited = true
		return nil
	})
	if err != nil {
		var es *spec.Errors
		if edited && errors.Is(err, spec.ErrLayer) && errors.As(err, &es) {
			// The volume context made a node state that does not validate:
			// the caller's input, and no file has those lines.
			return nil, invalid("invalid volume context: %s", layerProblems(*es))
		}
		return nil, statusOf("recording the staged volume", err)
	}
	st, _, err := n.desired()
	if err != nil {
		return nil, statusOf("staging", err)
	}
	if err := n.cfg.Reconciler.Reconcile(ctx, st, Scope{Volumes: []string{id}}); err != nil {
		return nil, statusOf("connecting the volume", err)
	}
	dev, _, err := n.device(ctx, st, id)
	if err != nil {
		return nil, statusOf("finding the volume's device", err)
	}
	if vcap.GetBlock() != nil {
		return &csi.NodeStageVolumeResponse{}, nil // raw block: nothing to format or mount
	}
	mounted, err := n.cfg.Mounter.IsMountPoint(staging)
	if err != nil {
		return nil, statusOf("checking the staging path", err)
	}
	if mounted {
		return &csi.NodeStageVolumeResponse{}, nil
	}
	if err := os.MkdirAll(staging, 0o750); err != nil {
		return nil, statusOf("creating the staging path", err)
	}
	fsType := vcap.GetMount().GetFsType()
	if fsType == "" {
		fsType = nv.FSType
	}
	have, err := n.cfg.Mounter.BlkidType(ctx, dev)
	if err != nil {
		return nil, statusOf("probing the device", err)
	}
	switch {
	case have == "":
		// Only a device on which blkid finds nothing at all is formatted:
		// a volume with data is never reformatted, whatever fsType says.
		if err := n.cfg.Mounter.Format(ctx, dev, fsType); err != nil {
			return nil, statusOf("formatting", err)
		}
	case have != fsType:
		n.log.WarnContext(ctx, "volume holds another filesystem than requested; mounting it as it is",
			"volume", id, "found", have, "requested", fsType)
		fsType = have
	}
	if err := n.cfg.Mounter.Mount(ctx, dev, staging, fsType, vcap.GetMount().GetMountFlags()); err != nil {
		return nil, statusOf("mounting", err)
	}
	return &csi.NodeStageVolumeResponse{}, nil
}

func (n *node) NodeUnstageVolume(ctx context.Context, req *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	id, staging := req.GetVolumeId(), req.GetStagingTargetPath()
	switch {
	case id == "":
		return nil, invalid("volume id is required")
	case staging == "":
		return nil, invalid("staging target path is required")
	}
	if err := n.checkPath("staging target path", staging); err != nil {
		return nil, err
	}
	if !validVolumeID(id) {
		return nil, status.Errorf(codes.NotFound, "volume %q cannot exist: not a volume name", id)
	}
	unlock, err := n.locks.lock(ctx, id)
	if err != nil {
		return nil, statusOf("waiting for the volume lock", err)
	}
	defer unlock()
	raw, err := n.cfg.Layer.Read()
	if err != nil {
		return nil, statusOf("reading the node state", err)
	}
	if raw.Volume(id) == nil {
		// Not staged here (any more): the CSI spec asks for OK, and there is
		// nothing of ours to unmount.
		return &csi.NodeUnstageVolumeResponse{}, nil
	}
	if err := n.checkStaged(id, staging); err != nil {
		return nil, err
	}
	if err := n.cfg.Mounter.Unmount(ctx, staging); err != nil {
		return nil, statusOf("unmounting the staging path", err)
	}
	// Detach first, forget after: the volume stays declared but attached
	// nowhere, so the reconciler disconnects it; only once that converged
	// is it dropped from the layer. A failed disconnect leaves the intent
	// in the file for the retry (and for the startup reconcile).
	detached := false
	err = n.cfg.Layer.Update(ctx, func(l *spec.State) error {
		v := l.Volume(id)
		if v == nil {
			return errUnchanged
		}
		detached = true
		if len(v.Attachments) == 0 {
			return errUnchanged
		}
		v.Attachments = nil
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return nil, statusOf("detaching the volume in the node state", err)
	}
	if !detached {
		return &csi.NodeUnstageVolumeResponse{}, nil // not staged (any more)
	}
	st, _, err := n.desired()
	if err != nil {
		return nil, statusOf("unstaging", err)
	}
	if err := n.cfg.Reconciler.Reconcile(ctx, st, Scope{Volumes: []string{id}}); err != nil {
		return nil, statusOf("disconnecting the volume", err)
	}
	err = n.cfg.Layer.Update(ctx, func(l *spec.State) error {
		i := slices.IndexFunc(l.Volumes, func(v spec.Volume) bool { return v.Name == id && len(v.Attachments) == 0 })
		if i < 0 {
			return errUnchanged
		}
		l.Volumes = slices.Delete(l.Volumes, i, i+1)
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return nil, statusOf("removing the volume from the node state", err)
	}
	// Forget the staging path after the volume: a crash in between leaves
	// an entry without its volume, which means nothing.
	if err := n.editRecord(ctx, id, ""); err != nil {
		return nil, statusOf("removing the volume's staging path", err)
	}
	return &csi.NodeUnstageVolumeResponse{}, nil
}

// staged returns the node state and checks that volume id is staged here.
func (n *node) staged(id string) (*spec.State, error) {
	if !validVolumeID(id) {
		return nil, n.notStagedHere(id)
	}
	st, ok, err := n.desired()
	if err != nil {
		return nil, statusOf("reading the node state", err)
	}
	if v := st.Volume(id); !ok || v == nil || !slices.Contains(v.Attachments, n.id) {
		return nil, n.notStagedHere(id)
	}
	return st, nil
}

func (n *node) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	id, target, staging := req.GetVolumeId(), req.GetTargetPath(), req.GetStagingTargetPath()
	switch {
	case id == "":
		return nil, invalid("volume id is required")
	case target == "":
		return nil, invalid("target path is required")
	case staging == "":
		return nil, invalid("staging target path is required: this driver stages volumes")
	}
	vcap := req.GetVolumeCapability()
	if err := checkCapability(vcap); err != nil {
		return nil, invalid("%v", err)
	}
	if err := n.checkPath("target path", target); err != nil {
		return nil, err
	}
	if err := n.checkPath("staging target path", staging); err != nil {
		return nil, err
	}
	unlock, err := n.locks.lock(ctx, id)
	if err != nil {
		return nil, statusOf("waiting for the volume lock", err)
	}
	defer unlock()
	st, err := n.staged(id)
	if err != nil {
		return nil, err
	}
	if err := n.checkStaged(id, staging); err != nil {
		return nil, err
	}
	ro := req.GetReadonly() || vcap.GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY
	mounted, err := n.cfg.Mounter.IsMountPoint(target)
	if err != nil {
		return nil, statusOf("checking the target path", err)
	}
	if mounted {
		return &csi.NodePublishVolumeResponse{}, nil
	}
	source := staging
	if vcap.GetBlock() != nil {
		dev, _, err := n.device(ctx, st, id)
		if err != nil {
			return nil, statusOf("finding the volume's device", err)
		}
		source = dev
		if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
			return nil, statusOf("creating the target's parent", err)
		}
		f, err := os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o640)
		if err != nil {
			return nil, statusOf("creating the target file", err)
		}
		f.Close()
	} else if err := os.MkdirAll(target, 0o750); err != nil {
		return nil, statusOf("creating the target path", err)
	}
	if err := n.cfg.Mounter.BindMount(ctx, source, target, ro); err != nil {
		return nil, statusOf("publishing", err)
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

func (n *node) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	switch {
	case id == "":
		return nil, invalid("volume id is required")
	case target == "":
		return nil, invalid("target path is required")
	}
	if err := n.checkPath("target path", target); err != nil {
		return nil, err
	}
	unlock, err := n.locks.lock(ctx, id)
	if err != nil {
		return nil, statusOf("waiting for the volume lock", err)
	}
	defer unlock()
	// Only a volume staged here is unpublished: anything else was not
	// published by this node, and nothing is touched for it.
	if _, err := n.staged(id); err != nil {
		return nil, err
	}
	if err := n.cfg.Mounter.Unmount(ctx, target); err != nil {
		return nil, statusOf("unmounting the target", err)
	}
	if err := removeTarget(target); err != nil {
		return nil, statusOf("removing the target", err)
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

func (n *node) NodeGetVolumeHealth(ctx context.Context, req *csi.NodeGetVolumeHealthRequest) (*csi.NodeGetVolumeHealthResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, invalid("volume id is required")
	}
	st, err := n.staged(id)
	if err != nil {
		return nil, err
	}
	return &csi.NodeGetVolumeHealthResponse{VolumeHealth: &csi.VolumeHealth{VolumeId: id, HealthStatuses: n.health(ctx, st, id)}}, nil
}

func (n *node) NodeGetVolumeStats(ctx context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	id, p := req.GetVolumeId(), req.GetVolumePath()
	switch {
	case id == "":
		return nil, invalid("volume id is required")
	case p == "":
		return nil, invalid("volume path is required")
	}
	st, err := n.staged(id)
	if err != nil {
		return nil, err
	}
	if err := n.checkPath("volume path", p); err != nil {
		// csi-sanity asks NotFound for a path the volume is not at.
		return nil, status.Errorf(codes.NotFound, "volume %q is not at %s: %s", id, p, status.Convert(err).Message())
	}
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.NotFound, "volume path %s does not exist", p)
	}
	if err != nil {
		return nil, statusOf("reading the volume path", err)
	}
	if fi.Mode()&os.ModeDevice != 0 {
		var size int64
		if c, err := n.controllerOf(ctx, st, id); err == nil && len(c.Namespaces) > 0 {
			size = c.Namespaces[0].Size
		}
		return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
			{Unit: csi.VolumeUsage_BYTES, Total: size}}}, nil
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(p, &sfs); err != nil {
		return nil, statusOf("statfs", err)
	}
	bs := int64(sfs.Bsize)
	return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
		{Unit: csi.VolumeUsage_BYTES, Total: int64(sfs.Blocks) * bs, Available: int64(sfs.Bavail) * bs,
			Used: int64(sfs.Blocks-sfs.Bfree) * bs},
		{Unit: csi.VolumeUsage_INODES, Total: int64(sfs.Files), Available: int64(sfs.Ffree),
			Used: int64(sfs.Files - sfs.Ffree)},
	}}, nil
}

// rescanWait bounds how long NodeExpandVolume waits for the kernel to show
// the grown namespace after a rescan.
const rescanWait = 5 * time.Second

func (n *node) NodeExpandVolume(ctx context.Context, req *csi.NodeExpandVolumeRequest) (*csi.NodeExpandVolumeResponse, error) {
	id, p := req.GetVolumeId(), req.GetVolumePath()
	switch {
	case id == "":
		return nil, invalid("volume id is required")
	case p == "":
		return nil, invalid("volume path is required")
	}
	unlock, err := n.locks.lock(ctx, id)
	if err != nil {
		return nil, statusOf("waiting for the volume lock", err)
	}
	defer unlock()
	st, err := n.staged(id)
	if err != nil {
		return nil, err
	}
	if err := n.checkPath("volume path", p); err != nil {
		return nil, err
	}
	if sp := req.GetStagingTargetPath(); sp != "" {
		if err := n.checkPath("staging target path", sp); err != nil {
			return nil, err
		}
	}
	c, err := n.controllerOf(ctx, st, id)
	if err != nil {
		return nil, statusOf("expanding", err)
	}
	// The kernel learns the new namespace size only from a rescan.
	if err := n.cfg.Host.Rescan(ctx, c.Name); err != nil {
		return nil, statusOf("rescanning the controller", err)
	}
	dev, c, err := n.device(ctx, st, id)
	if err != nil {
		return nil, statusOf("expanding", err)
	}
	// The kernel applies a rescan asynchronously: wait a little for the
	// size asked for, so neither the answer nor the filesystem grow reads
	// the old size.
	want := req.GetCapacityRange().GetRequiredBytes()
	for deadline := time.Now().Add(rescanWait); want > 0 && len(c.Namespaces) > 0 && c.Namespaces[0].Size < want && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return nil, statusOf("expanding", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if dev, c, err = n.device(ctx, st, id); err != nil {
			return nil, statusOf("expanding", err)
		}
	}
	var size int64
	if len(c.Namespaces) > 0 {
		size = c.Namespaces[0].Size
	}
	if req.GetVolumeCapability().GetBlock() != nil {
		return &csi.NodeExpandVolumeResponse{CapacityBytes: size}, nil
	}
	if fi, err := os.Stat(p); err == nil && fi.Mode()&os.ModeDevice != 0 {
		return &csi.NodeExpandVolumeResponse{CapacityBytes: size}, nil
	}
	fsType, err := n.cfg.Mounter.BlkidType(ctx, dev)
	if err != nil {
		return nil, statusOf("probing the device", err)
	}
	if fsType == "" {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %q has no filesystem to grow", id)
	}
	if err := n.cfg.Mounter.Resize(ctx, dev, p, fsType); err != nil {
		return nil, statusOf("growing the filesystem", err)
	}
	return &csi.NodeExpandVolumeResponse{CapacityBytes: size}, nil
}
