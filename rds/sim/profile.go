package sim

import (
	"strconv"
	"strings"
)

// NewestVersion is the RouterOS release the simulator plays by default.
const NewestVersion = "7.21"

// Versions are the RouterOS releases whose profiles the tests exercise, one
// per behaviour change: 7.12 (no :serialize), 7.16 (:serialize without
// json.no-string-conversion), 7.20 (no-string-conversion, NQN still
// nvme-tcp-name), 7.21 (nvme-tcp-server-nqn).
var Versions = []string{"7.12", "7.16", "7.20", NewestVersion}

// profile is what a RouterOS release can do, as far as the simulator plays
// it. Sources: MikroTik changelog 7.13 (:serialize), the scripting manual
// (options=json.no-string-conversion, 7.17), Ansible community.routeros
// _api_data.py (/disk nvme-tcp-server-nqn from 7.21, nvme-tcp-name before).
type profile struct {
	serialize    bool // :serialize to=json (7.13+)
	noStringConv bool // :serialize options=json.no-string-conversion (7.17+)
	serverNQN    bool // /disk nvme-tcp-server-nqn (7.21+), else nvme-tcp-name
}

// profileOf builds the profile of a version string ("7.16.2"); json false
// takes :serialize away whatever the version. An unreadable version plays
// the newest release.
func profileOf(version string, json bool) profile {
	major, minor, ok := majorMinor(version)
	if !ok {
		major, minor, _ = majorMinor(NewestVersion)
	}
	at := func(ma, mi int) bool { return major > ma || major == ma && minor >= mi }
	p := profile{serialize: at(7, 13), noStringConv: at(7, 17), serverNQN: at(7, 21)}
	if !json {
		p.serialize, p.noStringConv = false, false
	}
	return p
}

func majorMinor(v string) (int, int, bool) {
	parts := strings.SplitN(strings.TrimSpace(v), ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	ma, err1 := strconv.Atoi(parts[0])
	end := 0
	for end < len(parts[1]) && parts[1][end] >= '0' && parts[1][end] <= '9' {
		end++
	}
	mi, err2 := strconv.Atoi(parts[1][:end])
	return ma, mi, err1 == nil && err2 == nil
}

// nqnProperty is the /disk property holding an export's NQN.
func (p profile) nqnProperty() string {
	if p.serverNQN {
		return "nvme-tcp-server-nqn"
	}
	return "nvme-tcp-name"
}

// numberLike reports whether :serialize without json.no-string-conversion
// would print s as a number: a decimal, optionally with a fraction and an
// exponent ("1234", "1e5", "-2.5").
func numberLike(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if digits() == 0 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// stringConverted is a number-like string as :serialize prints it without
// json.no-string-conversion: a float with six decimals.
func stringConverted(s string) string {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return jsonString(s)
	}
	return strconv.FormatFloat(f, 'f', 6, 64)
}

// knows reports whether the release has argument name of verb: the NQN
// property under the release's name only, json.no-string-conversion from
// 7.17. RouterOS answers an unknown argument with "expected end of
// command".
func (p profile) knows(verb, name string) bool {
	switch {
	case (verb == "add" || verb == "set") && (name == "nvme-tcp-server-nqn" || name == "nvme-tcp-name"):
		return name == p.nqnProperty()
	case verb == "serialize" && name == "options":
		return p.noStringConv
	}
	return true
}
