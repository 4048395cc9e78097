package relayd

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Every fuzz target is seeded with all fixtures, so that each parser also
// meets the other tools' lines, and asserts more than "no panic": that
// every input line is accounted for once (parsed or kept as unknown),
// that parsing is deterministic, and that the result marshals to JSON.

func seedFixtures(f *testing.F) [][]byte {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "fixtures", "*.txt"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	var seeds [][]byte
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	seeds = append(seeds,
		[]byte(header+row(1, "relay", "a b", "", "active")+row(4, "table", "t:80", "", "active (1 hosts up)")+
			row(9, "host", "::1 parent 2", "", "unknown")+"garbage\n"+row(2, "relay", "b", "", "active")+
			row(4, "table", "t:80", "", "active (1 hosts)")+row(9, "host", "::1", "0.00%", "down")),
		[]byte("session 0:1 2001:db8::1:443 -> :80\tDONE\n\tage 123:00:00, idle 00:00:01, relay 1, pid 2, tag (id) 3\n"),
		[]byte("\t\ttotal: 1/2 checks, 3 retries, error: x\n\t\ttotal: 5 sessions\n"),
	)
	return seeds
}

func fuzzShow(f *testing.F, v view) {
	for _, b := range seedFixtures(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s := parseShow(v, in)
		if !reflect.DeepEqual(s, parseShow(v, in)) {
			t.Fatal("two parses of one input differ")
		}
		checkShowAccounting(t, v, in, s)
		if _, err := json.Marshal(s); err != nil {
			t.Fatalf("marshal: %v", err)
		}
		if d := Compare(s, s); !reflect.DeepEqual(d, Diff{}) {
			t.Fatalf("a summary differs from itself: %+v", d)
		}
		d := s.Digest(s)
		if d.HostsUp > d.Hosts || len(d.HostsDown) != d.Hosts-d.HostsUp || len(d.TablesDown) > d.Tables {
			t.Fatalf("digest counts do not add up: %+v", d)
		}
		if d.Healthy() != (len(d.NotActive) == 0 && len(d.TablesDown) == 0 && len(d.HostsDown) == 0) {
			t.Fatal("Healthy disagrees with the lists")
		}
	})
}

// checkShowAccounting asserts that every non-blank line of in is exactly
// one of: the header, a row, a check or statistics line of its row, an
// unknown line; and that each view holds only what it prints.
func checkShowAccounting(t *testing.T, v view, in []byte, s Summary) {
	t.Helper()
	lines := splitLines(in)
	seen := make([]int, len(lines)+1)
	mark := func(n int, what string) {
		if n < 1 || n > len(lines) {
			t.Fatalf("%s at line %d of %d", what, n, len(lines))
		}
		seen[n]++
	}
	rowOK := func(r Row, typ Type, parentLine int) {
		mark(r.Line, string(typ))
		if r.Type != typ || r.Line <= parentLine || r.State == "" {
			t.Fatalf("row %+v under line %d, want type %s", r, parentLine, typ)
		}
	}
	stats := func(r Row, st *Stats) {
		if st == nil {
			return
		}
		if v != viewRedirects && v != viewRelays || st.Line != r.Line+1 {
			t.Fatalf("%s: stats at line %d under row at line %d", v, st.Line, r.Line)
		}
		for k := range 3 {
			mark(st.Line+k, "stats")
		}
	}
	tables := func(tbs []Table, parentLine int) {
		for _, tb := range tbs {
			rowOK(tb.Row, TypeTable, parentLine)
			for _, h := range tb.Hosts {
				rowOK(h.Row, TypeHost, tb.Line)
				if h.Checks != nil {
					if v != viewHosts || h.Checks.Line != h.Line+1 {
						t.Fatalf("%s: checks at line %d under host at line %d", v, h.Checks.Line, h.Line)
					}
					mark(h.Checks.Line, "checks")
				}
			}
		}
	}
	for _, r := range s.Redirects {
		rowOK(r.Row, TypeRedirect, 0)
		stats(r.Row, r.Stats)
		tables(r.Tables, r.Line)
	}
	for _, r := range s.Relays {
		rowOK(r.Row, TypeRelay, 0)
		stats(r.Row, r.Stats)
		tables(r.Tables, r.Line)
	}
	for _, r := range s.Routers {
		rowOK(r.Row, TypeRouter, 0)
		tables(r.Tables, r.Line)
	}
	tables(s.Tables, 0)
	for _, u := range s.Unknown {
		mark(u.N, "unknown")
		if u.Text != lines[u.N-1] || u.Reason == "" {
			t.Fatalf("unknown %+v is not line %d %q", u, u.N, lines[u.N-1])
		}
	}
	for i, l := range lines {
		if !blank(l) && !isHeader(rtrim(l)) {
			break
		}
		if !blank(l) {
			mark(i+1, "header")
			break
		}
	}
	for i, l := range lines {
		want := 1
		if blank(l) {
			want = 0
		}
		if seen[i+1] != want {
			t.Fatalf("line %d %q accounted for %d times, want %d", i+1, l, seen[i+1], want)
		}
	}

	for typ, n := range map[Type]int{TypeRedirect: len(s.Redirects), TypeRelay: len(s.Relays), TypeRouter: len(s.Routers)} {
		if n > 0 && !v.prints(typ) {
			t.Fatalf("%s holds %d %s rows", v, n, typ)
		}
	}
	if len(s.Tables) > 0 && v != viewHosts {
		t.Fatalf("%s holds tables without a parent", v)
	}
}

