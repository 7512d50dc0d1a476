package rds

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Field names with a special meaning in the maps the parsers return.
const (
	// FieldRow holds the row number RouterOS printed (not a stable id).
	FieldRow = ".row"
	// FieldFlags holds the flag letters printed between row number and fields.
	FieldFlags = ".flags"
	// FieldComment holds a ";;; comment" line.
	FieldComment = "comment"
)

// maxParseInput bounds the text the parsers accept, so a hostile or broken
// peer cannot make us allocate without limit.
const maxParseInput = 64 << 20

var (
	// flagsWord is a group of flag letters (RouterOS prints e.g. "X", "BM").
	flagsWord = regexp.MustCompile(`^[A-Za-z*]{1,8}$`)
	// thousands is a number with space thousand separators, possibly cut.
	// groupedTail: text ending in a number that already shows a thousands
	// group ("=53 687"); groupedHead: a fragment starting with groups
	// ("091 200"). A break between them fell on a separator.
	groupedTail = regexp.MustCompile(`(?:^|[= ])\d{1,3}(?: \d{3})+$`)
	plainTail   = regexp.MustCompile(`(?:^|[= ])\d{1,3}$`)
	groupedHead = regexp.MustCompile(`^\d{3}(?: \d{3})+(?: |$)`)
	threeDigits = regexp.MustCompile(`^\d{3}(?: |$)`)
)

// detailWidth is the console width print detail wrapped at: its longest
// item line. Headers are printed unwrapped; only item lines show the width.
func detailWidth(lines []string) int {
	width := 0
	for _, l := range lines {
		if t := strings.TrimSpace(l); !strings.HasPrefix(t, "Flags:") && !strings.HasPrefix(t, "Columns:") {
			width = max(width, utf8.RuneCountInString(l))
		}
	}
	return width
}

// ParseDetail parses `print detail` output: one map per item, in order. It
// accepts a "Flags:" (and "Columns:") header, row numbers, flag letters,
// ";;;" comment lines, items wrapped over several lines at any console width
// — values split across lines included — quoted values with escapes and
// numbers with space thousand separators (kept as printed in the map).
// Empty output means no items.
func ParseDetail(out string) ([]map[string]string, error) {
	if len(out) > maxParseInput {
		return nil, fmt.Errorf("%w: output too large (%d bytes)", ErrRejected, len(out))
	}
	lines := splitLines(out)
	p := detailParser{width: detailWidth(lines), header: true}
	for i, line := range lines {
		if err := p.line(i, line); err != nil {
			return nil, err
		}
	}
	if err := p.flush(); err != nil {
		return nil, err
	}
	return p.items, nil
}

// detailParser collects print detail items line by line.
type detailParser struct {
	items  []map[string]string
	cur    *item
	width  int
	header bool // still in the Flags:/Columns: header
}

// line takes line number i (from 0).
func (p *detailParser) line(i int, line string) error {
	trimmed := strings.TrimSpace(line)
	if trimmed == "" {
		// A blank line ends an item; RouterOS separates detail items
		// with one.
		return p.flush()
	}
	if p.header && (strings.HasPrefix(trimmed, "Flags:") || strings.HasPrefix(trimmed, "Columns:")) {
		return nil
	}
	if m := rowStart(line); m != nil && (p.cur == nil || p.cur.isNewRow(line)) {
		if err := p.flush(); err != nil {
			return err
		}
		return p.start(i, line, m[1], len(m[0]))
	}
	if p.cur == nil {
		if p.header && !startsWithKey(trimmed) {
			// Continuation of a wrapped Flags header.
			return nil
		}
		// Items without a row number (e.g. a single-item print).
		return p.start(i, line, "", 0)
	}
	if p.cur.col < 0 {
		p.cur.col = indent(line)
	}
	// Joined at finish, when the lines after each are known.
	p.cur.pending = append(p.cur.pending, line)
	return nil
}

// start begins an item (row number row, "" for none) at line i, its
// fields from offset.
func (p *detailParser) start(i int, line, row string, offset int) error {
	p.header = false
	p.cur = &item{row: row, width: p.width, col: -1}
	if err := p.cur.first(line, offset); err != nil {
		return fmt.Errorf("%w: line %d: %v", ErrRejected, i+1, err)
	}
	return nil
}

// flush ends the current item, if any.
func (p *detailParser) flush() error {
	if p.cur == nil {
		return nil
	}
	m, err := p.cur.finish()
	if err != nil {
		return err
	}
	p.items = append(p.items, m)
	p.cur = nil
	return nil
}

