package sim

import (
	"regexp"
	"strings"
)

// menuVerbs lists, per menu, the commands the simulator understands. It is a
// read-only table.
var menuVerbs = map[string][]string{
	"disk":            {"add", "set", "remove", "print", "find", "get", "monitor-traffic"},
	"file":            {"print", "remove", "find", "get"},
	"system/resource": {"print", "get"},
	"system/identity": {"print", "get"},
}

// menuPrefixes are menus that only hold submenus.
var menuPrefixes = map[string]bool{"system": true}

func isVerb(menu, verb string) bool {
	for _, v := range menuVerbs[menu] {
		if v == verb {
			return true
		}
	}
	return false
}

// command is one parsed RouterOS command.
type command struct {
	pos   pos    // where the command starts
	menu  string // "disk", "file", ...; "" for builtins and menu changes
	verb  string // add, set, ..., or "put"/"serialize" for builtins; "" changes menu
	named []namedArg
	args  []valueNode // positional
	where expr        // print/find filter, nil when absent
	// body and onError are the blocks of :do { body } on-error={ onError }.
	body, onError []*command
	hasOnError    bool
	// cond is the condition of :if (cond) do={ body } else={ onError }.
	cond []comparison
}

// comparison is one term of an :if condition: l op r, or l alone (true
// when it is "true" or "yes"). Terms are joined by && (or "and").
type comparison struct {
	l, r valueNode
	op   string // "=", "!=", "<", ">", "<=", ">=" or "" (l alone)
}

type namedArg struct {
	name string
	pos  pos
	val  valueNode
}

// valueNode is an argument value: a literal or a [subcommand].
type valueNode struct {
	pos  pos
	text string
	sub  *command
}

func (c *command) arg(name string) (valueNode, bool) {
	for _, a := range c.named {
		if a.name == name {
			return a.val, true
		}
	}
	return valueNode{}, false
}

type parser struct {
	toks []token
	i    int
	menu string // current menu, changed by a bare "/disk"
	prof profile
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

// parseScript parses a whole script. RouterOS parses everything before it
// runs anything, so one syntax error anywhere means nothing runs.
func parseScript(src string, prof profile) ([]*command, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, prof: prof}
	cmds, err := p.parseCommands(false)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, syntaxErr(t.pos)
	}
	return cmds, nil
}

// parseCommands parses commands separated by ';' or newlines up to the end
// of the script or, in a block, up to (not including) its '}'.
func (p *parser) parseCommands(block bool) ([]*command, error) {
	var cmds []*command
	for {
		t := p.peek()
		switch {
		case t.kind == tEOF:
			return cmds, nil
		case t.kind == tRBrace && block:
			return cmds, nil
		case t.kind == tEnd:
			p.next()
			continue
		}
		c, err := p.parseCommand()
		if err != nil {
			return nil, err
		}
		if c != nil {
			cmds = append(cmds, c)
		}
		switch t := p.peek(); {
		case t.kind == tEnd || t.kind == tEOF:
		case t.kind == tRBrace && block:
		default:
			return nil, expectedEnd(t.pos)
		}
	}
}

// parseBlock parses "{ commands }". A menu changed inside the block stays
// inside it.
func (p *parser) parseBlock() ([]*command, error) {
	t := p.next()
	if t.kind != tLBrace {
		return nil, syntaxErr(t.pos)
	}
	saved := p.menu
	defer func() { p.menu = saved }()
	cmds, err := p.parseCommands(true)
	if err != nil {
		return nil, err
	}
	if e := p.next(); e.kind != tRBrace {
		return nil, syntaxErr(e.pos)
	}
	return cmds, nil
}

