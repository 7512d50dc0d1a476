package sim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
	"time"
)

// failure is a runtime error: RouterOS prints it and stops the script, but
// what ran before it stays done.
type failure string

func (f failure) Error() string { return string(f) }

var (
	errNoSuchItem = failure("no such item")
	errNoSpace    = failure("failure: not enough space")
)

func invalidValue(name string) failure { return failure("invalid value for argument " + name) }
func noMatch(name string) failure      { return failure("input does not match any value of " + name) }

// value is what a command in [brackets] evaluates to.
type value struct {
	kind     vkind
	s        string
	ids      []int
	items    []item
	proplist []string
}

type vkind int

const (
	vNone vkind = iota
	vStr
	vIDs
	vItems
)

func (v value) String() string {
	switch v.kind {
	case vStr:
		return v.s
	case vIDs:
		parts := make([]string, len(v.ids))
		for i, id := range v.ids {
			parts[i] = fmt.Sprintf("*%X", id)
		}
		return strings.Join(parts, ";")
	case vItems:
		var parts []string
		for _, it := range v.items {
			for _, f := range it.asValue(v.proplist) {
				parts = append(parts, f.name+"="+f.raw())
			}
		}
		return strings.Join(parts, ";")
	}
	return ""
}

func (v value) json(keep bool) string {
	switch v.kind {
	case vStr:
		if !keep && numberLike(v.s) {
			return stringConverted(v.s)
		}
		return jsonString(v.s)
	case vIDs:
		parts := make([]string, len(v.ids))
		for i, id := range v.ids {
			parts[i] = jsonString(fmt.Sprintf("*%X", id))
		}
		return "[" + strings.Join(parts, ",") + "]"
	case vItems:
		return renderJSON(v.items, v.proplist, keep)
	}
	return "[]"
}

// interp runs one script with the server lock held.
type interp struct {
	s     *Server
	ctx   context.Context
	width int
	// maxPut cuts what one :put prints to its first maxPut bytes (0 = no
	// cap): Faults.MaxPutBytes.
	maxPut int
	out    strings.Builder
	dirty  bool
}

// run parses and runs a script and returns what RouterOS would print.
func (s *Server) run(ctx context.Context, script string, width int) string {
	return s.runCapped(ctx, script, width, 0)
}

