package rds

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/rds-reconcile/rds-reconcile/internal/retryable"
)

// RouterOS version profiles. The client reads the version once per
// connection (`/system resource print`) and builds its commands from the
// capability table below: JSON or detail reads, the NQN property's name,
// and, when RouterOS refuses a command, which feature the release lacks.

// RouterOSVersion is a release number such as 7.16.2.
type RouterOSVersion struct{ Major, Minor, Patch int }

func (v RouterOSVersion) String() string {
	if v.Patch == 0 {
		return fmt.Sprintf("%d.%d", v.Major, v.Minor)
	}
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// Less orders releases.
func (v RouterOSVersion) Less(o RouterOSVersion) bool {
	if v.Major != o.Major {
		return v.Major < o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor < o.Minor
	}
	return v.Patch < o.Patch
}

// ParseRouterOSVersion reads the number at the start of what RouterOS
// prints as its version: "7.16.2 (stable)", "7.21", "7.22beta3 (testing)",
// "7.21rc1". A pre-release counts as its release.
func ParseRouterOSVersion(s string) (RouterOSVersion, bool) {
	s = strings.TrimSpace(s)
	end := 0
	for end < len(s) && (s[end] >= '0' && s[end] <= '9' || s[end] == '.') {
		end++
	}
	parts := strings.Split(strings.TrimSuffix(s[:end], "."), ".")
	if len(parts) < 2 || len(parts) > 3 {
		return RouterOSVersion{}, false
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || v > 9999 {
			return RouterOSVersion{}, false
		}
		n[i] = v
	}
	return RouterOSVersion{n[0], n[1], n[2]}, n[0] > 0
}

// Capability is a RouterOS feature whose presence depends on the release.
type Capability int

const (
	// CapSerialize: `:serialize to=json` (RouterOS 7.13).
	CapSerialize Capability = iota + 1
	// CapJSONNoStringConversion: `:serialize ... options=json.no-string-conversion`
	// (7.17). Without it number-like strings (a slot "1e5") serialize as
	// floats, so the client reads JSON only where it exists.
	CapJSONNoStringConversion
	// CapServerNQN: the export's NQN is /disk nvme-tcp-server-nqn (7.21);
	// older releases call it nvme-tcp-name.
	CapServerNQN
	// CapFileDiskProperties: /disk file-path, file-size, file-offset and
	// mount-filesystem. Ansible's data lists them from 7.17; whether older
	// releases take them is unverified, so the client still sends them and
	// only uses this to explain a refusal.
	CapFileDiskProperties
)

// capabilityInfo is one row of the capability table.
type capabilityInfo struct {
	what   string          // for messages
	since  RouterOSVersion // first release that has it
	source string          // where the fact comes from
	// markers: text in a command that shows it needs the capability
	// (" name=" for a property).
	markers []string
	// hard: the client adapts its commands to it; soft: known from one
	// public source only, used to explain a refusal, never to refuse.
	hard bool
}

// capabilities is the one table of version-dependent behaviour.
var capabilities = map[Capability]capabilityInfo{
	CapSerialize: {what: ":serialize to=json", since: RouterOSVersion{7, 13, 0},
		source: `MikroTik changelog 7.13 ("console - added :serialize")`, markers: []string{":serialize"}, hard: true},
	CapJSONNoStringConversion: {what: ":serialize options=json.no-string-conversion", since: RouterOSVersion{7, 17, 0},
		source: "MikroTik scripting manual", markers: []string{"json.no-string-conversion"}, hard: true},
	CapServerNQN: {what: "/disk nvme-tcp-server-nqn", since: RouterOSVersion{7, 21, 0},
		source: "Ansible community.routeros _api_data.py", markers: []string{" nvme-tcp-server-nqn="}, hard: true},
	CapFileDiskProperties: {what: "/disk file-path, file-size and mount-filesystem", since: RouterOSVersion{7, 17, 0},
		source: "Ansible community.routeros _api_data.py", markers: []string{" file-path=", " file-size=", " mount-filesystem="}},
}

// Profile is what the client knows of one RDS's RouterOS release.
type Profile struct {
	// Raw is the version as /system resource prints it, "7.16.2 (stable)".
	Raw string `json:"raw"`
	// Version is Raw's release number; zero when Raw could not be read.
	Version RouterOSVersion `json:"-"`
	// Known: Raw held a release number.
	Known bool `json:"-"`
}

// ProfileOf builds the profile of a printed version.
func ProfileOf(raw string) Profile {
	v, ok := ParseRouterOSVersion(raw)
	return Profile{Raw: strings.TrimSpace(raw), Version: v, Known: ok}
}

// Has reports whether the release has c. An unreadable version is taken as
// the newest release for property names (RouterOS only adds releases), but
// JSON is never assumed: `print detail` parses on every release.
func (p Profile) Has(c Capability) bool {
	info, ok := capabilities[c]
	if !ok {
		return false
	}
	if !p.Known {
		return c != CapSerialize && c != CapJSONNoStringConversion
	}
	return !p.Version.Less(info.since)
}

// JSONReads reports whether reads use `:serialize to=json` with
// options=json.no-string-conversion (7.17+). On 7.13..7.16 :serialize
// exists but turns number-like strings into floats, so reads print detail.
func (p Profile) JSONReads() bool {
	return p.Has(CapSerialize) && p.Has(CapJSONNoStringConversion)
}

// NQNProperty is the /disk property holding an export's NQN.
func (p Profile) NQNProperty() string {
	if p.Has(CapServerNQN) {
		return "nvme-tcp-server-nqn"
	}
	return "nvme-tcp-name"
}

// String is "RouterOS 7.16.2 (stable)".
func (p Profile) String() string {
	if p.Raw == "" {
		return "RouterOS (version unknown)"
	}
	return "RouterOS " + p.Raw
}

// Adapt rewrites a command built with the newest property names for this
// release. Commands are built from validated values only (quoted, no '='
// in them), so " name=" can only be a property.
func (p Profile) Adapt(cmd string) string {
	if !p.Has(CapServerNQN) {
		cmd = strings.ReplaceAll(cmd, " nvme-tcp-server-nqn=", " "+p.NQNProperty()+"=")
	}
	return cmd
}

// needsProfile reports whether a write command carries a property whose
// name depends on the release, so the version must be known before it is
// sent.
func needsProfile(cmd string) bool {
	return uses(cmd, CapServerNQN)
}

// uses reports whether cmd carries one of c's markers.
func uses(cmd string, c Capability) bool {
	for _, m := range capabilities[c].markers {
		if strings.Contains(cmd, m) {
			return true
		}
	}
	return false
}

// ErrUnsupported: the RDS's RouterOS release lacks something a command
// needs. It wraps ErrRejected, so callers that test for a refusal still
// see one.
var ErrUnsupported = fmt.Errorf("%w: RouterOS release too old", ErrRejected)

// Require fails with ErrUnsupported, naming the release and what is
// needed, when the release lacks c.
func (p Profile) Require(c Capability) error {
	if p.Has(c) {
		return nil
	}
	info := capabilities[c]
	return fmt.Errorf("%w: %s on the RDS has no %s (needs RouterOS %s or later, per %s)",
		ErrUnsupported, p, info.what, info.since, info.source)
}

// explain turns RouterOS's refusal of cmd ("expected end of command",
// "bad command name") into a message naming the release and what it lacks
// that cmd uses, when the capability table knows of something. Other
// errors, and refusals on releases that have everything cmd uses, pass
// unchanged. cmd is the command as built, before Adapt.
func (p Profile) explain(cmd string, err error) error {
	var e *Error
	if !p.Known || !errors.As(err, &e) || !errors.Is(err, ErrRejected) {
		return err
	}
	low := strings.ToLower(e.Output)
	if !strings.Contains(low, "expected end of command") && !strings.Contains(low, "bad command name") {
		return err
	}
	var lacks []string
	for _, c := range []Capability{CapSerialize, CapJSONNoStringConversion, CapFileDiskProperties, CapServerNQN} {
		if !uses(cmd, c) || p.Has(c) {
			continue
		}
		info := capabilities[c]
		l := fmt.Sprintf("%s (RouterOS %s or later, per %s)", info.what, info.since, info.source)
		if c == CapServerNQN {
			l += "; the NQN was sent as " + p.NQNProperty()
		}
		lacks = append(lacks, l)
	}
	if len(lacks) == 0 {
		return err
	}
	out := *e
	// The explanation replaces the sentinel, not the verdict: a refusal
	// that was worth retrying stays so.
	out.Err = markIf(retryable.Is(e.Err), fmt.Errorf("%w: %s on the RDS refused the command (%s); it may lack %s; upgrade RouterOS",
		ErrUnsupported, p, strings.TrimSpace(e.Output), strings.Join(lacks, ", and ")))
	return &out
}
