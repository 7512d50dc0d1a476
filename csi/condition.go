package csi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// Volume health is CSI 1.13's form of the "abnormal volume condition" of
// earlier CSI versions (VolumeCondition in NodeGetVolumeStats and
// ControllerGetVolume, capability VOLUME_CONDITION): 1.13 dropped those and
// reports health instead, by NodeGetVolumeHealth (node capability
// GET_VOLUME_HEALTH) and ControllerGetVolumeHealth /
// ControllerListVolumeHealth (controller capabilities GET_VOLUME_HEALTH and
// LIST_VOLUME_HEALTH). No entry means healthy; each entry carries a reason.

// Inventory lists the RDS's managed disks in one round trip
// (*rds.SSHClient). With it the controller reports volume health.
type Inventory interface {
	List(ctx context.Context) (rds.Inventory, error)
}

func inaccessible(format string, args ...any) *csi.VolumeHealth_VolumeHealthEntry {
	return &csi.VolumeHealth_VolumeHealthEntry{Status: csi.VolumeHealthErrorType_INACCESSIBLE, Reason: fmt.Sprintf(format, args...)}
}

// stateReasons say, for each controller state that is not live, what it
// means for the volume's I/O.
var stateReasons = map[fabric.State]string{
	fabric.StateConnecting: "the kernel is reconnecting to the RDS (I/O waits, and fails after ctrl_loss_tmo)",
	fabric.StateResetting:  "the kernel is resetting it (I/O waits)",
	fabric.StateNew:        "it is still being set up",
	fabric.StateDead:       "the kernel gave up on it",
}

// nodeHealth judges a staged volume from what the host shows: its
// controller (nil with findErr when there is none), the controller's state,
// its namespace and the namespace's block device (devErr: resolving or
// finding the device file failed).
func nodeHealth(name string, c *fabric.Controller, findErr, devErr error) []*csi.VolumeHealth_VolumeHealthEntry {
	switch {
	case c == nil:
		msg := fmt.Sprintf("volume %q is not connected", name)
		if findErr != nil {
			msg = status.Convert(findErr).Message()
		}
		return []*csi.VolumeHealth_VolumeHealthEntry{inaccessible("%s", msg)}
	case c.State.Deleting():
		return []*csi.VolumeHealth_VolumeHealthEntry{inaccessible("NVMe controller %s is %s: the kernel is tearing it down", c.Name, c.State)}
	case c.State != fabric.StateLive:
		why, ok := stateReasons[c.State]
		if !ok {
			why = "not live"
		}
		return []*csi.VolumeHealth_VolumeHealthEntry{inaccessible("NVMe controller %s is %s: %s", c.Name, c.State, why)}
	case len(c.Namespaces) == 0:
		return []*csi.VolumeHealth_VolumeHealthEntry{inaccessible(
			"NVMe controller %s is live but its namespace is gone (the RDS disk was removed or not exported, or a rescan is pending)", c.Name)}
	case devErr != nil:
		return []*csi.VolumeHealth_VolumeHealthEntry{inaccessible("the block device of namespace %s is missing: %v", c.Namespaces[0].Name, devErr)}
	}
	return nil
}

// deviceCheck resolves the namespace's device and checks that the file is
// there (udev may have lost it, or a container may not see the host's /dev).
func (n *node) deviceCheck(ctx context.Context, name string, ns fabric.Namespace) error {
	dev, err := n.cfg.ResolveDevice(ctx, name, ns)
	if err != nil {
		return err
	}
	if _, err := os.Stat(dev); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s does not exist", dev)
		}
		return err
	}
	return nil
}

// health is the node's view of a staged volume's health.
func (n *node) health(ctx context.Context, st *spec.State, id string) []*csi.VolumeHealth_VolumeHealthEntry {
	c, err := n.controllerOf(ctx, st, id)
	if err != nil {
		return nodeHealth(id, nil, err, nil)
	}
	var devErr error
	if c.State == fabric.StateLive && len(c.Namespaces) > 0 {
		devErr = n.deviceCheck(ctx, id, c.Namespaces[0])
	}
	return nodeHealth(id, c, nil, devErr)
}

// rdsHealth judges a declared volume from the RDS's inventory: its disk
// must be there and exported under its NQN.
func rdsHealth(st *spec.State, v *spec.Volume, inv rds.Inventory) []*csi.VolumeHealth_VolumeHealthEntry {
	i := slices.IndexFunc(inv.Disks, func(d rds.Disk) bool { return d.Slot == v.Name })
	if i < 0 {
		return []*csi.VolumeHealth_VolumeHealthEntry{inaccessible("the RDS has no disk %s (deleted behind the driver's back, or not created yet)", v.Name)}
	}
	d := inv.Disks[i]
	var out []*csi.VolumeHealth_VolumeHealthEntry
	if !d.Export {
		out = append(out, inaccessible("disk %s is not exported over NVMe/TCP (nvme-tcp-export=no): no node can connect", d.Slot))
	} else if want := st.NQN(v.Name); d.NQN != want {
		out = append(out, inaccessible("disk %s is exported as %s, not %s: nodes connect to the wrong name", d.Slot, d.NQN, want))
	}
	if d.Size < v.Size.Bytes {
		out = append(out, &csi.VolumeHealth_VolumeHealthEntry{Status: csi.VolumeHealthErrorType_DEGRADED,
			Reason: fmt.Sprintf("disk %s has %d bytes, less than the %d declared (a grow is pending)", d.Slot, d.Size, v.Size.Bytes)})
	}
	return out
}

// inventory reads the RDS, or answers why the controller cannot.
func (c *controller) inventory(ctx context.Context) (rds.Inventory, error) {
	if c.cfg.Inventory == nil {
		return rds.Inventory{}, status.Error(codes.Unimplemented, "volume health needs the RDS inventory, which this controller was not given")
	}
	inv, err := c.cfg.Inventory.List(ctx)
	if err != nil {
		return rds.Inventory{}, statusOf("listing the RDS disks", err)
	}
	return inv, nil
}

func (c *controller) ControllerGetVolumeHealth(ctx context.Context, req *csi.ControllerGetVolumeHealthRequest) (*csi.ControllerGetVolumeHealthResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, invalid("volume id is required")
	}
	st, v, err := c.lookup(ctx, req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	inv, err := c.inventory(ctx)
	if err != nil {
		return nil, err
	}
	return &csi.ControllerGetVolumeHealthResponse{VolumeHealth: &csi.VolumeHealth{VolumeId: v.Name, HealthStatuses: rdsHealth(st, v, inv)}}, nil
}

// ControllerListVolumeHealth pages like ListVolumes, from one RDS round
// trip per page.
func (c *controller) ControllerListVolumeHealth(ctx context.Context, req *csi.ControllerListVolumeHealthRequest) (*csi.ControllerListVolumeHealthResponse, error) {
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
	resp := &csi.ControllerListVolumeHealthResponse{NextToken: next}
	if len(sel) == 0 {
		return resp, nil
	}
	inv, err := c.inventory(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range sel {
		resp.Entries = append(resp.Entries, &csi.VolumeHealth{VolumeId: n, HealthStatuses: rdsHealth(st, st.Volume(n), inv)})
	}
	return resp, nil
}

// healthCaps are the controller capabilities volume health adds, when the
// controller has the RDS inventory.
func (c *controller) healthCaps() []csi.ControllerServiceCapability_RPC_Type {
	if c.cfg.Inventory == nil {
		return nil
	}
	return []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_GET_VOLUME_HEALTH,
		csi.ControllerServiceCapability_RPC_LIST_VOLUME_HEALTH,
	}
}
