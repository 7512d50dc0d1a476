// Package spec owns the desired state of rds-reconcile: its types, loading YAML
// files with positions, layering several files, defaults, validation, the JSON
// Schema, and Store, the locked atomic read-modify-write used by the CSI mode.
// It never talks to the network or the kernel.
package spec

import "time"

// APIVersion and Kind head every state file.
const (
	APIVersion = "rds-reconcile/v1"
	Kind       = "State"
)

// Seed defaults (see shared/seed): reconnect forever, 5 s between tries,
// kernel keep-alive; retry 5 attempts from 1 s, factor 2, 10% jitter.
const (
	DefaultCtrlLossTmo    = -1
	DefaultReconnectDelay = 5
	DefaultKeepAliveTmo   = 0
	DefaultNVMePort       = 4420
	DefaultSSHPort        = 22
	DefaultFSType         = "ext4"
	DefaultNQNPrefix      = "nqn.2000-02.com.mikrotik:"
	// SizeAlign is the alignment every volume size must have: 1 MiB.
	SizeAlign int64 = 1 << 20
)

// State is the whole desired state, after layering and defaults.
type State struct {
	APIVersion string          `yaml:"apiVersion" json:"apiVersion"`
	Kind       string          `yaml:"kind" json:"kind"`
	Target     *Target         `yaml:"target,omitempty" json:"target,omitempty"`
	Defaults   *Defaults       `yaml:"defaults,omitempty" json:"defaults,omitempty"`
	Policy     *Policy         `yaml:"policy,omitempty" json:"policy,omitempty"`
	Hosts      map[string]Host `yaml:"hosts,omitempty" json:"hosts,omitempty" validate:"dive"`
	Volumes    []Volume        `yaml:"volumes,omitempty" json:"volumes,omitempty" validate:"dive"`
	// Snapshots are point-in-time copies of volumes (see snapshot.go).
	Snapshots []Snapshot `yaml:"snapshots,omitempty" json:"snapshots,omitempty" validate:"dive"`
}

// Target is the one RDS the state describes.
type Target struct {
	// Address is the NVMe/TCP address hosts connect to.
	Address  string `yaml:"address" json:"address" validate:"required"`
	NVMePort int    `yaml:"nvmePort,omitempty" json:"nvmePort,omitempty" validate:"min=1,max=65535"`
	SSH      SSH    `yaml:"ssh" json:"ssh"`
	// BasePath is the RDS folder holding the volume files: <basePath>/<name>.img.
	BasePath string `yaml:"basePath" json:"basePath" validate:"required"`
	// NQNPrefix + volume name is each volume's subsystem NQN; controllers whose
	// NQN starts with it are managed (and may be disconnected as orphans).
	NQNPrefix string `yaml:"nqnPrefix,omitempty" json:"nqnPrefix,omitempty"`
	// SlotPrefix, when set, must begin every volume name; only RDS disks whose
	// slot starts with it, and controllers whose NQN starts with
	// NQNPrefix+SlotPrefix, are ever listed or changed.
	SlotPrefix string `yaml:"slotPrefix,omitempty" json:"slotPrefix,omitempty"`
}

// SSH says how to reach RouterOS. Secrets never live in the file: a password
// or passphrase comes from an environment variable or a file named here.
type SSH struct {
	Address               string   `yaml:"address" json:"address"` // host:port
	User                  string   `yaml:"user" json:"user"`
	PrivateKeyFile        string   `yaml:"privateKeyFile,omitempty" json:"privateKeyFile,omitempty"`
	PassphraseEnv         string   `yaml:"passphraseEnv,omitempty" json:"passphraseEnv,omitempty"`
	PassphraseFile        string   `yaml:"passphraseFile,omitempty" json:"passphraseFile,omitempty"`
	PasswordEnv           string   `yaml:"passwordEnv,omitempty" json:"passwordEnv,omitempty"`
	PasswordFile          string   `yaml:"passwordFile,omitempty" json:"passwordFile,omitempty"`
	KnownHostsFile        string   `yaml:"knownHostsFile,omitempty" json:"knownHostsFile,omitempty"`
	InsecureIgnoreHostKey bool     `yaml:"insecureIgnoreHostKey,omitempty" json:"insecureIgnoreHostKey,omitempty"`
	Timeout               Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// CommandTimeout bounds every RouterOS command; 0 means three times
	// Timeout. At most MaxSSHCommandTimeout.
	CommandTimeout Duration `yaml:"commandTimeout,omitempty" json:"commandTimeout,omitempty"`
	// MaxSessions caps the SSH sessions open at once on the RDS; 0 means
	// DefaultSSHMaxSessions. At most MaxSSHSessions.
	MaxSessions int `yaml:"maxSessions,omitempty" json:"maxSessions,omitempty"`
}

// Bounds of the target.ssh settings.
const (
	MaxSSHCommandTimeout  = 10 * time.Minute
	DefaultSSHMaxSessions = 4
	MaxSSHSessions        = 64
)

// Defaults apply to every volume that does not override them.
type Defaults struct {
	Connection Connection `yaml:"connection,omitempty" json:"connection,omitempty"`
	Retry      Retry      `yaml:"retry,omitempty" json:"retry,omitempty"`
	FSType     string     `yaml:"fsType,omitempty" json:"fsType,omitempty" validate:"oneof=ext4 xfs"`
}

