package reconcile

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

type diffCase struct {
	name     string
	volumes  string
	disks    []rds.Disk
	files    []rds.File
	ctrls    []fabric.Controller
	host     string // default node-a
	scope    *Scope // default Full(false)
	noRDS    bool   // CSI node mode
	noFabric bool   // CSI controller mode
	mod      func(*spec.State)
	// want lists "kind volume" per action, in plan order; blocked ones as
	// "blocked:<wanted> volume".
	want []string
	// wantDrift lists "volume where field" per drift item (nil: not checked).
	wantDrift []string
	// rule is the safety rule of the first blocked action, if any.
	rule string
}

const volA = `  - {name: t-a, size: 1Gi, attachments: [node-a]}
`

func mounted(c fabric.Controller) fabric.Controller {
	c.Namespaces = slices.Clone(c.Namespaces)
	c.Namespaces[0].InUse, c.Namespaces[0].InUseBy = true, "mounted on /data"
	return c
}

// protect marks a volume protected after loading: spec validation already
// refuses absent + protect, the diff must refuse it too.
func protect(name string) func(*spec.State) {
	return func(st *spec.State) { st.Volume(name).Protect = true }
}

func withState(c fabric.Controller, s fabric.State) fabric.Controller { c.State = s; return c }

func diffCases() []diffCase {
	tmoKato := fabric.Timeouts{CtrlLossTmo: -1, ReconnectDelay: 5, KeepAliveTmo: 15}
	tmoLoss := fabric.Timeouts{CtrlLossTmo: 600, ReconnectDelay: 5, KeepAliveTmo: 0}
	exportOff := disk("t-a", gi)
	exportOff.Export = false
	mountFS := disk("t-a", gi)
	mountFS.MountFilesystem = true
	wrongNQN := disk("t-a", gi)
	wrongNQN.NQN = "nqn.2000-02.com.mikrotik:other"
	wrongAddr := ctrl("nvme0", "t-a", defTimeouts)
	wrongAddr.TrAddr = "10.9.9.9"
	otherPort := ctrl("nvme3", "t-a", defTimeouts)
	otherPort.TrSvcID = "4421"
	otherRDS := ctrl("nvme4", "t-old", defTimeouts)
	otherRDS.TrAddr = "10.0.0.2"
	handMade := disk("t-hand", gi)
	handMade.FilePath = "other/t-hand.img"
	otherHostNQN := ctrl("nvme0", "t-a", defTimeouts)
	otherHostNQN.HostNQN = "nqn.2014-08.org.nvmexpress:uuid:other"
	foreign := ctrl("nvme5", "x", defTimeouts)
	foreign.SubsysNQN = "nqn.2014-08.org.example:foreign"
	foreignDisk := disk("t-z", gi)
	foreignDisk.NQN = "nqn.2014-08.org.example:t-z"
	smallNS := ctrl("nvme0", "t-a", defTimeouts)
	smallNS.Namespaces[0].Size = gi / 2
	noNS := ctrl("nvme0", "t-a", defTimeouts)
	noNS.Namespaces = []fabric.Namespace{} // non-nil: the fake fills nil ones
	return []diffCase{
		{name: "live controller lost its namespace", volumes: volA, disks: []rds.Disk{disk("t-a", gi)},
			ctrls: []fabric.Controller{noNS}, want: []string{"rescan t-a"}, wantDrift: []string{"t-a host namespace"}},
		{name: "export off and namespace gone", volumes: volA, disks: []rds.Disk{exportOff},
			ctrls: []fabric.Controller{noNS}, want: []string{"fix-export t-a", "rescan t-a"}},
		{name: "create and connect", volumes: volA, want: []string{"create t-a", "connect t-a"}},
		{name: "converged", volumes: volA, disks: []rds.Disk{disk("t-a", gi)},
			ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)}, want: nil, wantDrift: []string{}},
		{name: "export off", volumes: volA, disks: []rds.Disk{exportOff},
			ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)},
			want:  []string{"fix-export t-a"}, wantDrift: []string{"t-a rds nvme-tcp-export"}},
		{name: "mount-filesystem on", volumes: volA, disks: []rds.Disk{mountFS},
			ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)},
			want:  []string{"fix-export t-a"}, wantDrift: []string{"t-a rds mount-filesystem"}},
		{name: "wrong NQN then connect", volumes: volA, disks: []rds.Disk{wrongNQN},
			want: []string{"fix-export t-a", "connect t-a"}, wantDrift: []string{"t-a rds nqn"}},
		{name: "grow and rescan", volumes: `  - {name: t-a, size: 2Gi, attachments: [node-a]}
`, disks: []rds.Disk{disk("t-a", gi)}, ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)},
			want: []string{"grow t-a", "rescan t-a"}},
		{name: "rescan after an interrupted grow", volumes: volA, disks: []rds.Disk{disk("t-a", gi)},
			ctrls: []fabric.Controller{smallNS}, want: []string{"rescan t-a"}},
		{name: "shrink refused", volumes: `  - {name: t-a, size: 512Mi, attachments: [node-a]}
`, disks: []rds.Disk{disk("t-a", gi)}, ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)},
			want: []string{"blocked:grow t-a"}, rule: RuleShrink},
		{name: "absent deleted", volumes: `  - {name: t-a, state: absent}
`, disks: []rds.Disk{disk("t-a", gi)}, want: []string{"delete t-a"}},
		{name: "absent protected", volumes: `  - {name: t-a, state: absent}
`, mod: protect("t-a"), disks: []rds.Disk{disk("t-a", gi)}, want: []string{"blocked:delete t-a"}, rule: RuleProtected},
		{name: "absent leftover file", volumes: `  - {name: t-a, state: absent}
`, files: []rds.File{{Name: "pool/vols/t-a.img", Size: gi}}, want: []string{"remove-file t-a"}},
		{name: "absent and connected: disconnect before delete", volumes: `  - {name: t-a, state: absent}
`, disks: []rds.Disk{disk("t-a", gi)}, ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)},
			want: []string{"disconnect t-a", "delete t-a"}},
		{name: "absent and mounted: disconnect and delete blocked", volumes: `  - {name: t-a, state: absent}
`, disks: []rds.Disk{disk("t-a", gi)}, ctrls: []fabric.Controller{mounted(ctrl("nvme0", "t-a", defTimeouts))},
			want: []string{"blocked:disconnect t-a", "blocked:delete t-a"}, rule: RuleInUse},
		{name: "attached elsewhere: disconnect here", volumes: `  - {name: t-a, size: 1Gi, attachments: [node-b]}
  - {name: t-b, size: 1Gi, attachments: [node-a]}
`, disks: []rds.Disk{disk("t-a", gi), disk("t-b", gi)}, ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts), ctrl("nvme1", "t-b", defTimeouts)},
			want: []string{"disconnect t-a"}},
		{name: "mass detach: nothing attached here holds every disconnect", volumes: `  - {name: t-a, size: 1Gi, attachments: [node-b]}
`, disks: []rds.Disk{disk("t-a", gi)}, ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts), ctrl("nvme1", "t-old", defTimeouts)},
			want: []string{"blocked:disconnect t-a", "blocked:disconnect-orphan t-old"}, rule: RuleMassDetach},
		{name: "mass detach: an empty state holds orphan disconnects", volumes: "",
			ctrls: []fabric.Controller{ctrl("nvme1", "t-old", defTimeouts)},
			want:  []string{"blocked:disconnect-orphan t-old"}, rule: RuleMassDetach},
		{name: "mass detach: more than half at once is held", volumes: volA + `  - {name: t-b, size: 1Gi}
  - {name: t-c, size: 1Gi}
`, disks: []rds.Disk{disk("t-a", gi), disk("t-b", gi), disk("t-c", gi)},
			ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts), ctrl("nvme1", "t-b", defTimeouts), ctrl("nvme2", "t-c", defTimeouts)},
			want:  []string{"blocked:disconnect t-b", "blocked:disconnect t-c"}, rule: RuleMassDetach},
		{name: "mass detach: allowed by the scope", volumes: "", scope: &Scope{Orphans: true, AllowMassDetach: true},
			ctrls: []fabric.Controller{ctrl("nvme1", "t-old", defTimeouts)}, want: []string{"disconnect-orphan t-old"}},
		{name: "mass detach: a scoped run is not guarded", volumes: `  - {name: t-a, size: 1Gi}
`, scope: &Scope{Volumes: []string{"t-a"}}, disks: []rds.Disk{disk("t-a", gi)},
			ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)}, want: []string{"disconnect t-a"}},
		{name: "mass detach: the held disconnect holds its prune", volumes: volA, scope: &Scope{Prune: true, Orphans: true},
			disks: []rds.Disk{disk("t-a", gi), disk("t-b", gi), disk("t-c", gi)},
			ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts), ctrl("nvme1", "t-b", defTimeouts), ctrl("nvme2", "t-c", defTimeouts)},
			want:  []string{"blocked:disconnect-orphan t-b", "blocked:disconnect-orphan t-c", "blocked:delete t-b", "blocked:delete t-c"}, rule: RuleMassDetach},
		{name: "timeouts in place", volumes: `  - {name: t-a, size: 1Gi, attachments: [node-a], connection: {ctrlLossTmo: 600}}
`, disks: []rds.Disk{disk("t-a", gi)}, ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)},
			want: []string{"set-timeouts t-a"}, wantDrift: []string{"t-a host timeouts"}},
		{name: "timeouts rounded by the kernel match", volumes: `  - {name: t-a, size: 1Gi, attachments: [node-a], connection: {ctrlLossTmo: 598}}
`, disks: []rds.Disk{disk("t-a", gi)}, ctrls: []fabric.Controller{ctrl("nvme0", "t-a", tmoLoss)}, want: nil},
		{name: "keep-alive change reconnects", volumes: `  - {name: t-a, size: 1Gi, attachments: [node-a], connection: {keepAliveTmo: 15}}
`, disks: []rds.Disk{disk("t-a", gi)}, ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)},
			want: []string{"reconnect t-a"}},
		{name: "keep-alive change on a mounted volume is blocked", volumes: `  - {name: t-a, size: 1Gi, attachments: [node-a]}
`, disks: []rds.Disk{disk("t-a", gi)}, ctrls: []fabric.Controller{mounted(ctrl("nvme0", "t-a", tmoKato))},
			want: []string{"blocked:reconnect t-a"}, rule: RuleInUse},
		{name: "another address is another target: connect ours, keep theirs", volumes: volA, disks: []rds.Disk{disk("t-a", gi)},
			ctrls: []fabric.Controller{wrongAddr}, want: []string{"connect t-a"}, wantDrift: []string{}},
		{name: "another port is another target", volumes: volA, disks: []rds.Disk{disk("t-a", gi)},
			ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts), otherPort}, want: nil},
		{name: "same NQN at two addresses, ours sorts second: nothing to do", volumes: volA, disks: []rds.Disk{disk("t-a", gi)},
			ctrls: []fabric.Controller{wrongAddr, ctrl("nvme1", "t-a", defTimeouts)}, want: nil, wantDrift: []string{}},
		{name: "another RDS's orphan-looking controller is foreign", volumes: volA, disks: []rds.Disk{disk("t-a", gi)},
			ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts), otherRDS}, want: nil, wantDrift: []string{}},
		{name: "a controller of a hand-made disk on this RDS is foreign", volumes: volA,
			disks: []rds.Disk{disk("t-a", gi), handMade}, ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts), ctrl("nvme1", "t-hand", defTimeouts)},
			want: nil, wantDrift: []string{}},
		{name: "duplicate with the wrong host NQN goes, the right one stays", volumes: volA, disks: []rds.Disk{disk("t-a", gi)},
			ctrls: []fabric.Controller{otherHostNQN, ctrl("nvme1", "t-a", defTimeouts)}, want: []string{"disconnect t-a"}},
		{name: "dead controller reconnects", volumes: volA, disks: []rds.Disk{disk("t-a", gi)},
			ctrls: []fabric.Controller{withState(ctrl("nvme0", "t-a", defTimeouts), "dead")}, want: []string{"reconnect t-a"}},
		{name: "connecting controller is left to the kernel", volumes: volA, disks: []rds.Disk{disk("t-a", gi)},
			ctrls: []fabric.Controller{withState(ctrl("nvme0", "t-a", fabric.Timeouts{CtrlLossTmo: 5}), "connecting")}, want: nil},
		{name: "deleting controller: connect anew", volumes: volA, disks: []rds.Disk{disk("t-a", gi)},
			ctrls: []fabric.Controller{withState(ctrl("nvme0", "t-a", defTimeouts), "deleting")}, want: []string{"connect t-a"}},
		{name: "duplicate controller disconnected", volumes: volA, disks: []rds.Disk{disk("t-a", gi)},
			ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts), ctrl("nvme1", "t-a", defTimeouts)},
			want:  []string{"disconnect t-a"}},
		{name: "orphan disconnected", volumes: volA, disks: []rds.Disk{disk("t-a", gi)},
			ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts), ctrl("nvme1", "t-old", defTimeouts)},
			want:  []string{"disconnect-orphan t-old"}, wantDrift: []string{"t-old host controller"}},
		{name: "a controller outside the slot prefix is no orphan", volumes: volA, disks: []rds.Disk{disk("t-a", gi)},
			ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts), ctrl("nvme1", "other-x", defTimeouts)},
			want:  nil, wantDrift: []string{}},
		{name: "orphan in use blocked", volumes: volA, disks: []rds.Disk{disk("t-a", gi)},
			ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts), mounted(ctrl("nvme1", "t-old", defTimeouts))},
			want:  []string{"blocked:disconnect-orphan t-old"}, rule: RuleInUse},
		{name: "orphan reported under policy report", volumes: volA, disks: []rds.Disk{disk("t-a", gi)},
			ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts), ctrl("nvme1", "t-old", defTimeouts)},
			mod:   func(st *spec.State) { st.Policy.Orphans = spec.OrphansReport }, want: nil},
		{name: "orphan on an undeclared host is blocked", volumes: volA, host: "node-x", disks: []rds.Disk{disk("t-a", gi)},
			ctrls: []fabric.Controller{ctrl("nvme1", "t-old", defTimeouts)},
			want:  []string{"blocked:connect t-a", "blocked:disconnect-orphan t-old"}, rule: RuleUnknownHost},
		{name: "a wrong --host on a fresh host says so: every dropped connect is blocked", volumes: volA, host: "node-x",
			disks: []rds.Disk{disk("t-a", gi)}, want: []string{"blocked:connect t-a"}, rule: RuleUnknownHost},
		{name: "declared volumes stay connected on an undeclared host", volumes: volA, host: "node-x", disks: []rds.Disk{disk("t-a", gi)},
			ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)},
			want:  []string{"blocked:disconnect t-a"}, rule: RuleUnknownHost},
		{name: "foreign controller untouched", volumes: volA, disks: []rds.Disk{disk("t-a", gi)},
			ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts), foreign}, want: nil},
		{name: "undeclared disk kept without prune", volumes: volA, disks: []rds.Disk{disk("t-a", gi), disk("t-old", gi)},
			ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)}, want: nil},
		{name: "undeclared disk pruned", volumes: volA, scope: &Scope{Prune: true, Orphans: true},
			disks: []rds.Disk{disk("t-a", gi), disk("t-old", gi)}, files: []rds.File{{Name: "pool/vols/t-gone.img"}},
			ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)},
			want:  []string{"remove-file t-gone", "delete t-old"}},
		{name: "protected volumes survive prune", volumes: volA + `  - {name: t-p, size: 1Gi, protect: true}
  - {name: t-q, state: absent}
`, mod: protect("t-q"), scope: &Scope{Prune: true, Orphans: true},
			disks: []rds.Disk{disk("t-a", gi), disk("t-p", gi), disk("t-q", gi)},
			ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)},
			want:  []string{"blocked:delete t-q"}, rule: RuleProtected},
		{name: "not fully managed disk never pruned", volumes: volA, scope: &Scope{Prune: true, Orphans: true},
			disks: []rds.Disk{disk("t-a", gi), foreignDisk}, ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)}, want: nil},
		{name: "empty state never prunes", volumes: "", scope: &Scope{Prune: true, Orphans: true},
			disks: []rds.Disk{disk("t-a", gi)}, want: []string{"blocked:delete t-a"}, rule: RuleEmptyPrune},
		{name: "leftover file of a present volume is not overwritten", volumes: volA,
			files: []rds.File{{Name: "pool/vols/t-a.img", Size: gi}}, want: []string{"blocked:create t-a"}, rule: RuleLeftover},
		{name: "scoped plan ignores other volumes and orphans", volumes: volA + `  - {name: t-b, size: 1Gi, attachments: [node-a]}
`, scope: &Scope{Volumes: []string{"t-b"}}, ctrls: []fabric.Controller{ctrl("nvme1", "t-old", defTimeouts)},
			want: []string{"create t-b", "connect t-b"}},
		{name: "node mode: host side only", volumes: volA, noRDS: true, disks: []rds.Disk{disk("t-a", gi)},
			want: []string{"connect t-a"}},
		{name: "controller mode: RDS side only", volumes: volA, noFabric: true, want: []string{"create t-a"}},
		{name: "ordering across volumes and phases", volumes: `  - {name: t-a, size: 1Gi, attachments: [node-a]}
  - {name: t-b, state: absent}
  - {name: t-c, size: 2Gi, attachments: [node-a]}
`, disks: []rds.Disk{disk("t-b", gi), disk("t-c", gi)}, ctrls: []fabric.Controller{ctrl("nvme0", "t-b", defTimeouts),
			ctrl("nvme1", "t-c", defTimeouts), ctrl("nvme2", "t-old", defTimeouts)},
			want: []string{"create t-a", "grow t-c", "connect t-a", "rescan t-c", "disconnect t-b", "disconnect-orphan t-old", "delete t-b"}},
	}
}

