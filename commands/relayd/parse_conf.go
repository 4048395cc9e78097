package relayd

import (
	"fmt"
	"strings"

	"github.com/opsbot/opsbot/commands/hostcmd"
)

// This part reads relayd.conf, tolerantly: only what a reload check needs,
// the objects the file declares at its top level (redirect, relay, router,
// table), following include and expanding macros the way parse.y's lexer
// does. It is not a validator: relayd -n is. Anything it does not know it
// skips, so that a grammar newer than this reader costs a comparison, not
// a false alarm.

// Declared is an object a configuration file declares.
type Declared struct {
	Type Type   `json:"type"` // redirect, relay, router or table
	Name string `json:"name"` // a table's name without <> and port
	File string `json:"file"`
	Line int    `json:"line"`
}

func (d Declared) String() string {
	name := d.Name
	if d.Type == TypeTable {
		name = "<" + name + ">"
	}
	return fmt.Sprintf("%s %s (%s:%d)", d.Type, name, d.File, d.Line)
}

// Conf is what a configuration file and its includes declare.
type Conf struct {
	Objects []Declared `json:"objects,omitempty"`
	Files   []string   `json:"files"`            // read, main file first
	Missed  []string   `json:"missed,omitempty"` // includes not read, and why
}

// Limits on includes: relayd has none, but a loop must end.
const (
	maxIncludeDepth = 8
	maxConfFiles    = 32
)

// ReadConf reads the file at path with read, and every file it includes,
// in order. macros are the -D macros relayd was started with: they win
// over the file's own (parse.y's symset keeps a command-line macro). The
// error is the main file's: an include that cannot be read is noted in
// Missed.
func ReadConf(path string, macros []string, read func(path string) ([]byte, error)) (Conf, error) {
	r := &confReader{read: read, macros: map[string]string{}, cmdline: map[string]bool{}}
	for _, m := range macros {
		if name, val, ok := strings.Cut(m, "="); ok {
			r.macros[name], r.cmdline[name] = val, true
		}
	}
	data, err := read(path)
	if err != nil {
		return Conf{}, err
	}
	r.conf.Files = append(r.conf.Files, path)
	r.parse(path, data, 0)
	return r.conf, nil
}

type confReader struct {
	read    func(string) ([]byte, error)
	macros  map[string]string
	cmdline map[string]bool
	conf    Conf
}

// token is one word of the lexer: quoted strings are words too (q set),
// and '{', '}', '<', '>', '=' and newline are tokens of their own.
type token struct {
	text string
	q    bool
	x    bool // from a macro's value: not expanded again (parse.y's expanding)
	line int
}

func (t token) is(s string) bool { return !t.q && t.text == s }

// lex splits a file into tokens as parse.y's yylex does: # comments, \
// continuations, "..." and '...' strings. $macro is expanded as the
// parser meets it (expand), since a macro is defined on the way.
func (r *confReader) lex(data string) []token {
	var toks []token
	line := 1
	var word strings.Builder
	wordLine := 0
	flush := func() {
		if word.Len() == 0 {
			return
		}
		toks = append(toks, token{text: word.String(), line: wordLine})
		word.Reset()
	}
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '\\' && i+1 < len(data) && data[i+1] == '\n':
			i++
			line++
		case c == '#':
			flush()
			for i+1 < len(data) && data[i+1] != '\n' {
				i++
			}
		case c == '"' || c == '\'':
			flush()
			start := line
			var b strings.Builder
			for i++; i < len(data) && data[i] != c; i++ {
				switch {
				case data[i] == '\\' && i+1 < len(data) && (data[i+1] == c || data[i+1] == '\\'):
					i++
					b.WriteByte(data[i])
				case data[i] == '\n':
					line++ // an unterminated string: relayd -n says so
					b.WriteByte(data[i])
				default:
					b.WriteByte(data[i])
				}
			}
			toks = append(toks, token{text: b.String(), q: true, line: start})
		case c == '\n':
			flush()
			toks = append(toks, token{text: "\n", line: line})
			line++
		case c == ' ' || c == '\t' || c == '\r':
			flush()
		case strings.IndexByte("{}<>=,", c) >= 0:
			flush()
			toks = append(toks, token{text: string(c), line: line})
		default:
			if word.Len() == 0 {
				wordLine = line
			}
			word.WriteByte(c)
		}
	}
	flush()
	return toks
}