// runCapped is run with every :put cut to maxPut bytes (0 = no cap).
func (s *Server) runCapped(ctx context.Context, script string, width, maxPut int) string {
	cmds, err := parseScript(script, s.prof)
	if err != nil {
		return err.Error() + "\n"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in := &interp{s: s, ctx: ctx, width: width, maxPut: maxPut}
	for _, c := range cmds {
		if _, err := in.eval(c, true); err != nil {
			in.out.WriteString(err.Error() + "\n")
			break
		}
	}
	if in.dirty && s.opts.StatePath != "" {
		if err := s.st.save(s.opts.StatePath); err != nil {
			s.log.Error("saving simulator state", "err", err)
		}
	}
	return in.out.String()
}

// do runs :do { body } on-error={ onError }: a runtime error in the body
// stops the body (what ran before it stays done, what it printed stays
// printed) and runs onError instead of stopping the script. Without
// on-error the error stops the script as outside a block; an error in
// onError stops it too.
func (in *interp) do(c *command) (value, error) {
	for _, b := range c.body {
		if _, err := in.eval(b, true); err != nil {
			if !c.hasOnError {
				return value{}, err
			}
			for _, e := range c.onError {
				if _, err := in.eval(e, true); err != nil {
					return value{}, err
				}
			}
			return value{}, nil
		}
	}
	return value{}, nil
}

// ifElse runs :if: every comparison holds -> the do block, else the else
// block. Numbers compare as numbers; = and != compare other text as text;
// < and > on text are an error, as RouterOS refuses to order strings.
func (in *interp) ifElse(c *command) (value, error) {
	ok := true
	for _, cmp := range c.cond {
		l, err := in.literal(cmp.l)
		if err != nil {
			return value{}, err
		}
		if cmp.op == "" {
			if !truthy(l) {
				ok = false
			}
			continue
		}
		r, err := in.literal(cmp.r)
		if err != nil {
			return value{}, err
		}
		ln, lerr := strconv.ParseInt(l, 10, 64)
		rn, rerr := strconv.ParseInt(r, 10, 64)
		numeric := lerr == nil && rerr == nil
		var holds bool
		switch {
		case cmp.op == "=" && numeric:
			holds = ln == rn
		case cmp.op == "=":
			holds = sameValue(l, r)
		case cmp.op == "!=" && numeric:
			holds = ln != rn
		case cmp.op == "!=":
			holds = !sameValue(l, r)
		case !numeric:
			return value{}, failure("cannot compare " + quote(l) + " " + cmp.op + " " + quote(r))
		case cmp.op == "<":
			holds = ln < rn
		case cmp.op == ">":
			holds = ln > rn
		case cmp.op == "<=":
			holds = ln <= rn
		default:
			holds = ln >= rn
		}
		if !holds {
			ok = false
		}
	}
	block := c.body
	if !ok {
		block = c.onError
	}
	for _, b := range block {
		if _, err := in.eval(b, true); err != nil {
			return value{}, err
		}
	}
	return value{}, nil
}

func (in *interp) literal(vn valueNode) (string, error) {
	if vn.sub == nil {
		return vn.text, nil
	}
	v, err := in.eval(vn.sub, false)
	if err != nil {
		return "", err
	}
	return v.String(), nil
}

func (in *interp) evalValue(vn valueNode) (value, error) {
	if vn.sub == nil {
		return value{kind: vStr, s: vn.text}, nil
	}
	return in.eval(vn.sub, false)
}

func (in *interp) eval(c *command, top bool) (value, error) {
	if err := in.ctx.Err(); err != nil {
		return value{}, failure("action cancelled")
	}
	switch c.verb {
	case "do":
		return in.do(c)
	case "if":
		return in.ifElse(c)
	case "len":
		if len(c.args) == 0 {
			return value{kind: vStr, s: "0"}, nil
		}
		v, err := in.evalValue(c.args[0])
		if err != nil {
			return value{}, err
		}
		n := len(v.s)
		switch v.kind {
		case vIDs:
			n = len(v.ids)
		case vItems:
			n = len(v.items)
		case vNone:
			n = 0
		}
		return value{kind: vStr, s: strconv.Itoa(n)}, nil
	case "put":
		var v value
		if len(c.args) > 0 {
			var err error
			if v, err = in.evalValue(c.args[0]); err != nil {
				return value{}, err
			}
		}
		text := v.String()
		if in.maxPut > 0 && len(text) > in.maxPut {
			text = text[:in.maxPut]
		}
		in.out.WriteString(text + "\n")
		return value{}, nil
	case "serialize":
		to, ok := c.arg("to")
		if !ok {
			return value{}, failure("missing value(s) of argument(s) to")
		}
		if to.text != "json" {
			return value{}, noMatch("to")
		}
		vn, ok := c.arg("value")
		if !ok {
			if len(c.args) == 0 {
				return value{}, failure("missing value(s) of argument(s) value")
			}
			vn = c.args[0]
		}
		v, err := in.evalValue(vn)
		if err != nil {
			return value{}, err
		}
		// Without json.no-string-conversion (or before 7.17, which has no
		// options) number-like strings print as floats.
		keep := false
		if o, ok := c.arg("options"); ok {
			text, err := in.literal(o)
			if err != nil {
				return value{}, err
			}
			for _, opt := range strings.Split(text, ",") {
				switch opt {
				case "json.no-string-conversion":
					keep = true
				case "json.pretty":
				default:
					return value{}, noMatch("options")
				}
			}
		}
		if v.kind == vItems && len(v.proplist) == 0 {
			return value{kind: vStr, s: in.itemsJSON(v.items, keep)}, nil
		}
		return value{kind: vStr, s: v.json(keep)}, nil
	}
	if c.verb != "find" && c.verb != "get" {
		in.s.statements.Add(1)
	}
	switch c.menu {
	case "disk":
		return in.disk(c, top)
	case "file":
		return in.file(c, top)
	case "system/resource", "system/identity":
		return in.system(c, top)
	}
	return value{}, badCommand(c.verb, c.pos)
}

// ---- items ----

func (in *interp) poolItem() item {
	st := in.s.st
	size := in.s.poolSize
	return item{id: poolID, index: 0, flags: "BM", groups: [][]field{
		{fEnum("type", "raid"), fStr("slot", in.s.poolName), fStr("slot-default", ""),
			fStr("parent", ""), fEnum("fs", "btrfs")},
		{fStr("model", "RAID1")},
		{fBytes("size", size), fBytes("free", max(0, size-st.used))},
		{fStr("mount-point", in.s.poolName), fBool("mount-filesystem", true),
			fBool("mount-read-only", false)},
		{fBool("compress", false), fInt("sector-size", 512), fEnum("raid-type", "raid1")},
		{fBool("nvme-tcp-export", false), fBool("iscsi-export", false)},
		{fBool("nfs-sharing", false), fBool("smb-sharing", false), fBool("media-sharing", false)},
	}}
}

func (in *interp) diskItem(d *diskRec, index int) item {
	var size int64
	if f := in.s.st.byName[d.FilePath]; f != nil {
		size = f.Size
	}
	flags := "B" // a file disk is a block device (real 7.21 output: "31 Bt")
	if d.Disabled {
		flags = "X" + flags
	}
	if d.Export {
		flags += "t"
	}
	return item{id: d.ID, index: index, flags: flags, comment: d.Comment, groups: [][]field{
		{fEnum("type", "file"), fStr("slot", d.Slot), fStr("slot-default", ""),
			fStr("parent", ""), fEnum("fs", "-")},
		{fStr("model", "/"+d.FilePath)},
		{fBytes("size", size), fBool("mount-filesystem", !d.NoMountFS), fBool("mount-read-only", false)},
		{fBool("compress", false), fInt("sector-size", 512), fEnum("raid-master", "none")},
		{fBool("nvme-tcp-export", d.Export), fInt("nvme-tcp-server-port", int64(d.Port)),
			fStr(in.s.prof.nqnProperty(), d.nqn())},
		{fStr("nvme-tcp-server-allow-host-name", d.AllowHost), fBool("iscsi-export", false)},
		{fBool("nfs-sharing", false), fBool("smb-sharing", false), fBool("media-sharing", false)},
		{fEnum("media-interface", "none"), fBool("swap", false)},
		{fEnum("file-path", "/"+d.FilePath)},
		{fHuman("file-size", size), fInt("file-offset", 0)},
	}}
}

// touch records a change: the state is saved after the script, and cached
// items are rebuilt.
func (in *interp) touch() {
	in.dirty = true
	in.s.st.version++
}

// itemsJSON is renderJSON with each item's object remembered until the
// next change: serialising thousands of disks is what clients do most.
func (in *interp) itemsJSON(items []item, keep bool) string {
	st := in.s.st
	if st.json == nil || st.jsonVersion != st.version {
		st.json, st.jsonVersion = map[int]string{}, st.version
	}
	conv := 0
	if !keep {
		conv = 1
	}
	var b strings.Builder
	b.Grow(len(items) * 640) // a disk serialises to about 600 bytes
	b.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		key := it.id<<1 | conv // each item once per conversion mode
		obj, ok := st.json[key]
		if !ok {
			obj = strings.TrimSuffix(strings.TrimPrefix(renderJSON([]item{it}, nil, keep), "["), "]")
			if it.id != 0 { // id 0: /system items, which change by themselves
				st.json[key] = obj
			}
		}
		b.WriteString(obj)
	}
	b.WriteByte(']')
	return b.String()
}