// rowStart matches the start of an item: optional indentation, a row number,
// then blanks or the end of the line. It returns the match and the number,
// like FindStringSubmatch of `^\s*(\d+)(?:\s+|$)` (a regexp here cost a
// third of the parse time).
func rowStart(line string) []string {
	i := 0
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	j := i
	for j < len(line) && line[j] >= '0' && line[j] <= '9' {
		j++
	}
	if j == i || (j < len(line) && line[j] != ' ' && line[j] != '\t') {
		return nil
	}
	k := j
	for k < len(line) && (line[k] == ' ' || line[k] == '\t') {
		k++
	}
	return []string{line[:k], line[i:j]}
}

// ParseTerse parses `print terse` output: one item per line, with row numbers
// and flag letters as in detail output.
func ParseTerse(out string) ([]map[string]string, error) {
	if len(out) > maxParseInput {
		return nil, fmt.Errorf("%w: output too large (%d bytes)", ErrRejected, len(out))
	}
	var items []map[string]string
	for i, line := range splitLines(out) {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "Flags:") || strings.HasPrefix(trimmed, "Columns:") {
			continue
		}
		it := &item{}
		rest := line
		if m := rowStart(line); m != nil {
			it.row = m[1]
			rest = line[len(m[0]):]
		}
		if err := it.first(line, len(line)-len(rest)); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrRejected, i+1, err)
		}
		m, err := it.finish()
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		items = append(items, m)
	}
	return items, nil
}

// ParseJSON parses the output of `:put [:serialize to=json [... as-value]]`:
// an array of objects (or one object, or null). Values become strings as
// RouterOS would print them in detail: booleans as yes/no, integral floats
// ("2048.000000") as integers, arrays joined with commas.
func ParseJSON(out string) ([]map[string]string, error) {
	if len(out) > maxParseInput {
		return nil, fmt.Errorf("%w: output too large (%d bytes)", ErrRejected, len(out))
	}
	// The console may wrap a long :put line; JSON never holds raw line
	// breaks, so dropping them restores the text.
	data := strings.NewReplacer("\r", "", "\n", "").Replace(out)
	data = strings.TrimSpace(data)
	if data == "" || data == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(data))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: json: %v", ErrRejected, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: json: trailing data after value", ErrRejected)
	}
	var objs []any
	switch v := raw.(type) {
	case []any:
		objs = v
	case map[string]any:
		objs = []any{v}
	case nil:
		return nil, nil
	default:
		return nil, fmt.Errorf("%w: json: expected an array of objects, got %T", ErrRejected, raw)
	}
	items := make([]map[string]string, 0, len(objs))
	for i, o := range objs {
		obj, ok := o.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: json: element %d is %T, not an object", ErrRejected, i, o)
		}
		m := make(map[string]string, len(obj))
		for k, v := range obj {
			m[k] = jsonString(v)
		}
		items = append(items, m)
	}
	return items, nil
}

func jsonString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case json.Number:
		return normalizeNumber(string(x))
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = jsonString(e)
		}
		return strings.Join(parts, ",")
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// normalizeNumber turns "2048.000000" into "2048" without going through a
// float, so sizes above 2^53 stay exact.
func normalizeNumber(s string) string {
	if i := strings.IndexByte(s, '.'); i >= 0 && !strings.ContainsAny(s, "eE") {
		if strings.Trim(s[i+1:], "0") == "" {
			return s[:i]
		}
	}
	return s
}

// item accumulates the lines of one detail item.
type item struct {
	row, flags, comment string
	text                strings.Builder
	lastLine            string
	width               int
	inComment           bool     // the comment line may still continue
	pending             []string // continuation lines, joined by finish
	quote               quoteState
	// col is the column where this item's fields start (-1 until known).
	// Continuation lines are indented to it; a row number stands left of
	// it. That tells a new row from a continuation that starts with digits
	// ("091 200" of a wrapped size).
	col int
}

// isNewRow reports whether a line that starts with digits begins a new item
// rather than continuing the current one.
func (it *item) isNewRow(line string) bool {
	return it.col < 0 || indent(line) < it.col
}

func indent(line string) int {
	return len(line) - len(strings.TrimLeft(line, " \t"))
}

