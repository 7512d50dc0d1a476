package csi

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

var dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// hashedNamePrefix starts every volume name derived from a hash, so an
// operator can tell them from names taken verbatim.
const hashedNamePrefix = "csi-"

// VolumeName maps a CSI volume name to the volume name used as RDS slot, file
// name and NQN suffix. Kubernetes names ("pvc-<uuid>") are DNS labels already
// and are kept as they are, so the RDS shows the PV name; any other name
// (uppercase, spaces, too long, or without the state's slotPrefix) becomes
// slotPrefix + "csi-" + the first 20 hex digits of its SHA-256. The mapping is
// a pure function of (name, slotPrefix): CreateVolume stays idempotent by
// name without storing the CSI name anywhere.
func VolumeName(csiName, slotPrefix string) string {
	if len(csiName) <= spec.MaxVolumeNameLen && dnsLabelRE.MatchString(csiName) &&
		strings.HasPrefix(csiName, slotPrefix) && !strings.HasPrefix(csiName, slotPrefix+hashedNamePrefix) &&
		!spec.IsSnapshotName(csiName, slotPrefix) { // that name space is the snapshots' (SnapshotName)
		return csiName
	}
	sum := sha256.Sum256([]byte(csiName))
	return slotPrefix + hashedNamePrefix + hex.EncodeToString(sum[:])[:20]
}

// validVolumeID reports whether id can name a volume at all. Anything else
// cannot exist, so lookups answer NotFound without touching the state.
func validVolumeID(id string) bool {
	return len(id) <= spec.MaxVolumeNameLen && dnsLabelRE.MatchString(id)
}
