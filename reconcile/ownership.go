package reconcile

import (
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// Why a controller on this host is not this state's. Every MikroTik RDS
// uses the same default NQN prefix, so the prefix alone proves nothing: a
// controller is owned only when every test below passes (see
// docs/reconcile.md, "Ownership").
const (
	ForeignTransport = "transport is not tcp"
	ForeignPrefix    = "subsystem NQN is outside the managed prefix"
	ForeignAddress   = "transport address is not this state's target"
	ForeignPort      = "transport service id is not this state's NVMe port"
	ForeignDisk      = "the RDS lists its disk as not managed by this state"
	ForeignHost      = "its host NQN is another declared host's"
)

// ForeignController is a controller on this host that the state does not
// own: never disconnected, retuned or counted as a duplicate.
type ForeignController struct {
	Controller string `json:"controller"`
	NQN        string `json:"nqn"`
	Address    string `json:"address,omitempty"`
	Port       string `json:"port,omitempty"`
	State      string `json:"state,omitempty"`
	Why        string `json:"why"`
}

// owner decides ownership of controllers for one state, from facts only:
// fabric reports what the kernel shows, this decides what is ours.
type owner struct {
	prefix  string // managed NQN prefix (nqnPrefix + slotPrefix)
	address string
	port    int
	// byNQN: the RDS disks by their export NQN; nil when the RDS is not
	// observed (CSI node mode), then the disk test is skipped.
	byNQN map[string]rds.Disk
	st    *spec.State
	// others are the host NQNs of the declared hosts other than the one
	// planned for (forHost): a controller presenting one of them is that
	// host's. It only shows up here when two host identities share one
	// kernel (the e2e VM stands in for both nodes of a multi-writer-block
	// volume), and disconnecting it, or taking it for a duplicate, would
	// cut the other host off its volume.
	others map[string]bool
}

// forHost is o for a plan of host: the other declared hosts' controllers
// are theirs. This host's own declared NQN is never among them.
func (o owner) forHost(host string) owner {
	h, ok := o.st.Hosts[host]
	if !ok {
		return o // an undeclared host changes nothing; its plan says so
	}
	self := h.HostNQN
	for name, other := range o.st.Hosts {
		if name == host || other.HostNQN == "" || other.HostNQN == self {
			continue
		}
		if o.others == nil {
			o.others = map[string]bool{}
		}
		o.others[other.HostNQN] = true
	}
	return o
}

// ownerOf is the ownership rule of st's target for what obs shows.
func ownerOf(st *spec.State, obs *Observed) owner {
	o := owner{prefix: st.ManagedNQNPrefix(), port: spec.DefaultNVMePort, st: st}
	if st.Target != nil {
		o.address = st.Target.Address
		if st.Target.NVMePort != 0 {
			o.port = st.Target.NVMePort
		}
	}
	if obs.RDS != nil {
		o.byNQN = make(map[string]rds.Disk, len(obs.RDS.Disks)+len(obs.RDS.Exports))
		for _, d := range slices.Concat(obs.RDS.Exports, obs.RDS.Disks) {
			if d.NQN != "" {
				o.byNQN[d.NQN] = d
			}
		}
	}
	return o
}

// classify says whether c is owned and, when not, why. The checks run in
// the table's order so the reason is the first that fails.
func (o owner) classify(c fabric.Controller) (owned bool, why string) {
	switch {
	case c.Transport != "tcp":
		return false, ForeignTransport
	case !strings.HasPrefix(c.SubsysNQN, o.prefix) || o.prefix == "":
		return false, ForeignPrefix
	case !sameAddress(c.TrAddr, o.address):
		return false, ForeignAddress
	case c.TrSvcID != strconv.Itoa(o.port):
		return false, ForeignPort
	case c.HostNQN != "" && o.others[c.HostNQN]:
		return false, ForeignHost
	}
	if o.byNQN != nil {
		if d, ok := o.byNQN[c.SubsysNQN]; ok && !managedDisk(o.st, d) {
			return false, ForeignDisk
		}
	}
	return true, ""
}

// sameAddress compares transport addresses, IP addresses by value (the
// kernel may print an IPv6 address in another form than it was given). An
// empty address never matches: unknown is not ours.
func sameAddress(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	if a == b {
		return true
	}
	ia, ib := net.ParseIP(a), net.ParseIP(b)
	return ia != nil && ib != nil && ia.Equal(ib)
}

// managedDisk says whether disk is fully the state's: the slot prefix, the
// file <basePath>/<slot>.img and the NQN <nqnPrefix><slot>.
func managedDisk(st *spec.State, disk rds.Disk) bool {
	if st.Target != nil && st.Target.SlotPrefix != "" && !strings.HasPrefix(disk.Slot, st.Target.SlotPrefix) {
		return false
	}
	return disk.FilePath == st.FilePath(disk.Slot) && disk.NQN == st.NQN(disk.Slot)
}