// first handles the rest of an item's first line after the row number:
// optional flag letters, an optional ";;; comment", then fields.
func (it *item) first(line string, offset int) error {
	rest := line[offset:]
	lineLen := len(rest)
	rest = strings.TrimLeft(rest, " \t")
	// Flag letters stand before the first field; they never contain '='.
	for {
		word, after, _ := strings.Cut(rest, " ")
		if word == "" || strings.Contains(word, "=") || !flagsWord.MatchString(word) {
			break
		}
		// A single item may be printed with no fields on its first line
		// (comment below); anything letter-only before a field is a flag.
		it.flags += word
		rest = strings.TrimLeft(after, " \t")
	}
	if rest != "" && it.col < 0 {
		it.col = offset + lineLen - len(rest)
	}
	if strings.HasPrefix(rest, ";;;") {
		it.comment = strings.TrimSpace(strings.TrimPrefix(rest, ";;;"))
		it.inComment = true
		it.lastLine = line
		return nil
	}
	it.add(rest, nil)
	// lineFull must measure the whole printed line, row number included.
	it.lastLine = line
	return nil
}

// add appends a continuation line, deciding whether the line break was a
// separator between fields (join with a space) or fell inside a token that
// RouterOS cut at the console width (join with nothing).
func (it *item) add(line string, next []string) {
	frag := strings.TrimLeft(line, " \t")
	if it.inComment {
		if it.lineFull() && !startsWithKey(frag) {
			// The comment was cut at the console width.
			it.comment += strings.TrimRight(frag, " \t")
			it.lastLine = line
			return
		}
		// Fields start on the line after the comment.
		it.inComment = false
	}
	if it.text.Len() == 0 {
		frag = strings.TrimRight(frag, " \t")
		it.text.WriteString(frag)
		it.quote = it.quote.scan(frag)
		it.lastLine = line
		return
	}
	prev := it.text.String()
	inQuote := it.quote.in
	sep := ""
	switch {
	case inQuote:
		// A quoted value split across lines: keep it whole.
	case !it.lineFull():
		// RouterOS cuts a token only when it fills the whole line; a
		// shorter line ended between fields.
		sep = " "
	case strings.HasSuffix(prev, `"`):
		// A closed quoted value is complete; a new field follows.
		sep = " "
	case endsInsideKey(prev):
		// A field name cut at the console width.
	case it.keyAhead(line, next):
		// "port=36660" filled the line and the next field's name was
		// itself cut: "nvme-tcp-serv" + "er-nqn=...".
		sep = " "
	case startsWithKey(frag):
		sep = " "
	case groupedTail.MatchString(tail(prev)) && threeDigits.MatchString(frag),
		plainTail.MatchString(tail(prev)) && groupedHead.MatchString(frag):
		// "size=53 687" + "091 200": a number wrapped at a separator.
		// ("port=4" + "420" is a number cut mid-digits.)
		sep = " "
	}
	it.text.WriteString(sep)
	if it.quote.scan(frag).in {
		// Trailing blanks inside an open quote belong to the value.
		it.text.WriteString(frag)
		it.quote = it.quote.scan(frag)
	} else {
		frag = strings.TrimRight(frag, " \t")
		it.text.WriteString(frag)
		it.quote = it.quote.scan(frag)
	}
	it.lastLine = line
}

// tail is the end of an item's text, long enough for any number with
// thousand separators; matching only it keeps parsing linear.
func tail(s string) string {
	const n = 48
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// lineFull reports whether the last line reached the console width, i.e. the
// break that follows it may be a hard cut rather than a wrap between fields.
func (it *item) lineFull() bool { return it.full(it.lastLine) }

func (it *item) full(line string) bool {
	return it.width > 0 && utf8.RuneCountInString(strings.TrimRight(line, " \t")) >= it.width
}

// endsInsideKey reports whether s ends with a partial field name: its last
// space-separated word has no '=' and is not a number group or a value
// continuation.
func endsInsideKey(s string) bool {
	// Field names are short: look at the end only, which keeps parsing
	// linear in the item length.
	const maxKey = 64
	if len(s) > maxKey {
		s = s[len(s)-maxKey:]
		if strings.IndexByte(s, ' ') < 0 {
			return false
		}
	}
	i := strings.LastIndexByte(s, ' ')
	last := s[i+1:]
	if last == "" || strings.Contains(last, "=") {
		return false
	}
	for _, r := range last {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	_, err := strconv.Atoi(last)
	return err != nil
}

// quoteState tracks whether text so far ends inside a double-quoted string,
// so each appended line is scanned once.
type quoteState struct {
	in  bool // inside "..."
	esc bool // the last byte was a backslash inside quotes
}

func (q quoteState) scan(s string) quoteState {
	for i := 0; i < len(s); i++ {
		switch {
		case q.esc:
			q.esc = false
		case s[i] == '\\' && q.in:
			q.esc = true
		case s[i] == '"':
			q.in = !q.in
		}
	}
	return q
}

// keyLen returns the length of the field name s starts with when a '='
// follows it, else -1. (A hand-written regexp `^[A-Za-z.][A-Za-z0-9._-]*=`:
// the regexp package made parsing quadratic in the item length.)
func keyLen(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '.':
		case i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '_'):
		case c == '=' && i > 0:
			return i
		default:
			return -1
		}
	}
	return -1
}

