package reconcile

import (
	"slices"
	"strings"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// Export builds a desired state from what obs shows, so an existing setup
// can be adopted: target, defaults, policy and hosts come from base; one
// volume per fully managed RDS disk (slot prefix, <basePath>/<slot>.img,
// <nqnPrefix><slot>), attached to host when this host has a controller for
// it (at this target's address and port), with connection timeouts only where the live ones differ from the
// defaults. Planning the result against the same live state is empty.
func Export(base *spec.State, obs *Observed, host string) *spec.State {
	out := &spec.State{APIVersion: spec.APIVersion, Kind: spec.Kind, Target: base.Target, Defaults: base.Defaults,
		Policy: base.Policy, Hosts: map[string]spec.Host{}}
	for n, h := range base.Hosts {
		out.Hosts[n] = h
	}
	own := ownerOf(base, obs)
	defaults := toFabric(base.TimeoutsFor(nil))
	attached := false
	if obs.RDS != nil {
		for _, disk := range obs.RDS.Disks {
			if !managedDisk(base, disk) {
				continue
			}
			v := spec.Volume{Name: disk.Slot, Size: spec.Quantity{Bytes: disk.Size}}
			for _, c := range obs.Controllers {
				if ok, _ := own.classify(c); !ok || c.SubsysNQN != base.NQN(disk.Slot) || c.State == fabric.StateDeleting {
					continue // another target's controller is not an attachment here
				}
				v.Attachments = []string{host}
				attached = true
				if !defaults.Matches(c.Timeouts) {
					e := c.Timeouts.Effective()
					v.Connection = spec.Connection{CtrlLossTmo: &e.CtrlLossTmo, ReconnectDelay: &e.ReconnectDelay, KeepAliveTmo: &e.KeepAliveTmo}
				}
				break
			}
			out.Volumes = append(out.Volumes, v)
		}
	}
	if _, ok := out.Hosts[host]; attached && !ok {
		out.Hosts[host] = spec.Host{HostNQN: obs.HostNQN}
	}
	slices.SortFunc(out.Volumes, func(a, b spec.Volume) int { return strings.Compare(a.Name, b.Name) })
	return out
}
