package rds

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Only values that pass these checks are ever put on a RouterOS command
// line; Quote is a second fence, not the first.
var (
	slotRe     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	prefixRe   = regexp.MustCompile(`^[a-z0-9-]*$`)
	pathRe     = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)
	nqnRe      = regexp.MustCompile(`^[A-Za-z0-9.:_-]+$`)
	maxSlotLen = 63
	maxNQNLen  = 223 // NVMe base specification limit
)

// Quote returns s as a RouterOS double-quoted string, escaping `\`, `"`,
// `$` (variable substitution) and `?` (console help). It rejects control
// characters and non-ASCII text, which RouterOS consoles mangle.
func Quote(s string) (string, error) {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return "", fmt.Errorf("%w: control character 0x%02x in value", ErrInvalid, c)
		case c >= 0x80:
			return "", fmt.Errorf("%w: non-ASCII byte 0x%02x in value", ErrInvalid, c)
		case c == '\\' || c == '"' || c == '$' || c == '?':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String(), nil
}

// quoteValid quotes a value that validation already restricted to safe
// characters; an error here would be a bug in validation.
func quoteValid(s string) (string, error) { return Quote(s) }

// validator holds the ownership boundaries from Config.
type validator struct {
	prefix string // slot prefix, "" = any
	base   string // base path without leading or trailing '/'
}

func (v validator) slot(s string) error {
	switch {
	case len(s) == 0 || len(s) > maxSlotLen:
		return fmt.Errorf("%w: slot %q must be 1..%d characters", ErrInvalid, clip(s), maxSlotLen)
	case !slotRe.MatchString(s):
		return fmt.Errorf("%w: slot %q must match %s", ErrInvalid, clip(s), slotRe)
	case !strings.HasPrefix(s, v.prefix):
		return fmt.Errorf("%w: slot %q is not managed (prefix %q)", ErrInvalid, s, v.prefix)
	}
	return nil
}

// filePath checks p is <base>/<slot>.img (a leading '/' is tolerated and
// dropped) and returns its normalized form.
func (v validator) filePath(p, slot string) (string, error) {
	p = strings.TrimPrefix(p, "/")
	switch {
	case !pathRe.MatchString(p):
		return "", fmt.Errorf("%w: file path %q has characters outside [A-Za-z0-9._/-]", ErrInvalid, clip(p))
	case path.Clean(p) != p || strings.Contains(p, ".."):
		return "", fmt.Errorf("%w: file path %q is not clean", ErrInvalid, p)
	case path.Dir(p) != v.base:
		return "", fmt.Errorf("%w: file path %q is not directly under %q", ErrInvalid, p, v.base)
	case path.Base(p) != slot+".img":
		return "", fmt.Errorf("%w: file path %q must end with /%s.img", ErrInvalid, p, slot)
	}
	return p, nil
}

// leftoverFile checks a file path for RemoveFile: under base, named
// <managed slot>.img.
func (v validator) leftoverFile(p string) (string, error) {
	p = strings.TrimPrefix(p, "/")
	stem := strings.TrimSuffix(path.Base(p), ".img")
	if err := v.slot(stem); err != nil {
		return "", err
	}
	return v.filePath(p, stem)
}

func validNQN(n string) error {
	if n == "" || len(n) > maxNQNLen || !nqnRe.MatchString(n) {
		return fmt.Errorf("%w: NQN %q must be 1..%d characters of [A-Za-z0-9.:_-]", ErrInvalid, clip(n), maxNQNLen)
	}
	return nil
}

func validPort(p int) error {
	if p < 1 || p > 65535 {
		return fmt.Errorf("%w: port %d outside 1..65535", ErrInvalid, p)
	}
	return nil
}

func validSize(n int64) error {
	if n <= 0 {
		return fmt.Errorf("%w: size %d must be > 0", ErrInvalid, n)
	}
	return nil
}

// Command builders. Each takes values already validated by the caller and
// quotes strings once more.

