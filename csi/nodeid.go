package csi

import (
	"fmt"
	"strings"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

// MaxNodeIDLen is the longest node id NodeGetInfo reports: Kubernetes
// refuses a CSINode whose nodeID is longer than 192 bytes (256 only with
// an opt-in), and CSI allows 256.
const MaxNodeIDLen = 192

// nodeIDSep joins a node's name and its host NQN in a node id. Neither a
// node name nor an NQN may hold it.
const nodeIDSep = "@"

// NodeIDFor is the node id the node plugin reports: "<name>@<host NQN>", so
// that the controller learns a new node's NQN from ControllerPublish alone
// (no hosts: entry needed). When that would be longer than MaxNodeIDLen,
// or the NQN is unknown, it is the plain name, and the node must then be
// declared under hosts: in the base state.
func NodeIDFor(name, hostNQN string) string {
	if hostNQN == "" {
		return name
	}
	id := name + nodeIDSep + hostNQN
	if len(id) > MaxNodeIDLen {
		return name
	}
	return id
}

// parseNodeID splits a node id into the node's name and its host NQN (""
// for a plain name). It checks both by the state file's rules, so nothing
// unvalidated reaches the layer.
func parseNodeID(id string) (name, hostNQN string, err error) {
	name, hostNQN, _ = strings.Cut(id, nodeIDSep)
	if !validNodeID(name) {
		return "", "", fmt.Errorf("node id %q is not one this driver's node plugin reports (<node name> or <node name>@<host NQN>)", id)
	}
	if hostNQN == "" {
		if strings.Contains(id, nodeIDSep) {
			return "", "", fmt.Errorf("node id %q has an empty host NQN after %q", id, nodeIDSep)
		}
		return name, "", nil
	}
	// The state's own validation, exactly as the layer will be checked.
	probe := &spec.State{Hosts: map[string]spec.Host{name: {HostNQN: hostNQN}}}
	if _, err := spec.EncodeLayer("node id "+id, probe); err != nil {
		return "", "", fmt.Errorf("node id %q does not carry a valid host NQN: %w", id, err)
	}
	return name, hostNQN, nil
}

// publishedIDs are the node ids a volume attached to hosts is published
// to: each host's name and, when the host's NQN is known, the id a node
// plugin of this version reports for it (NodeIDFor). CSI lets
// published_node_ids hold ids the CO does not know, and a CO whose node
// registered with either form finds its own.
func publishedIDs(st *spec.State, hosts []string) []string {
	var out []string
	for _, h := range hosts {
		out = append(out, h)
		if id := NodeIDFor(h, st.Hosts[h].HostNQN); id != h {
			out = append(out, id)
		}
	}
	return out
}
