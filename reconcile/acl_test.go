package reconcile

import (
	"context"
	"slices"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

const (
	hostNQNA = "nqn.2014-08.org.nvmexpress:uuid:a"
	hostNQNB = "nqn.2014-08.org.nvmexpress:uuid:b"
)

func exportACL(mode string) func(*spec.State) {
	return func(st *spec.State) { st.Policy.ExportACL = mode }
}

func allowing(d rds.Disk, hosts ...string) rds.Disk {
	d.AllowHosts = hosts
	return d
}

// aclCases are diff cases for policy.exportACL; TestACL runs them with
// TestDiff's checks and checks the allow list each RDS action sends.
func aclCases() []struct {
	diffCase
	allow map[string][]string // volume -> AllowHosts its create/fix-export sends
} {
	type c = struct {
		diffCase
		allow map[string][]string
	}
	volAB := `  - {name: t-a, size: 1Gi, attachments: [node-b]}
  - {name: t-b, size: 1Gi, attachments: [node-a]}
`
	return []c{
		{diffCase{name: "attached: create admits the attached host", volumes: volA, mod: exportACL(spec.ExportACLAttached),
			want: []string{"create t-a", "connect t-a"}}, map[string][]string{"t-a": {hostNQNA}}},
		{diffCase{name: "attached: converged", volumes: volA, mod: exportACL(spec.ExportACLAttached),
			disks: []rds.Disk{allowing(disk("t-a", gi), hostNQNA)}, ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)},
			wantDrift: []string{}}, nil},
		{diffCase{name: "attached: an open disk is drift, fixed in place", volumes: volA, mod: exportACL(spec.ExportACLAttached),
			disks: []rds.Disk{disk("t-a", gi)}, ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)},
			want: []string{"fix-export t-a"}, wantDrift: []string{"t-a rds allow-hosts"}}, map[string][]string{"t-a": {hostNQNA}}},
		{diffCase{name: "attached: attached nowhere is closed", volumes: `  - {name: t-a, size: 1Gi}
  - {name: t-b, size: 1Gi, attachments: [node-a]}
`, mod: exportACL(spec.ExportACLAttached),
			disks: []rds.Disk{allowing(disk("t-a", gi), hostNQNA), allowing(disk("t-b", gi), hostNQNA)},
			ctrls: []fabric.Controller{ctrl("nvme1", "t-b", defTimeouts)},
			want:  []string{"fix-export t-a"}, wantDrift: []string{"t-a rds allow-hosts"}}, map[string][]string{"t-a": {rds.NoHostNQN}}},
		// The attachment moved from node-a to node-b. On node-b the RDS
		// phase admits node-b before its connect (phase host).
		{diffCase{name: "attached: moved, the new host is admitted before it connects", volumes: volAB, host: "node-b",
			mod:   exportACL(spec.ExportACLAttached),
			disks: []rds.Disk{allowing(disk("t-a", gi), hostNQNA), allowing(disk("t-b", gi), hostNQNA)},
			want:  []string{"fix-export t-a", "connect t-a"}}, map[string][]string{"t-a": {hostNQNB}}},
		// On node-a the same list is planned (it depends on the state
		// only) and node-a's controller is disconnected in phase
		// host-detach.
		{diffCase{name: "attached: moved, the old host is dropped and disconnected", volumes: volAB,
			mod:   exportACL(spec.ExportACLAttached),
			disks: []rds.Disk{allowing(disk("t-a", gi), hostNQNA), allowing(disk("t-b", gi), hostNQNA)},
			ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts), ctrl("nvme1", "t-b", defTimeouts)},
			want:  []string{"fix-export t-a", "disconnect t-a"}}, map[string][]string{"t-a": {hostNQNB}}},
		{diffCase{name: "attached: multi-writer admits every attached host", volumes: `  - {name: t-a, size: 1Gi, access: multi-writer-block, attachments: [node-b, node-a]}
`, mod: exportACL(spec.ExportACLAttached),
			disks: []rds.Disk{allowing(disk("t-a", gi), hostNQNA)}, ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)},
			want: []string{"fix-export t-a"}}, map[string][]string{"t-a": {hostNQNA, hostNQNB}}},
		{diffCase{name: "open: a list is drift, emptied", volumes: volA, mod: exportACL(spec.ExportACLOpen),
			disks: []rds.Disk{allowing(disk("t-a", gi), hostNQNB)}, ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)},
			want: []string{"fix-export t-a"}, wantDrift: []string{"t-a rds allow-hosts"}}, map[string][]string{"t-a": nil}},
		{diffCase{name: "open: converged", volumes: volA, mod: exportACL(spec.ExportACLOpen),
			disks: []rds.Disk{disk("t-a", gi)}, ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)},
			wantDrift: []string{}}, nil},
		{diffCase{name: "unset: a list made by hand is left alone", volumes: volA,
			disks: []rds.Disk{allowing(disk("t-a", gi), hostNQNB)}, ctrls: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)},
			wantDrift: []string{}}, nil},
		{diffCase{name: "unset: create sends no list", volumes: volA, want: []string{"create t-a", "connect t-a"}}, map[string][]string{}},
	}
}

