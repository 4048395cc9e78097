// Package vantage owns checks from other hosts: /portcheck HOST PORT from
// VANTAGE and /scan HOST PORTS from VANTAGE, where VANTAGE is an inventory
// host or group, and `opsbot probe`, the copy of the engine a vantage host
// runs for the bot. The commands resolve the vantage hosts and the target
// (a Plan), run an Engine over them, and hand its rows to PortcheckReply
// or ScanReply, pure functions that write the answer.
package vantage

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/internal/portwords"
	"github.com/opsbot/opsbot/commands/probe"
	"github.com/opsbot/opsbot/internal/text"
)

// How a check from a vantage host goes: the bot
// resolves the target and checks it against its target policy and rate
// limits exactly as for a check of its own; each vantage host then gets
// the address (never the name, so DNS there cannot lead anywhere else) and
// probes it with the best tool it has: a copy of opsbot (`opsbot probe`,
// the same engine and evidence as the bot), OpenBSD netcat, or bash's
// /dev/tcp with timeout(1). The tool is found by one fixed command per
// vantage host per request, and every command is a fixed script whose
// variable parts (paths, address, ports, timeout) are separate argv words.

// Hosts resolves the word after "from" into the inventory hosts the asker
// may run the command on; bot.HostAccess is the real one.
type Hosts interface {
	Resolve(req bot.Request, key, word string) (hosts []bot.Host, group bool, err error)
}

// Bounds of a check from a vantage host.
const (
	// defaultVantageBudget is how long the probe on a vantage host may
	// take when the inventory gives the host no timeout: below the one
	// minute that runners allow a command by default, so the bot stops the
	// probe itself and reports what it has.
	defaultVantageBudget = 45 * time.Second
	detectTimeout        = 20 * time.Second
	// slowToolOverhead is what starting nc or bash costs per port, on top
	// of its timeout, in the estimate that bounds the ports they take.
	slowToolOverhead = 100 * time.Millisecond
)

// budget is how long the probe on h may run.
func budget(h bot.Host) time.Duration {
	if h.Timeout > 0 {
		return h.Timeout * 3 / 4
	}
	return defaultVantageBudget
}

// toolKind is what probed from a vantage host.
type toolKind uint8

const (
	toolSelf   toolKind = iota + 1 // the bot's own engine: a host reached via local is the bot's host
	toolOpsbot                     // opsbot probe, a copy of opsbot on the host
	toolNC                         // OpenBSD netcat
	toolBash                       // bash's /dev/tcp under timeout(1)
)

func (k toolKind) String() string {
	switch k {
	case toolSelf:
		return "opsbot (the bot)"
	case toolOpsbot:
		return "opsbot"
	case toolNC:
		return "nc"
	case toolBash:
		return "bash"
	}
	return "-"
}

// detectScript finds the tools on a vantage host. It is fixed text: no
// word of a request is in it. `command -v` may name a file that is not
// executable (bash falls back to one), so each is tested. A copy of opsbot
// counts only if it speaks the probe protocol; nc's first help line says
// which netcat it is.
const detectScript = `printf 'os\t%s\n' "$(uname -s 2>/dev/null)"
for t in opsbot nc bash timeout; do
	p=$(command -v "$t" 2>/dev/null) || continue
	case $p in /*) ;; *) continue ;; esac
	[ -f "$p" ] && [ -x "$p" ] || continue
	case $t in
	opsbot) v=$("$p" probe --protocol 2>/dev/null </dev/null | head -n 1) ;;
	nc) v=$("$p" -h 2>&1 </dev/null | head -n 1) ;;
	*) v= ;;
	esac
	printf 'tool\t%s\t%s\t%s\n' "$t" "$p" "$v"
done
exit 0`

// ncScript runs OpenBSD netcat once per port, one port at a time, and
// prints "port PORT EXIT WORDS" for each: nc's exit status with several
// ports on one command line says nothing about each. -n: the address is
// already resolved. Arguments: nc path, -w seconds, tcp|udp, address,
// ports.
const ncScript = `nc=$1; w=$2; proto=$3; addr=$4; shift 4
for port do
	if [ "$proto" = udp ]; then
		out=$(LC_ALL=C "$nc" -z -v -n -u -w "$w" "$addr" "$port" 2>&1 </dev/null); rc=$?
	else
		out=$(LC_ALL=C "$nc" -z -v -n -w "$w" "$addr" "$port" 2>&1 </dev/null); rc=$?
	fi
	printf 'port\t%s\t%s\t%s\n' "$port" "$rc" "$(printf '%s' "$out" | tr '\t\n' '  ')"
done
exit 0`

