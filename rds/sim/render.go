package sim

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// fkind says how a property prints in each output form.
type fkind int

const (
	kStr   fkind = iota // quoted in detail: slot="x"
	kEnum               // bare word: type=file, fs=-, file-path=/storage-pool/x.img
	kBool               // yes/no; true/false in JSON
	kInt                // plain number
	kBytes              // exact bytes; "53 687 091 200" in detail
	kHuman              // bytes rounded for display ("50.0GiB"); a float in JSON
)

type field struct {
	name string
	kind fkind
	s    string
	n    int64
	b    bool
}

func fStr(name, s string) field       { return field{name: name, kind: kStr, s: s} }
func fEnum(name, s string) field      { return field{name: name, kind: kEnum, s: s} }
func fBool(name string, b bool) field { return field{name: name, kind: kBool, b: b} }
func fInt(name string, n int64) field { return field{name: name, kind: kInt, n: n} }
func fBytes(name string, n int64) field {
	return field{name: name, kind: kBytes, n: n}
}
func fHuman(name string, n int64) field { return field{name: name, kind: kHuman, n: n} }

// raw is the value `where` compares against and `as-value` returns.
func (f field) raw() string {
	switch f.kind {
	case kBool:
		return yesNo(f.b)
	case kInt, kBytes, kHuman:
		return strconv.FormatInt(f.n, 10)
	default:
		return f.s
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (f field) detail() string {
	switch f.kind {
	case kStr:
		return f.name + "=" + quote(f.s)
	case kBytes:
		return f.name + "=" + thousands(f.n)
	case kHuman:
		return f.name + "=" + human(f.n)
	default:
		return f.name + "=" + f.raw()
	}
}

func (f field) terse() string {
	switch f.kind {
	case kStr:
		if f.s == "" || strings.ContainsAny(f.s, " \t\"\\$;=[]") {
			return f.name + "=" + quote(f.s)
		}
		return f.name + "=" + f.s
	case kHuman:
		return f.name + "=" + human(f.n)
	default:
		return f.name + "=" + f.raw()
	}
}

// json renders the value as RouterOS's :serialize does: booleans, numeric
// fields as integers (sizes too, in bytes), strings as strings, except that
// without json.no-string-conversion (keep false) a number-like string
// prints as a float ("1e5" -> 100000.000000).
func (f field) json(keep bool) string {
	switch f.kind {
	case kBool:
		if f.b {
			return "true"
		}
		return "false"
	case kInt, kBytes, kHuman:
		return strconv.FormatInt(f.n, 10)
	default:
		if !keep && numberLike(f.s) {
			return stringConverted(f.s)
		}
		return jsonString(f.s)
	}
}

func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// thousands groups digits with spaces, as RouterOS prints exact sizes.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// human rounds a byte count the way RouterOS displays file-size: binary
// units, one decimal, and a unit is taken only above 1024 of the one below:
// real RDS output prints 1 GiB as "1024.0MiB" and 1 TiB as "1024.0GiB".
func human(n int64) string {
	if n <= 1024 {
		return strconv.FormatInt(n, 10) + "B"
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := float64(n)
	u := -1
	for v > 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + units[u]
}

// item is one row of a print: its id, row number, flags and fields in the
// order RouterOS prints them, grouped into the lines RouterOS starts afresh.
type item struct {
	id      int
	index   int
	flags   string
	comment string
	groups  [][]field
}

func (it item) idString() string { return fmt.Sprintf("*%X", it.id) }

func (it item) fields() []field {
	var out []field
	for _, g := range it.groups {
		out = append(out, g...)
	}
	return out
}

// prop is one property as `where` and `get` see it: its raw value.
func (it item) prop(name string) (string, bool) {
	switch name {
	case ".id":
		return it.idString(), true
	case "comment":
		return it.comment, true
	case "disabled":
		return yesNo(strings.Contains(it.flags, "X")), true
	case "block-device":
		return yesNo(strings.Contains(it.flags, "B")), true
	case "mounted":
		return yesNo(strings.Contains(it.flags, "M")), true
	}
	for _, g := range it.groups {
		for _, f := range g {
			if f.name == name {
				return f.raw(), true
			}
		}
	}
	return "", false
}

// asValue is the item's key/value list, sorted by key as RouterOS arrays are.
func (it item) asValue(proplist []string) []field {
	fs := append([]field{fStr(".id", it.idString())}, it.fields()...)
	if it.comment != "" {
		fs = append(fs, fStr("comment", it.comment))
	}
	if len(proplist) > 0 {
		kept := fs[:0:0]
		for _, f := range fs {
			if contains(proplist, f.name) {
				kept = append(kept, f)
			}
		}
		fs = kept
	}
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].name < fs[j].name })
	return fs
}

