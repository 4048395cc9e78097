package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// The helpers of the benchmarks: finding the tools, running them, and
// printing a comparison. Everything that touches a process is here;
// parse.go and stats.go are pure.

const installHint = "apt-get install iproute2 nftables nmap netcat-openbsd"

// execFn runs argv and gives its output and exit code; err only when it
// could not run or ctx ended it. bed.Exec and Target.Exec have this shape.
type execFn func(ctx context.Context, argv ...string) (stdout, stderr string, code int, err error)

// execLocal runs argv in this process's network namespace.
func execLocal(ctx context.Context, argv ...string) (string, string, int, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = 2 * time.Second
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && ctx.Err() == nil {
		err = nil
	}
	return so.String(), se.String(), code, err
}

// toolset is what a benchmark compares: the opsbot binary and the other
// tools, each with why it cannot run ("" when it can).
type toolset struct {
	opsbot, opsbotVersion string
	nmap, nmapVersion     string
	nc, ncVersion         string
	nmapMissing           string
	ncMissing             string
}

var (
	toolsOnce sync.Once
	toolsVal  toolset
	toolsErr  error
)

// findTools locates bin/opsbot (building it when missing), nmap and
// netcat-openbsd, once per process.
func findTools() (toolset, error) {
	toolsOnce.Do(func() {
		var ts toolset
		root, err := repoRoot()
		if err != nil {
			toolsErr = err
			return
		}
		ts.opsbot = filepath.Join(root, "bin", "opsbot")
		if _, err := os.Stat(ts.opsbot); err != nil {
			cmd := exec.Command("go", "build", "-o", ts.opsbot, "./cmd/opsbot")
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				toolsErr = fmt.Errorf("build bin/opsbot: %w\n%s", err, out)
				return
			}
		}
		if out, err := exec.Command(ts.opsbot, "version").Output(); err == nil {
			ts.opsbotVersion = strings.TrimSpace(string(out))
		}
		if p, err := exec.LookPath("nmap"); err != nil {
			ts.nmapMissing = "not installed (apt-get install nmap)"
		} else {
			ts.nmap = p
			out, _ := exec.Command(p, "--version").Output()
			ts.nmapVersion = firstLine(string(out))
		}
		if p, err := exec.LookPath("nc"); err != nil {
			ts.ncMissing = "not installed (apt-get install netcat-openbsd)"
		} else {
			// nc -h exits 1 and prints its banner on stderr.
			out, _ := exec.Command(p, "-h").CombinedOutput()
			if !strings.Contains(string(out), "OpenBSD netcat") {
				ts.ncMissing = "not netcat-openbsd, whose output this parses (apt-get install netcat-openbsd)"
			} else {
				ts.nc = p
				ts.ncVersion = firstLine(string(out))
			}
		}
		toolsVal = ts
	})
	return toolsVal, toolsErr
}

// repoRoot walks up from the working directory to the module's go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(data), "module github.com/opsbot/opsbot") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of github.com/opsbot/opsbot above the working directory")
		}
		dir = parent
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

// requireNet skips b unless the namespace benchmarks can run: root, ip,
// nft, and at least one tool to compare with. It gives the tools.
func requireNet(b *testing.B) toolset {
	b.Helper()
	ts := requireTools(b)
	var problems []string
	if os.Geteuid() != 0 {
		problems = append(problems, "run as root (network namespaces)")
	}
	for _, name := range []string{"ip", "nft"} {
		if !haveSbin(name) {
			problems = append(problems, "missing "+name)
		}
	}
	if ts.nmap == "" && ts.nc == "" {
		problems = append(problems, "neither nmap nor netcat-openbsd: nothing to compare with")
	}
	if len(problems) > 0 {
		b.Skipf("bench: %s; %s", strings.Join(problems, "; "), installHint)
	}
	return ts
}

func requireTools(b *testing.B) toolset {
	b.Helper()
	ts, err := findTools()
	if err != nil {
		b.Fatalf("bench: %v", err)
	}
	return ts
}

func haveSbin(name string) bool {
	if _, err := exec.LookPath(name); err == nil {
		return true
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err == nil && st.Mode()&0o111 != 0 {
			return true
		}
	}
	return false
}

// outcome is one timed run of one tool.
type outcome struct {
	d              time.Duration
	stdout, stderr string
	code           int
	report         ScanReport
	err            error // could not run, timed out, unexpected exit, unreadable output
}

// contender is one tool in a scan comparison.
type contender struct {
	name string
	argv []string // nil: cannot run, see missing
	// fn, when set, is the whole run instead of argv (an in-process
	// measurement such as the connect() floor).
	fn       func(ctx context.Context) outcome
	describe string // what fn does, for the report
	missing  string
	timeout  time.Duration
	// check turns the raw run into a report, or says why the run is not
	// a valid result (exit code, output it does not recognise).
	check func(o *outcome) error
}