func startsWithKey(s string) bool { return keyLen(s) > 0 }

// keyAhead reports whether frag and the full lines after it spell a field
// name followed by '=' without a space: only a field name cut over several
// lines looks like that, never a value continuing.
func (it *item) keyAhead(line string, next []string) bool {
	s := strings.TrimSpace(line)
	name := 0 // name characters seen so far, over all pieces
	for k := 0; ; k++ {
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '=':
				return name > 0
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
				name++
			default:
				return false
			}
		}
		// The whole piece is name characters: it continues only if its
		// line was full.
		if k >= len(next) || k >= 4 || !it.full(line) {
			return false
		}
		line = next[k]
		s = strings.TrimSpace(line)
	}
}

func (it *item) finish() (map[string]string, error) {
	for i, line := range it.pending {
		it.add(line, it.pending[i+1:])
	}
	m, err := parseFields(it.text.String())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRejected, err)
	}
	if it.row != "" {
		m[FieldRow] = it.row
	}
	if it.flags != "" {
		m[FieldFlags] = it.flags
	}
	if it.comment != "" {
		m[FieldComment] = it.comment
	}
	return m, nil
}

// parseFields splits "k=v k2="quoted v" k3=53 687 091 200" into a map. An
// unquoted value runs until the next word that starts a field, so values
// printed with spaces (thousand separators, dates) stay whole.
func parseFields(s string) (map[string]string, error) {
	// RouterOS prints about 25 fields per disk.
	m := make(map[string]string, 32)
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			return m, nil
		}
		n := keyLen(s[i:])
		if n < 0 {
			end := strings.IndexAny(s[i:], " \t")
			if end < 0 {
				end = len(s) - i
			}
			return nil, fmt.Errorf("expected key=value at %q", clip(s[i:i+end]))
		}
		key := s[i : i+n]
		i += n + 1
		if i < len(s) && s[i] == '"' {
			v, n, err := unquote(s[i:])
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", key, err)
			}
			m[key] = v
			i += n
			if i < len(s) && s[i] != ' ' && s[i] != '\t' {
				return nil, fmt.Errorf("field %s: text after closing quote", key)
			}
			continue
		}
		// Unquoted: take words until one starts a new field.
		start := i
		end := i
		for {
			for end < len(s) && s[end] != ' ' && s[end] != '\t' {
				end++
			}
			j := end
			for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
				j++
			}
			if j >= len(s) || startsWithKey(s[j:]) {
				break
			}
			end = j
		}
		m[key] = s[start:end]
		i = end
	}
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// unquote reads a RouterOS double-quoted string at the start of s and
// returns its value and the number of bytes consumed.
func unquote(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			return b.String(), i + 1, nil
		case '\\':
			if i+1 >= len(s) {
				return "", 0, errors.New("unterminated escape")
			}
			i++
			switch e := s[i]; e {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'a':
				b.WriteByte('\a')
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'v':
				b.WriteByte('\v')
			case '_':
				b.WriteByte(' ')
			default:
				if isHex(e) && i+1 < len(s) && isHex(s[i+1]) {
					v, _ := strconv.ParseUint(s[i:i+2], 16, 8)
					b.WriteByte(byte(v))
					i++
				} else {
					b.WriteByte(e) // \" \\ \$ \? and unknown escapes
				}
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, errors.New("unterminated quoted value")
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func splitLines(out string) []string {
	out = strings.ReplaceAll(out, "\r\n", "\n")
	out = strings.ReplaceAll(out, "\r", "\n")
	return strings.Split(out, "\n")
}

// ParseSize parses a RouterOS size: plain bytes, bytes with space thousand
// separators ("53 687 091 200"), an integral float ("2048.000000"), or a
// display value with a binary unit ("50.0GiB", "10G", "512KiB", which are
// rounded and so only approximate).
func ParseSize(s string) (int64, error) {
	t := strings.ReplaceAll(strings.TrimSpace(s), " ", "")
	if t == "" {
		return 0, fmt.Errorf("%w: empty size", ErrInvalid)
	}
	t = normalizeNumber(t)
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("%w: negative size %q", ErrInvalid, s)
		}
		return n, nil
	}
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%w: size %q", ErrInvalid, s)
	}
	f, err := strconv.ParseFloat(t[:i], 64)
	if err != nil {
		return 0, fmt.Errorf("%w: size %q", ErrInvalid, s)
	}
	var mult float64
	switch strings.TrimSuffix(strings.TrimSuffix(t[i:], "B"), "i") {
	case "":
		mult = 1
	case "k", "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	case "T":
		mult = 1 << 40
	case "P":
		mult = 1 << 50
	default:
		return 0, fmt.Errorf("%w: size unit in %q", ErrInvalid, s)
	}
	v := f * mult
	if v >= math.MaxInt64 || math.IsNaN(v) {
		return 0, fmt.Errorf("%w: size %q out of range", ErrInvalid, s)
	}
	return int64(v), nil
}