// bashScript connects with bash's /dev/tcp under timeout(1), one port at a
// time, and prints "port PORT EXIT WORDS" for each (timeout exits 124 when
// it had to stop bash). Arguments: timeout path, bash path, seconds,
// address, ports.
const bashScript = `tmo=$1; bash=$2; secs=$3; addr=$4; shift 4
for port do
	out=$(LC_ALL=C "$tmo" "$secs" "$bash" -c 'exec 3<>"/dev/tcp/$1/$2"' bash "$addr" "$port" 2>&1 </dev/null); rc=$?
	printf 'port\t%s\t%s\t%s\n' "$port" "$rc" "$(printf '%s' "$out" | tr '\t\n' '  ')"
done
exit 0`

// found is what detection found on one host.
type found struct {
	os                    string
	opsbot, opsbotVersion string
	nc, ncBanner          string
	bash, timeout         string
}

func parseDetect(out string) found {
	var f found
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Split(strings.TrimRight(line, "\r"), "\t")
		switch {
		case len(fields) == 2 && fields[0] == "os":
			f.os = printable(fields[1], 40)
		case len(fields) == 4 && fields[0] == "tool":
			path, info := fields[2], printable(fields[3], 80)
			if !strings.HasPrefix(path, "/") || printable(path, 1024) != path {
				continue
			}
			switch fields[1] {
			case "opsbot":
				f.opsbot, f.opsbotVersion = path, info
			case "nc":
				f.nc, f.ncBanner = path, info
			case "bash":
				f.bash = path
			case "timeout":
				f.timeout = path
			}
		}
	}
	return f
}

// printable keeps s when it is short, printable text, else cuts it.
func printable(s string, n int) string {
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, s))
	return text.TruncateRunes(s, n)
}

// openbsdNC reports whether the netcat found is OpenBSD's, whose words
// the parser knows (Debian's netcat-openbsd says so in its help; on
// OpenBSD itself nc is that one).
func (f found) openbsdNC() bool {
	return f.nc != "" && (strings.Contains(f.ncBanner, "OpenBSD netcat") || f.os == "OpenBSD")
}

// choose picks the most accurate tool for proto, and says why better
// ones were passed over.
func (f found) choose(proto probe.Proto) (toolKind, []string) {
	var notes []string
	if f.opsbot != "" {
		if f.opsbotVersion == probeProtocol {
			return toolOpsbot, nil
		}
		notes = append(notes, fmt.Sprintf("opsbot at %s does not speak %q (an older copy?): upgrade it for full evidence", f.opsbot, probeProtocol))
	}
	if f.nc != "" {
		if f.openbsdNC() {
			return toolNC, notes
		}
		notes = append(notes, fmt.Sprintf("nc at %s is not OpenBSD netcat (%q): its words are not read", f.nc, f.ncBanner))
	}
	if proto == probe.TCP && f.bash != "" {
		if f.timeout != "" {
			return toolBash, notes
		}
		notes = append(notes, "bash is there but timeout(1) is not, and bash alone waits minutes on a port a firewall drops")
	}
	return 0, notes
}

// Job is what every vantage host of a request probes.
type Job struct {
	Addr        netip.Addr
	Proto       probe.Proto
	Ports       []uint16
	Timeout     time.Duration // as asked; 0 = the default of the mode
	Scan        bool          // /scan: paced, many ports; else /portcheck's checks
	Concurrency int           // scan
	Rate        int           // scan
}

// wait is the timeout in force: the one asked for, or the mode's default.
func (j Job) wait() time.Duration {
	switch {
	case j.Timeout > 0:
		return j.Timeout
	case !j.Scan:
		return probe.DefaultCheckTimeout
	case j.Proto == probe.UDP:
		return probe.DefaultScanUDPTimeout
	}
	return probe.DefaultScanTCPTimeout
}

// cell is what one vantage host learnt about one port.
type cell struct {
	res   probe.Result // State 0: not decided (the tool gave no answer for it)
	words string       // nc's or bash's own words; "" for opsbot
	exit  int          // nc's or bash's exit status
}

// Row is one vantage host's part of the answer, as Engine.Run found it.
type Row struct {
	host     bot.Host
	tool     toolKind
	found    found
	cells    []cell // as the job's ports; nil when the host checked nothing
	problem  string // why the host checked nothing, or not every port
	notes    []string
	ncWait   int  // nc: the whole seconds of -w used
	canceled bool // stopped at its time budget or by a cancel
	limited  bool // UDP scan: the target rate-limits ICMP (opsbot saw it)
	took     time.Duration
}