func (c contender) available() bool { return c.argv != nil || c.fn != nil }

func (c contender) run(ctx context.Context, ex execFn) outcome {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if c.fn != nil {
		return c.fn(ctx)
	}
	start := time.Now()
	so, se, code, err := ex(ctx, c.argv...)
	o := outcome{d: time.Since(start), stdout: so, stderr: se, code: code}
	switch {
	case ctx.Err() != nil:
		o.err = fmt.Errorf("no result within %v", c.timeout)
	case err != nil:
		o.err = err
	default:
		o.err = c.check(&o)
	}
	return o
}

func opsbotContender(ts toolset, line string, timeout time.Duration) contender {
	return contender{
		name:    "opsbot",
		argv:    []string{ts.opsbot, "run", line},
		timeout: timeout,
		check: func(o *outcome) error {
			// Exit 0: something open; 1: nothing open. Others are errors.
			if o.code != 0 && o.code != 1 {
				return fmt.Errorf("exit %d: %s", o.code, firstLine(o.stdout+"\n"+o.stderr))
			}
			if !strings.Contains(o.stdout, "ports: ") {
				return fmt.Errorf("no \"ports:\" line in the reply: %q", firstLine(o.stdout))
			}
			o.report = ParseOpsbotScan(o.stdout)
			return nil
		},
	}
}

func nmapContender(ts toolset, name string, timeout time.Duration, args ...string) contender {
	c := contender{name: name, missing: ts.nmapMissing, timeout: timeout}
	if ts.nmap != "" {
		c.argv = append([]string{ts.nmap}, args...)
	}
	c.check = func(o *outcome) error {
		if o.code != 0 {
			return fmt.Errorf("exit %d: %s", o.code, firstLine(o.stderr+"\n"+o.stdout))
		}
		if !strings.Contains(o.stdout, "# Nmap done") {
			return fmt.Errorf("no \"# Nmap done\" in the grepable output: %q", firstLine(o.stdout))
		}
		o.report = ParseNmapGrepable(o.stdout)
		return nil
	}
	return c
}

func ncContender(ts toolset, name string, timeout time.Duration, args ...string) contender {
	c := contender{name: name, missing: ts.ncMissing, timeout: timeout}
	if ts.nc != "" {
		c.argv = append([]string{ts.nc}, args...)
	}
	c.check = func(o *outcome) error {
		// nc exits 1 when the last port it tried failed: a result all the same.
		if o.code != 0 && o.code != 1 {
			return fmt.Errorf("exit %d: %s", o.code, firstLine(o.stderr))
		}
		o.report = newScanReport()
		o.report.States[stOpen] = ParseNcSucceeded(o.stderr)
		return nil
	}
	return c
}

// rounds runs the contenders alternately (A B C A B C ...): up to max
// rounds, fewer when the first round shows they would not fit in budget.
// It gives each contender's outcomes, index by index.
func rounds(ctx context.Context, ex execFn, cs []contender, maxRounds int, budget time.Duration) [][]outcome {
	res := make([][]outcome, len(cs))
	n := maxRounds
	for r := 0; r < n; r++ {
		start := time.Now()
		for i, c := range cs {
			if !c.available() {
				continue
			}
			res[i] = append(res[i], c.run(ctx, ex))
		}
		if r == 0 {
			per := time.Since(start)
			if fit := int(budget / max(per, time.Millisecond)); fit < n {
				n = max(1, fit)
			}
		}
	}
	return res
}

// toolStats is what a comparison found for one tool.
type toolStats struct {
	timings  Timings
	runs     int // valid runs
	same     int // runs whose open set equals opsbot's in the same round
	compared int // runs that could be compared with opsbot's
	truthOK  int // runs whose open set equals the truth
}

// allSame: every run of the tool agreed with opsbot's run of its round.
func (s toolStats) allSame() bool { return s.compared > 0 && s.same == s.compared }

