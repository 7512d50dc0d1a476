package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Limits that keep hostile input (alias bombs, deep nesting) cheap. A real
// state file has a few thousand nodes at most.
const (
	maxNodes      = 200_000
	maxAliasNodes = 10_000 // nodes reached through aliases: expansion is where bombs hide
	maxDepth      = 64
	maxErrors     = 200 // per file; beyond this the first ones need fixing anyway
)

// pos is a 1-based line and column in a YAML file.
type pos struct{ line, col int }

// decoder turns a yaml.Node tree into the spec types strictly (unknown
// fields, duplicate keys and wrong types are errors) and remembers where
// every value and key was, so later validation can point at the line.
type decoder struct {
	file   string
	errs   Errors
	vals   map[string]pos // field path -> position of its value
	keys   map[string]pos // field path -> position of its key
	budget int            // nodes left to decode; <= 0 stops decoding
	// aliasBudget is the nodes left to decode through aliases.
	aliasBudget int
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, vals: map[string]pos{}, keys: map[string]pos{}, budget: maxNodes, aliasBudget: maxAliasNodes}
}

func (d *decoder) errAt(p pos, path, format string, args ...any) {
	switch {
	case len(d.errs) < maxErrors:
		d.errs = append(d.errs, Error{File: d.file, Line: p.line, Col: p.col, Path: path, Msg: fmt.Sprintf(format, args...)})
	case len(d.errs) == maxErrors:
		d.errs = append(d.errs, Error{File: d.file, Line: p.line, Col: p.col, Msg: fmt.Sprintf("more than %d problems; stopping here, fix the ones above first", maxErrors)})
		d.budget = 0 // nothing more is read, so the caller treats the file as broken
	}
}

func nodePos(n *yaml.Node) pos { return pos{n.Line, n.Column} }

// has reports whether the file set the field at path (even to a zero value),
// so defaults fill only what was left out.
func (d *decoder) has(path string) bool {
	_, ok := d.vals[path]
	return ok
}

// locate returns the position of path, or of its nearest ancestor that has one.
func (d *decoder) locate(path string) pos {
	for {
		if p, ok := d.vals[path]; ok {
			return p
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			if p, ok := d.vals[""]; ok {
				return p
			}
			return pos{1, 1}
		}
		path = path[:i]
	}
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parse reads exactly one YAML document. A parser panic (yaml.v3 has had
// some on malformed input) becomes an error: bad input must never crash us.
func (d *decoder) parse(data []byte) (root *yaml.Node) {
	defer func() {
		if r := recover(); r != nil {
			d.errAt(pos{}, "", "cannot parse YAML: %s", clip(fmt.Sprint(r)))
			root = nil
		}
	}()
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errAt(pos{1, 1}, "", "the file is empty; it needs at least apiVersion: %s and kind: %s", APIVersion, Kind)
			return nil
		}
		d.syntaxError(data, err)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.errAt(nodePos(&extra), "", "a state file holds one YAML document; split this one off into its own file and pass it with another -f")
		return nil
	} else if !errors.Is(err, io.EOF) {
		d.syntaxError(data, err)
		return nil
	}
	if len(doc.Content) == 0 {
		d.errAt(pos{1, 1}, "", "the file is empty; it needs at least apiVersion: %s and kind: %s", APIVersion, Kind)
		return nil
	}
	return doc.Content[0]
}

// yamlQuotedRE finds the values yaml.v3 quotes in its messages (anchor
// names, tags), which come from the file and are clipped.
var yamlQuotedRE = regexp.MustCompile(`'[^']{65,}'`)

func (d *decoder) syntaxError(data []byte, err error) {
	msg := yamlQuotedRE.ReplaceAllStringFunc(err.Error(), func(q string) string { return "'" + clip(q[1:len(q)-1]) + "'" })
	problem, near := yamlProblemText(msg)
	raw, _ := yamlProblemText(err.Error())
	if p, ok := locateSyntaxError(data, raw); ok {
		d.errAt(p, "", "YAML syntax: %s", problem)
		return
	}
	if near > 0 {
		// yaml.v3 names the line where the enclosing construct starts,
		// counted from 0 or from 1 depending on the error: no line is
		// given rather than a wrong one.
		d.errAt(pos{}, "", "YAML syntax: %s (near line %d)", problem, near)
		return
	}
	d.errAt(pos{}, "", "YAML syntax: %s", problem)
}