func parseBool(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "yes", "true":
		return true
	}
	return false
}

// DiskFromFields builds a Disk from one parsed item. It takes the exact
// `size` (thousand separators allowed) and falls back to the rounded
// `file-size` only when `size` is absent; the NQN from
// nvme-tcp-server-nqn, or nvme-tcp-name on RouterOS before 7.21. Unknown
// fields are kept in Disk.Fields.
func DiskFromFields(m map[string]string) (Disk, error) {
	d := Disk{
		Slot:     m["slot"],
		Type:     m["type"],
		FilePath: strings.TrimLeft(m["file-path"], "/"),
		Export:   parseBool(m["nvme-tcp-export"]),
		// Absent (older firmware, other disk types) reads as off: no
		// drift is planned for a field RouterOS does not show.
		MountFilesystem: parseBool(m["mount-filesystem"]),
		NQN:             firstNonEmpty(m["nvme-tcp-server-nqn"], m["nvme-tcp-name"]),
		AllowHosts:      ParseAllowHosts(m["nvme-tcp-server-allow-host-name"]),
		Fields:          m,
	}
	if d.Slot == "" {
		return Disk{}, fmt.Errorf("%w: disk without slot", ErrRejected)
	}
	if s := firstNonEmpty(m["size"], m["file-size"]); s != "" {
		n, err := ParseSize(s)
		if err != nil {
			return Disk{}, fmt.Errorf("disk %s: %w", d.Slot, err)
		}
		d.Size = n
	}
	if p := firstNonEmpty(m["nvme-tcp-server-port"], m["nvme-tcp-port"]); p != "" {
		n, err := strconv.Atoi(normalizeNumber(strings.ReplaceAll(p, " ", "")))
		if err != nil || n < 0 || n > 65535 {
			return Disk{}, fmt.Errorf("%w: disk %s: port %q", ErrRejected, d.Slot, p)
		}
		d.Port = n
	}
	return d, nil
}

// FileFromFields builds a File from one parsed /file item.
func FileFromFields(m map[string]string) (File, error) {
	f := File{Name: strings.TrimLeft(m["name"], "/")}
	if f.Name == "" {
		return File{}, fmt.Errorf("%w: file without name", ErrRejected)
	}
	if s := m["size"]; s != "" {
		n, err := ParseSize(s)
		if err != nil {
			return File{}, fmt.Errorf("file %s: %w", f.Name, err)
		}
		f.Size = n
	}
	return f, nil
}

// CapacityFromFields builds a Capacity from the pool's /disk item.
func CapacityFromFields(m map[string]string) (Capacity, error) {
	var c Capacity
	var err error
	if c.Size, err = ParseSize(m["size"]); err != nil {
		return Capacity{}, fmt.Errorf("pool size: %w", err)
	}
	if c.Free, err = ParseSize(m["free"]); err != nil {
		return Capacity{}, fmt.Errorf("pool free: %w", err)
	}
	return c, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// parseKeyValueLines parses "   key: value" lines, the layout of
// `/system resource print`.
func parseKeyValueLines(out string) map[string]string {
	m := make(map[string]string)
	for _, line := range splitLines(out) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if k == "" || strings.ContainsAny(k, " \t") {
			continue
		}
		m[k] = strings.TrimSpace(v)
	}
	return m
}
