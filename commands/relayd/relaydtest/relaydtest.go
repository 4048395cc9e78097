// Package relaydtest stands in for OpenBSD's relayd tools in tests, since
// relayd runs only on OpenBSD: relayctl, relayd, ifconfig and rcctl as
// small /bin/sh scripts in a directory of their own, which replay the
// fixture files of commands/relayd/testdata byte for byte (cat of the file
// on stdout or stderr, as the real program prints it) and exit with the
// recorded code. Every invocation is appended to a log, so a test can
// assert exactly which commands ran, in order. Point a host's relayd
// settings at the scripts (Bed.Spec): absolute paths, no PATH involved,
// and the same scripts answer over SSH on this machine.
package relaydtest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Bed is one relayd host's stand-in programs.
//
// What a call answers is chosen per command line, by key: the program and
// its arguments joined by "_" (relayctl's -s SOCKET left out), e.g.
// relayctl_show_summary or ifconfig_-g_carp_carpdemote_50. A key holds
// numbered answers: the n-th call gets answer n, and calls after the last
// get the last one again. A call without an answer exits 127 and says so
// on stderr.
//
// A Bed also keeps relayd's state, so that a test can act the way relayd
// does rather than script every read: answers recorded In a state are
// given while the Bed is in that state (and before the answers recorded
// for no state), each state counting its calls anew, and an answer that
// moves On to another state moves the Bed there once it has been given
// (relayctl reload moving "old" to "reloaded"; a reload that relayd drops
// moving nowhere).
type Bed struct {
	Dir   string // the scripts, their answers and calls.log
	t     testing.TB
	check []string // relayd -n as the bot runs it for the flags of RunsWith
}

// Tools are the programs a Bed stands in for.
var Tools = []string{"relayctl", "relayd", "ifconfig", "rcctl"}

const script = `#!/bin/sh
# opsbot test stand-in for %[2]s: replays recorded output, logs its argv.
bed='%[1]s'
tool='%[2]s'
{ printf '%%s' "$tool"; for a in "$@"; do printf '\t%%s' "$a"; done; printf '\n'; } >>"$bed/calls.log"
key=$tool
skip=0
for a in "$@"; do
	if [ "$skip" = 1 ]; then skip=0; continue; fi
	if [ "$tool" = relayctl ] && [ "$a" = -s ]; then skip=1; continue; fi
	key="${key}_$a"
done
case $key in */*) key=$(printf '%%s' "$key" | tr / %%) ;; esac
st=
if [ -f "$bed/state" ]; then IFS= read -r st <"$bed/state" || :; fi
r="$bed/resp/$key"
nk="$key"
if [ -n "$st" ] && [ -d "$bed/states/$st/$key" ]; then
	r="$bed/states/$st/$key"
	nk="$st@$key"
fi
if [ ! -d "$r" ]; then
	echo "stand-in $tool: no answer recorded for: $*" >&2
	exit 127
fi
n=1
if [ -f "$bed/n/$nk" ]; then n=$(( $(cat "$bed/n/$nk") + 1 )); fi
echo "$n" >"$bed/n/$nk"
m=$n
while [ "$m" -gt 1 ] && [ ! -d "$r/$m" ]; do m=$((m - 1)); done
r="$r/$m"
if [ -f "$r/sleep" ]; then sleep "$(cat "$r/sleep")"; fi
if [ -f "$r/stdout" ]; then cat "$r/stdout"; fi
if [ -f "$r/stderr" ]; then cat "$r/stderr" >&2; fi
if [ -f "$r/next" ]; then cp "$r/next" "$bed/state"; fi
exit "$(cat "$r/exit")"
`

// New writes the stand-ins into a temporary directory of t.
func New(t testing.TB) *Bed {
	t.Helper()
	b := &Bed{t: t, Dir: t.TempDir()}
	for _, d := range []string{"resp", "states", "n"} {
		must(t, os.MkdirAll(filepath.Join(b.Dir, d), 0o750))
	}
	for _, tool := range Tools {
		must(t, os.WriteFile(filepath.Join(b.Dir, tool), fmt.Appendf(nil, script, b.Dir, tool), 0o755)) //nolint:gosec // a test's own script
	}
	return b
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("relaydtest: %v", err)
	}
}

// Answer is what one call prints: fixture files (see Fixture) on stdout
// and stderr, or Text as it is on stdout, its exit code, a delay before
// it, and the state it moves the Bed to (Next; "" stays).
type Answer struct {
	Out, Err string
	Text     string
	Exit     int
	Sleep    time.Duration
	Next     string
}