// yamlProblemText splits yaml.v3's "yaml: line N: problem" into the problem
// and N (0 when absent).
func yamlProblemText(msg string) (string, int) {
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return m[2], n
	}
	return strings.TrimPrefix(msg, "yaml: "), 0
}

// maxLocateSize bounds the files whose syntax errors are located exactly:
// locating parses prefixes of the file about 25 times. Real state files
// are a few kilobytes.
const maxLocateSize = 128 << 10

// tokenProblems are the problems yaml.v3 raises at the first character of
// the offending token, so the shortest failing prefix ends on it.
var tokenProblems = []string{
	"did not find expected key",
	"did not find expected '-' indicator",
	"mapping values are not allowed in this context",
	"block sequence entries are not allowed in this context",
	"found character that cannot start any token",
}

// locateSyntaxError finds where yaml.v3 fails: yaml.v3 reports only the
// line where the enclosing construct starts (and that one counted from 0
// for parser errors), never the column. The parser reads the input in one
// pass, so the shortest prefix of the file that fails with the same
// problem ends on the faulty line; for problems raised at a token, the
// shortest failing prefix within that line ends on the token's first
// character, which gives the column. Otherwise the column is the line's
// first non-blank character.
func locateSyntaxError(data []byte, problem string) (pos, bool) {
	if len(data) > maxLocateSize || problem == "" {
		return pos{}, false
	}
	fails := func(n int) bool { return yamlProblem(data[:n]) == problem }
	if !fails(len(data)) {
		return pos{}, false
	}
	var starts []int // byte offset of each line's start
	for i := 0; i < len(data); {
		starts = append(starts, i)
		j := bytes.IndexByte(data[i:], '\n')
		if j < 0 {
			break
		}
		i += j + 1
	}
	end := func(line int) int { // offset just past line (0-based), newline included
		if line+1 < len(starts) {
			return starts[line+1]
		}
		return len(data)
	}
	// The first line whose end makes the prefix fail.
	line := sort.Search(len(starts), func(l int) bool { return fails(end(l)) })
	if line == len(starts) {
		return pos{}, false
	}
	text := data[starts[line]:end(line)]
	col := 1 + utf8.RuneCount(text[:len(text)-len(bytes.TrimLeft(text, " \t"))])
	if slices.Contains(tokenProblems, problem) {
		lo := starts[line]
		k := lo + sort.Search(len(text), func(i int) bool { return fails(lo + i + 1) })
		if k < end(line) {
			col = 1 + utf8.RuneCount(data[lo:k])
		}
	}
	return pos{line + 1, col}, true
}