func cmdAdd(r CreateRequest) (string, error) {
	fp, err := quoteValid(r.FilePath)
	if err != nil {
		return "", err
	}
	slot, err := quoteValid(r.Slot)
	if err != nil {
		return "", err
	}
	nqn, err := quoteValid(r.NQN)
	if err != nil {
		return "", err
	}
	acl, err := allowHostsArg(r.SetAllowHosts, r.AllowHosts)
	if err != nil {
		return "", err
	}
	// Plain bytes: units such as 1G would be truncated by some tools.
	return "/disk add type=file file-path=" + fp + " file-size=" + strconv.FormatInt(r.Size, 10) +
		" slot=" + slot + " mount-filesystem=no nvme-tcp-export=yes nvme-tcp-server-port=" + strconv.Itoa(r.Port) +
		" nvme-tcp-server-nqn=" + nqn + acl, nil
}

func findSlot(slot string) (string, error) {
	q, err := quoteValid(slot)
	if err != nil {
		return "", err
	}
	return "[find slot=" + q + "]", nil
}

func cmdSetExport(r ExportRequest) (string, error) {
	f, err := findSlot(r.Slot)
	if err != nil {
		return "", err
	}
	nqn, err := quoteValid(r.NQN)
	if err != nil {
		return "", err
	}
	acl, err := allowHostsArg(r.SetAllowHosts, r.AllowHosts)
	if err != nil {
		return "", err
	}
	return "/disk set " + f + " mount-filesystem=no nvme-tcp-export=yes nvme-tcp-server-port=" + strconv.Itoa(r.Port) +
		" nvme-tcp-server-nqn=" + nqn + acl, nil
}

func cmdGrow(slot string, size int64) (string, error) {
	f, err := findSlot(slot)
	if err != nil {
		return "", err
	}
	return "/disk set " + f + " file-size=" + strconv.FormatInt(size, 10), nil
}

func cmdRemoveDisk(slot string) (string, error) {
	f, err := findSlot(slot)
	if err != nil {
		return "", err
	}
	return "/disk remove " + f, nil
}

func cmdRemoveFile(p string) (string, error) {
	q, err := quoteValid(p)
	if err != nil {
		return "", err
	}
	return "/file remove [find name=" + q + "]", nil
}

// Marker lines split the output of the combined List command. They cannot
// be mistaken for data: items start with a row number, a field or '['.
const (
	markDisks = "##rds-reconcile:disks"
	markFiles = "##rds-reconcile:files"
	markPool  = "##rds-reconcile:pool"
	// markExports: every exported disk, so a host can tell controllers of
	// disks this state does not manage (made by hand) from its own.
	markExports = "##rds-reconcile:exports"
	markEnd     = "##rds-reconcile:end"
)

// readCommands are the read commands for one listing format.
type readCommands struct {
	json bool
	v    validator
}

// diskWhere selects managed disks on the router; the client filters again.
func (r readCommands) diskWhere() string {
	if r.v.prefix != "" {
		// The prefix is [a-z0-9-]*: no regex metacharacters to escape.
		return `slot~"^` + r.v.prefix + `"`
	}
	return `type=file`
}

func (r readCommands) print(menu, where string) string {
	if r.json {
		// no-string-conversion keeps number-like strings (a slot "1e5")
		// strings; JSON reads are used only where it exists (7.17+).
		return ":put [:serialize to=json options=json.no-string-conversion [" + menu + " print detail as-value where " + where + "]]"
	}
	return menu + " print detail where " + where
}

func (r readCommands) disks() string { return r.print("/disk", r.diskWhere()) }

func (r readCommands) disk(slot string) (string, error) {
	q, err := quoteValid(slot)
	if err != nil {
		return "", err
	}
	return r.print("/disk", "slot="+q), nil
}

// files lists files whose name contains the base path; '.' in the path is
// a regex wildcard and only widens the match, and the client keeps exact
// "<base>/<name>.img" names only.
func (r readCommands) files() string {
	return r.print("/file", `name~"`+r.v.base+`/"`)
}

func (r readCommands) pool() string {
	pool, _, _ := strings.Cut(r.v.base, "/")
	return r.print("/disk", `mount-point="`+pool+`"`)
}

// list is the single command line of List: three prints between markers.
func (r readCommands) list() string {
	return `:put "` + markDisks + `"; ` + r.disks() +
		`; :put "` + markFiles + `"; ` + r.files() +
		`; :put "` + markPool + `"; ` + r.pool() +
		`; :put "` + markExports + `"; ` + r.print("/disk", "nvme-tcp-export=yes") +
		`; :put "` + markEnd + `"`
}

const cmdResource = "/system resource print"