// Then is a with the Bed moving to state once a has been given.
func (a Answer) Then(state string) Answer {
	a.Next = state
	return a
}

// Prints answers with a fixture on stdout and exit 0.
func Prints(fixture string) Answer { return Answer{Out: fixture} }

// Fails answers with a fixture on stderr and exit 1, as relayctl's err()
// does.
func Fails(stderrFixture string) Answer { return Answer{Err: stderrFixture, Exit: 1} }

// Silent prints nothing and exits 0 (ifconfig, relayctl reload).
var Silent = Answer{}

// Testdata is commands/relayd/testdata, where the fixtures are.
func Testdata() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata")
}

// Fixture is the path of a fixture file: testdata/fixtures (copied from
// shared/fixtures/relayd) first, then testdata/scenarios.
func Fixture(t testing.TB, name string) string {
	t.Helper()
	for _, dir := range []string{"fixtures", "scenarios"} {
		p := filepath.Join(Testdata(), dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("relaydtest: no fixture %s in %s/fixtures or scenarios", name, Testdata())
	return ""
}

// On records the answers for a command line, given as its words
// ("relayctl show summary"), replacing any recorded before and starting
// its count again.
func (b *Bed) On(line string, answers ...Answer) *Bed {
	b.t.Helper()
	return b.OnArgv(strings.Fields(line), answers...)
}

// OnArgv is On for words that hold spaces.
func (b *Bed) OnArgv(argv []string, answers ...Answer) *Bed {
	b.t.Helper()
	key := keyOf(argv)
	b.record(filepath.Join(b.Dir, "resp", key), key, answers)
	return b
}

// keyOf is the key of a command line, as the script makes it: a path's
// slashes become %, so that a key is one file name.
func keyOf(argv []string) string {
	return strings.ReplaceAll(strings.Join(argv, "_"), "/", "%")
}

// InState records answers given only while the Bed is in a state.
type InState struct {
	b     *Bed
	state string
}

// In is where answers for state are recorded: b.In("reloaded").On(...).
func (b *Bed) In(state string) InState {
	b.t.Helper()
	if state == "" || strings.ContainsAny(state, "/@ \t") {
		b.t.Fatalf("relaydtest: state %q: a word without '/', '@' or blanks", state)
	}
	return InState{b: b, state: state}
}

// On records answers for a command line in the state.
func (s InState) On(line string, answers ...Answer) InState {
	s.b.t.Helper()
	key := keyOf(strings.Fields(line))
	s.b.record(filepath.Join(s.b.Dir, "states", s.state, key), s.state+"@"+key, answers)
	return s
}

// Start puts the Bed in state ("" for none).
func (b *Bed) Start(state string) *Bed {
	b.t.Helper()
	p := filepath.Join(b.Dir, "state")
	if state == "" {
		must(b.t, os.RemoveAll(p))
		return b
	}
	must(b.t, os.WriteFile(p, []byte(state), 0o644)) //nolint:gosec // test data
	return b
}

// State is the state the Bed is in, "" for none.
func (b *Bed) State() string {
	b.t.Helper()
	data, err := os.ReadFile(filepath.Join(b.Dir, "state"))
	if os.IsNotExist(err) {
		return ""
	}
	must(b.t, err)
	return string(data)
}

func (b *Bed) record(dir, counter string, answers []Answer) {
	b.t.Helper()
	must(b.t, os.RemoveAll(dir))
	must(b.t, os.RemoveAll(filepath.Join(b.Dir, "n", counter)))
	for i, a := range answers {
		d := filepath.Join(dir, strconv.Itoa(i+1))
		must(b.t, os.MkdirAll(d, 0o750))
		for name, fx := range map[string]string{"stdout": a.Out, "stderr": a.Err} {
			if fx == "" {
				continue
			}
			data, err := os.ReadFile(Fixture(b.t, fx))
			must(b.t, err)
			must(b.t, os.WriteFile(filepath.Join(d, name), data, 0o644)) //nolint:gosec // test data
		}
		if a.Text != "" {
			must(b.t, os.WriteFile(filepath.Join(d, "stdout"), []byte(a.Text), 0o644)) //nolint:gosec // test data
		}
		must(b.t, os.WriteFile(filepath.Join(d, "exit"), []byte(strconv.Itoa(a.Exit)), 0o644)) //nolint:gosec // test data
		if a.Sleep > 0 {
			must(b.t, os.WriteFile(filepath.Join(d, "sleep"), []byte(strconv.FormatFloat(a.Sleep.Seconds(), 'f', 3, 64)), 0o644)) //nolint:gosec // test data
		}
		if a.Next != "" {
			must(b.t, os.WriteFile(filepath.Join(d, "next"), []byte(a.Next), 0o644)) //nolint:gosec // test data
		}
	}
}

// Healthy answers every read and poll as the fixtures of FORMATS.md
// section 9, and relayd -n with configuration OK.
func (b *Bed) Healthy() *Bed {
	return b.On("relayctl show summary", Prints("show_summary.txt")).
		On("relayctl show hosts", Prints("show_hosts.txt")).
		On("relayctl show redirects", Prints("show_redirects.txt")).
		On("relayctl show relays", Prints("show_relays.txt")).
		On("relayctl show sessions", Prints("show_sessions.txt")).
		On("relayctl poll", Prints("poll.txt")).
		On("relayd -n", Answer{Err: "relayd_n_ok.txt"}).
		Flags("")
}

// Flags answers rcctl get relayd flags with flags: the flags relayd is
// started with, as rc.conf.local holds them.
func (b *Bed) Flags(flags string) *Bed {
	b.t.Helper()
	return b.On("rcctl get relayd flags", Answer{Text: flags + "\n"})
}

// RunsWith makes relayd's rc.d flags -f path and -D macros (path one of
// the files Config copied), and answers relayd -n for them with
// configuration OK. CheckArgv is that relayd -n, for other answers.
func (b *Bed) RunsWith(path string, macros ...string) *Bed {
	b.t.Helper()
	flags := "-f " + path
	b.check = []string{"relayd", "-n", "-f", path}
	for _, m := range macros {
		flags += " -D " + m
		b.check = append(b.check, "-D", m)
	}
	return b.Flags(flags).OnArgv(b.check, Answer{Err: "relayd_n_ok.txt"})
}

// CheckArgv is relayd -n as the bot runs it for RunsWith's flags, or
// plain relayd -n.
func (b *Bed) CheckArgv() []string {
	if b.check == nil {
		return []string{"relayd", "-n"}
	}
	return b.check
}

// Config copies the configuration files of testdata/conf into the Bed's
// etc directory, each as its base name, and returns the directory: a test
// points relayd_flags at one of them (-f DIR/relayd.conf), and the bot
// reads them with the real cat.
func (b *Bed) Config(files ...string) string {
	b.t.Helper()
	dir := filepath.Join(b.Dir, "etc")
	must(b.t, os.MkdirAll(dir, 0o750))
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(Testdata(), "conf", f)) //nolint:gosec // the package's own testdata
		must(b.t, err)
		data = bytes.ReplaceAll(data, []byte("@ETC@"), []byte(dir))
		must(b.t, os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o600)) //nolint:gosec // the test bed's own directory
	}
	return dir
}

