package spec

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/go-playground/validator/v10"
)

// Limits from the NVMe base specification and RouterOS.
const (
	MaxNQNLen        = 223 // NVMe NQN limit, bytes
	MaxVolumeNameLen = 63  // DNS-1123 label
	maxHostNameLen   = 253
	maxBasePathLen   = 200
)

var (
	dnsLabelRE   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	slotPrefixRE = regexp.MustCompile(`^[a-z0-9][-a-z0-9]*$`)
	hostNameRE   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)
	dnsNameRE    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)
	basePathRE   = regexp.MustCompile(`^/?[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$`)
	nqnRE        = regexp.MustCompile(`^nqn\.[A-Za-z0-9._:-]+$`)
	nqnPrefixRE  = regexp.MustCompile(`^nqn\.[A-Za-z0-9._:-]*[:.-]$`)
	envNameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// checker collects validation errors against the merged state and maps
// them back to files through merged.where.
type checker struct {
	m    *merged
	errs Errors
}

func (c *checker) add(path, format string, args ...any) {
	file, p, local := c.m.where(path)
	c.errs = append(c.errs, Error{File: file, Line: p.line, Col: p.col, Path: local, Msg: fmt.Sprintf(format, args...)})
}

// metachar returns the first character of s that a shell or the RouterOS
// command line would interpret (quotes, escapes, variables, separators,
// brackets, whitespace, control or non-ASCII characters).
func metachar(s string) (rune, bool) {
	for _, r := range s {
		if strings.ContainsRune("\"'\\$;[]{}`", r) || unicode.IsSpace(r) || unicode.IsControl(r) || r > unicode.MaxASCII {
			return r, true
		}
	}
	return 0, false
}

// safe reports a metacharacter in a value that can reach a command line.
func (c *checker) safe(path, s string) bool {
	if r, bad := metachar(s); bad {
		c.add(path, "contains %q, which a shell or RouterOS would interpret; remove it", r)
		return false
	}
	return true
}

// validateState checks the merged state. complete means a whole state for
// Load (cross references checked); false checks one Store layer alone.
func validateState(st *State, m *merged, complete bool) Errors {
	c := &checker{m: m}
	c.tags(st)
	if t := st.Target; t != nil {
		c.target(t)
	}
	if d := st.Defaults; d != nil {
		c.retry(d.Retry)
		c.connection("defaults.connection", d.Connection)
	}
	for i, v := range st.Volumes {
		c.connection(fmt.Sprintf("volumes[%d].connection", i), v.Connection)
	}
	for name, h := range st.Hosts {
		path := "hosts." + name
		if len(name) > maxHostNameLen || !hostNameRE.MatchString(name) {
			c.add(path, "host name %q must be letters, digits, '.', '_' or '-' (at most %d), as --host gives it", clip(name), maxHostNameLen)
		}
		if h.HostNQN != "" && len(h.HostNQN) <= MaxNQNLen && !nqnRE.MatchString(h.HostNQN) {
			c.add(path+".hostNQN", "%q is not an NQN: it must start with \"nqn.\" and hold only letters, digits, '.', ':', '_' or '-' (see /etc/nvme/hostnqn on the host)", clip(h.HostNQN))
		}
	}
	c.volumes(st, complete)
	c.snapshots(st, complete)
	return c.errs
}

// Upper bounds of the retry policy. Apply waits out the delays between
// the tries of an action inline, so each bound caps how long one failing
// action can hold a pass (and the run loop).
const (
	MaxRetryAttempts   = 100
	MaxRetryDelay      = time.Hour
	MaxRetryMultiplier = 10
)

// MaxConnectionTimeout bounds ctrlLossTmo, reconnectDelay and keepAliveTmo
// (seconds) to a week, as the CSI StorageClass parameters are. The kernel
// takes any 32-bit int for the first two and sends keep_alive_tmo in
// milliseconds in a 32-bit field (wrapping past 49 days); a week or more
// is a typo (milliseconds for seconds), and ctrlLossTmo -1 already means
// forever.
const MaxConnectionTimeout = 7 * 24 * 3600

