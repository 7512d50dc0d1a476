package spec

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Error is one problem in a state file, with its position.
// Line and Col are 1-based; 0 means the problem concerns the whole file
// (for example, it cannot be read).
type Error struct {
	File      string
	Line, Col int
	// Path is the dotted field path, e.g. "volumes[2].connection.ctrlLossTmo";
	// empty for syntax errors.
	Path string
	Msg  string
}

func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(clipPath(e.Path))
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found, sorted by file and position. Load returns
// all of them at once so a user fixes a file in one pass.
type Errors []Error

func (es *Errors) Error() string {
	lines := make([]string, len(*es))
	for i, e := range *es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sort orders errors by file, line, column, path, message and drops exact
// duplicates (a value reached twice through a YAML alias).
func (es Errors) sort() Errors {
	slices.SortFunc(es, func(a, b Error) int {
		return cmp.Or(
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Col, b.Col),
			cmp.Compare(a.Path, b.Path),
			cmp.Compare(a.Msg, b.Msg),
		)
	})
	return slices.Compact(es)
}

// maxEcho is the most bytes of a user value an error message repeats: a
// 50 MB volume name is reported, not printed.
const maxEcho = 64

// clip shortens a user value echoed in an error message to its first
// maxEcho bytes (cut on a character boundary) followed by "... (N bytes)";
// shorter values are returned as they are.
func clip(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	cut := maxEcho
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("... (%d bytes)", len(s))
}

// clipPath clips the parts of a field path that come from the file (map
// keys, unknown field names) so a hostile key cannot flood the message.
func clipPath(p string) string {
	if len(p) <= maxEcho {
		return p
	}
	parts := strings.Split(p, ".")
	for i, s := range parts {
		parts[i] = clip(s)
	}
	return strings.Join(parts, ".")
}