func FuzzParseSummary(f *testing.F)   { fuzzShow(f, viewSummary) }
func FuzzParseHosts(f *testing.F)     { fuzzShow(f, viewHosts) }
func FuzzParseRedirects(f *testing.F) { fuzzShow(f, viewRedirects) }
func FuzzParseRelays(f *testing.F)    { fuzzShow(f, viewRelays) }

func FuzzParseSessions(f *testing.F) {
	for _, b := range seedFixtures(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		ss, unknown := ParseSessions(in)
		ss2, unknown2 := ParseSessions(in)
		if !reflect.DeepEqual(ss, ss2) || !reflect.DeepEqual(unknown, unknown2) {
			t.Fatal("two parses of one input differ")
		}
		lines := splitLines(in)
		seen := make([]int, len(lines)+2)
		for _, s := range ss {
			if s.Line < 1 || s.Line+1 > len(lines) {
				t.Fatalf("session at line %d of %d", s.Line, len(lines))
			}
			if !strings.HasPrefix(lines[s.Line-1], "session ") || !strings.HasPrefix(lines[s.Line], "\tage ") {
				t.Fatalf("session at line %d is not a session and an age line", s.Line)
			}
			if s.Age < 0 || s.Idle < 0 {
				t.Fatalf("negative age in %+v", s)
			}
			seen[s.Line]++
			seen[s.Line+1]++
		}
		for _, u := range unknown {
			if u.N < 1 || u.N > len(lines) || u.Text != lines[u.N-1] || u.Reason == "" {
				t.Fatalf("unknown %+v is not an input line", u)
			}
			seen[u.N]++
		}
		for i, l := range lines {
			if want := map[bool]int{true: 0, false: 1}[blank(l)]; seen[i+1] != want {
				t.Fatalf("line %d %q accounted for %d times, want %d", i+1, l, seen[i+1], want)
			}
		}
		if _, err := json.Marshal(ss); err != nil {
			t.Fatalf("marshal: %v", err)
		}
	})
}

func FuzzParseMonitor(f *testing.F) {
	for _, b := range seedFixtures(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		events, unknown := ParseMonitor(in)
		events2, unknown2 := ParseMonitor(in)
		if !reflect.DeepEqual(events, events2) || !reflect.DeepEqual(unknown, unknown2) {
			t.Fatal("two parses of one input differ")
		}
		lines := splitLines(in)
		kind := make([]byte, len(lines)+1) // 'e' event header, 'u' unknown
		for _, e := range events {
			if e.Line < 1 || e.Line > len(lines) || !strings.HasPrefix(lines[e.Line-1], e.Name+": imsg type ") {
				t.Fatalf("event %+v is not a header line", e)
			}
			kind[e.Line] = 'e'
		}
		for _, u := range unknown {
			if u.N < 1 || u.N > len(lines) || u.Text != lines[u.N-1] || kind[u.N] != 0 {
				t.Fatalf("unknown %+v is not an input line, or is also an event", u)
			}
			kind[u.N] = 'u'
		}
		// What is neither is a detail line of the event above it.
		open := false
		for i, l := range lines {
			switch {
			case blank(l):
			case kind[i+1] == 'e':
				open = true
			case kind[i+1] == 'u':
				open = open && strings.HasPrefix(l, "\t")
			case !open || !strings.HasPrefix(l, "\t"):
				t.Fatalf("line %d %q was neither parsed nor kept", i+1, l)
			}
		}
		if _, err := json.Marshal(events); err != nil {
			t.Fatalf("marshal: %v", err)
		}
	})
}