// expand replaces toks[i], when it is $NAME outside quotes and NAME a
// macro defined so far, with the tokens of its value, as parse.y pushes
// the value back into its input; the value is not expanded again.
func (r *confReader) expand(toks []token, i int) []token {
	if i >= len(toks) {
		return toks
	}
	t := toks[i]
	if t.q || t.x || !strings.HasPrefix(t.text, "$") {
		return toks
	}
	v, ok := r.macros[t.text[1:]]
	if !ok {
		return toks
	}
	var val []token
	for _, vt := range (&confReader{}).lex(v) {
		if vt.q || vt.text != "\n" {
			vt.line, vt.x = t.line, true
			val = append(val, vt)
		}
	}
	return append(toks[:i:i], append(val, toks[i+1:]...)...)
}

// parse reads one file's top level: the statements at brace depth 0.
func (r *confReader) parse(file string, data []byte, depth int) {
	toks := r.lex(string(data))
	level := 0
	start := true // at the start of a statement
	for i := 0; i < len(toks); i++ {
		if toks = r.expand(toks, i); i >= len(toks) {
			break
		}
		t := toks[i]
		switch {
		case t.is("{"):
			level++
			start = false
			continue
		case t.is("}"):
			if level > 0 {
				level--
			}
			start = level == 0
			continue
		case t.is("\n"):
			start = start || level == 0
			continue
		}
		if level > 0 || !start {
			continue
		}
		start = false
		next := func(k int) token {
			if i+k < len(toks) {
				toks = r.expand(toks, i+k)
			}
			if i+k < len(toks) {
				return toks[i+k]
			}
			return token{text: "\n"}
		}
		word := func(t token) bool {
			return t.q || (t.text != "\n" && !strings.Contains("{}<>=,", t.text))
		}
		switch {
		case !t.q && next(1).is("="):
			// name = value: a macro, unless the command line set it.
			if v := next(2); word(v) && !r.cmdline[t.text] {
				r.macros[t.text] = v.text
			}
			i += 2
		case t.is("include") && word(next(1)):
			r.include(file, next(1), depth)
			i++
		case t.is("table") && next(1).is("<") && word(next(2)) && next(3).is(">"):
			r.declare(TypeTable, next(2), file)
			i += 3
		case (t.is("redirect") || t.is("relay") || t.is("router")) && word(next(1)):
			r.declare(Type(t.text), next(1), file)
			i++
		}
	}
}

func (r *confReader) declare(t Type, name token, file string) {
	r.conf.Objects = append(r.conf.Objects, Declared{Type: t, Name: name.text, File: file, Line: name.line})
}

func (r *confReader) include(from string, name token, depth int) {
	path := name.text
	where := fmt.Sprintf("%s (included at %s:%d)", path, from, name.line)
	switch {
	case depth+1 > maxIncludeDepth:
		r.conf.Missed = append(r.conf.Missed, where+": includes nested deeper than "+fmt.Sprint(maxIncludeDepth))
		return
	case len(r.conf.Files) >= maxConfFiles:
		r.conf.Missed = append(r.conf.Missed, where+": more than "+fmt.Sprint(maxConfFiles)+" files")
		return
	}
	for _, f := range r.conf.Files {
		if f == path {
			r.conf.Missed = append(r.conf.Missed, where+": included already")
			return
		}
	}
	data, err := r.read(path)
	if err != nil {
		r.conf.Missed = append(r.conf.Missed, where+": "+hostcmd.ErrText(err))
		return
	}
	r.conf.Files = append(r.conf.Files, path)
	r.parse(path, data, depth+1)
}

// Dropped lists the objects c declares that s, a show summary read
// after a reload, does not show: relayd dropped them. Redirects, relays
// and routers match by name; a table by its name with any port (relayd
// prints <webhosts> as webhosts:80, a router's as webhosts:65535). A
// disabled redirect or router is printed without its tables, so while
// one is, a table is not called missing: the view cannot tell.
func Dropped(c Conf, s Summary) []Declared {
	names := map[Type]map[string]bool{}
	add := func(t Type, name string) {
		if names[t] == nil {
			names[t] = map[string]bool{}
		}
		names[t][name] = true
	}
	hidden := false
	for _, p := range s.parents() {
		add(p.Type, p.Name)
		hidden = hidden || (p.State == StateDisabled && p.Type != TypeRelay)
	}
	s.walk(func(_ Ref, t *Table, h *Host) {
		if h == nil {
			name := t.Name
			if i := strings.LastIndexByte(name, ':'); i > 0 {
				name = name[:i]
			}
			add(TypeTable, name)
		}
	})
	var out []Declared
	for _, d := range c.Objects {
		if names[d.Type][d.Name] || (d.Type == TypeTable && hidden) {
			continue
		}
		out = append(out, d)
	}
	return out
}