// diskItems is the whole /disk list, cached between changes: listing
// thousands of disks is what clients do most.
func (in *interp) diskItems() []item {
	st := in.s.st
	if st.items != nil && st.itemsVersion == st.version {
		return st.items
	}
	items := make([]item, 0, len(st.Disks)+1)
	items = append(items, in.poolItem())
	for i, d := range st.Disks {
		items = append(items, in.diskItem(d, i+1))
	}
	st.items, st.itemsVersion = items, st.version
	return items
}

func fileItem(f *fileRec, index int) item {
	typ := "file"
	if ext := path.Ext(f.Name); ext != "" {
		typ = ext + " file"
	}
	// As real /file print detail: name unquoted without a leading slash,
	// "type=.img file" unquoted, size rounded in units, last-modified.
	return item{id: f.ID, index: index, groups: [][]field{{
		fEnum("name", f.Name), fEnum("type", typ), fHuman("size", f.Size),
		fEnum("last-modified", f.Created.UTC().Format("2006-01-02 15:04:05")),
	}}}
}

func (in *interp) fileItems() []item {
	items := make([]item, len(in.s.st.Files))
	for i, f := range in.s.st.Files {
		items[i] = fileItem(f, i)
	}
	return items
}

var diskColumns = []column{{"SLOT", "slot"}, {"TYPE", "type"}, {"FS", "fs"}, {"SIZE", "size"},
	{"FREE", "free"}, {"FILE-PATH", "file-path"}}
var fileColumns = []column{{"NAME", "name"}, {"TYPE", "type"}, {"SIZE", "size"},
	{"LAST-MODIFIED", "last-modified"}}

func filter(items []item, e expr) []item {
	if e == nil {
		return items
	}
	var out []item
	for _, it := range items {
		if e.match(it.prop) {
			out = append(out, it)
		}
	}
	return out
}