func (r Row) checked() bool { return r.cells != nil }

// Engine runs a job on vantage hosts.
type Engine struct {
	Runner bot.Runner // reaches the hosts that are not the bot's own
	// The bot's own engine, for a vantage host that is the bot's host.
	Check func(context.Context, netip.AddrPort, probe.Proto, probe.Options) probe.Result
	Scan  func(context.Context, probe.ScanSpec, func(probe.Progress)) (probe.ScanResult, error)
	Now   func() time.Time // times each host; nil: the real clock
}

// Run probes from every host at once (bot.EachHost bounds it) and returns
// one row per host, in the order given. done is called as each host
// finishes.
func (e Engine) Run(ctx context.Context, hosts []bot.Host, job Job, done func(finished int)) []Row {
	now := e.Now
	if now == nil {
		now = time.Now
	}
	rows := make([]Row, len(hosts))
	var (
		mu       sync.Mutex
		finished int
	)
	bot.EachHost(hosts, func(i int, h bot.Host) {
		start := now()
		rows[i] = e.one(ctx, h, job)
		rows[i].took = now().Sub(start)
		if done != nil {
			mu.Lock()
			defer mu.Unlock()
			finished++
			done(finished)
		}
	})
	return rows
}

func (e Engine) one(ctx context.Context, h bot.Host, job Job) Row {
	row := Row{host: h}
	// Probing needs no privilege: the host's sudo or doas stays unused.
	h.Become = ""
	if h.Via == "local" || h.Via == "" {
		row.tool = toolSelf
		e.self(ctx, &row, job)
		return row
	}
	// The session to the host is a socket of the process's budget, as
	// long as the run lasts.
	lease, err := probe.Sockets().One(ctx)
	if err != nil {
		row.problem = "not checked: " + bot.ErrorMessage(portwords.Busy(ctx, err))
		if ctx.Err() != nil {
			row.problem, row.canceled = "canceled before it started", true
		}
		return row
	}
	defer lease.Release()
	if e.Runner == nil {
		row.problem = "no runner for this host's via " + h.Via
		return row
	}
	dctx, cancel := context.WithTimeout(ctx, detectTimeout)
	out, err := e.Runner.Run(dctx, h, []string{"sh", "-c", detectScript})
	cancel()
	if err != nil {
		row.problem = "finding the tools failed: " + runError(h, err)
		return row
	}
	row.found = parseDetect(string(out.Stdout))
	tool, notes := row.found.choose(job.Proto)
	row.tool, row.notes = tool, notes
	switch tool {
	case toolOpsbot:
		e.opsbot(ctx, &row, h, job)
	case toolNC:
		e.netcat(ctx, &row, h, job)
	case toolBash:
		e.bash(ctx, &row, h, job)
	default:
		what := "opsbot, OpenBSD netcat (nc), or bash with timeout(1) on the PATH"
		if job.Proto == probe.UDP {
			what = "opsbot or OpenBSD netcat (nc) on the PATH; bash cannot check UDP"
		}
		row.problem = fmt.Sprintf("no tool there can check %s: that takes %s", strings.ToUpper(job.Proto.String()), what)
	}
	return row
}

// runError keeps a runner's message, which says what went wrong (an
// unknown host key, a timeout), as one line.
func runError(h bot.Host, err error) string {
	msg := bot.ErrorMessage(err)
	if msg == "" {
		msg = err.Error()
	}
	return printable(strings.TrimPrefix(msg, "ssh "+h.Name+": "), 300)
}

// self probes with the bot's own engine: the vantage host is the bot's.
func (e Engine) self(ctx context.Context, row *Row, job Job) {
	var results []probe.Result
	if job.Scan {
		res, err := e.Scan(ctx, probe.ScanSpec{Target: job.Addr, Proto: job.Proto, Ports: job.Ports, Timeout: job.Timeout,
			Concurrency: job.Concurrency, Rate: float64(job.Rate)}, nil)
		if err != nil && !res.Canceled {
			row.problem = "scan failed: " + err.Error()
			return
		}
		results, row.canceled, row.limited = res.Results, res.Canceled, res.RateLimited
	} else {
		all, decided := checkPorts(ctx, e.Check, job.Addr, job.Ports, job.Proto, job.Timeout)
		for i, r := range all {
			if decided[i] {
				results = append(results, r)
			}
		}
		row.canceled = ctx.Err() != nil
	}
	row.cells = cellsOf(job, results)
}