// flagNames are the /disk flags in the order RouterOS lists them, with the
// upper-case names its Flags header gives them.
var flagNames = []struct {
	letter byte
	name   string
}{{'X', "DISABLED"}, {'B', "BLOCK-DEVICE"}, {'M', "MOUNTED"}, {'t', "NVME-TCP-EXPORT"}}

// flagLayout is the flag letters the listed items show, in header order:
// RouterOS's header names only those (real 7.21 output: "Flags: B -
// BLOCK-DEVICE; t - NVME-TCP-EXPORT"), and each letter has its own column
// ("27 B r type=raid" when M is missing from a row).
type flagLayout []byte

func layoutOf(items []item) flagLayout {
	var l flagLayout
	for _, f := range flagNames {
		for _, it := range items {
			if strings.IndexByte(it.flags, f.letter) >= 0 {
				l = append(l, f.letter)
				break
			}
		}
	}
	return l
}

// header is "Flags: B - BLOCK-DEVICE; t - NVME-TCP-EXPORT", or "" when no
// item has a flag.
func (l flagLayout) header() string {
	var parts []string
	for _, c := range l {
		for _, f := range flagNames {
			if f.letter == c {
				parts = append(parts, string(c)+" - "+f.name)
			}
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "Flags: " + strings.Join(parts, "; ")
}

// cell puts an item's flag letters in their columns.
func (l flagLayout) cell(flags string) string {
	b := make([]byte, len(l))
	for i, c := range l {
		b[i] = ' '
		if strings.IndexByte(flags, c) >= 0 {
			b[i] = c
		}
	}
	return string(b)
}

// rowPrefix is " 0 Bt ": the row number right-aligned, the flag columns
// (padded to at least two, as on hardware), and a space.
func rowPrefix(index, numWidth, flagWidth int, flags string) string {
	return fmt.Sprintf("%*d %-*s ", numWidth, index, flagWidth, flags)
}

func widths(items []item, maxIndex int) (numWidth, flagWidth int) {
	return len(strconv.Itoa(maxIndex)) + 1, max(2, len(layoutOf(items)))
}

// renderDetail prints items as `print detail` does on a console of the given
// width: each group of fields starts a new line, fields that do not fit move
// to the next line, and a field longer than a whole line is split mid-value.
func renderDetail(b *strings.Builder, flagged bool, items []item, maxIndex, width int) {
	if len(items) == 0 {
		return
	}
	layout := layoutOf(items)
	if header := layout.header(); flagged && header != "" {
		parts := strings.Split(header, "; ")
		for i := range parts[:len(parts)-1] {
			parts[i] += ";"
		}
		wrap(b, "", "", [][]string{parts}, width)
	}
	b.Grow(len(items) * 800) // a disk prints about 700 bytes
	nw, fw := widths(items, maxIndex)
	for _, it := range items {
		prefix := rowPrefix(it.index, nw, fw, layout.cell(it.flags))
		w := lineWriter{b: b, width: max(width, len(prefix)+10), indent: len(prefix)}
		b.WriteString(prefix)
		w.col, w.fresh = len(prefix), true
		if it.comment != "" {
			w.token(";;; " + it.comment)
			w.newline()
		}
		for gi, g := range it.groups {
			if gi > 0 {
				w.newline()
			}
			for _, f := range g {
				w.token(f.detail())
			}
		}
		b.WriteString("\n\n")
	}
}

// wrap prints groups of tokens after prefix, each group on a new line
// indented like the first, wrapped at width.
func wrap(b *strings.Builder, prefix, indent string, groups [][]string, width int) {
	w := lineWriter{b: b, width: max(width, len(indent)+10), indent: len(indent)}
	b.WriteString(prefix)
	w.col, w.fresh = len(prefix), true
	for gi, g := range groups {
		if gi > 0 {
			w.newline()
		}
		for _, tok := range g {
			w.token(tok)
		}
	}
	b.WriteString("\n")
}

// lineWriter writes space-separated tokens the way RouterOS wraps `print
// detail`: a token that does not fit moves to a new indented line, and one
// longer than a whole line is split mid-value.
type lineWriter struct {
	b      *strings.Builder
	width  int
	indent int
	col    int
	fresh  bool // nothing but the prefix or indent on this line yet
}

func (w *lineWriter) newline() {
	w.b.WriteByte('\n')
	for range w.indent {
		w.b.WriteByte(' ')
	}
	w.col, w.fresh = w.indent, true
}

func (w *lineWriter) token(tok string) {
	need := len(tok)
	if !w.fresh {
		need++
	}
	if w.col+need > w.width && !w.fresh {
		w.newline()
	} else if !w.fresh {
		w.b.WriteByte(' ')
		w.col++
	}
	for w.col+len(tok) > w.width {
		room := w.width - w.col
		w.b.WriteString(tok[:room])
		tok = tok[room:]
		w.newline()
	}
	w.b.WriteString(tok)
	w.col += len(tok)
	w.fresh = false
}

// renderTerse prints one line per item.
func renderTerse(b *strings.Builder, items []item, maxIndex int) {
	nw, fw := widths(items, maxIndex)
	layout := layoutOf(items)
	for _, it := range items {
		b.WriteString(rowPrefix(it.index, nw, fw, layout.cell(it.flags)))
		var parts []string
		if it.comment != "" {
			parts = append(parts, "comment="+quote(it.comment))
		}
		for _, f := range it.fields() {
			parts = append(parts, f.terse())
		}
		b.WriteString(strings.Join(parts, " ") + "\n")
	}
}

// renderAsValue prints what `print as-value` prints at the top level: one
// ".id=*1;name=value;..." line per item.
func renderAsValue(b *strings.Builder, items []item, proplist []string) {
	for _, it := range items {
		var parts []string
		for _, f := range it.asValue(proplist) {
			parts = append(parts, f.name+"="+f.raw())
		}
		b.WriteString(strings.Join(parts, ";") + "\n")
	}
}

// renderJSON is :serialize to=json of a list of items.
func renderJSON(items []item, proplist []string, keep bool) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		for j, f := range it.asValue(proplist) {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(jsonString(f.name) + ":" + f.json(keep))
		}
		b.WriteByte('}')
	}
	b.WriteByte(']')
	return b.String()
}