func (in *interp) print(c *command, all []item, top bool, flagged bool, cols []column) (value, error) {
	flags := map[string]bool{}
	for _, a := range c.args {
		flags[a.text] = true
	}
	var proplist []string
	if pl, ok := c.arg("proplist"); ok {
		text, err := in.literal(pl)
		if err != nil {
			return value{}, err
		}
		proplist = strings.Split(text, ",")
	}
	items := filter(all, c.where)
	switch {
	case flags["count-only"]:
		in.out.WriteString(strconv.Itoa(len(items)) + "\n")
		return value{}, nil
	case flags["as-value"]:
		if top {
			renderAsValue(&in.out, items, proplist)
			return value{}, nil
		}
		return value{kind: vItems, items: items, proplist: proplist}, nil
	case flags["terse"]:
		renderTerse(&in.out, items, len(all)-1)
	case flags["detail"]:
		renderDetail(&in.out, flagged, items, len(all)-1, in.width)
	default:
		renderTable(&in.out, flagged, cols, items, len(all)-1)
	}
	return value{}, nil
}

func ids(items []item) []int {
	out := make([]int, len(items))
	for i, it := range items {
		out[i] = it.id
	}
	return out
}

// targets resolves the "numbers" argument of set/remove/get: [find ...],
// "*1A" ids, row numbers, or names (a disk's slot, a file's name).
func (in *interp) targets(c *command, resolve func(string) (int, bool)) ([]int, error) {
	var vn valueNode
	if n, ok := c.arg("numbers"); ok {
		vn = n
	} else if n, ok := c.arg("number"); ok {
		vn = n
	} else if len(c.args) > 0 {
		vn = c.args[0]
	} else {
		return nil, failure("missing value(s) of argument(s) numbers")
	}
	var out []int
	if vn.sub != nil {
		v, err := in.eval(vn.sub, false)
		if err != nil {
			return nil, err
		}
		switch v.kind {
		case vIDs, vItems:
			out = v.ids
			if v.kind == vItems {
				out = ids(v.items)
			}
			// A [find] that matches nothing makes set/remove do nothing,
			// silently, as on RouterOS (not "no such item").
			return out, nil
		case vStr:
			vn = valueNode{text: v.s}
		}
	}
	if vn.sub == nil {
		for _, part := range strings.FieldsFunc(vn.text, func(r rune) bool { return r == ',' || r == ';' }) {
			id, ok := resolve(part)
			if !ok {
				return nil, errNoSuchItem
			}
			out = append(out, id)
		}
	}
	if len(out) == 0 {
		return nil, errNoSuchItem
	}
	return out, nil
}

func parseID(s string) (int, bool) {
	if !strings.HasPrefix(s, "*") {
		return 0, false
	}
	n, err := strconv.ParseInt(s[1:], 16, 32)
	return int(n), err == nil
}

func (in *interp) resolveDisk(s string) (int, bool) {
	st := in.s.st
	if id, ok := parseID(s); ok {
		if id == poolID {
			return id, true
		}
		return id, in.diskByID(id) != nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		switch {
		case n == 0:
			return poolID, true
		case n > 0 && n <= len(st.Disks):
			return st.Disks[n-1].ID, true
		}
		return 0, false
	}
	if s == in.s.poolName {
		return poolID, true
	}
	if d := st.bySlot[s]; d != nil {
		return d.ID, true
	}
	return 0, false
}