// Calls lists the invocations so far, each as its words joined by spaces.
func (b *Bed) Calls() []string {
	b.t.Helper()
	data, err := os.ReadFile(filepath.Join(b.Dir, "calls.log"))
	if os.IsNotExist(err) {
		return nil
	}
	must(b.t, err)
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if l != "" {
			out = append(out, strings.ReplaceAll(l, "\t", " "))
		}
	}
	return out
}

// Squeezed is Calls with repeats in a row shown once with their count,
// for the loops that poll: "relayctl show hosts (x3)".
func (b *Bed) Squeezed() []string {
	var out []string
	n := 0
	calls := b.Calls()
	for i, c := range calls {
		n++
		if i+1 < len(calls) && calls[i+1] == c {
			continue
		}
		if n > 1 {
			c = fmt.Sprintf("%s (x%d)", c, n)
		}
		out = append(out, c)
		n = 0
	}
	return out
}

// Reset forgets the calls so far.
func (b *Bed) Reset() {
	b.t.Helper()
	must(b.t, os.RemoveAll(filepath.Join(b.Dir, "calls.log")))
}

// Spec is a host's relayd settings pointing at the stand-ins, as a YAML
// flow mapping for the policy file; extra adds keys (", socket: /x").
func (b *Bed) Spec(extra string) string {
	return fmt.Sprintf("{relayctl: %s/relayctl, relayd: %s/relayd, ifconfig: %s/ifconfig, rcctl: %s/rcctl%s}", b.Dir, b.Dir, b.Dir, b.Dir, extra)
}