// parseIf parses the rest of ":if (cond) do={ ... } else={ ... }" (else
// optional). A condition is comparisons joined by && or "and"; operands
// are literals or [commands]; < > <= >= need spaces around them (the
// lexer keeps them in words), as the client writes them.
func (p *parser) parseIf(c *command) error {
	if t := p.next(); t.kind != tLParen {
		return syntaxErr(t.pos)
	}
	for {
		l, err := p.parseValue(p.menu)
		if err != nil {
			return err
		}
		cmp := comparison{l: l}
		switch t := p.peek(); {
		case t.kind == tEq:
			cmp.op = "="
		case t.kind == tNeq:
			cmp.op = "!="
		case t.kind == tWord && (t.text == "<" || t.text == ">"):
			cmp.op = t.text
			if p.toks[p.i+1].kind == tEq { // "<=": '=' is a token of its own
				p.next()
				cmp.op += "="
			}
		}
		if cmp.op != "" {
			p.next()
			if cmp.r, err = p.parseValue(p.menu); err != nil {
				return err
			}
		}
		c.cond = append(c.cond, cmp)
		t := p.next()
		if t.kind == tRParen {
			break
		}
		if t.kind != tWord || (t.text != "&&" && t.text != "and") {
			return syntaxErr(t.pos)
		}
	}
	for _, part := range []string{"do", "else"} {
		t := p.peek()
		if t.kind != tWord || t.text != part || p.toks[p.i+1].kind != tEq {
			if part == "do" {
				return syntaxErr(t.pos)
			}
			break
		}
		p.next()
		p.next()
		b, err := p.parseBlock()
		if err != nil {
			return err
		}
		if part == "do" {
			c.body = b
		} else {
			c.onError = b
		}
	}
	if t := p.peek(); !atEnd(t) && t.kind != tRBrace {
		return expectedEnd(t.pos)
	}
	return nil
}

// parseDo parses the rest of ":do { ... } on-error={ ... }" (the on-error
// part is optional). Only this form is interpreted: the batch scripts of
// the client use it (docs/rds.md); `:do ... while=` loops are refused.
func (p *parser) parseDo(c *command) error {
	body, err := p.parseBlock()
	if err != nil {
		return err
	}
	c.body = body
	t := p.peek()
	if atEnd(t) || t.kind == tRBrace {
		return nil
	}
	if t.kind != tWord || t.text != "on-error" || p.toks[p.i+1].kind != tEq {
		return expectedEnd(t.pos)
	}
	p.next()
	p.next()
	c.hasOnError = true
	if c.onError, err = p.parseBlock(); err != nil {
		return err
	}
	return nil
}

// parseCommand parses one command up to (not including) ';', newline, ']' or
// the end. It returns nil for a bare menu change such as "/disk".
func (p *parser) parseCommand() (*command, error) {
	t := p.next()
	if t.kind != tWord {
		return nil, syntaxErr(t.pos)
	}
	c := &command{pos: t.pos}
	switch {
	case strings.HasPrefix(t.text, ":"):
		name := t.text[1:]
		np := pos{t.pos.line, t.pos.col + 1}
		switch {
		case name == "put":
			c.verb = "put"
		case name == "do":
			c.verb = "do"
			return c, p.parseDo(c)
		case name == "if":
			c.verb = "if"
			return c, p.parseIf(c)
		case name == "len":
			c.verb = "len"
		case name == "serialize" && p.prof.serialize:
			c.verb = "serialize"
		default:
			return nil, badCommand(name, np)
		}
	case strings.HasPrefix(t.text, "/"):
		menu, verb, err := p.parsePath(t)
		if err != nil {
			return nil, err
		}
		if verb == "" {
			p.menu = menu
			return nil, nil
		}
		c.menu, c.verb = menu, verb
	default:
		if p.menu == "" || !isVerb(p.menu, t.text) {
			return nil, badCommand(t.text, t.pos)
		}
		c.menu, c.verb = p.menu, t.text
	}
	if err := p.parseArgs(c); err != nil {
		return nil, err
	}
	return c, checkArgs(c, p.prof)
}

// parsePath resolves "/disk print", "/disk/print", "/system resource print".
func (p *parser) parsePath(first token) (menu, verb string, err error) {
	parts := func(t token, s string, off int) error {
		for _, part := range strings.Split(s, "/") {
			pp := pos{t.pos.line, t.pos.col + off}
			off += len(part) + 1
			if part == "" {
				continue
			}
			if verb != "" {
				return expectedEnd(pp)
			}
			joined := part
			if menu != "" {
				joined = menu + "/" + part
			}
			switch {
			case menuVerbs[joined] != nil || menuPrefixes[joined]:
				menu = joined
			case menuVerbs[menu] != nil && isVerb(menu, part):
				verb = part
			default:
				return badCommand(part, pp)
			}
		}
		return nil
	}
	if err := parts(first, first.text[1:], 1); err != nil {
		return "", "", err
	}
	// "/system resource print": further words continue the path.
	for verb == "" {
		t := p.peek()
		if t.kind != tWord || strings.ContainsAny(t.text, "/:") {
			break
		}
		joined := t.text
		if menu != "" {
			joined = menu + "/" + t.text
		}
		if menuVerbs[joined] == nil && !menuPrefixes[joined] && !isVerb(menu, t.text) {
			return "", "", badCommand(t.text, t.pos)
		}
		p.next()
		if err := parts(t, t.text, 0); err != nil {
			return "", "", err
		}
	}
	if verb == "" && menuVerbs[menu] == nil {
		// "/system" alone: a prefix without commands of its own.
		if t := p.peek(); t.kind != tEnd && t.kind != tEOF {
			return "", "", badCommand(t.text, t.pos)
		}
	}
	return menu, verb, nil
}