func (in *interp) resolveFile(s string) (int, bool) {
	st := in.s.st
	if id, ok := parseID(s); ok {
		return id, in.fileByID(id) != nil
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n < len(st.Files) {
		return st.Files[n].ID, true
	}
	if f := st.byName[strings.TrimPrefix(s, "/")]; f != nil {
		return f.ID, true
	}
	return 0, false
}

func (in *interp) diskByID(id int) *diskRec {
	for _, d := range in.s.st.Disks {
		if d.ID == id {
			return d
		}
	}
	return nil
}

func (in *interp) fileByID(id int) *fileRec {
	for _, f := range in.s.st.Files {
		if f.ID == id {
			return f
		}
	}
	return nil
}

// get implements "get <item> <property>".
func (in *interp) get(c *command, items []item, resolve func(string) (int, bool), needTarget bool) (value, error) {
	prop := ""
	args := c.args
	if needTarget {
		id, err := in.targets(c, resolve)
		if err != nil {
			return value{}, err
		}
		if len(id) == 0 {
			return value{}, errNoSuchItem
		}
		var found []item
		for _, it := range items {
			if it.id == id[0] {
				found = append(found, it)
			}
		}
		if len(found) == 0 {
			return value{}, errNoSuchItem
		}
		items = found
		if _, named := c.arg("number"); !named && len(args) > 0 {
			args = args[1:]
		}
	}
	if vn, ok := c.arg("value-name"); ok {
		prop = vn.text
	} else if len(args) > 0 {
		prop = args[0].text
	}
	if len(items) == 0 {
		return value{}, errNoSuchItem
	}
	if prop == "" {
		return value{kind: vItems, items: items[:1]}, nil
	}
	v, ok := items[0].prop(prop)
	if !ok {
		return value{}, noMatch("value-name")
	}
	return value{kind: vStr, s: v}, nil
}

// ---- /disk ----

func (in *interp) disk(c *command, top bool) (value, error) {
	switch c.verb {
	case "print":
		return in.print(c, in.diskItems(), top, true, diskColumns)
	case "find":
		return value{kind: vIDs, ids: ids(filter(in.diskItems(), c.where))}, nil
	case "get":
		return in.get(c, in.diskItems(), in.resolveDisk, true)
	case "add":
		id, err := in.diskAdd(c)
		if err != nil || top {
			return value{}, err
		}
		return value{kind: vIDs, ids: []int{id}}, nil
	case "set":
		return value{}, in.diskSet(c)
	case "remove":
		return value{}, in.diskRemove(c)
	case "monitor-traffic":
		return value{}, in.diskMonitor(c)
	}
	return value{}, badCommand(c.verb, c.pos)
}

// copySource resolves copy-from (a slot, row, *id, or what [find ...]
// returned) to the one disk it names.
func (in *interp) copySource(v string) (*diskRec, error) {
	parts := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' })
	switch {
	case len(parts) == 0:
		return nil, errNoSuchItem // [find] matched nothing
	case len(parts) > 1:
		return nil, invalidValue("copy-from")
	}
	id, ok := in.resolveDisk(parts[0])
	if !ok {
		return nil, errNoSuchItem
	}
	if id == poolID {
		return nil, invalidValue("copy-from")
	}
	d := in.diskByID(id)
	if d == nil {
		return nil, errNoSuchItem
	}
	return d, nil
}

// diskMonitor implements "/disk monitor-traffic <items> once": one sample
// of every named disk, a column each, in one answer. The storage pool's
// column sums its disks.
func (in *interp) diskMonitor(c *command) error {
	once := false
	cc := *c
	cc.args = nil
	for _, a := range c.args {
		if a.sub == nil && a.text == "once" {
			once = true
			continue
		}
		cc.args = append(cc.args, a)
	}
	targets, err := in.targets(&cc, in.resolveDisk)
	if err != nil {
		return err
	}
	if !once {
		// RouterOS would print a sample every second until interrupted;
		// over exec that never ends, so the simulator refuses it.
		return failure("failure: the simulator answers monitor-traffic with once only")
	}
	now := in.s.now()
	advanced := map[*diskRec]bool{}
	adv := func(d *diskRec) {
		if !advanced[d] {
			in.advance(d, now)
			advanced[d] = true
		}
	}
	cols := make([][][2]string, 0, len(targets))
	for _, id := range targets {
		if id == poolID {
			var sum trafficRec
			for _, d := range in.s.st.Disks {
				adv(d)
				t := d.Traffic
				sum.ReadOps += t.ReadOps
				sum.ReadBytes += t.ReadBytes
				sum.WriteOps += t.WriteOps
				sum.WriteBytes += t.WriteBytes
				sum.FlushOps += t.FlushOps
				sum.readOpsRate += t.readOpsRate
				sum.readRate += t.readRate
				sum.writeOpsRate += t.writeOpsRate
				sum.writeRate += t.writeRate
			}
			cols = append(cols, monitorFields(in.s.poolName, sum))
			continue
		}
		d := in.diskByID(id)
		if d == nil {
			return errNoSuchItem
		}
		adv(d)
		cols = append(cols, monitorFields(d.Slot, *d.Traffic))
	}
	if len(advanced) > 0 {
		in.dirty = true // counters are kept in state.json; no print changes
	}
	renderMonitor(&in.out, cols)
	return nil
}

// diskArgs evaluates the named arguments of add/set.
func (in *interp) diskArgs(c *command) (map[string]string, error) {
	vals := map[string]string{}
	for _, a := range c.named {
		if a.name == "numbers" {
			continue
		}
		v, err := in.literal(a.val)
		if err != nil {
			return nil, err
		}
		if a.name == "nvme-tcp-name" {
			// The release's name for the NQN (parse checked which one).
			a.name = "nvme-tcp-server-nqn"
		}
		vals[a.name] = v
	}
	return vals, nil
}

// applyDiskArgs sets the properties add and set share on d.
func applyDiskArgs(d *diskRec, vals map[string]string) error {
	if v, ok := vals["slot"]; ok {
		if v == "" || strings.ContainsAny(v, "\x00\r\n") || len(v) > 255 {
			return invalidValue("slot")
		}
		d.Slot = v
	}
	if v, ok := vals["nvme-tcp-export"]; ok {
		b, ok := boolValue(v)
		if !ok {
			return noMatch("nvme-tcp-export")
		}
		d.Export = b
	}
	if v, ok := vals["disabled"]; ok {
		b, ok := boolValue(v)
		if !ok {
			return noMatch("disabled")
		}
		d.Disabled = b
	}
	if v, ok := vals["mount-filesystem"]; ok {
		b, ok := boolValue(v)
		if !ok {
			return noMatch("mount-filesystem")
		}
		d.NoMountFS = !b
	}
	if v, ok := vals["nvme-tcp-server-port"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 {
			return invalidValue("nvme-tcp-server-port")
		}
		d.Port = n
	}
	if v, ok := vals["nvme-tcp-server-nqn"]; ok {
		if len(v) > 223 || strings.ContainsAny(v, " \t\r\n/") {
			return invalidValue("nvme-tcp-server-nqn")
		}
		d.NQN = v
	}
	if v, ok := vals["nvme-tcp-server-allow-host-name"]; ok {
		d.AllowHost = v
	}
	if v, ok := vals["comment"]; ok {
		d.Comment = v
	}
	return nil
}

// fits reports whether add more bytes fit a pool of pool bytes with used
// taken. It compares without summing: used+add wraps negative for sizes
// near 2^63, which would let any grow through.
func fits(used, add, pool int64) bool {
	return add <= pool-used // 0 <= used and 0 <= pool: no overflow
}

// parseSize reads file-size: bytes, or a number with a binary unit (1G = 2^30).
func parseSize(name, s string) (int64, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, invalidValue(name)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, invalidValue(name)
	}
	var mult int64
	switch s[i:] {
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
	default:
		return 0, failure("value of " + name + " contains invalid trailing characters")
	}
	if n == 0 || n > math.MaxInt64/mult {
		return 0, invalidValue(name)
	}
	return n * mult, nil
}