// Connection holds the kernel NVMe/TCP timeouts, in seconds. Nil means
// "inherit" (volume from defaults, defaults from the seed values).
type Connection struct {
	CtrlLossTmo    *int `yaml:"ctrlLossTmo,omitempty" json:"ctrlLossTmo,omitempty" validate:"omitnil,min=-1"`
	ReconnectDelay *int `yaml:"reconnectDelay,omitempty" json:"reconnectDelay,omitempty" validate:"omitnil,min=1"`
	KeepAliveTmo   *int `yaml:"keepAliveTmo,omitempty" json:"keepAliveTmo,omitempty" validate:"omitnil,min=0"`
}

// Timeouts are resolved connection timeouts, in seconds. CtrlLossTmo -1
// means reconnect forever.
type Timeouts struct {
	CtrlLossTmo    int `json:"ctrlLossTmo"`
	ReconnectDelay int `json:"reconnectDelay"`
	KeepAliveTmo   int `json:"keepAliveTmo"`
}

// Retry is the backoff policy of every action apply takes.
type Retry struct {
	Attempts     uint     `yaml:"attempts,omitempty" json:"attempts,omitempty" validate:"min=1"`
	InitialDelay Duration `yaml:"initialDelay,omitempty" json:"initialDelay,omitempty"`
	MaxDelay     Duration `yaml:"maxDelay,omitempty" json:"maxDelay,omitempty"`
	Multiplier   float64  `yaml:"multiplier,omitempty" json:"multiplier,omitempty" validate:"gte=1"`
	// Jitter 0 (none) is a valid choice, so it is always written: an
	// omitted jitter reloads as the 10% default.
	Jitter float64 `yaml:"jitter" json:"jitter" validate:"gte=0,lte=1"`
}

// Orphan policies.
const (
	OrphansDisconnect = "disconnect"
	OrphansReport     = "report"
)

// Export access policies (Policy.ExportACL).
const (
	// ExportACLOpen keeps every managed disk's allow list empty: any host
	// on the storage network may connect.
	ExportACLOpen = "open"
	// ExportACLAttached keeps every managed disk's allow list to the host
	// NQNs of its attachments; a volume attached nowhere admits no host.
	ExportACLAttached = "attached"
)

// Policy says what the reconciler may do to things nobody declared.
type Policy struct {
	Orphans string `yaml:"orphans,omitempty" json:"orphans,omitempty" validate:"oneof=disconnect report"`
	Prune   bool   `yaml:"prune,omitempty" json:"prune,omitempty"`
	// ExportACL says which hosts each managed disk admits
	// (nvme-tcp-server-allow-host-name): "" (the default) leaves the allow
	// lists as they are, open keeps them empty (any host), attached keeps
	// them to the attached hosts' NQNs.
	ExportACL string `yaml:"exportACL,omitempty" json:"exportACL,omitempty" validate:"omitempty,oneof=open attached"`
}

// Host is a machine that may have volumes attached.
type Host struct {
	HostNQN string `yaml:"hostNQN" json:"hostNQN" validate:"required,max=223"`
}

// Volume access modes.
const (
	AccessSingleHost       = "single-host"
	AccessMultiWriterBlock = "multi-writer-block"
)

// Volume states.
const (
	Present = "present"
	Absent  = "absent"
)

// Volume is one RDS disk exported over NVMe/TCP.
type Volume struct {
	Name        string     `yaml:"name" json:"name" validate:"required"`
	Size        Quantity   `yaml:"size,omitempty" json:"size,omitempty"`
	State       string     `yaml:"state,omitempty" json:"state,omitempty" validate:"oneof=present absent"`
	Connection  Connection `yaml:"connection,omitempty" json:"connection,omitempty"`
	Attachments []string   `yaml:"attachments,omitempty" json:"attachments,omitempty"`
	Protect     bool       `yaml:"protect,omitempty" json:"protect,omitempty"`
	FSType      string     `yaml:"fsType,omitempty" json:"fsType,omitempty" validate:"omitempty,oneof=ext4 xfs"`
	// Access says who may have the volume at once: "" (single-host, the
	// default) or multi-writer-block (a raw block device several hosts
	// write at once, coordinated above: a cluster filesystem, shared LVM,
	// VM live migration). Only multi-writer-block may list several hosts.
	Access string `yaml:"access,omitempty" json:"access,omitempty" validate:"omitempty,oneof=single-host multi-writer-block"`
	// From is what a new volume's disk is copied from (YAML "source":
	// a snapshot or another volume); used only when the disk is created,
	// ignored once it exists. Nil: an empty disk.
	From *VolumeSource `yaml:"source,omitempty" json:"source,omitempty"`
	// Source is the file the volume was declared in (set by Load, not YAML).
	Source string `yaml:"-" json:"-"`
}

// Duration is a time.Duration written as "1s", "500ms" in YAML.
type Duration struct{ time.Duration }

// Quantity is a size in bytes, written as "512Mi", "20Gi", "1Ti" or plain bytes.
type Quantity struct{ Bytes int64 }