func FuzzParseCheck(f *testing.F) {
	for _, b := range seedFixtures(f) {
		f.Add(b, 0)
		f.Add(b, 1)
	}
	f.Fuzz(func(t *testing.T, in []byte, exit int) {
		r, err := ParseCheck(in, exit)
		r2, err2 := ParseCheck(in, exit)
		if !reflect.DeepEqual(r, r2) || !reflect.DeepEqual(err, err2) {
			t.Fatal("two parses of one input differ")
		}
		okLine, n := 0, 0
		for _, l := range splitLines(in) {
			if blank(l) {
				continue
			}
			n++
			if rtrim(l) == "configuration OK" {
				okLine = 1
			}
		}
		if len(r.Errors)+len(r.Messages)+okLine != n {
			t.Fatalf("%d errors, %d messages and %d ok line for %d lines", len(r.Errors), len(r.Messages), okLine, n)
		}
		if r.OK && (exit != 0 || err != nil || len(r.Errors) > 0) {
			t.Fatalf("OK with exit %d, error %v, %d errors", exit, err, len(r.Errors))
		}
		if err != nil {
			checkErrorText(t, err)
		}
	})
}

func FuzzClassify(f *testing.F) {
	seeds := seedFixtures(f)
	for _, b := range seeds {
		f.Add(b, []byte(nil), 0)
		f.Add([]byte(nil), b, 1)
		f.Add(b, b, 1)
	}
	f.Fuzz(func(t *testing.T, stdout, stderr []byte, exit int) {
		cond, err := Classify(stdout, stderr, exit)
		switch cond {
		case Done, Succeeded, LogSent:
			if err != nil || exit != 0 {
				t.Fatalf("success %s with exit %d and error %v", cond, exit, err)
			}
			return
		case CommandFailed, NotRunning, ConnectionRefused, PermissionDenied, UsageError, OtherError:
		default:
			t.Fatalf("condition %q", cond)
		}
		var e *Error
		if !errors.As(err, &e) || e.Condition != cond || exit == 0 {
			t.Fatalf("failure %s with exit %d and error %#v", cond, exit, err)
		}
		if (cond == NotRunning || cond == ConnectionRefused || cond == PermissionDenied) != (e.Socket != "") {
			t.Fatalf("%s with socket %q", cond, e.Socket)
		}
		checkErrorText(t, err)
	})
}

// checkErrorText: a message to show people, in lower case, on one line.
func checkErrorText(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	if msg == "" || strings.ContainsAny(msg, "\n") || msg[0] >= 'A' && msg[0] <= 'Z' {
		t.Fatalf("error message %q", msg)
	}
}

// FuzzReadConf: the relayd.conf reader never fails on what it reads, is
// deterministic, declares only the four kinds with a position in a file it
// read, and ends on includes of itself and on self-referring macros.
func FuzzReadConf(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "conf", "*.conf"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no configuration files: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "rdr=www")
	}
	f.Add([]byte("a = \"$a $a\"\nredirect $a {\ninclude \"/main\"\n}\ninclude \"/main\"\nrelay 'x\n"), "a=")
	f.Add([]byte("a = \"$a $a\"\nrelay $a { }\n"), "b=1")
	f.Fuzz(func(t *testing.T, in []byte, macro string) {
		read := func(p string) ([]byte, error) {
			if p == "/main" || p == "/etc/relayd.d/x.conf" {
				return in, nil
			}
			return nil, errors.New("no such file")
		}
		c, err := ReadConf("/main", []string{macro}, read)
		if err != nil {
			t.Fatalf("the main file reads: %v", err)
		}
		again, _ := ReadConf("/main", []string{macro}, read)
		if !reflect.DeepEqual(c, again) {
			t.Fatal("two reads of one input differ")
		}
		if len(c.Files) > maxConfFiles {
			t.Fatalf("%d files read", len(c.Files))
		}
		for _, d := range c.Objects {
			switch d.Type {
			case TypeRedirect, TypeRelay, TypeRouter, TypeTable:
			default:
				t.Fatalf("declared %q", d.Type)
			}
			if d.Line < 1 || !strings.Contains(strings.Join(c.Files, "\n"), d.File) {
				t.Fatalf("%v: no position in a file read", d)
			}
		}
		if _, err := json.Marshal(c); err != nil {
			t.Fatalf("marshal: %v", err)
		}
	})
}
