package csi

import (
	"fmt"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

// supportedAccessModes: a filesystem on an NVMe/TCP namespace must never be
// mounted by two kernels, so a volume is attached to one node at a time,
// except a raw block device created multi-writer (checkCapability: block
// only), which KubeVirt attaches to two nodes while a VM live-migrates.
var supportedAccessModes = map[csi.VolumeCapability_AccessMode_Mode]bool{
	csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER:        true,
	csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY:   true,
	csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER: true,
	csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER:   true,
}

// checkCapability says why a capability is not supported, or nil.
func checkCapability(c *csi.VolumeCapability) error {
	if c == nil {
		return fmt.Errorf("volume capability is missing")
	}
	switch {
	case c.GetBlock() != nil:
	case c.GetMount() != nil:
		if fs := c.GetMount().GetFsType(); fs != "" && fs != "ext4" && fs != "xfs" {
			return fmt.Errorf("filesystem %q is not supported; use ext4 or xfs", fs)
		}
	default:
		return fmt.Errorf("access type must be block or mount")
	}
	if c.GetAccessMode() == nil {
		return fmt.Errorf("access mode is missing")
	}
	m := c.GetAccessMode().GetMode()
	if !supportedAccessModes[m] {
		return fmt.Errorf("access mode %s is not supported: an NVMe/TCP volume is attached to a single node, "+
			"or with MULTI_NODE_MULTI_WRITER to several as a raw block device", m)
	}
	if m == csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER && c.GetBlock() == nil {
		return errMultiWriterMount
	}
	return nil
}

func checkCapabilities(cs []*csi.VolumeCapability) error {
	if len(cs) == 0 {
		return fmt.Errorf("volume capabilities are missing")
	}
	for _, c := range cs {
		if err := checkCapability(c); err != nil {
			return err
		}
	}
	return nil
}

// defaultVolumeSize is the size of a volume whose request names no capacity.
const defaultVolumeSize int64 = 1 << 30

// sizeFor picks the size of a new volume: the required bytes rounded up to
// the 1 MiB alignment every volume needs, checked against the limit. Errors are gRPC statuses.
func sizeFor(r *csi.CapacityRange, dflt int64) (int64, error) {
	req, lim := r.GetRequiredBytes(), r.GetLimitBytes()
	if req < 0 || lim < 0 {
		return 0, status.Errorf(codes.InvalidArgument, "capacity range must not be negative (required %d, limit %d)", req, lim)
	}
	if lim > 0 && req > lim {
		return 0, status.Errorf(codes.InvalidArgument, "required bytes %d exceed the limit %d", req, lim)
	}
	if req > spec.MaxVolumeSize {
		return 0, status.Errorf(codes.OutOfRange, "required bytes %d are more than %d (%s), the largest volume size", req, spec.MaxVolumeSize, spec.Quantity{Bytes: spec.MaxVolumeSize})
	}
	if req == 0 {
		req = dflt
		if lim > 0 && lim < req {
			req = lim
		}
	}
	size, ok := spec.RoundUpSize(req)
	if !ok { // a default over the largest size
		return 0, status.Errorf(codes.OutOfRange, "%d bytes are more than %d (%s), the largest volume size", req, spec.MaxVolumeSize, spec.Quantity{Bytes: spec.MaxVolumeSize})
	}
	if lim > 0 && size > lim {
		return 0, status.Errorf(codes.OutOfRange, "volume sizes are multiples of 1 MiB: %d bytes round up to %d, over the limit %d", req, size, lim)
	}
	return size, nil
}
