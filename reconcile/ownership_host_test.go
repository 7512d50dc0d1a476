package reconcile

import (
	"fmt"
	"slices"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/rds"
)

// TestOtherHostsControllers: a controller presenting another declared
// host's NQN is that host's, never this host's volume controller, duplicate
// or orphan. Two host identities on one kernel is how the e2e VM stands in
// for both nodes of a multi-writer-block volume; a host NQN nobody declares
// is still this host's controller connected the wrong way (reconnected).
func TestOtherHostsControllers(t *testing.T) {
	const rwx = `  - {name: t-a, size: 1Gi, access: multi-writer-block, attachments: [%s]}
`
	mine := ctrl("nvme0", "t-a", defTimeouts) // host NQN uuid:a (node-a)
	theirs := ctrl("nvme1", "t-a", defTimeouts)
	theirs.HostNQN = "nqn.2014-08.org.nvmexpress:uuid:b" // node-b's
	undeclared := ctrl("nvme2", "t-a", defTimeouts)
	undeclared.HostNQN = "nqn.2014-08.org.nvmexpress:uuid:other"
	for _, tc := range []struct {
		name     string
		host     string
		attached string
		ctrls    []fabric.Controller
		orphans  bool
		want     []string // kind volume controller
		foreign  []string // controller why
	}{
		{"both hosts connected: nothing to do", "node-a", "node-a, node-b", []fabric.Controller{mine, theirs}, true,
			nil, []string{"nvme1 " + ForeignHost}},
		{"this host detached: only its own controller goes", "node-a", "node-b", []fabric.Controller{mine, theirs}, true,
			[]string{"disconnect t-a nvme0"}, []string{"nvme1 " + ForeignHost}},
		{"the other host detached: its controller is not an orphan here", "node-a", "node-a", []fabric.Controller{mine, theirs}, true,
			nil, []string{"nvme1 " + ForeignHost}},
		{"only the other host connected: connect beside it", "node-a", "node-a, node-b", []fabric.Controller{theirs}, false,
			[]string{"connect t-a "}, []string{"nvme1 " + ForeignHost}},
		{"planned for node-b, node-a's controller is node-a's", "node-b", "node-a, node-b", []fabric.Controller{mine, theirs}, true,
			nil, []string{"nvme0 " + ForeignHost}},
		{"an undeclared host NQN is still reconnected", "node-a", "node-a", []fabric.Controller{undeclared}, false,
			[]string{"reconnect t-a nvme2"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := state(t, fmt.Sprintf(rwx, tc.attached))
			obs := &Observed{Fabric: true, RDS: &rds.Inventory{Disks: []rds.Disk{disk("t-a", gi)}}, Controllers: tc.ctrls}
			p := Diff(st, obs, tc.host, Scope{Orphans: tc.orphans, AllowMassDetach: true})
			var got, foreign []string
			for _, a := range p.Actions {
				got = append(got, fmt.Sprintf("%s %s %s", a.Kind, a.Volume, a.Controller))
			}
			for _, f := range p.Foreign {
				foreign = append(foreign, f.Controller+" "+f.Why)
			}
			if !slices.Equal(got, tc.want) || !slices.Equal(foreign, tc.foreign) {
				t.Errorf("actions %q foreign %q, want %q and %q", got, foreign, tc.want, tc.foreign)
			}
		})
	}
}
