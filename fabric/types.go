// Package fabric owns this host's half of NVMe/TCP: listing the kernel's
// NVMe-oF controllers and namespaces from sysfs, connecting (through
// /dev/nvme-fabrics or nvme-cli), updating timeouts, rescanning and
// disconnecting. It knows nothing of RouterOS.
package fabric

import (
	"context"
	"strings"
	"time"
)

// Timeouts are the kernel's per-controller connection timeouts in seconds;
// CtrlLossTmo -1 means reconnect forever (sysfs prints "off").
type Timeouts struct {
	CtrlLossTmo    int `json:"ctrlLossTmo"`
	ReconnectDelay int `json:"reconnectDelay"`
	KeepAliveTmo   int `json:"keepAliveTmo"`
}

// State is a controller's state as the kernel prints it in
// /sys/class/nvme/nvmeN/state. A value outside the constants (a newer
// kernel's) is kept as read, so it is shown rather than lost.
type State string

// The states of drivers/nvme/host/core.c (nvme_sysfs_show_state).
const (
	StateNew        State = "new"
	StateLive       State = "live"
	StateResetting  State = "resetting"
	StateConnecting State = "connecting" // the kernel is reconnecting
	StateDeleting   State = "deleting"
	// StateDeletingNoIO: deleting, and past the point where I/O can
	// still be sent.
	StateDeletingNoIO State = "deleting (no IO)"
	StateDead         State = "dead"
)

// Deleting reports whether the kernel is tearing the controller down
// (either deleting state).
func (s State) Deleting() bool { return strings.HasPrefix(string(s), string(StateDeleting)) }

// Controller is one NVMe-oF controller as sysfs shows it.
type Controller struct {
	Name       string      `json:"name"` // "nvme3"
	Instance   int         `json:"instance"`
	SubsysNQN  string      `json:"subsysnqn"`
	Transport  string      `json:"transport"`
	TrAddr     string      `json:"traddr"`
	TrSvcID    string      `json:"trsvcid"`
	HostNQN    string      `json:"hostnqn"`
	State      State       `json:"state"`
	Timeouts   Timeouts    `json:"timeouts"`
	Namespaces []Namespace `json:"namespaces"`
}

// Namespace is a block device behind a controller.
type Namespace struct {
	Name   string `json:"name"`   // "nvme3n1"
	Device string `json:"device"` // "/dev/nvme3n1"
	Size   int64  `json:"size"`   // bytes
	Major  int    `json:"major"`
	Minor  int    `json:"minor"`
	// InUse is set when the namespace or one of its partitions is mounted
	// (this mount namespace), has sysfs holders (device mapper, md, LVM,
	// loop), is held open by a process other than this one (a VM's raw
	// disk, a database on a raw device) or is active swap. A disconnect
	// would pull the disk from under that user, so the guards refuse it.
	// InUseBy says which device and by whom, one reason per finding joined
	// with ", ": "nvme3n1 mounted on /data", "nvme3n1p1 held by dm-0",
	// "nvme3n1 open by pid 1234 (qemu-system-x86)" (at most 3 processes,
	// then "and N more"), "nvme3n1 active swap".
	InUse   bool   `json:"inUse"`
	InUseBy string `json:"inUseBy,omitempty"`
}

// ConnectRequest is one NVMe/TCP connect. Timeouts and HostNQN are always passed.
type ConnectRequest struct {
	NQN      string
	Address  string
	Port     int
	HostNQN  string
	Timeouts Timeouts
	// DeviceWait bounds the wait for the namespace's block device.
	DeviceWait time.Duration
}

// Host is the kernel NVMe host of this machine (or a simulation of it).
type Host interface {
	// List returns every NVMe-oF controller with its namespaces.
	List(ctx context.Context) ([]Controller, error)
	// Connect connects and waits for the block device. Already connected
	// (EALREADY) returns the existing controller.
	Connect(ctx context.Context, req ConnectRequest) (Controller, error)
	// SetTimeouts changes a live controller's timeouts in place.
	SetTimeouts(ctx context.Context, name string, t Timeouts) error
	// Rescan rescans the controller's namespaces (after a grow).
	Rescan(ctx context.Context, name string) error
	// Disconnect deletes the controller. It refuses NQNs outside the managed
	// prefixes (ErrNotManaged) and, unless force, in-use namespaces (ErrInUse).
	Disconnect(ctx context.Context, name string, force bool) error
	// HostNQN is the NQN this host presents.
	HostNQN(ctx context.Context) (string, error)
}