// column is one column of a plain `print` table.
type column struct {
	title string
	field string
}

// renderTable prints the plain `print` form.
func renderTable(b *strings.Builder, flagged bool, cols []column, items []item, maxIndex int) {
	if len(items) == 0 {
		return
	}
	layout := layoutOf(items)
	if header := layout.header(); flagged && header != "" {
		b.WriteString(header + "\n")
	}
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.title
	}
	b.WriteString("Columns: " + strings.Join(titles, ", ") + "\n")
	nw, fw := widths(items, maxIndex)
	rows := [][]string{}
	head := []string{fmt.Sprintf("%-*s", nw+fw+1, "#")}
	head = append(head, titles...)
	rows = append(rows, head)
	for _, it := range items {
		row := []string{strings.TrimRight(rowPrefix(it.index, nw, fw, layout.cell(it.flags)), " ")}
		byName := map[string]field{}
		for _, f := range it.fields() {
			byName[f.name] = f
		}
		for _, c := range cols {
			f, ok := byName[c.field]
			switch {
			case !ok:
				row = append(row, "")
			case f.kind == kBytes:
				row = append(row, human(f.n))
			case f.kind == kStr || f.kind == kEnum:
				row = append(row, f.s)
			default:
				row = append(row, f.raw())
			}
		}
		rows = append(rows, row)
	}
	cw := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			cw[i] = max(cw[i], len(c))
		}
	}
	for _, r := range rows {
		var line strings.Builder
		for i, c := range r {
			if i > 0 {
				line.WriteString("  ")
			}
			line.WriteString(fmt.Sprintf("%-*s", cw[i], c))
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
}

// Property names `where` accepts, per menu.
var menuFields = map[string][]string{
	"disk": {".id", "comment", "disabled", "type", "slot", "slot-default", "parent", "fs",
		"model", "size", "free", "mount-point", "mount-filesystem", "mount-read-only",
		"compress", "sector-size", "raid-master", "raid-type", "nvme-tcp-export",
		"nvme-tcp-server-port", "nvme-tcp-server-nqn", "nvme-tcp-name", "nvme-tcp-server-allow-host-name",
		"iscsi-export", "nfs-sharing", "smb-sharing", "media-sharing", "media-interface",
		"swap", "file-path", "file-size", "file-offset", "block-device", "mounted"},
	"file": {".id", "name", "type", "size", "creation-time", "last-modified"},
}

func isField(menu, name string) bool {
	fs, ok := menuFields[menu]
	if !ok {
		return true
	}
	return contains(fs, name)
}
