package rds

import (
	"slices"
	"strings"
)

// allowHostsSep separates host NQNs in nvme-tcp-server-allow-host-name.
//
// UNVERIFIED: MikroTik documents the field as a string of "hostnames
// allowed to connect" (the /disk reference) without saying how several are
// written, and no public tool or capture sets it (docs/rds.md). A comma is
// how RouterOS prints and takes its list properties; whether this field is
// such a list, or takes one name only, is unknown. A single-host volume
// sends one NQN and does not depend on it. FormatAllowHosts and
// ParseAllowHosts are the only places that know the format.
const allowHostsSep = ","

// NoHostNQN is the allow list entry of a disk that admits no host: an
// empty allow-host-name admits every host on RouterOS, so "closed" names a
// host NQN no host can have (under the reserved .invalid domain, RFC 2606).
const NoHostNQN = "nqn.2026-12.invalid.rds-reconcile:no-host"

// FormatAllowHosts validates every host NQN (validNQN, as every value on a
// command line) and writes the value of nvme-tcp-server-allow-host-name:
// the NQNs sorted, without duplicates, joined by allowHostsSep; "" for
// none (every host).
func FormatAllowHosts(hosts []string) (string, error) {
	for _, h := range hosts {
		if err := validNQN(h); err != nil {
			return "", err
		}
	}
	return strings.Join(NormalizeAllowHosts(hosts), allowHostsSep), nil
}

// ParseAllowHosts splits a printed nvme-tcp-server-allow-host-name into
// host NQNs, sorted and without duplicates; nil for "" (every host).
func ParseAllowHosts(s string) []string {
	var hs []string
	for _, h := range strings.Split(s, allowHostsSep) {
		if h = strings.TrimSpace(h); h != "" {
			hs = append(hs, h)
		}
	}
	return NormalizeAllowHosts(hs)
}

// NormalizeAllowHosts returns hosts sorted, without duplicates or empty
// entries; nil when none is left.
func NormalizeAllowHosts(hosts []string) []string {
	var hs []string
	for _, h := range hosts {
		if h != "" {
			hs = append(hs, h)
		}
	}
	slices.Sort(hs)
	hs = slices.Compact(hs)
	if len(hs) == 0 {
		return nil
	}
	return hs
}

// allowHostsArg is " nvme-tcp-server-allow-host-name=<quoted list>" when
// set is true, else "". The hosts are validated either way: a request
// carrying a bad host NQN builds no command at all.
func allowHostsArg(set bool, hosts []string) (string, error) {
	v, err := FormatAllowHosts(hosts)
	if err != nil {
		return "", err
	}
	if !set {
		return "", nil
	}
	q, err := quoteValid(v)
	if err != nil {
		return "", err
	}
	return " nvme-tcp-server-allow-host-name=" + q, nil
}