func (c diffCase) setup(t testing.TB) (*spec.State, *fakeRDS, *fakeFabric, *Reconciler, string, Scope) {
	t.Helper()
	st := state(t, c.volumes)
	if c.mod != nil {
		c.mod(st)
	}
	fr := newFakeRDS()
	for _, d := range c.disks {
		fr.addDisk(d)
	}
	for _, f := range c.files {
		fr.files[f.Name] = f.Size
	}
	ff := newFakeFabric(fr)
	for _, ct := range c.ctrls {
		ff.add(ct)
	}
	ff.next = 10
	host := c.host
	if host == "" {
		host = "node-a"
	}
	sc := Full(false)
	if c.scope != nil {
		sc = *c.scope
	}
	opts := Options{RDS: fr, Fabric: ff, Host: host}
	if c.noRDS {
		opts.RDS = nil
	}
	if c.noFabric {
		opts.Fabric = nil
	}
	return st, fr, ff, New(opts), host, sc
}

func summarize(p *Plan) []string {
	var got []string
	for _, a := range p.Actions {
		if a.Kind == KindBlocked {
			got = append(got, "blocked:"+string(a.Wanted)+" "+a.Volume)
		} else {
			got = append(got, string(a.Kind)+" "+a.Volume)
		}
	}
	return got
}