// cellsOf lays results out by the job's ports; ports without a result
// stay undecided.
func cellsOf(job Job, results []probe.Result) []cell {
	at := make(map[uint16]int, len(job.Ports))
	cells := make([]cell, len(job.Ports))
	for i, p := range job.Ports {
		at[p] = i
		cells[i].res = probe.Result{Target: netip.AddrPortFrom(job.Addr, p), Proto: job.Proto}
	}
	for _, r := range results {
		if i, ok := at[r.Target.Port()]; ok {
			cells[i].res = r
		}
	}
	return cells
}

func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// opsbot runs `opsbot probe` on the host: the same engine as the bot's,
// so the same limits (ports, concurrency, rate) and the same evidence.
func (e Engine) opsbot(ctx context.Context, row *Row, h bot.Host, job Job) {
	b := budget(h)
	argv := []string{row.found.opsbot, "probe", "--json", "-w", seconds(job.wait()), "--max-time", b.String()}
	if job.Proto == probe.UDP {
		argv = append(argv, "-u")
	}
	if job.Scan {
		argv = append(argv, "--scan", "--concurrency", strconv.Itoa(job.Concurrency), "--rate", strconv.Itoa(job.Rate))
	}
	argv = append(append(argv, "--", job.Addr.String()), wirePorts(job.Ports)...)
	rctx, cancel := context.WithTimeout(ctx, b+15*time.Second)
	defer cancel()
	out, err := e.Runner.Run(rctx, h, argv)
	if err != nil {
		row.problem = "opsbot probe failed: " + runError(h, err)
		return
	}
	if out.ExitCode != 0 {
		row.problem = fmt.Sprintf("opsbot probe exited %d: %s", out.ExitCode, printable(firstLine(string(out.Stderr)), 200))
		return
	}
	rep, results, err := decodeReport(reportLine(out.Stdout), job.Addr, job.Proto, job.Ports)
	if err != nil {
		row.problem = "opsbot probe answered, but " + err.Error()
		return
	}
	row.cells = cellsOf(job, results)
	row.canceled, row.limited = rep.Canceled, rep.RateLimited
	if rep.Canceled {
		row.problem = fmt.Sprintf("stopped after %s, the time a check from %s may take (hosts.%s.timeout raises it)", b, h.Name, h.Name)
	}
}

// reportLine picks the report out of what the session printed: the last
// line that is a JSON object (a login shell's startup files may print
// something first).
func reportLine(stdout []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(stdout), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		if l := bytes.TrimSpace(lines[i]); bytes.HasPrefix(l, []byte("{")) {
			return l
		}
	}
	return stdout
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// slowBound refuses a job that a one-port-at-a-time tool could not finish
// within the host's budget, saying how many ports would fit.
func slowBound(row *Row, h bot.Host, job Job, tool string, perPort time.Duration) bool {
	b := budget(h)
	worst := time.Duration(len(job.Ports)) * perPort
	if worst <= b {
		return true
	}
	fit := int(b / perPort)
	row.problem = fmt.Sprintf("%s has no opsbot, and %s checks one port at a time, waiting up to %s on each: %d ports could take %s, more than the %s a check from %s may take. Ask for at most %d ports, or a shorter timeout, or install opsbot on %s",
		h.Name, tool, perPort.Round(100*time.Millisecond), len(job.Ports), worst.Round(time.Second), b, h.Name, fit, h.Name)
	return false
}

// netcat checks each port with OpenBSD netcat, one at a time.
func (e Engine) netcat(ctx context.Context, row *Row, h bot.Host, job Job) {
	// nc -w takes whole seconds.
	w := max(int(math.Ceil(job.wait().Seconds())), 1)
	row.ncWait = w
	if !slowBound(row, h, job, "nc", time.Duration(w)*time.Second+slowToolOverhead) {
		return
	}
	argv := []string{"sh", "-c", ncScript, "sh", row.found.nc, strconv.Itoa(w), job.Proto.String(), job.Addr.String()}
	row.cells = e.perPort(ctx, row, h, job, argv, func(c *cell) { classifyNC(c, job.Proto) })
}

// bash checks each TCP port with bash's /dev/tcp under timeout(1).
func (e Engine) bash(ctx context.Context, row *Row, h bot.Host, job Job) {
	if !slowBound(row, h, job, "bash /dev/tcp", job.wait()+slowToolOverhead) {
		return
	}
	argv := []string{"sh", "-c", bashScript, "sh", row.found.timeout, row.found.bash, seconds(job.wait()), job.Addr.String()}
	row.cells = e.perPort(ctx, row, h, job, argv, classifyBash)
}