func (c *checker) retry(r Retry) {
	const p = "defaults.retry."
	if r.Attempts > MaxRetryAttempts {
		c.add(p+"attempts", "must be at most %d, got %d: apply tries an action this many times before it gives up, so more only holds the pass longer on an action that keeps failing", MaxRetryAttempts, r.Attempts)
	}
	if r.InitialDelay.Duration <= 0 {
		c.add(p+"initialDelay", "must be a positive duration, e.g. 1s")
	} else if r.InitialDelay.Duration > MaxRetryDelay {
		c.add(p+"initialDelay", "must be at most 1h, got %s: apply waits between the tries of an action, holding the pass that long", r.InitialDelay)
	}
	switch {
	case r.MaxDelay.Duration <= 0:
		c.add(p+"maxDelay", "must be a positive duration, e.g. 30s")
	case r.MaxDelay.Duration > MaxRetryDelay:
		c.add(p+"maxDelay", "must be at most 1h, got %s: apply waits between the tries of an action, holding the pass that long", r.MaxDelay)
	case r.MaxDelay.Duration < r.InitialDelay.Duration && r.InitialDelay.Duration <= MaxRetryDelay:
		c.add(p+"maxDelay", "is %s, shorter than initialDelay %s; raise it or lower initialDelay", r.MaxDelay, r.InitialDelay)
	}
	if r.Multiplier > MaxRetryMultiplier {
		c.add(p+"multiplier", "must be at most %d, got %g: a larger factor jumps from initialDelay to maxDelay after one try; lower maxDelay instead", MaxRetryMultiplier, r.Multiplier)
	}
}

// connection checks the upper bounds of the timeouts (the lower ones are
// struct tags).
func (c *checker) connection(path string, cn Connection) {
	for _, f := range []struct {
		name, hint string
		v          *int
	}{
		{"ctrlLossTmo", "; -1 reconnects forever", cn.CtrlLossTmo},
		{"reconnectDelay", "", cn.ReconnectDelay},
		{"keepAliveTmo", "", cn.KeepAliveTmo},
	} {
		if f.v != nil && *f.v > MaxConnectionTimeout {
			c.add(path+"."+f.name, "must be at most %d seconds (a week), got %d: more is most likely milliseconds written for seconds%s",
				MaxConnectionTimeout, *f.v, f.hint)
		}
	}
}

// tags runs the validator/v10 struct tags and turns their errors into
// messages that say what to write instead.
func (c *checker) tags(st *State) {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string { return yamlName(f) })
	err := v.Struct(st)
	var ves validator.ValidationErrors
	if !errors.As(err, &ves) {
		return
	}
	for _, fe := range ves {
		c.add(validatorPath(fe.Namespace()), "%s", tagMessage(fe))
	}
}

// validatorPath turns "State.hosts[node-a].hostNQN" into "hosts.node-a.hostNQN"
// and "State.volumes[0].state" into "volumes[0].state".
func validatorPath(ns string) string {
	_, ns, _ = strings.Cut(ns, ".")
	if rest, ok := strings.CutPrefix(ns, "hosts["); ok {
		name, tail, _ := strings.Cut(rest, "]")
		return "hosts." + name + tail
	}
	return ns
}

// fieldHints say what a number means, for range errors.
var fieldHints = map[string]string{
	"ctrlLossTmo":    "must be -1 (reconnect forever) or a number of seconds >= 0",
	"reconnectDelay": "must be at least 1 (seconds between reconnect attempts)",
	"keepAliveTmo":   "must be a number of seconds >= 0 (0 keeps the kernel default)",
	"nvmePort":       "must be a TCP port from 1 to 65535 (NVMe/TCP normally uses 4420)",
	"attempts":       "must be at least 1 (the number of tries, the first included)",
	"multiplier":     "must be at least 1 (2 doubles the delay after each failed try)",
	"jitter":         "must be between 0 and 1 (0.1 spreads each delay by up to 10%)",
}

func tagMessage(fe validator.FieldError) string {
	switch fe.Tag() {
	case "required":
		return "is required"
	case "oneof":
		return fmt.Sprintf("must be one of %s, got %q", strings.ReplaceAll(fe.Param(), " ", ", "), clip(fmt.Sprint(fe.Value())))
	case "min", "max", "gte", "lte":
		if h, ok := fieldHints[fe.Field()]; ok {
			return fmt.Sprintf("%s, got %v", h, reflect.Indirect(reflect.ValueOf(fe.Value())))
		}
		if fe.Kind() == reflect.String {
			return fmt.Sprintf("is %d bytes long; the limit is %s", len(fmt.Sprint(fe.Value())), fe.Param())
		}
		return fmt.Sprintf("failed %s=%s, got %s", fe.Tag(), fe.Param(), clip(fmt.Sprint(fe.Value())))
	}
	return fmt.Sprintf("failed the %q check", fe.Tag())
}

func (c *checker) host(path, h string) {
	if !c.safe(path, h) {
		return
	}
	if net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")) != nil {
		return
	}
	if len(h) > maxHostNameLen || !dnsNameRE.MatchString(h) {
		c.add(path, "%q is neither an IP address nor a DNS name", clip(h))
	}
}