func (p *parser) parseArgs(c *command) error {
	if c.verb == "find" {
		if t := p.peek(); t.kind == tWord && t.text == "where" {
			p.next()
		}
		if atEnd(p.peek()) {
			return nil
		}
		e, err := p.parseOr(c.menu)
		if err != nil {
			return err
		}
		c.where = e
		return nil
	}
	for {
		t := p.peek()
		if atEnd(t) {
			return nil
		}
		if t.kind == tWord && t.text == "where" && c.verb == "print" {
			p.next()
			e, err := p.parseOr(c.menu)
			if err != nil {
				return err
			}
			c.where = e
			return nil
		}
		if t.kind == tWord && p.toks[p.i+1].kind == tEq {
			p.next()
			p.next()
			v, err := p.parseValue(c.menu)
			if err != nil {
				return err
			}
			c.named = append(c.named, namedArg{name: t.text, pos: t.pos, val: v})
			continue
		}
		v, err := p.parseValue(c.menu)
		if err != nil {
			return err
		}
		c.args = append(c.args, v)
	}
}

func atEnd(t token) bool {
	return t.kind == tEnd || t.kind == tEOF || t.kind == tRBrack || t.kind == tRBrace
}

// parseValue reads a literal or a [command]; a bare command inside the
// brackets ("[find ...]") belongs to menu, the enclosing command's.
func (p *parser) parseValue(menu string) (valueNode, error) {
	if t := p.peek(); atEnd(t) {
		// "name=" with nothing after it is an empty value.
		return valueNode{pos: t.pos}, nil
	}
	t := p.next()
	switch t.kind {
	case tWord, tString:
		return valueNode{pos: t.pos, text: t.text}, nil
	case tLBrack:
		saved := p.menu
		if menu != "" {
			p.menu = menu
		}
		sub, err := p.parseCommand()
		p.menu = saved
		if err != nil {
			return valueNode{}, err
		}
		if sub == nil {
			return valueNode{}, syntaxErr(t.pos)
		}
		if e := p.next(); e.kind != tRBrack {
			return valueNode{}, expectedEnd(e.pos)
		}
		return valueNode{pos: t.pos, sub: sub}, nil
	default:
		return valueNode{}, syntaxErr(t.pos)
	}
}

// expr is a where/find filter over an item's raw properties.
type expr interface {
	match(get func(string) (string, bool)) bool
}

type orExpr struct{ l, r expr }
type andExpr struct{ l, r expr }
type notExpr struct{ e expr }
type condExpr struct {
	prop string
	op   tokKind // tEq, tNeq, tTilde, or tEOF for "property is true"
	val  string
	re   *regexp.Regexp
}

func (e orExpr) match(g func(string) (string, bool)) bool  { return e.l.match(g) || e.r.match(g) }
func (e andExpr) match(g func(string) (string, bool)) bool { return e.l.match(g) && e.r.match(g) }
func (e notExpr) match(g func(string) (string, bool)) bool { return !e.e.match(g) }

func (e condExpr) match(get func(string) (string, bool)) bool {
	v, ok := get(e.prop)
	switch e.op {
	case tEq:
		return ok && sameValue(v, e.val)
	case tNeq:
		return !ok || !sameValue(v, e.val)
	case tTilde:
		return ok && e.re.MatchString(v)
	default:
		return ok && truthy(v)
	}
}

// sameValue compares the way RouterOS does for typed properties: yes/true and
// no/false are the same boolean.
func sameValue(have, want string) bool {
	if have == want {
		return true
	}
	hb, hok := boolValue(have)
	wb, wok := boolValue(want)
	return hok && wok && hb == wb
}

func boolValue(s string) (bool, bool) {
	switch s {
	case "yes", "true":
		return true, true
	case "no", "false":
		return false, true
	}
	return false, false
}

func truthy(s string) bool { b, ok := boolValue(s); return ok && b }