func TestDiff(t *testing.T) {
	for _, c := range diffCases() {
		t.Run(c.name, func(t *testing.T) {
			st, _, _, r, _, sc := c.setup(t)
			p, err := r.Plan(context.Background(), st, sc)
			if err != nil {
				t.Fatal(err)
			}
			if got := summarize(p); !slices.Equal(got, c.want) {
				t.Fatalf("actions:\n got %q\nwant %q", got, c.want)
			}
			for _, a := range p.Actions {
				if a.Reason == "" {
					t.Errorf("%s %s has no reason", a.Kind, a.Volume)
				}
				if a.Kind == KindBlocked && c.rule != "" && a.Blocked != c.rule {
					t.Errorf("blocked by %q, want %q", a.Blocked, c.rule)
				}
				if a.Kind == KindConnect || a.Kind == KindReconnect {
					// Seed truth 1: timeouts are set on every connect.
					if a.Timeouts == nil || a.HostNQN == "" {
						t.Errorf("%s %s without timeouts or host NQN", a.Kind, a.Volume)
					}
				}
			}
			if c.wantDrift != nil {
				var got []string
				for _, d := range p.Drift {
					got = append(got, d.Volume+" "+d.Where+" "+d.Field)
				}
				if got == nil {
					got = []string{}
				}
				if !slices.Equal(got, c.wantDrift) {
					t.Errorf("drift:\n got %q\nwant %q", got, c.wantDrift)
				}
			}
		})
	}
}