// cleanPath checks a file-path: relative to the root, no "..", on the pool.
func (in *interp) cleanPath(p string) (string, error) {
	p = strings.TrimPrefix(p, "/")
	if p == "" || strings.ContainsAny(p, "\\\x00") || path.Clean(p) != p {
		return "", invalidValue("file-path")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return "", invalidValue("file-path")
		}
	}
	if !strings.HasPrefix(p, in.s.poolName+"/") {
		return "", failure("failure: file-path is not on a mounted disk")
	}
	return p, nil
}

func (in *interp) backendErr(op string, err error) error {
	if errors.Is(err, ErrNoSpace) {
		return errNoSpace
	}
	in.s.log.Error("simulator backend", "op", op, "err", err)
	return failure("failure: " + op + " failed")
}

func (in *interp) nqnTaken(nqn string, self *diskRec) bool {
	n := in.s.st.nqns[nqn]
	if self.Export && self.nqn() == nqn && in.s.st.bySlot[self.Slot] == self {
		n-- // self is already counted
	}
	return n > 0
}

// diskAdd adds a disk and returns its id (what `:put [/disk add ...]` prints).
func (in *interp) diskAdd(c *command) (int, error) {
	st := in.s.st
	vals, err := in.diskArgs(c)
	if err != nil {
		return 0, err
	}
	typ := "file"
	if v, ok := vals["type"]; ok {
		typ = v
	}
	switch typ {
	case "file":
	case "tmpfs", "nvme-tcp", "iscsi", "nfs", "smb", "raid":
		return 0, failure("failure: only type=file is simulated")
	default:
		return 0, noMatch("type")
	}
	d := &diskRec{Port: 4420}
	if err := applyDiskArgs(d, vals); err != nil {
		return 0, err
	}
	var src *diskRec
	if v, ok := vals["copy-from"]; ok {
		if src, err = in.copySource(v); err != nil {
			return 0, err
		}
	}
	var size int64
	if v, ok := vals["file-size"]; ok {
		if size, err = parseSize("file-size", v); err != nil {
			return 0, err
		}
	}
	fp, ok := vals["file-path"]
	if !ok {
		return 0, failure("failure: file-path not set")
	}
	if d.FilePath, err = in.cleanPath(fp); err != nil {
		return 0, err
	}
	if d.Slot == "" {
		for n := 1; ; n++ {
			if st.bySlot[fmt.Sprintf("file%d", n)] == nil {
				d.Slot = fmt.Sprintf("file%d", n)
				break
			}
		}
	}
	if st.bySlot[d.Slot] != nil || d.Slot == in.s.poolName {
		return 0, failure("failure: slot already used")
	}
	if st.byPath[d.FilePath] != nil {
		return 0, failure("failure: file already in use")
	}
	if d.Export && !d.Disabled && in.nqnTaken(d.nqn(), d) {
		return 0, failure("failure: nvme-tcp-server-nqn already used")
	}
	if src != nil {
		if err := in.copyFile(src, d.FilePath, size); err != nil {
			return 0, err
		}
	}
	// An existing file (left by a removed disk) is attached as it is, the
	// way RouterOS attaches an image; file-size only sizes a new file.
	if st.byName[d.FilePath] == nil {
		if size == 0 {
			return 0, failure("failure: file-size not set")
		}
		if !fits(st.used, size, in.s.poolSize) {
			return 0, errNoSpace
		}
		if err := in.s.backend.Create(in.ctx, d.FilePath, size); err != nil {
			return 0, in.backendErr("create", err)
		}
		f := &fileRec{ID: st.newID(), Name: d.FilePath, Size: size, Created: in.s.now()}
		st.Files = append(st.Files, f)
		st.byName[f.Name] = f
		st.used += size
		in.touch()
	}
	d.ID = st.newID()
	in.advance(d, in.s.now()) // the traffic counters start here
	if e := d.export(); e.On {
		if err := in.s.backend.Export(in.ctx, e); err != nil {
			return 0, in.backendErr("export", err)
		}
	}
	st.Disks = append(st.Disks, d)
	st.bySlot[d.Slot] = d
	st.byPath[d.FilePath] = d
	st.track(d, 1)
	in.touch()
	return d.ID, nil
}