// scanSummary prints a comparison table: per tool the timings of its valid
// runs, the ratio of its median to opsbot's, and whether its open ports
// equal opsbot's in the same round and the truth. Details of each
// difference and each failed run follow the table.
func scanSummary(w *bufio.Writer, cs []contender, res [][]outcome, truth PortSet) map[string]toolStats {
	stats := map[string]toolStats{}
	var opsbotRuns []outcome
	for i, c := range cs {
		if c.name == "opsbot" {
			opsbotRuns = res[i]
		}
	}
	tbl := &Table{Header: []string{"tool", "runs", "median s", "min s", "max s", "÷ opsbot", "open ports", "same as opsbot", "same as truth"}}
	var notes []string
	for i, c := range cs {
		if !c.available() {
			tbl.Add(c.name, "-", c.missing)
			continue
		}
		var st toolStats
		var sets []PortSet
		for r, o := range res[i] {
			if o.err != nil {
				notes = append(notes, fmt.Sprintf("%s run %d: %v (after %s s)", c.name, r+1, o.err, secs(o.d)))
				continue
			}
			st.timings = append(st.timings, o.d)
			st.runs++
			open := o.report.Open()
			sets = append(sets, open)
			if open.Equal(truth) {
				st.truthOK++
			} else {
				notes = append(notes, fmt.Sprintf("%s run %d vs truth: %s", c.name, r+1, diff(open, truth)))
			}
			if c.name != "opsbot" && r < len(opsbotRuns) && opsbotRuns[r].err == nil {
				st.compared++
				if ob := opsbotRuns[r].report.Open(); open.Equal(ob) {
					st.same++
				} else {
					notes = append(notes, fmt.Sprintf("%s run %d vs opsbot run %d: %s", c.name, r+1, r+1, diff(open, ob)))
				}
			}
		}
		stats[c.name] = st
		if st.runs == 0 {
			tbl.Add(c.name, fmt.Sprintf("0 of %d valid", len(res[i])))
			continue
		}
		openCell := sets[0].String()
		for _, s := range sets[1:] {
			if !s.Equal(sets[0]) {
				openCell = "varies (see notes)"
				break
			}
		}
		sameCell := "-"
		if c.name != "opsbot" {
			sameCell = yesNo(st.allSame(), fmt.Sprintf("%d/%d runs", st.same, st.compared))
		}
		tbl.Add(c.name, fmt.Sprint(st.runs), secs(st.timings.Median()), secs(st.timings.Min()), secs(st.timings.Max()),
			ratio(st.timings.Median(), stats["opsbot"].timings.Median()),
			openCell, sameCell, yesNo(st.truthOK == st.runs, fmt.Sprintf("%d/%d runs", st.truthOK, st.runs)))
	}
	tbl.Write(w)
	for _, n := range notes {
		sayln(w, "  note: "+n)
	}
	return stats
}

// diff says how got differs from want: "extra 40123; missing 80".
func diff(got, want PortSet) string {
	var parts []string
	if x := got.Minus(want); len(x) > 0 {
		parts = append(parts, "extra "+x.String())
	}
	if m := want.Minus(got); len(m) > 0 {
		parts = append(parts, "missing "+m.String())
	}
	return strings.Join(parts, "; ")
}

func yesNo(ok bool, detail string) string {
	s := "NO"
	if ok {
		s = "yes"
	}
	return strings.TrimSpace(s + " " + detail)
}

// met words a target line.
func met(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// header prints a section title, with the machine's load: the benchmarks
// share this machine, and a busy neighbour changes every number.
func header(w *bufio.Writer, title string) {
	preambleOnce.Do(func() { preamble(w) })
	printf(w, "\n=== %s\n", title)
	printf(w, "  load average at start: %s\n", loadavg())
}

var preambleOnce sync.Once

// preamble says once per run what was compared: versions, binary age, kernel.
func preamble(w *bufio.Writer) {
	ts, err := findTools()
	if err != nil {
		return
	}
	built := "?"
	if st, err := os.Stat(ts.opsbot); err == nil {
		built = st.ModTime().Format("2006-01-02 15:04:05")
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	sayln(w, "opsbot bench: opsbot beside nmap and netcat, same targets, same run. Times are wall-clock seconds of each")
	sayln(w, "process (as a user runs it); medians of alternating runs; \"÷ opsbot\" = the tool's median / opsbot's median.")
	printf(w, "  opsbot: %s (%s, built %s)\n", ts.opsbot, orText(ts.opsbotVersion, "version unknown"), built)
	printf(w, "  nmap:   %s\n", orText(ts.nmapVersion, ts.nmapMissing))
	printf(w, "  nc:     %s\n", orText(ts.ncVersion, ts.ncMissing))
	printf(w, "  kernel %s, %s, %d cores\n", strings.TrimSpace(string(kernel)), runtime.Version(), runtime.NumCPU())
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ") + fmt.Sprintf(" (1, 5, 15 min; %d cores)", runtime.NumCPU())
}

// printer gives a buffered writer to stdout; the benchmarks flush it after
// each step, and its cleanup flushes what is left.
func printer(b *testing.B) *bufio.Writer {
	w := bufio.NewWriter(os.Stdout)
	b.Cleanup(func() { _ = w.Flush() })
	return w
}
