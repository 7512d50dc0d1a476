package csi

import (
	"errors"
	"fmt"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

// errMultiWriterMount: MULTI_NODE_MULTI_WRITER asked for a filesystem. Two
// kernels mounting one ext4 or xfs corrupt it within seconds, so the mode
// is for raw block devices only (KubeVirt live migration, a cluster
// filesystem or shared LVM coordinating above the device). Every caller
// answers it with InvalidArgument, ValidateVolumeCapabilities included: it
// is a request no volume of this driver can ever satisfy.
var errMultiWriterMount = errors.New("access mode MULTI_NODE_MULTI_WRITER is supported for block volumes only " +
	"(volumeMode: Block, e.g. a KubeVirt VM disk that live-migrates): a filesystem mounted by two nodes at once is corrupted; " +
	"use a single-node access mode (ReadWriteOnce) for a filesystem volume")

// multiWriter reports whether any capability asks for several writers at
// once (checkCapability has made sure each such one is block).
func multiWriter(cs []*csi.VolumeCapability) bool {
	for _, c := range cs {
		if c.GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER {
			return true
		}
	}
	return false
}

// accessFor maps the capabilities of CreateVolume onto the state file's
// volume access: multi-writer-block when one of them is
// MULTI_NODE_MULTI_WRITER (block), else the default, single-host.
func accessFor(cs []*csi.VolumeCapability) string {
	if multiWriter(cs) {
		return spec.AccessMultiWriterBlock
	}
	return ""
}

// sameAccess compares access values, "" and single-host being one.
func sameAccess(a, b string) bool {
	norm := func(s string) string {
		if s == spec.AccessSingleHost {
			return ""
		}
		return s
	}
	return norm(a) == norm(b)
}

// accessMismatch says why the capabilities cs cannot be used with v, or
// "": asking several writers of a volume created for one host.
func accessMismatch(v *spec.Volume, cs []*csi.VolumeCapability) string {
	if multiWriter(cs) && v.Access != spec.AccessMultiWriterBlock {
		return fmt.Sprintf("volume %q was created for a single node; only a volume created with MULTI_NODE_MULTI_WRITER "+
			"(block) may be published to several nodes at once", v.Name)
	}
	return ""
}

// otherAttachment is the first node other than node that v is published
// to, when v admits one node at a time; "" when node may be added.
func otherAttachment(v *spec.Volume, node string) string {
	if v.Access == spec.AccessMultiWriterBlock {
		return ""
	}
	for _, a := range v.Attachments {
		if a != node {
			return a
		}
	}
	return ""
}