// copyFile makes the file of a copy-from: an independent copy of src's
// file at path, of src's size, or of size when that is larger (rds-csi
// restores a snapshot into a larger volume this way; whether RouterOS
// honours it is unverified). The copy is charged its full size against the
// pool, as a new file is.
func (in *interp) copyFile(src *diskRec, path string, size int64) error {
	st := in.s.st
	if st.byName[path] != nil {
		return failure("failure: file already exists")
	}
	sf := st.byName[src.FilePath]
	if sf == nil {
		return errNoSuchItem
	}
	if size == 0 {
		size = sf.Size
	}
	if size < sf.Size {
		return failure("failure: can not shrink file")
	}
	if !fits(st.used, size, in.s.poolSize) {
		return errNoSpace
	}
	if err := in.s.backend.Copy(in.ctx, sf.Name, path); err != nil {
		return in.backendErr("copy", err)
	}
	if size > sf.Size {
		if err := in.s.backend.Grow(in.ctx, path, size); err != nil {
			_ = in.s.backend.Remove(in.ctx, path)
			return in.backendErr("grow", err)
		}
	}
	f := &fileRec{ID: st.newID(), Name: path, Size: size, Created: in.s.now()}
	st.Files = append(st.Files, f)
	st.byName[f.Name] = f
	st.used += size
	in.touch()
	return nil
}

func (in *interp) diskSet(c *command) error {
	st := in.s.st
	vals, err := in.diskArgs(c)
	if err != nil {
		return err
	}
	var size int64
	if v, ok := vals["file-size"]; ok {
		if size, err = parseSize("file-size", v); err != nil {
			return err
		}
	}
	targets, err := in.targets(c, in.resolveDisk)
	if err != nil {
		return err
	}
	for _, id := range targets {
		if id == poolID {
			return failure("failure: can not change " + in.s.poolName)
		}
		d := in.diskByID(id)
		if d == nil {
			return errNoSuchItem
		}
		// Bring the traffic counters up to now before the export may change
		// (the memory model counts I/O only while a disk is exported).
		in.advance(d, in.s.now())
		nd := *d
		if err := applyDiskArgs(&nd, vals); err != nil {
			return err
		}
		if other := st.bySlot[nd.Slot]; (other != nil && other != d) || nd.Slot == in.s.poolName {
			return failure("failure: slot already used")
		}
		oldExp, newExp := d.export(), nd.export()
		if newExp.On && oldExp != newExp && in.nqnTaken(newExp.NQN, d) {
			return failure("failure: nvme-tcp-server-nqn already used")
		}
		if f := st.byName[d.FilePath]; size != 0 && f != nil && size != f.Size {
			if size < f.Size {
				return failure("failure: can not shrink file")
			}
			if !fits(st.used, size-f.Size, in.s.poolSize) {
				return errNoSpace
			}
			if err := in.s.backend.Grow(in.ctx, f.Name, size); err != nil {
				return in.backendErr("grow", err)
			}
			st.used += size - f.Size
			f.Size = size
			in.touch()
		}
		switch {
		case oldExp == newExp:
		case oldExp.On && newExp.On && sameExceptACL(oldExp, newExp):
			// Only the allow list changed: in place, controllers stay.
			if err := in.s.backend.Export(in.ctx, newExp); err != nil {
				return in.backendErr("export", err)
			}
		default:
			if oldExp.On {
				oldExp.On = false
				if err := in.s.backend.Export(in.ctx, oldExp); err != nil {
					return in.backendErr("unexport", err)
				}
			}
			if newExp.On {
				if err := in.s.backend.Export(in.ctx, newExp); err != nil {
					return in.backendErr("export", err)
				}
			}
		}
		delete(st.bySlot, d.Slot)
		st.track(d, -1)
		*d = nd
		st.bySlot[d.Slot] = d
		st.track(d, 1)
		in.touch()
	}
	return nil
}

