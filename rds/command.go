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

// listPageThreshold: a List that saw more disks than this (managed or
// exported) makes the next List on the client read in pages. RouterOS may
// cap the string one :put prints (unverified; no limit is documented and
// none was seen in the captures); a disk is about 500 bytes of JSON, so 256
// disks (~128 KiB) stays below any cap we would guess at while keeping the
// common case, a few dozen disks, on the single unpaged command.
const listPageThreshold = 256

// pageClasses split managed slots by the first character after the slot
// prefix (managed slots are DNS-1123 labels: [a-z0-9]). PVC names are
// pvc-<uuid>, so the hex digits are spread evenly; g-z is rare. Together
// the classes cover [a-z0-9] exactly once.
var pageClasses = []string{"01", "23", "45", "67", "89", "ab", "cd", "ef", "g-z"}

// anyPages select every disk whatever its slot: each class of pageClasses,
// the complement (a first character outside [a-z0-9]) and the empty slot
// (if RouterOS allows one). Pages are disjoint; the client dedupes anyway.
func anyPages() []string {
	w := make([]string, 0, len(pageClasses)+2)
	for _, cls := range pageClasses {
		w = append(w, `slot~"^[`+cls+`]"`)
	}
	return append(w, `slot~"^[^0-9a-z]"`, `slot=""`)
}

// diskPages are the where clauses of the paged managed-disk section. With
// a prefix they select every slot starting with it; without one (the managed filter
// is then type=file) every slot, and the client keeps filtering.
func (r readCommands) diskPages() []string {
	if r.v.prefix == "" {
		return anyPages()
	}
	w := make([]string, 0, len(pageClasses)+2)
	for _, cls := range pageClasses {
		// The prefix is [a-z0-9-]*: no regex metacharacters to escape.
		w = append(w, `slot~"^`+r.v.prefix+`[`+cls+`]"`)
	}
	// No slot we make is in these two, but the unpaged listing would show
	// one made by hand: so does the paged one.
	return append(w, `slot~"^`+r.v.prefix+`[^0-9a-z]"`, `slot="`+r.v.prefix+`"`)
}

// exportPages are the where clauses of the paged exports section, which
// the client uses for disks it does not manage only. Without a prefix that
// is anyPages. With one they select exactly the slots not starting with
// it: those that part from the prefix at character i (`^pv[^c]`), and the
// prefix's own proper prefixes, the empty slot included (slot="pv"). The
// slots that do start with it are the disk pages' already. Disks nobody
// manages are few, so these pages are not split further.
func (r readCommands) exportPages() []string {
	p := r.v.prefix
	if p == "" {
		return anyPages()
	}
	w := make([]string, 0, 2*len(p))
	for i := range len(p) {
		// [a-z0-9-]: '-' right after '^' is a literal in a bracket.
		w = append(w, `slot~"^`+p[:i]+`[^`+p[i:i+1]+`]"`)
	}
	for i := range len(p) {
		w = append(w, `slot="`+p[:i]+`"`)
	}
	return w
}

// filePages page files(): a file the client keeps is <base>/<slot>.img
// with a managed slot, so the classes after base/prefix cover them all.
func (r readCommands) filePages() []string {
	w := make([]string, 0, len(pageClasses))
	for _, cls := range pageClasses {
		w = append(w, `name~"`+r.v.base+`/`+r.v.prefix+`[`+cls+`]"`)
	}
	return w
}

// pages prints menu once per where clause, each after its own page marker
// (mark:0, mark:1, ...).
func (r readCommands) pages(b *strings.Builder, mark, menu string, wheres []string) {
	for i, w := range wheres {
		b.WriteString(`:put "` + mark + ":" + strconv.Itoa(i) + `"; ` + r.print(menu, w) + "; ")
	}
}

// listPaged is list with the disk, file and export sections read in pages,
// still one command line: one :put per page keeps each JSON string a
// fraction of the whole.
func (r readCommands) listPaged() string {
	var b strings.Builder
	r.pages(&b, markDisks, "/disk", r.diskPages())
	r.pages(&b, markFiles, "/file", r.filePages())
	b.WriteString(`:put "` + markPool + `"; ` + r.pool() + "; ")
	r.pages(&b, markExports, "/disk", r.exportPages())
	b.WriteString(`:put "` + markEnd + `"`)
	return b.String()
}

// isMarker reports whether a trimmed line is a List marker: a section
// marker, or a page marker <section>:<n> of disks, files or exports.
func isMarker(t string) bool {
	switch t {
	case markDisks, markFiles, markPool, markExports, markEnd:
		return true
	}
	for _, m := range [...]string{markDisks, markFiles, markExports} {
		if n, ok := strings.CutPrefix(t, m+":"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
			return true
		}
	}
	return false
}

const cmdResource = "/system resource print"