func (c *checker) target(t *Target) {
	if t.Address != "" {
		if strings.Contains(t.Address, ":") && net.ParseIP(t.Address) == nil {
			c.add("target.address", "%q: give the address only; the port goes in nvmePort", clip(t.Address))
		} else {
			c.host("target.address", t.Address)
		}
	}
	if b := t.BasePath; b != "" && c.safe("target.basePath", b) {
		switch {
		case len(b) > maxBasePathLen:
			c.add("target.basePath", "is %d bytes; keep it under %d", len(b), maxBasePathLen)
		case !basePathRE.MatchString(b):
			c.add("target.basePath", "%q must be a clean folder path such as storage-pool/volumes: letters, digits, '.', '_', '-' and single '/' between parts, no trailing '/'", clip(b))
		case slices.ContainsFunc(strings.Split(strings.TrimPrefix(b, "/"), "/"), func(p string) bool { return p == "." || p == ".." }):
			c.add("target.basePath", "%q must not contain '.' or '..' parts; write the folder out", clip(b))
		}
	}
	if p := t.NQNPrefix; c.safe("target.nqnPrefix", p) {
		if len(p) >= MaxNQNLen || !nqnPrefixRE.MatchString(p) {
			c.add("target.nqnPrefix", "%q must look like %q: start with \"nqn.\", hold only letters, digits, '.', ':', '_' or '-', and end with ':', '-' or '.'", clip(p), DefaultNQNPrefix)
		}
	}
	if p := t.SlotPrefix; p != "" && c.safe("target.slotPrefix", p) {
		if !validSlotPrefix(p) {
			c.add("target.slotPrefix", "%q must be lowercase letters, digits and '-', start with a letter or digit, and be shorter than %d", clip(p), MaxVolumeNameLen)
		}
	}
	c.ssh(&t.SSH)
}

func (c *checker) ssh(s *SSH) {
	if *s == (SSH{Timeout: s.Timeout}) {
		return // no ssh section: commands that need the RDS say so
	}
	const p = "target.ssh."
	if s.Address == "" {
		c.add(p+"address", "is required: the RouterOS SSH address, e.g. 10.0.0.1:22")
	} else if host, port, err := net.SplitHostPort(s.Address); err != nil {
		c.add(p+"address", "%q must be host:port, e.g. 10.0.0.1:22", clip(s.Address))
	} else {
		c.host(p+"address", host)
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			c.add(p+"address", "port %q must be a number from 1 to 65535", clip(port))
		}
	}
	if s.User == "" {
		c.add(p+"user", "is required: the RouterOS user to log in as")
	} else if c.safe(p+"user", s.User) && len(s.User) > 64 {
		c.add(p+"user", "is %d bytes; RouterOS user names are shorter", len(s.User))
	}
	if s.PrivateKeyFile == "" && s.PasswordEnv == "" && s.PasswordFile == "" {
		c.add(p+"user", "no way to log in: set privateKeyFile, passwordEnv or passwordFile")
	}
	if s.PasswordEnv != "" && s.PasswordFile != "" {
		c.add(p+"passwordFile", "set passwordEnv or passwordFile, not both")
	}
	if s.PassphraseEnv != "" && s.PassphraseFile != "" {
		c.add(p+"passphraseFile", "set passphraseEnv or passphraseFile, not both")
	}
	if (s.PassphraseEnv != "" || s.PassphraseFile != "") && s.PrivateKeyFile == "" {
		c.add(p+"privateKeyFile", "a key passphrase is set but no privateKeyFile; add the key or drop the passphrase")
	}
	for _, e := range []struct{ field, val string }{{"passwordEnv", s.PasswordEnv}, {"passphraseEnv", s.PassphraseEnv}} {
		if e.val != "" && !envNameRE.MatchString(e.val) {
			c.add(p+e.field, "%q is not an environment variable name (letters, digits, '_', not starting with a digit)", clip(e.val))
		}
	}
	switch {
	case s.KnownHostsFile == "" && !s.InsecureIgnoreHostKey:
		c.add(p+"knownHostsFile", "is required to check the RDS host key (or set insecureIgnoreHostKey: true, for labs only)")
	case s.KnownHostsFile != "" && s.InsecureIgnoreHostKey:
		c.add(p+"insecureIgnoreHostKey", "contradicts knownHostsFile; remove one of them")
	}
	if s.Timeout.Duration <= 0 {
		c.add(p+"timeout", "must be a positive duration, e.g. 10s")
	}
	if d := s.CommandTimeout.Duration; d < 0 || d > MaxSSHCommandTimeout {
		c.add(p+"commandTimeout", "%v must be a positive duration of at most %v (leave it out for three times timeout)", d, MaxSSHCommandTimeout)
	}
	if n := s.MaxSessions; n < 0 || n > MaxSSHSessions {
		c.add(p+"maxSessions", "%d must be from 1 to %d (leave it out for %d)", n, MaxSSHSessions, DefaultSSHMaxSessions)
	}
}

