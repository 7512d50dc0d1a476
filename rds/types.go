// Package rds owns the conversation with a MikroTik RDS (RouterOS 7,
// rose-storage) over SSH: building RouterOS commands from validated values,
// parsing every output format RouterOS prints, and classifying its errors.
// It knows nothing of hosts or the kernel.
package rds

// Disk is one RouterOS /disk item, as far as rds-reconcile cares.
type Disk struct {
	Slot     string `json:"slot"`
	Type     string `json:"type"`     // "file" for file-backed disks
	FilePath string `json:"filePath"` // as RouterOS prints it, leading '/' stripped
	Size     int64  `json:"size"`     // exact bytes (the `size` field, not rounded file-size)
	Export   bool   `json:"nvmeTcpExport"`
	Port     int    `json:"nvmeTcpPort"`
	NQN      string `json:"nqn"`
	// MountFilesystem is RouterOS's mount-filesystem: whether RouterOS
	// itself may mount a filesystem it finds in the disk. Managed disks
	// are made with it off; false too when RouterOS does not print it.
	MountFilesystem bool `json:"mountFilesystem"`
	// AllowHosts is nvme-tcp-server-allow-host-name split into host NQNs
	// (ParseAllowHosts): empty admits every host, RouterOS's default.
	AllowHosts []string `json:"allowHosts,omitempty"`
	// Fields keeps every field RouterOS printed, unknown ones included.
	Fields map[string]string `json:"-"`
}

// File is a RouterOS /file item.
type File struct {
	Name string `json:"name"` // leading '/' stripped
	Size int64  `json:"size"`
}

// Capacity is the storage pool's size and free space in bytes.
type Capacity struct {
	Size int64 `json:"size"`
	Free int64 `json:"free"`
}

// Inventory is everything the reconciler needs from the RDS, read in one
// round trip: managed disks, .img files under the base path, pool capacity.
type Inventory struct {
	Disks []Disk    `json:"disks"`
	Files []File    `json:"files"`
	Pool  *Capacity `json:"pool,omitempty"`
	// Exports are the other disks exported over NVMe/TCP (outside the slot
	// prefix or BasePath, e.g. made by hand): never changed, listed so a
	// host can tell their controllers from its own.
	Exports []Disk `json:"exports,omitempty"`
	// Snapshots are the managed disks in the snapshots' name space
	// (IsSnapshotSlot) that are not exported; an exported one is not a
	// snapshot of ours and is listed under Exports.
	Snapshots []Disk `json:"snapshots,omitempty"`
}

// CreateRequest describes a file-backed disk exported over NVMe/TCP.
type CreateRequest struct {
	Slot     string
	FilePath string // e.g. storage-pool/volumes/db.img
	Size     int64  // bytes
	Port     int
	NQN      string
	// SetAllowHosts sends nvme-tcp-server-allow-host-name with the host
	// NQNs in AllowHosts (empty: every host); without it the field is not
	// sent and RouterOS keeps its default (every host).
	SetAllowHosts bool
	AllowHosts    []string
}

// ExportRequest sets the NVMe/TCP export of an existing disk (drift repair);
// mount-filesystem=no is set with it, and the allow list when
// SetAllowHosts (see CreateRequest).
type ExportRequest struct {
	Slot          string
	Port          int
	NQN           string
	SetAllowHosts bool
	AllowHosts    []string
}