func (p *parser) parseOr(menu string) (expr, error) {
	l, err := p.parseAnd(menu)
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if t.kind != tWord || t.text != "or" {
			return l, nil
		}
		p.next()
		r, err := p.parseAnd(menu)
		if err != nil {
			return nil, err
		}
		l = orExpr{l, r}
	}
}

func (p *parser) parseAnd(menu string) (expr, error) {
	l, err := p.parseUnary(menu)
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if atEnd(t) || t.kind == tRParen || (t.kind == tWord && t.text == "or") {
			return l, nil
		}
		if t.kind == tWord && t.text == "and" {
			p.next()
		}
		r, err := p.parseUnary(menu)
		if err != nil {
			return nil, err
		}
		l = andExpr{l, r}
	}
}

func (p *parser) parseUnary(menu string) (expr, error) {
	t := p.next()
	switch t.kind {
	case tBang:
		e, err := p.parseUnary(menu)
		if err != nil {
			return nil, err
		}
		return notExpr{e}, nil
	case tLParen:
		e, err := p.parseOr(menu)
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tRParen {
			return nil, syntaxErr(c.pos)
		}
		return e, nil
	case tWord:
		if !isField(menu, t.text) {
			return nil, syntaxErr(t.pos)
		}
		c := condExpr{prop: t.text, op: tEOF}
		op := p.peek()
		if op.kind != tEq && op.kind != tNeq && op.kind != tTilde {
			return c, nil
		}
		p.next()
		v := p.next()
		if v.kind != tWord && v.kind != tString {
			return nil, syntaxErr(v.pos)
		}
		c.op, c.val = op.kind, v.text
		if op.kind == tTilde {
			re, err := regexp.Compile(v.text)
			if err != nil {
				return nil, syntaxErr(v.pos)
			}
			c.re = re
		}
		return c, nil
	default:
		return nil, syntaxErr(t.pos)
	}
}

// Arguments each command accepts.
var (
	diskAddArgs = []string{"type", "file-path", "file-size", "slot", "nvme-tcp-export",
		"nvme-tcp-server-port", "nvme-tcp-server-nqn", "nvme-tcp-name", "nvme-tcp-server-allow-host-name",
		"comment", "disabled", "mount-filesystem", "copy-from"}
	diskSetArgs = []string{"numbers", "file-size", "slot", "nvme-tcp-export",
		"nvme-tcp-server-port", "nvme-tcp-server-nqn", "nvme-tcp-name", "nvme-tcp-server-allow-host-name",
		"comment", "disabled", "mount-filesystem"}
	printFlags = []string{"detail", "terse", "brief", "as-value", "without-paging", "count-only"}
)

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkArgs refuses, at parse time, arguments a command does not have:
// RouterOS answers "expected end of command" at the first unknown one.
func checkArgs(c *command, prof profile) error {
	allowNamed := func(names ...string) error {
		for _, a := range c.named {
			if !contains(names, a.name) || !prof.knows(c.verb, a.name) {
				return expectedEnd(a.pos)
			}
		}
		return nil
	}
	maxArgs := func(n int) error {
		if len(c.args) > n {
			return expectedEnd(c.args[n].pos)
		}
		return nil
	}
	switch c.verb {
	case "put", "len":
		if err := allowNamed(); err != nil {
			return err
		}
		return maxArgs(1)
	case "serialize":
		if err := allowNamed("to", "value", "options"); err != nil {
			return err
		}
		return maxArgs(1)
	case "add":
		if err := allowNamed(diskAddArgs...); err != nil {
			return err
		}
		return maxArgs(0)
	case "set":
		if err := allowNamed(diskSetArgs...); err != nil {
			return err
		}
		return maxArgs(1)
	case "remove":
		if err := allowNamed("numbers"); err != nil {
			return err
		}
		return maxArgs(1)
	case "monitor-traffic":
		if err := allowNamed("numbers"); err != nil {
			return err
		}
		// The items, and the flag once, in any order.
		items := 0
		for _, a := range c.args {
			if a.sub == nil && a.text == "once" {
				continue
			}
			if items++; items > 1 {
				return expectedEnd(a.pos)
			}
		}
	case "get":
		if err := allowNamed("number", "value-name"); err != nil {
			return err
		}
		return maxArgs(2)
	case "print":
		if err := allowNamed("proplist"); err != nil {
			return err
		}
		for _, a := range c.args {
			if a.sub != nil || !contains(printFlags, a.text) {
				return expectedEnd(a.pos)
			}
		}
	}
	return nil
}