func (c *checker) volumes(st *State, complete bool) {
	var nqnPrefix, slotPrefix string
	if st.Target != nil {
		nqnPrefix, slotPrefix = st.Target.NQNPrefix, st.Target.SlotPrefix
	}
	for i, v := range st.Volumes {
		path := fmt.Sprintf("volumes[%d]", i)
		switch {
		case v.Name == "":
			// reported by the required tag
		case len(v.Name) > MaxVolumeNameLen || !dnsLabelRE.MatchString(v.Name):
			c.add(path+".name", "%q must be a DNS-1123 label: at most %d lowercase letters, digits and '-', starting and ending with a letter or digit", clip(v.Name), MaxVolumeNameLen)
		case validSlotPrefix(slotPrefix) && !strings.HasPrefix(v.Name, slotPrefix):
			c.add(path+".name", "%q must start with the slotPrefix %q: only such disks are managed; rename it to %q", clip(v.Name), slotPrefix, clip(slotPrefix+v.Name))
		case (slotPrefix == "" || validSlotPrefix(slotPrefix)) && IsSnapshotName(v.Name, slotPrefix):
			c.add(path+".name", "%q starts with %q, which names snapshots; rename the volume", clip(v.Name), slotPrefix+SnapshotInfix)
		case st.Target != nil && len(nqnPrefix)+len(v.Name) > MaxNQNLen:
			c.add(path+".name", "the NQN %q would be %d bytes, over the limit of %d; shorten the name or nqnPrefix", clip(nqnPrefix+v.Name), len(nqnPrefix)+len(v.Name), MaxNQNLen)
		}
		switch v.State {
		case Present:
			switch {
			case v.Size.Bytes == 0:
				c.add(path+".size", "is required for a present volume, e.g. size: 20Gi")
			case v.Size.Bytes < 0 || v.Size.Bytes%SizeAlign != 0 || v.Size.Bytes > MaxVolumeSize:
				c.add(path+".size", "%s", sizeError(v.Size.Bytes))
			}
		case Absent:
			if v.Size.Bytes != 0 {
				c.add(path+".size", "an absent volume is deleted; remove size")
			}
			if len(v.Attachments) > 0 {
				c.add(path+".attachments", "an absent volume is deleted and cannot be attached; remove attachments")
			}
			if v.Protect {
				c.add(path+".protect", "a protected volume is never deleted; remove protect: true first, then set state: absent")
			}
		}
		hosts := slices.Compact(slices.Sorted(slices.Values(v.Attachments)))
		switch {
		case len(hosts) > 1 && v.State != Absent && v.Access != AccessMultiWriterBlock:
			c.add(path+".attachments", "%d hosts (%s) would mount one filesystem at once, which corrupts it: "+
				"attach to one host at a time, or declare access: multi-writer-block for a raw block device "+
				"whose writers coordinate (a cluster filesystem, shared LVM)", len(hosts), clip(strings.Join(hosts, ", ")))
		case v.Access == AccessMultiWriterBlock && v.FSType != "":
			c.add(path+".fsType", "a multi-writer-block volume is a raw block device shared by several hosts; remove fsType")
		}
		seen := map[string]bool{}
		for j, h := range v.Attachments {
			ap := fmt.Sprintf("%s.attachments[%d]", path, j)
			switch {
			case seen[h]:
				c.add(ap, "host %q is listed twice; keep one", clip(h))
			case complete && !hostDeclared(st, h):
				c.add(ap, "host %q is not declared; add it under hosts with its hostNQN%s", clip(h), declaredHosts(st))
			}
			seen[h] = true
		}
	}
}

func declaredHosts(st *State) string {
	names := st.HostNames()
	if len(names) == 0 {
		return ""
	}
	return " (declared: " + clip(strings.Join(names, ", ")) + ")"
}

// validSlotPrefix reports whether p can begin a volume name; an invalid one
// is reported once on target.slotPrefix, not again on every volume.
func validSlotPrefix(p string) bool {
	return p != "" && len(p) < MaxVolumeNameLen && slotPrefixRE.MatchString(p)
}

func hostDeclared(st *State, name string) bool {
	_, ok := st.Hosts[name]
	return ok
}
