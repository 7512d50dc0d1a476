package views

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/reconcile"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// The golden plan and status are made by reconcile.Diff and BuildStatus
// from the same state and live inventory as reconcile's own tests, so the
// goldens also show what the planner decides.

const baseYAML = `apiVersion: rds-reconcile/v1
kind: State
target:
  address: 10.0.0.1
  nvmePort: 4420
  basePath: pool/vols
  nqnPrefix: "nqn.2000-02.com.mikrotik:"
  slotPrefix: t-
defaults:
  connection: {ctrlLossTmo: -1, reconnectDelay: 5, keepAliveTmo: 0}
  retry: {attempts: 3, initialDelay: 1ms, maxDelay: 5ms, multiplier: 2, jitter: 0.1}
policy: {orphans: disconnect}
hosts:
  node-a: {hostNQN: "nqn.2014-08.org.nvmexpress:uuid:a"}
  node-b: {hostNQN: "nqn.2014-08.org.nvmexpress:uuid:b"}
`

const (
	nqnP = "nqn.2000-02.com.mikrotik:"
	gi   = int64(1 << 30)
)

var defTimeouts = fabric.Timeouts{CtrlLossTmo: -1, ReconnectDelay: 5, KeepAliveTmo: 0}

func state(t *testing.T, volumes string) *spec.State {
	t.Helper()
	src := baseYAML
	if strings.TrimSpace(volumes) != "" {
		src += "volumes:\n" + volumes
	}
	st, err := spec.LoadBytes("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("load state: %v\n%s", err, src)
	}
	return st
}

func disk(slot string, size int64) rds.Disk {
	return rds.Disk{Slot: slot, Type: "file", FilePath: "pool/vols/" + slot + ".img", Size: size, Export: true, Port: 4420, NQN: nqnP + slot}
}

func ctrl(name, slot string) fabric.Controller {
	return fabric.Controller{Name: name, SubsysNQN: nqnP + slot, Transport: "tcp", TrAddr: "10.0.0.1", TrSvcID: "4420",
		HostNQN: "nqn.2014-08.org.nvmexpress:uuid:a", State: "live", Timeouts: defTimeouts.Effective(),
		Namespaces: []fabric.Namespace{{Name: name + "n1", Device: "/dev/" + name + "n1", Size: 1 << 30}}}
}

func mounted(c fabric.Controller) fabric.Controller {
	c.Namespaces = slices.Clone(c.Namespaces)
	c.Namespaces[0].InUse, c.Namespaces[0].InUseBy = true, "mounted on /data"
	return c
}

// goldenPlan has one action of each mark, drift and notes.
func goldenPlan(t *testing.T) *reconcile.Plan {
	st := state(t, `  - {name: t-a, size: 1Gi, attachments: [node-a]}
  - {name: t-b, state: absent}
  - {name: t-c, size: 2Gi, attachments: [node-a], connection: {ctrlLossTmo: 600}}
  - {name: t-d, size: 1Gi, attachments: [node-a], connection: {keepAliveTmo: 15}}
  - {name: t-e, size: 512Mi}
`)
	// Another RDS exports a volume of the same name under the default prefix.
	otherTarget := ctrl("nvme5", "t-orphan")
	otherTarget.TrAddr = "10.0.0.2"
	off := disk("t-e", gi)
	off.Export = false
	obs := &reconcile.Observed{Fabric: true, RDS: &rds.Inventory{
		Disks: []rds.Disk{disk("t-b", gi), disk("t-c", gi), disk("t-d", gi), off, disk("t-old", gi)},
	}, Controllers: []fabric.Controller{ctrl("nvme0", "t-b"), ctrl("nvme1", "t-c"),
		ctrl("nvme2", "t-d"), mounted(ctrl("nvme3", "t-gone")), ctrl("nvme4", "t-orphan"), otherTarget}}
	p := reconcile.Diff(st, obs, "node-a", reconcile.Full(false))
	p.Revision = "abc1234+dirty"
	p.CreatedAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p.Files = []string{"state.yaml"}
	return p
}

// goldenStatus has a volume connected and mounted, one missing, an orphan.
func goldenStatus(t *testing.T) *reconcile.Status {
	st := state(t, `  - {name: t-a, size: 1Gi, attachments: [node-a]}
  - {name: t-b, size: 1Gi, attachments: [node-a]}
`)
	s := reconcile.BuildStatus(st, &reconcile.Observed{Fabric: true, RDS: &rds.Inventory{Disks: []rds.Disk{disk("t-a", gi)}},
		Controllers: []fabric.Controller{mounted(ctrl("nvme0", "t-a")), ctrl("nvme4", "t-orphan")}}, "node-a")
	s.Revision = "abc1234"
	s.Time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return s
}

// droppedErr is a dropped SSH connection, as the rds client reports it
// (whether it is retried is apply's business, not the view's).
var droppedErr = &rds.Error{Op: "fake", Err: rds.ErrConnection}

// goldenResult is an apply of goldenPlan: a grow failed after 3 attempts,
// the rescan after it skipped, the rest done.
func goldenResult(t *testing.T) *reconcile.Result {
	p := goldenPlan(t)
	res := &reconcile.Result{Duration: 1234 * time.Millisecond, Blocked: 2}
	for i, a := range p.Actions {
		if a.Kind == reconcile.KindBlocked {
			continue
		}
		ar := reconcile.ActionResult{Action: a, Duration: time.Duration(i+1) * 7 * time.Millisecond, Attempts: 1}
		switch a.Kind {
		case reconcile.KindGrow:
			ar.Attempts, ar.Err = 3, droppedErr
			res.Failed++
		case reconcile.KindRescan:
			ar = reconcile.ActionResult{Action: a, Skipped: true, SkipReason: "an earlier step (grow) of volume t-c failed"}
			res.Skipped++
		default:
			res.Succeeded++
		}
		res.Actions = append(res.Actions, ar)
	}
	return res
}