// perPort runs a one-port-at-a-time script and reads its "port" lines.
func (e Engine) perPort(ctx context.Context, row *Row, h bot.Host, job Job, argv []string, classify func(*cell)) []cell {
	for _, p := range job.Ports {
		argv = append(argv, strconv.Itoa(int(p)))
	}
	rctx, cancel := context.WithTimeout(ctx, budget(h)+15*time.Second)
	defer cancel()
	out, err := e.Runner.Run(rctx, h, argv)
	cells := make([]cell, len(job.Ports))
	for i, p := range job.Ports {
		cells[i].res = probe.Result{Target: netip.AddrPortFrom(job.Addr, p), Proto: job.Proto}
	}
	lines := parsePortLines(string(out.Stdout), job.Ports)
	for i, p := range job.Ports {
		if l, ok := lines[p]; ok {
			cells[i].words, cells[i].exit = l.words, l.exit
			classify(&cells[i])
		}
	}
	if err != nil {
		row.canceled = true
		row.problem = "stopped before every port was checked: " + runError(h, err)
	}
	return cells
}

type portLineOut struct {
	exit  int
	words string
}

// parsePortLines reads "port PORT EXIT WORDS" lines (tab-separated), for
// ports that were asked for, the first line of each.
func parsePortLines(out string, asked []uint16) map[uint16]portLineOut {
	want := make(map[uint16]bool, len(asked))
	for _, p := range asked {
		want[p] = true
	}
	got := map[uint16]portLineOut{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.SplitN(strings.TrimRight(line, "\r"), "\t", 4)
		if len(f) != 4 || f[0] != "port" {
			continue
		}
		p, err := strconv.ParseUint(f[1], 10, 16)
		if err != nil || !want[uint16(p)] {
			continue
		}
		rc, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		if _, dup := got[uint16(p)]; !dup {
			got[uint16(p)] = portLineOut{exit: rc, words: printable(f[3], 300)}
		}
	}
	return got
}

// classifyNC reads OpenBSD netcat's words (NOTES.md has what it says for
// each kind of port). For UDP it never reads a reply: "succeeded" means
// only that no ICMP error came back in time, which an open port, a
// dropped one and one a firewall rejects as prohibited all give. That is
// open|filtered, never open.
func classifyNC(c *cell, proto probe.Proto) {
	r := &c.res
	w := c.words
	switch {
	case c.exit == 0 && strings.Contains(w, "succeeded"):
		if proto == probe.UDP {
			r.State, r.Reason = probe.OpenFiltered, probe.Silence
		} else {
			r.State, r.Reason = probe.Open, probe.Handshake
		}
	case strings.Contains(w, "Connection refused"):
		r.State, r.Reason = probe.Closed, probe.Refused
		if proto == probe.UDP {
			r.Reason = probe.PortUnreachable
		}
	case strings.Contains(w, "timed out"):
		r.State, r.Reason = probe.Filtered, probe.Timeout
	case strings.Contains(w, "No route to host"):
		r.State, r.Reason = probe.Filtered, probe.HostUnreachable
	case strings.Contains(w, "Network is unreachable"):
		r.State, r.Reason = probe.Filtered, probe.NetUnreachable
	case proto == probe.UDP && c.exit == 1 && w == "":
		// nc -zu writes and judges by the write's error: a silent exit 1
		// is ECONNREFUSED, an ICMP port unreachable.
		r.State, r.Reason = probe.Closed, probe.PortUnreachable
	}
}

// classifyBash reads what bash and timeout(1) said: connected (exit 0),
// "Connection refused", an unreachable, or timeout's 124 when bash was
// still waiting.
func classifyBash(c *cell) {
	r := &c.res
	w := c.words
	switch {
	case c.exit == 0:
		r.State, r.Reason = probe.Open, probe.Handshake
	case c.exit == 124:
		r.State, r.Reason = probe.Filtered, probe.Timeout
	case strings.Contains(w, "Connection refused"):
		r.State, r.Reason = probe.Closed, probe.Refused
	case strings.Contains(w, "No route to host"):
		r.State, r.Reason = probe.Filtered, probe.HostUnreachable
	case strings.Contains(w, "Network is unreachable"):
		r.State, r.Reason = probe.Filtered, probe.NetUnreachable
	}
}