// yamlProblem parses data as parse does and returns yaml.v3's problem text,
// or "" when it parses.
func yamlProblem(data []byte) (problem string) {
	defer func() {
		if r := recover(); r != nil {
			problem = fmt.Sprint(r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if err == nil {
		err = dec.Decode(&doc)
	}
	if err == nil || errors.Is(err, io.EOF) {
		return ""
	}
	problem, _ = yamlProblemText(err.Error())
	return problem
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// decode fills v from n. It never stops at the first problem: every error is
// recorded and decoding goes on with the next field.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, depth int) {
	d.decodeNode(n, v, path, depth, false)
}

// decodeNode is decode; viaAlias says n was reached through an alias, which
// draws on the smaller alias budget.
func (d *decoder) decodeNode(n *yaml.Node, v reflect.Value, path string, depth int, viaAlias bool) {
	if d.budget <= 0 {
		return
	}
	if depth > maxDepth {
		d.errAt(nodePos(n), path, "nested too deeply")
		return
	}
	for n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.errAt(nodePos(n), path, "unknown alias")
			return
		}
		n = n.Alias
		viaAlias = true
		depth++
		if depth > maxDepth {
			d.errAt(nodePos(n), path, "aliases nested too deeply")
			return
		}
	}
	d.budget--
	if viaAlias {
		d.aliasBudget--
	}
	if d.budget <= 0 || d.aliasBudget <= 0 {
		d.errAt(nodePos(n), path, "the document expands to more than %d nodes, or %d through aliases; write it out or split it", maxNodes, maxAliasNodes)
		d.budget = 0
		return
	}
	d.vals[path] = nodePos(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // "key:" with no value means "not set"
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.errAt(nodePos(n), path, "%v", err) // the unmarshalers clip what they echo
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		d.budget++ // the same node again, not a new one
		if viaAlias {
			d.aliasBudget++
		}
		d.decodeNode(n, elem.Elem(), path, depth+1, viaAlias)
		v.Set(elem)
	case reflect.Struct:
		d.decodeStruct(n, v, path, depth, viaAlias)
	case reflect.Map:
		d.decodeMap(n, v, path, depth, viaAlias)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errAt(nodePos(n), path, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decodeNode(c, s.Index(i), path+"["+strconv.Itoa(i)+"]", depth+1, viaAlias)
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!bool" {
			d.errAt(nodePos(n), path, "expected a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.errAt(nodePos(n), path, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil || v.OverflowInt(i) {
			d.errAt(nodePos(n), path, "expected an integer, got %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint64, reflect.Uint32:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil || i < 0 || v.OverflowUint(uint64(i)) {
			d.errAt(nodePos(n), path, "expected a whole number >= 0, got %s", describe(n))
			return
		}
		v.SetUint(uint64(i))
	case reflect.Float64:
		var f float64
		t := n.ShortTag()
		if n.Kind != yaml.ScalarNode || (t != "!!float" && t != "!!int") || n.Decode(&f) != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.errAt(nodePos(n), path, "expected a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		// Only reachable if types.go grows a field kind this decoder lacks.
		d.errAt(nodePos(n), path, "internal: cannot decode into %s", v.Type())
	}
}

// describe names what a node holds, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := clip(n.Value)
		switch n.ShortTag() {
		case "!!bool":
			return "boolean " + v
		case "!!int", "!!float":
			return "number " + v
		}
		return strconv.Quote(v)
	}
	return "something else"
}

// yamlName is the YAML key of a struct field, or "" if it has none.
func yamlName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, depth int, viaAlias bool) {
	if n.Kind != yaml.MappingNode {
		d.errAt(nodePos(n), path, "expected a mapping, got %s", describe(n))
		return
	}
	t := v.Type()
	fields := map[string]int{}
	var names []string
	for i := range t.NumField() {
		if name := yamlName(t.Field(i)); name != "" {
			fields[name] = i
			names = append(names, name)
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errAt(nodePos(k), path, "a key must be a plain name, got %s", describe(k))
			continue
		}
		if k.Value == "<<" {
			d.errAt(nodePos(k), path, "merge keys (<<) are not supported; write the fields out")
			continue
		}
		fp := join(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			d.errAt(nodePos(k), fp, "duplicate key (first set on line %d); keep only one", line)
			continue
		}
		seen[k.Value] = k.Line
		idx, ok := fields[k.Value]
		if !ok {
			d.errAt(nodePos(k), fp, "unknown field %q%s; valid fields here: %s", clip(k.Value), suggest(k.Value, names), strings.Join(names, ", "))
			continue
		}
		d.keys[fp] = nodePos(k)
		d.decodeNode(val, v.Field(idx), fp, depth+1, viaAlias)
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string, depth int, viaAlias bool) {
	if n.Kind != yaml.MappingNode {
		d.errAt(nodePos(n), path, "expected a mapping, got %s", describe(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!null" {
			d.errAt(nodePos(k), path, "a key must be a name, got %s", describe(k))
			continue
		}
		fp := join(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			d.errAt(nodePos(k), fp, "duplicate key (first set on line %d); keep only one", line)
			continue
		}
		seen[k.Value] = k.Line
		d.keys[fp] = nodePos(k)
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decodeNode(val, elem, fp, depth+1, viaAlias)
		v.SetMapIndex(reflect.ValueOf(k.Value), elem)
	}
}

// suggest returns ` (did you mean "x"?)` for a near miss, else "".
func suggest(got string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if dd := editDistance(strings.ToLower(got), strings.ToLower(n)); dd < bestD {
			best, bestD = n, dd
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance; inputs are short field names
// (long ones are cut so hostile keys stay cheap).
func editDistance(a, b string) int {
	if len(a) > 64 {
		a = a[:64]
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
