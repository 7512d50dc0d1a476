package reconcile

import (
	"fmt"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// Describe says what an action does, in one line. It stays with the
// types, not in views: apply's verification names what the live state
// still needs with it, and the views print the same sentence.
func Describe(a Action) string {
	switch a.Kind {
	case KindCreate:
		return fmt.Sprintf("create disk %s: %s file %s, export %s port %d", a.Slot, size(a.Size), a.FilePath, a.NQN, a.Port) + admits(a)
	case KindFixExport:
		return fmt.Sprintf("fix export of disk %s: %s port %d", a.Slot, a.NQN, a.Port) + admits(a)
	case KindGrow:
		if a.Size < a.FromSize {
			return fmt.Sprintf("shrink disk %s: %s -> %s", a.Slot, size(a.FromSize), size(a.Size))
		}
		return fmt.Sprintf("grow disk %s: %s -> %s", a.Slot, size(a.FromSize), size(a.Size))
	case KindDelete:
		return fmt.Sprintf("delete disk %s and its file %s (%s)", a.Slot, a.FilePath, size(a.Size))
	case KindRemoveFile:
		return fmt.Sprintf("remove leftover file %s", a.FilePath)
	case KindCreateSnapshot:
		return fmt.Sprintf("snapshot volume %s into disk %s: %s file %s, not exported", a.Source, a.Slot, size(a.Size), a.FilePath)
	case KindCreateFrom:
		grow := ""
		if a.FromSize > 0 && a.Size > a.FromSize {
			grow = fmt.Sprintf(" grown from %s", size(a.FromSize))
		}
		return fmt.Sprintf("create disk %s from %s %s: %s%s file %s, export %s port %d", a.Slot, a.SourceKind, a.Source, size(a.Size), grow,
			a.FilePath, a.NQN, a.Port) + admits(a)
	case KindDeleteSnapshot:
		return fmt.Sprintf("delete snapshot %s and its file %s (%s)", a.Slot, a.FilePath, size(a.Size))
	case KindConnect:
		return fmt.Sprintf("connect %s at %s:%d (%s)", a.NQN, a.Address, a.Port, timeoutsOf(a.Timeouts))
	case KindSetTimeouts:
		return fmt.Sprintf("set timeouts of %s: %s -> %s", a.Controller, effective(a.FromTimeouts), effective(a.Timeouts))
	case KindRescan:
		return fmt.Sprintf("rescan %s (namespace grows to %s)", a.Controller, size(a.Size))
	case KindReconnect:
		return fmt.Sprintf("reconnect %s to %s at %s:%d (%s)", a.Controller, a.NQN, a.Address, a.Port, timeoutsOf(a.Timeouts))
	case KindDisconnect:
		return fmt.Sprintf("disconnect %s (%s)", a.Controller, a.NQN)
	case KindDisconnectOrphan:
		return fmt.Sprintf("disconnect orphan %s (%s)", a.Controller, a.NQN)
	case KindBlocked:
		w := a
		w.Kind = a.Wanted
		return "would " + Describe(w)
	}
	return string(a.Kind)
}

func size(n int64) string { return spec.Quantity{Bytes: n}.String() }

// admits names the hosts a create or fix-export admits, when it sets them.
func admits(a Action) string {
	if !a.SetAllowHosts {
		return ""
	}
	return ", admits " + fmtAllowHosts(a.AllowHosts)
}

// effective shows timeouts as the kernel holds them, so that an in-place
// change reads as what really changes.
func effective(t *fabric.Timeouts) string {
	if t == nil {
		return "kernel defaults"
	}
	return fmtTimeouts(t.Effective())
}

func timeoutsOf(t *fabric.Timeouts) string {
	if t == nil {
		return "kernel defaults"
	}
	return fmtTimeouts(*t)
}