func TestACL(t *testing.T) {
	for _, c := range aclCases() {
		t.Run(c.name, func(t *testing.T) {
			st, _, _, r, _, sc := c.setup(t)
			ctx := context.Background()
			p, err := r.Plan(ctx, st, sc)
			if err != nil {
				t.Fatal(err)
			}
			if got := summarize(p); !slices.Equal(got, c.want) {
				t.Fatalf("actions:\n got %q\nwant %q", got, c.want)
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
			for _, a := range p.Actions {
				if a.Kind != KindCreate && a.Kind != KindFixExport {
					continue
				}
				want, managed := c.allow[a.Volume]
				if a.SetAllowHosts != managed || !slices.Equal(a.AllowHosts, want) {
					t.Errorf("%s %s sends allow list %v %q, want %v %q", a.Kind, a.Volume, a.SetAllowHosts, a.AllowHosts, managed, want)
				}
			}
			// Apply converges: the next plan is empty.
			if res, err := r.Apply(ctx, st, p, ApplyOptions{}); err != nil || res.Failed > 0 {
				t.Fatalf("apply: %v %v", err, res.Err())
			}
			again, err := r.Plan(ctx, st, sc)
			if err != nil {
				t.Fatal(err)
			}
			if !again.Empty() {
				t.Errorf("plan after apply: %q", summarize(again))
			}
		})
	}
}

// TestACLDriftText: the drift says what is wanted and what is there.
func TestACLDriftText(t *testing.T) {
	st := state(t, volA)
	st.Policy.ExportACL = spec.ExportACLAttached
	obs := &Observed{RDS: &rds.Inventory{Disks: []rds.Disk{allowing(disk("t-a", gi), hostNQNB)}}, Fabric: true,
		Controllers: []fabric.Controller{ctrl("nvme0", "t-a", defTimeouts)}}
	p := Diff(st, obs, "node-a", Full(false))
	if len(p.Drift) != 1 || p.Drift[0] != (Drift{Volume: "t-a", Where: "rds", Field: "allow-hosts", Want: hostNQNA, Got: hostNQNB}) {
		t.Fatalf("drift = %+v", p.Drift)
	}
	if got := Describe(p.Actions[0]); got != "fix export of disk t-a: "+nqnP+"t-a port 4420, admits "+hostNQNA {
		t.Errorf("Describe = %q", got)
	}
	obs.RDS.Disks[0].AllowHosts = nil
	st.Volumes[0].Attachments = nil
	p = Diff(st, obs, "node-a", Full(false))
	if len(p.Drift) != 1 || p.Drift[0].Want != "(no host: "+rds.NoHostNQN+")" || p.Drift[0].Got != "(any host)" {
		t.Fatalf("drift = %+v", p.Drift)
	}
}
