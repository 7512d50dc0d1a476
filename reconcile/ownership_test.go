package reconcile

import (
	"strings"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/rds"
)

// TestOwnershipTable is the table of docs/reconcile.md "Ownership": a
// controller is this state's only when every test passes.
func TestOwnershipTable(t *testing.T) {
	st := state(t, volA) // target 10.0.0.1:4420, prefix nqn...mikrotik:t-
	base := func(mod func(*fabric.Controller)) fabric.Controller {
		c := ctrl("nvme0", "t-a", defTimeouts)
		if mod != nil {
			mod(&c)
		}
		return c
	}
	handMade := disk("t-hand", gi)
	handMade.FilePath = "elsewhere/t-hand.img"
	otherNQN := disk("t-custom", gi)
	otherNQN.NQN = nqnP + "t-custom-x" // a disk of basePath exported under a name of its own
	undeclared := disk("t-old", gi)
	inv := &rds.Inventory{Disks: []rds.Disk{disk("t-a", gi), handMade, otherNQN, undeclared}}
	cases := []struct {
		name  string
		c     fabric.Controller
		noRDS bool
		why   string // "" = owned
	}{
		{"declared volume at the target", base(nil), false, ""},
		{"undeclared managed disk (an orphan) is ours", base(func(c *fabric.Controller) { c.SubsysNQN = nqnP + "t-old" }), false, ""},
		{"no disk on the RDS any more (an orphan) is ours", base(func(c *fabric.Controller) { c.SubsysNQN = nqnP + "t-gone" }), false, ""},
		{"the same address written the same way", base(func(c *fabric.Controller) { c.TrAddr = "10.0.0.1" }), false, ""},
		{"rdma transport", base(func(c *fabric.Controller) { c.Transport = "rdma" }), false, ForeignTransport},
		{"pcie-like empty transport", base(func(c *fabric.Controller) { c.Transport = "" }), false, ForeignTransport},
		{"another vendor's NQN", base(func(c *fabric.Controller) { c.SubsysNQN = "nqn.2014-08.org.example:t-a" }), false, ForeignPrefix},
		{"default prefix, outside the slot prefix", base(func(c *fabric.Controller) { c.SubsysNQN = nqnP + "x-a" }), false, ForeignPrefix},
		{"another RDS, same default prefix", base(func(c *fabric.Controller) { c.TrAddr = "10.0.0.2" }), false, ForeignAddress},
		{"unknown address", base(func(c *fabric.Controller) { c.TrAddr = "" }), false, ForeignAddress},
		{"another port of this RDS", base(func(c *fabric.Controller) { c.TrSvcID = "4421" }), false, ForeignPort},
		{"disk made by hand outside basePath", base(func(c *fabric.Controller) { c.SubsysNQN = nqnP + "t-hand" }), false, ForeignDisk},
		{"disk whose NQN is not <prefix><slot>", base(func(c *fabric.Controller) { c.SubsysNQN = nqnP + "t-custom-x" }), false, ForeignDisk},
		{"RDS not observed (node mode): address and port decide", base(func(c *fabric.Controller) { c.SubsysNQN = nqnP + "t-hand" }), true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obs := &Observed{Fabric: true, RDS: inv}
			if tc.noRDS {
				obs.RDS = nil
			}
			owned, why := ownerOf(st, obs).classify(tc.c)
			if owned != (tc.why == "") || why != tc.why {
				t.Errorf("classify = %v %q, want owned=%v %q", owned, why, tc.why == "", tc.why)
			}
		})
	}
}

func TestOwnershipIPv6(t *testing.T) {
	st := state(t, volA)
	st.Target.Address = "fd00::1"
	c := ctrl("nvme0", "t-a", defTimeouts)
	c.TrAddr = "fd00:0:0:0:0:0:0:1"
	if owned, why := ownerOf(st, &Observed{Fabric: true}).classify(c); !owned {
		t.Errorf("fd00::1 written out in full: foreign (%s)", why)
	}
}

// TestStatusFollowsTheScope: status judged with --allow-mass-detach shows
// the disconnect as progressing, not as blocked by mass-detach.
func TestStatusFollowsTheScope(t *testing.T) {
	st := state(t, `  - {name: t-a, size: 1Gi, attachments: [node-b]}
`)
	obs := &Observed{Fabric: true, RDS: &rds.Inventory{Disks: []rds.Disk{disk("t-a", gi)}},
		Controllers: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)}}
	if got := BuildStatus(st, obs, "node-a").Volumes[0].Condition; got != ConditionBlocked {
		t.Errorf("default scope: condition %s, want Blocked (mass-detach)", got)
	}
	sc := Full(false)
	sc.AllowMassDetach = true
	if got := BuildStatusIn(st, obs, "node-a", sc).Volumes[0].Condition; got != ConditionProgressing {
		t.Errorf("with AllowMassDetach: condition %s, want Progressing", got)
	}
}

// TestPlanDuringAnOutage: a controller the kernel is reconnecting gets no
// action, but the plan says so instead of "matches the desired state".
func TestPlanDuringAnOutage(t *testing.T) {
	st := state(t, volA)
	c := ctrl("nvme0", "t-a", fabric.Timeouts{CtrlLossTmo: 600, ReconnectDelay: 5})
	c.State = "connecting"
	p := Diff(st, &Observed{Fabric: true, RDS: &rds.Inventory{Disks: []rds.Disk{disk("t-a", gi)}},
		Controllers: []fabric.Controller{c}}, "node-a", Full(false))
	if p.HasChanges() || len(p.Reconnecting) != 1 {
		t.Fatalf("actions %q, reconnecting %+v", summarize(p), p.Reconnecting)
	}
	// views prints it (TestPlanTextDuringAnOutage there).
	r := p.Reconnecting[0]
	if got := r.Volume + " (" + r.Controller + ") is " + r.State + ": " + r.Reason; !strings.Contains(got,
		"t-a (nvme0) is connecting: the kernel is reconnecting every 5 s; it gives up 600 s after") {
		t.Errorf("reconnecting: %q", got)
	}
}
