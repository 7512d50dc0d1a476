// Package fabric owns this host's half of NVMe/TCP: listing the kernel's
// NVMe-oF controllers and namespaces from sysfs, connecting (through
// /dev/nvme-fabrics or nvme-cli), updating timeouts, rescanning and
// disconnecting. It knows nothing of RouterOS.
package fabric

import (
	"context"
	"time"
)

// Timeouts are the kernel's per-controller connection timeouts in seconds;
// CtrlLossTmo -1 means reconnect forever (sysfs prints "off").
type Timeouts struct {
	CtrlLossTmo    int `json:"ctrlLossTmo"`
	ReconnectDelay int `json:"reconnectDelay"`
	KeepAliveTmo   int `json:"keepAliveTmo"`
}

// Controller is one NVMe-oF controller as sysfs shows it.
type Controller struct {
	Name       string      `json:"name"` // "nvme3"
	Instance   int         `json:"instance"`
	SubsysNQN  string      `json:"subsysnqn"`
	Transport  string      `json:"transport"`
	TrAddr     string      `json:"traddr"`
	TrSvcID    string      `json:"trsvcid"`
	HostNQN    string      `json:"hostnqn"`
	State      string      `json:"state"` // live, connecting, resetting, deleting, dead, new
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
