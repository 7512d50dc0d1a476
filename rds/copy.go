package rds

// Copies: a new disk on a copy of another disk's file (RouterOS /disk add
// copy-from), for snapshots (never exported) and for volumes restored from
// a snapshot or cloned from a volume (exported in the same command).

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// SnapshotInfix follows the slot prefix in every snapshot slot: a disk
// whose slot starts with prefix + "snap-" is a snapshot, never a volume
// (spec.SnapshotInfix is the same rule on the state's side).
const SnapshotInfix = "snap-"

// IsSnapshotSlot reports whether slot is in the snapshots' name space of
// slotPrefix.
func IsSnapshotSlot(slot, slotPrefix string) bool {
	return strings.HasPrefix(slot, slotPrefix+SnapshotInfix)
}

// CopyRequest describes a new file disk made as a copy of Source's file.
type CopyRequest struct {
	// Source is the slot of the managed disk copied (a volume or a
	// snapshot).
	Source   string
	Slot     string
	FilePath string // <BasePath>/<Slot>.img
	// Size 0 takes the source's size; a larger one grows the copy
	// (file-size=, as rds-csi restores a snapshot into a larger volume).
	Size int64
	// Export: the copy is a volume, exported with Port, NQN and the allow
	// list (as CreateRequest) in the same command. Without it the copy is
	// a snapshot: its slot must be a snapshot slot, and it is never
	// exported.
	Export        bool
	Port          int
	NQN           string
	SetAllowHosts bool
	AllowHosts    []string
}

// CopyDisk makes the snapshot slot as a copy of src's file at filePath,
// never exported, in one command:
// /disk add type=file copy-from=[find slot=SRC] file-path=... slot=...
func (c *SSHClient) CopyDisk(ctx context.Context, src, slot, filePath string) error {
	return c.Copy(ctx, CopyRequest{Source: src, Slot: slot, FilePath: filePath})
}

// Copy makes a new disk on a copy of r.Source's file in one command.
// RouterOS answers "no such item" for a missing source (ErrNotFound), "not
// enough space" when the pool cannot hold the copy (ErrNoSpace), and
// refuses a used slot or file (ErrRejected). mount-filesystem=no as on
// Create: RouterOS must never mount a filesystem it finds in the copy.
func (c *SSHClient) Copy(ctx context.Context, r CopyRequest) error {
	const op = "copy"
	if err := firstErr(c.v.slot(r.Source), c.v.slot(r.Slot)); err != nil {
		return &Error{Op: op, Slot: r.Slot, Err: err}
	}
	snap := IsSnapshotSlot(r.Slot, c.v.prefix)
	switch {
	case r.Source == r.Slot:
		return &Error{Op: op, Slot: r.Slot, Err: fmt.Errorf("%w: a disk cannot be copied onto itself", ErrInvalid)}
	case r.Export && snap:
		return &Error{Op: op, Slot: r.Slot, Err: fmt.Errorf("%w: slot %q is a snapshot's, which is never exported", ErrInvalid, r.Slot)}
	case !r.Export && !snap:
		return &Error{Op: op, Slot: r.Slot, Err: fmt.Errorf("%w: a copy that is not exported is a snapshot: its slot must start with %q", ErrInvalid, c.v.prefix+SnapshotInfix)}
	case r.Size < 0:
		return &Error{Op: op, Slot: r.Slot, Err: fmt.Errorf("%w: size %d", ErrInvalid, r.Size)}
	}
	fp, err := c.v.filePath(r.FilePath, r.Slot)
	if err != nil {
		return &Error{Op: op, Slot: r.Slot, Err: err}
	}
	r.FilePath = fp
	if r.Export {
		if err := firstErr(validPort(r.Port), validNQN(r.NQN)); err != nil {
			return &Error{Op: op, Slot: r.Slot, Err: err}
		}
	}
	cmd, err := cmdCopy(r)
	if err != nil {
		return &Error{Op: op, Slot: r.Slot, Err: err}
	}
	return c.write(ctx, op, r.Slot, cmd)
}

// cmdCopy builds the copy-from command of validated values.
func cmdCopy(r CopyRequest) (string, error) {
	src, err := findSlot(r.Source)
	if err != nil {
		return "", err
	}
	fp, err := quoteValid(r.FilePath)
	if err != nil {
		return "", err
	}
	slot, err := quoteValid(r.Slot)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("/disk add type=file copy-from=" + src + " file-path=" + fp + " slot=" + slot)
	if r.Size > 0 {
		b.WriteString(" file-size=" + strconv.FormatInt(r.Size, 10))
	}
	b.WriteString(" mount-filesystem=no")
	if r.Export {
		nqn, err := quoteValid(r.NQN)
		if err != nil {
			return "", err
		}
		acl, err := allowHostsArg(r.SetAllowHosts, r.AllowHosts)
		if err != nil {
			return "", err
		}
		b.WriteString(" nvme-tcp-export=yes nvme-tcp-server-port=" + strconv.Itoa(r.Port) + " nvme-tcp-server-nqn=" + nqn + acl)
	}
	return b.String(), nil
}