func (in *interp) diskRemove(c *command) error {
	st := in.s.st
	targets, err := in.targets(c, in.resolveDisk)
	if err != nil {
		return err
	}
	for _, id := range targets {
		if id == poolID {
			return failure("failure: can not remove " + in.s.poolName)
		}
		d := in.diskByID(id)
		if d == nil {
			return errNoSuchItem
		}
		if e := d.export(); e.On {
			e.On = false
			if err := in.s.backend.Export(in.ctx, e); err != nil {
				return in.backendErr("unexport", err)
			}
		}
		// The file stays: RouterOS removes the disk only.
		for i, x := range st.Disks {
			if x == d {
				st.Disks = append(st.Disks[:i], st.Disks[i+1:]...)
				break
			}
		}
		delete(st.bySlot, d.Slot)
		delete(st.byPath, d.FilePath)
		st.track(d, -1)
		in.touch()
	}
	return nil
}

// ---- /file ----

func (in *interp) file(c *command, top bool) (value, error) {
	st := in.s.st
	switch c.verb {
	case "print":
		return in.print(c, in.fileItems(), top, false, fileColumns)
	case "find":
		return value{kind: vIDs, ids: ids(filter(in.fileItems(), c.where))}, nil
	case "get":
		return in.get(c, in.fileItems(), in.resolveFile, true)
	case "remove":
		targets, err := in.targets(c, in.resolveFile)
		if err != nil {
			return value{}, err
		}
		for _, id := range targets {
			f := in.fileByID(id)
			if f == nil {
				return value{}, errNoSuchItem
			}
			if st.byPath[f.Name] != nil {
				return value{}, failure("failure: file is in use")
			}
			if err := in.s.backend.Remove(in.ctx, f.Name); err != nil {
				return value{}, in.backendErr("remove", err)
			}
			for i, x := range st.Files {
				if x == f {
					st.Files = append(st.Files[:i], st.Files[i+1:]...)
					break
				}
			}
			delete(st.byName, f.Name)
			st.used -= f.Size
			in.touch()
		}
		return value{}, nil
	}
	return value{}, badCommand(c.verb, c.pos)
}

// ---- /system ----

func (in *interp) system(c *command, top bool) (value, error) {
	var fs []field
	if c.menu == "system/identity" {
		fs = []field{fEnum("name", "RDS")}
	} else {
		up := in.s.now().Sub(in.s.started)
		fs = []field{
			fEnum("uptime", uptime(up)),
			fEnum("version", in.s.version+" (stable)"),
			fEnum("build-time", "2024-11-26 11:23:41"),
			fEnum("factory-software", "7.15"),
			fHuman("free-memory", 14<<30),
			fHuman("total-memory", 16<<30),
			fEnum("cpu", "ARM64"),
			fInt("cpu-count", 4),
			fInt("cpu-frequency", 2000),
			fInt("cpu-load", 1),
			fHuman("free-hdd-space", 100<<20),
			fHuman("total-hdd-space", 128<<20),
			fEnum("architecture-name", "arm64"),
			fEnum("board-name", "RDS2216"),
			fEnum("platform", "MikroTik"),
		}
	}
	it := item{id: 0, groups: [][]field{fs}}
	switch c.verb {
	case "get":
		return in.get(c, []item{it}, nil, false)
	case "print":
		for _, a := range c.args {
			if a.text == "as-value" {
				if top {
					renderAsValue(&in.out, []item{it}, nil)
					return value{}, nil
				}
				return value{kind: vItems, items: []item{it}}, nil
			}
		}
		w := 0
		for _, f := range fs {
			w = max(w, len(f.name))
		}
		for _, f := range fs {
			v := f.raw()
			if f.kind == kHuman {
				v = human(f.n)
			}
			fmt.Fprintf(&in.out, "%*s: %s\n", w+2, f.name, v)
		}
		return value{}, nil
	}
	return value{}, badCommand(c.verb, c.pos)
}

// uptime prints a duration the RouterOS way: 1w2d3h4m5s, zero parts left out.
func uptime(d time.Duration) string {
	s := int64(d / time.Second)
	var b strings.Builder
	for _, u := range []struct {
		n    int64
		name string
	}{{7 * 86400, "w"}, {86400, "d"}, {3600, "h"}, {60, "m"}} {
		if s >= u.n {
			fmt.Fprintf(&b, "%d%s", s/u.n, u.name)
			s %= u.n
		}
	}
	if s > 0 || b.Len() == 0 {
		fmt.Fprintf(&b, "%ds", s)
	}
	return b.String()
}
