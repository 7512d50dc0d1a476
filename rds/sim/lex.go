package sim

import (
	"fmt"
	"strings"
)

// tokKind is the kind of a lexical token of the RouterOS command language.
type tokKind int

const (
	tEOF    tokKind = iota
	tWord           // unquoted run: /disk, print, slot, 10G, storage-pool/x.img
	tString         // "quoted", escapes resolved
	tLBrack         // [
	tRBrack         // ]
	tLParen         // (
	tRParen         // )
	tEq             // =
	tNeq            // !=
	tTilde          // ~
	tBang           // !
	tEnd            // ; or newline: end of a command
	tLBrace         // { (a block: :do { ... } on-error={ ... })
	tRBrace         // }
)

// pos is a 1-based line and column, as RouterOS reports them in errors.
type pos struct{ line, col int }

type token struct {
	kind tokKind
	text string
	pos  pos
}

// scriptError is a parse-time error: RouterOS refuses the whole script and
// runs nothing of it.
type scriptError struct {
	msg string
	pos pos
}

func (e *scriptError) Error() string {
	return fmt.Sprintf("%s (line %d column %d)", e.msg, e.pos.line, e.pos.col)
}

func syntaxErr(p pos) *scriptError   { return &scriptError{msg: "syntax error", pos: p} }
func expectedEnd(p pos) *scriptError { return &scriptError{msg: "expected end of command", pos: p} }
func badCommand(name string, p pos) *scriptError {
	return &scriptError{msg: "bad command name " + name, pos: p}
}

// isWordByte says whether c may appear in an unquoted word. Anything RouterOS
// treats as syntax ends a word; '$' is refused outright because the
// simulator has no variables, and braces open and close blocks.
func isWordByte(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', ';', '[', ']', '(', ')', '"', '=', '~', '!', '$', '{', '}':
		return false
	}
	return true
}

// lex splits a script into tokens. Quoted strings follow RouterOS rules:
// \" \\ \$ \? \_ (space) \n \r \t \a \b \f \v and two hex digits; a bare '$'
// (a variable reference) is a syntax error since no variables exist here.
func lex(src string) ([]token, error) {
	var toks []token
	line, col := 1, 1
	i := 0
	adv := func(n int) {
		for k := 0; k < n && i < len(src); k++ {
			if src[i] == '\n' {
				line++
				col = 1
			} else {
				col++
			}
			i++
		}
	}
	for i < len(src) {
		c := src[i]
		p := pos{line, col}
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			adv(1)
		case c == '\\' && i+1 < len(src) && src[i+1] == '\n':
			adv(2) // line continuation
		case c == '\n' || c == ';':
			toks = append(toks, token{tEnd, string(c), p})
			adv(1)
		case c == '[':
			toks = append(toks, token{tLBrack, "[", p})
			adv(1)
		case c == ']':
			toks = append(toks, token{tRBrack, "]", p})
			adv(1)
		case c == '{':
			toks = append(toks, token{tLBrace, "{", p})
			adv(1)
		case c == '}':
			toks = append(toks, token{tRBrace, "}", p})
			adv(1)
		case c == '(':
			toks = append(toks, token{tLParen, "(", p})
			adv(1)
		case c == ')':
			toks = append(toks, token{tRParen, ")", p})
			adv(1)
		case c == '=':
			toks = append(toks, token{tEq, "=", p})
			adv(1)
		case c == '~':
			toks = append(toks, token{tTilde, "~", p})
			adv(1)
		case c == '!':
			if i+1 < len(src) && src[i+1] == '=' {
				toks = append(toks, token{tNeq, "!=", p})
				adv(2)
			} else {
				toks = append(toks, token{tBang, "!", p})
				adv(1)
			}
		case c == '"':
			s, n, err := lexString(src[i:], p)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{tString, s, p})
			adv(n)
		case isWordByte(c):
			j := i
			for j < len(src) && isWordByte(src[j]) {
				j++
			}
			toks = append(toks, token{tWord, src[i:j], p})
			adv(j - i)
		default:
			return nil, syntaxErr(p)
		}
	}
	toks = append(toks, token{tEOF, "", pos{line, col}})
	return toks, nil
}

// lexString reads a quoted string starting at s[0] == '"'. It returns the
// unescaped text and the number of bytes consumed.
func lexString(s string, start pos) (string, int, error) {
	var b strings.Builder
	col := start.col + 1
	line := start.line
	i := 1
	for i < len(s) {
		c := s[i]
		switch c {
		case '"':
			return b.String(), i + 1, nil
		case '$':
			return "", 0, syntaxErr(pos{line, col})
		case '\n':
			b.WriteByte(c)
			line++
			col = 1
			i++
			continue
		case '\\':
			if i+1 >= len(s) {
				return "", 0, syntaxErr(pos{line, col})
			}
			e := s[i+1]
			switch e {
			case '"', '\\', '$', '?':
				b.WriteByte(e)
			case '_':
				b.WriteByte(' ')
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
			default:
				if i+2 < len(s) && isHex(e) && isHex(s[i+2]) {
					b.WriteByte(unhex(e)<<4 | unhex(s[i+2]))
					i += 3
					col += 3
					continue
				}
				return "", 0, syntaxErr(pos{line, col})
			}
			i += 2
			col += 2
			continue
		}
		b.WriteByte(c)
		i++
		col++
	}
	return "", 0, syntaxErr(pos{line, col})
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// quote renders s as a RouterOS quoted string, escaping what the lexer
// unescapes, so quote and lex round-trip.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"', '\\', '$':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 || c == 0x7f {
				fmt.Fprintf(&b, `\%02X`, c)
				continue
			}
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