// TestApplyIdempotent: for every scenario, apply against the fakes and plan
// again: only the blocked actions remain (safety rule 4).
func TestApplyIdempotent(t *testing.T) {
	for _, c := range diffCases() {
		t.Run(c.name, func(t *testing.T) {
			st, fr, ff, r, _, sc := c.setup(t)
			ctx := context.Background()
			p, err := r.Plan(ctx, st, sc)
			if err != nil {
				t.Fatal(err)
			}
			res, err := r.Apply(ctx, st, p, ApplyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Failed > 0 {
				t.Fatalf("apply failed: %v", res.Err())
			}
			again, err := r.Plan(ctx, st, sc)
			if err != nil {
				t.Fatal(err)
			}
			var blocked []string
			for _, s := range summarize(p) {
				if strings.HasPrefix(s, "blocked:") {
					blocked = append(blocked, s)
				}
			}
			// A blocked disconnect keeps its volume's delete from running
			// (dependency), so that delete is planned again.
			var want []string
			for _, s := range summarize(p) {
				if strings.HasPrefix(s, "blocked:") || (res.Skipped > 0 && slices.ContainsFunc(res.Actions, func(ar ActionResult) bool {
					return ar.Skipped && string(ar.Action.Kind)+" "+ar.Action.Volume == s
				})) {
					want = append(want, s)
				}
			}
			if got := summarize(again); !slices.Equal(got, want) {
				t.Fatalf("plan after apply:\n got %q\nwant %q (ops rds %q fabric %q)", got, want, fr.ops, ff.ops)
			}
			_ = blocked
		})
	}
}
