package vantage

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/internal/portwords"
	"github.com/opsbot/opsbot/commands/probe"
)

// Plan is a request's vantage hosts and the one address they check,
// resolved and allowed on the bot by the command.
type Plan struct {
	Word   string // the vantage as typed
	Group  bool   // Word names a group
	Hosts  []bot.Host
	Target bot.Target
	Addr   netip.Addr // the address checked: the first of Target's
}

// HostList names the vantage hosts: "web01", or "web (web01, web02)".
func (p Plan) HostList() string {
	names := make([]string, len(p.Hosts))
	for i, h := range p.Hosts {
		names[i] = h.Name
	}
	s := strings.Join(names, ", ")
	if p.Group {
		s = p.Word + " (" + s + ")"
	}
	return s
}

// PreparedHosts binds an approval to the vantage hosts as the inventory
// has them and to the address checked.
func (p Plan) PreparedHosts() []string {
	out := []string{p.Addr.String()}
	for _, h := range p.Hosts {
		out = append(out, h.Label())
	}
	return out
}

// Name names what was checked: "db.example.com (10.0.0.5)" or "10.0.0.5".
func (p Plan) Name() string {
	if p.Target.Name != "" {
		return p.Target.Name + " (" + p.Addr.String() + ")"
	}
	return p.Addr.String()
}

// everyone names all the vantage hosts at once: "all 2 hosts of web", or
// the one host.
func (p Plan) everyone() string {
	if len(p.Hosts) == 1 {
		return p.Hosts[0].Name
	}
	if p.Group {
		return fmt.Sprintf("all %d hosts of %s", len(p.Hosts), p.Word)
	}
	return fmt.Sprintf("all %d hosts", len(p.Hosts))
}

// cellState is a cell as the table shows it.
func cellState(c cell) string {
	if c.res.State == 0 {
		return "?"
	}
	return c.res.State.String()
}

// portName is "80/tcp".
func portName(p uint16, proto probe.Proto) string { return fmt.Sprintf("%d/%s", p, proto) }

// whoSaw groups the checked rows by what they saw of port i, in row
// order: "open from web01, filtered from web02". differs says the rows
// disagree.
func whoSaw(rows []Row, i int) (summary string, differs bool) {
	var order []string
	by := map[string][]string{}
	for _, r := range rows {
		if !r.checked() {
			continue
		}
		st := cellState(r.cells[i])
		if st == "?" {
			st = "undecided"
		}
		if _, ok := by[st]; !ok {
			order = append(order, st)
		}
		by[st] = append(by[st], r.host.Name)
	}
	parts := make([]string, len(order))
	for j, st := range order {
		parts[j] = st + " from " + strings.Join(by[st], ", ")
	}
	return strings.Join(parts, ", "), len(order) > 1
}

// differences names up to two ports the vantage hosts disagree on, and
// how many more there are: "80/tcp open from web01, filtered from web02".
func differences(rows []Row, ports []uint16, proto probe.Proto) (string, []uint16) {
	var parts []string
	var differ []uint16
	for i, p := range ports {
		sum, d := whoSaw(rows, i)
		if !d {
			continue
		}
		differ = append(differ, p)
		if len(parts) < 2 {
			parts = append(parts, portName(p, proto)+" "+sum)
		}
	}
	s := strings.Join(parts, "; ")
	switch more := len(differ) - len(parts); {
	case more == 1:
		s += "; 1 more port differs"
	case more > 1:
		s += fmt.Sprintf("; %d more ports differ", more)
	}
	return s, differ
}

// PortLine is /portcheck's line for one port checked from the bot, which
// a check by opsbot on a vantage host reads the same as: name is the DNS
// name the user typed, if any; timeout the one in force.
type PortLine func(name string, r probe.Result, timeout time.Duration) string

// PortcheckReply is the one place /portcheck ... from results become
// words: a matrix (vantage hosts × ports), a line per cell with its
// evidence, the tools used and what each cannot tell. took is how long
// the whole check took, on the command's clock.
func PortcheckReply(plan Plan, job Job, rows []Row, took time.Duration, line PortLine) bot.Reply {
	var checked, failed []Row
	for _, r := range rows {
		if r.checked() {
			checked = append(checked, r)
		} else {
			failed = append(failed, r)
		}
	}
	reply := bot.Reply{Status: bot.StatusNegative, Table: matrix(rows, job.Ports, job.Proto)}
	allOpen := len(failed) == 0
	openPorts := 0
	for i := range job.Ports {
		everywhere := len(checked) > 0
		for _, r := range checked {
			everywhere = everywhere && r.cells[i].res.State == probe.Open
		}
		if everywhere {
			openPorts++
		} else {
			allOpen = false
		}
	}
	who := plan.Name()
	diff, _ := differences(checked, job.Ports, job.Proto)
	switch {
	case len(checked) == 0:
		reply.Status = bot.StatusFailed
		reply.Title = fmt.Sprintf("%s: not checked from %s", who, plan.HostList())
	case diff != "":
		reply.Title = who + " " + diff
	case len(job.Ports) == 1:
		reply.Title = fmt.Sprintf("%s %s %s from %s", who, portName(job.Ports[0], job.Proto), cellState(checked[0].cells[0]), fromWhom(plan, checked))
	default:
		reply.Title = fmt.Sprintf("%s: %d of %d ports open from %s", who, openPorts, len(job.Ports), fromWhom(plan, checked))
	}
	if len(checked) > 0 && len(failed) > 0 {
		reply.Title += "; not checked from " + names(failed)
	}
	if allOpen && len(checked) > 0 {
		reply.Status = bot.StatusOK
	}
	for _, r := range checked {
		for i := range job.Ports {
			reply.Lines = append(reply.Lines, vantageLine(plan, r, r.cells[i], job, line))
		}
	}
	reply.Text = strings.Join(vantageNotes(plan, job, rows), "\n")
	reply.Fields = []bot.Field{{Name: "duration", Value: bot.Human(took)}}
	return reply
}

// fromWhom names the hosts that checked, when they all agree.
func fromWhom(plan Plan, checked []Row) string {
	if len(checked) == len(plan.Hosts) {
		return plan.everyone()
	}
	return names(checked)
}

func names(rows []Row) string {
	n := make([]string, len(rows))
	for i, r := range rows {
		n[i] = r.host.Name
	}
	return strings.Join(n, ", ")
}

// matrix is the table: a row per vantage host, a column per port.
func matrix(rows []Row, ports []uint16, proto probe.Proto) *bot.Table {
	t := &bot.Table{Header: []string{"vantage", "tool"}}
	for _, p := range ports {
		t.Header = append(t.Header, portName(p, proto))
	}
	for _, r := range rows {
		row := []string{r.host.Name, r.tool.String()}
		for i := range ports {
			if !r.checked() {
				row = append(row, "-")
				continue
			}
			row = append(row, cellState(r.cells[i]))
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// vantageLine is one cell in words: the netcat line where the tool is
// opsbot (as a check from the bot reads), else the tool's own evidence.
func vantageLine(plan Plan, r Row, c cell, job Job, line PortLine) string {
	from := "from " + r.host.Name + ": "
	if r.tool == toolSelf || r.tool == toolOpsbot {
		if c.res.State == 0 {
			return from + fmt.Sprintf("%s %d port [%s/*] undecided: no result before the probe stopped", plan.Addr, c.res.Target.Port(), job.Proto)
		}
		return from + line(plan.Target.Name, c.res, job.wait())
	}
	port := c.res.Target.Port()
	svc := probe.ServiceName(job.Proto, port)
	if svc == "" {
		svc = "*"
	}
	prefix := fmt.Sprintf("%s %d port [%s/%s]", plan.Addr, port, job.Proto, svc)
	return from + prefix + " " + cellState(c) + ": " + toolEvidence(r, c, job)
}

// toolEvidence says what nc or bash said and what it means.
func toolEvidence(r Row, c cell, job Job) string {
	said := ""
	if c.words != "" {
		said = fmt.Sprintf(" (%s said: %q)", r.tool, c.words)
	}
	res := c.res
	if r.tool == toolNC {
		wait := fmt.Sprintf("%ds", r.ncWait)
		switch {
		case res.State == probe.OpenFiltered:
			return "nc -zu said \"succeeded\": it says so for open, dropped and prohibited ports alike (it never reads a reply)"
		case res.Reason == probe.PortUnreachable:
			return "nc -zu failed: ICMP port unreachable (nothing listens)" + said
		case res.Reason == probe.Handshake:
			return "handshake completed" + said
		case res.Reason == probe.Refused:
			return "connection refused (RST or ICMP port unreachable: nothing listens, or a firewall rejects)" + said
		case res.Reason == probe.Timeout:
			return "no answer in " + wait + " (a firewall drops it)" + said
		}
	} else {
		switch res.Reason {
		case probe.Handshake:
			return "connected (bash /dev/tcp)"
		case probe.Refused:
			return "connection refused (RST or ICMP port unreachable: nothing listens, or a firewall rejects)" + said
		case probe.Timeout:
			return fmt.Sprintf("no answer in %s: timeout stopped bash (a firewall drops it, or the host is down)", job.wait())
		}
	}
	switch res.Reason {
	case probe.HostUnreachable:
		return "no route to host (ICMP host unreachable or administratively prohibited: a firewall rejects it, or no route)" + said
	case probe.NetUnreachable:
		return "network unreachable (no route)" + said
	}
	if c.words == "" && c.exit == 0 {
		return "no answer from " + r.tool.String() + " for this port (it was stopped first)"
	}
	return fmt.Sprintf("not understood: %s exited %d and said %q", r.tool, c.exit, c.words)
}

// toolNote says which tool a host used and what that tool cannot tell.
func toolNote(r Row, job Job) string {
	switch r.tool {
	case toolSelf:
		return "the bot's own probe engine (the bot's host)."
	case toolOpsbot:
		return fmt.Sprintf("opsbot probe (%s): the same evidence as a check from the bot (handshake, RST, ICMP type and sender, UDP replies).", r.found.opsbot)
	case toolNC:
		if job.Proto == probe.UDP {
			return fmt.Sprintf("nc -zu (%s, %s), one port at a time, -w %d: it never reads a reply, and says \"succeeded\" for an open port, for one a firewall drops and for one it rejects as prohibited; such ports read open|filtered here, never open. Only closed (ICMP port unreachable) is certain. Install opsbot there to tell them apart.",
				r.found.nc, r.found.ncBanner, r.ncWait)
		}
		return fmt.Sprintf("nc (%s, %s), one port at a time, -w %d: it cannot tell a RST from an ICMP port unreachable (both read closed) nor an ICMP prohibited from a host unreachable, and gives no latency.",
			r.found.nc, r.found.ncBanner, r.ncWait)
	case toolBash:
		return fmt.Sprintf("bash /dev/tcp under timeout (%s, %s), TCP only, one port at a time: it tells open (connected) from not open; of the rest it tells refused (RST or ICMP port unreachable) from no answer in %s only by bash's error message and timeout stopping it; it cannot see ICMP types or who sent them, gives no latency, and cannot check UDP.",
			r.found.bash, r.found.timeout, job.wait())
	}
	return ""
}

// grouped writes "host: text" lines, hosts with the same text on one line,
// in the order the texts first appear.
func grouped(pairs [][2]string) []string {
	var order []string
	hosts := map[string][]string{}
	for _, p := range pairs {
		if _, ok := hosts[p[1]]; !ok {
			order = append(order, p[1])
		}
		hosts[p[1]] = append(hosts[p[1]], p[0])
	}
	out := make([]string, len(order))
	for i, text := range order {
		out[i] = "  " + strings.Join(hosts[text], ", ") + ": " + text
	}
	return out
}

// vantageNotes are the reply's prose: which address was checked and how
// the name became it, the tools, and what went wrong where.
func vantageNotes(plan Plan, job Job, rows []Row) []string {
	var notes []string
	if plan.Target.Name != "" {
		notes = append(notes, fmt.Sprintf("Checked %s: %s was resolved on the bot and checked against its policy; the vantage hosts were given the address, never the name.", plan.Addr, plan.Target.Name))
	} else {
		notes = append(notes, fmt.Sprintf("Checked %s from %s.", plan.Addr, plan.HostList()))
	}
	if len(plan.Target.Addrs) > 1 {
		notes = append(notes, fmt.Sprintf("%s has %d addresses; checked %s (add -4 or -6 to choose).", plan.Target.Name, len(plan.Target.Addrs), plan.Addr))
	}
	if len(plan.Target.Skipped) > 0 {
		notes = append(notes, "Not checked (policy): "+strings.Join(plan.Target.Skipped, "; "))
	}
	var tools, problems [][2]string
	silent := false
	for _, r := range rows {
		if r.tool != 0 && r.checked() {
			tools = append(tools, [2]string{r.host.Name, toolNote(r, job)})
		}
		for _, n := range r.notes {
			problems = append(problems, [2]string{r.host.Name, n + "."})
		}
		switch {
		case r.problem != "" && r.checked():
			problems = append(problems, [2]string{r.host.Name, r.problem + "."})
		case r.problem != "":
			problems = append(problems, [2]string{r.host.Name, "not checked: " + r.problem + "."})
		}
		for _, c := range r.cells {
			silent = silent || (c.res.State == probe.OpenFiltered && r.tool != toolNC)
		}
	}
	if len(tools)+len(problems) > 0 {
		notes = append(notes, "Tools:")
		notes = append(notes, grouped(tools)...)
		notes = append(notes, grouped(problems)...)
	}
	if silent {
		notes = append(notes, "open|filtered: no reply and no ICMP error. UDP is connectionless: a firewall that drops packets looks the same as an open port, and so does a service that ignores requests it does not understand.")
	}
	return notes
}

// maxScanColumns bounds the ports a scan's table shows.
const maxScanColumns = 12

// ScanReply is the one place /scan ... from results become words: per
// vantage host the counts per state, and a matrix of the ports that matter
// (open somewhere, or seen differently). spec is the ports as asked
// ("top100", "75-85"); took is how long the whole scan took, on the
// command's clock.
func ScanReply(plan Plan, spec string, job Job, rows []Row, took time.Duration) bot.Reply {
	var checked []Row
	for _, r := range rows {
		if r.checked() {
			checked = append(checked, r)
		}
	}
	title := fmt.Sprintf("Scan of %s %s %s from %s", plan.Name(), job.Proto, spec, plan.Word)
	reply := bot.Reply{Status: bot.StatusNegative}
	var show []int // port indexes for columns
	var openAnywhere, differ []uint16
	for i, p := range job.Ports {
		open := false
		for _, r := range checked {
			open = open || r.cells[i].res.State == probe.Open
		}
		_, d := whoSaw(checked, i)
		if open {
			openAnywhere = append(openAnywhere, p)
		}
		if d {
			differ = append(differ, p)
		}
		if open || d {
			show = append(show, i)
		}
	}
	diff, _ := differences(checked, job.Ports, job.Proto)
	switch {
	case len(checked) == 0:
		reply.Status = bot.StatusFailed
		reply.Title = title + ": not checked from any host"
	case diff != "":
		reply.Title = title + ": " + diff
	case len(openAnywhere) == 0:
		reply.Title = fmt.Sprintf("%s: nothing open from %s", title, fromWhom(plan, checked))
	default:
		reply.Title = fmt.Sprintf("%s: %d open from %s (%s)", title, len(openAnywhere), fromWhom(plan, checked), portwords.Ranges(openAnywhere))
	}
	if len(checked) > 0 && len(checked) < len(rows) {
		var failed []Row
		for _, r := range rows {
			if !r.checked() {
				failed = append(failed, r)
			}
		}
		reply.Title += "; not checked from " + names(failed)
	}
	if len(openAnywhere) > 0 {
		reply.Status = bot.StatusOK
	}
	shown := show
	if len(shown) > maxScanColumns {
		shown = shown[:maxScanColumns]
	}
	t := &bot.Table{Header: []string{"vantage", "tool"}}
	for _, i := range shown {
		t.Header = append(t.Header, portName(job.Ports[i], job.Proto))
	}
	t.Header = append(t.Header, "ports")
	for _, r := range rows {
		row := []string{r.host.Name, r.tool.String()}
		for _, i := range shown {
			if r.checked() {
				row = append(row, cellState(r.cells[i]))
			} else {
				row = append(row, "-")
			}
		}
		row = append(row, counts(r))
		t.Rows = append(t.Rows, row)
	}
	reply.Table = t
	notes := vantageNotes(plan, job, rows)
	if len(show) > len(shown) {
		var rest []uint16
		for _, i := range show[len(shown):] {
			rest = append(rest, job.Ports[i])
		}
		notes = append(notes, fmt.Sprintf("Not in the table (open somewhere or seen differently): %s. /portcheck %s PORTS from %s shows them.", portwords.Ranges(rest), plan.Addr, plan.Word))
	}
	if len(differ) > 0 {
		notes = append(notes, "Seen differently from the vantage hosts: "+portwords.Ranges(differ))
	}
	for _, r := range checked {
		if r.limited {
			notes = append(notes, r.host.Name+": the target rate-limits ICMP errors; opsbot paced its probes so that closed ports read closed.")
		}
		var unconfirmed, doubtful []uint16
		for _, c := range r.cells {
			if c.res.State == probe.OpenFiltered && !c.res.Witnessed && (r.tool == toolOpsbot || r.tool == toolSelf) {
				unconfirmed = append(unconfirmed, c.res.Target.Port())
			}
			if c.res.State == probe.Filtered && c.res.Doubtful {
				doubtful = append(doubtful, c.res.Target.Port())
			}
		}
		if len(doubtful) > 0 {
			notes = append(notes, r.host.Name+": unconfirmed, no answer after every try (the path lost too many probes, or the target stopped answering): "+portwords.Ranges(doubtful))
		}
		if len(unconfirmed) > 0 && len(unconfirmed) <= 50 {
			notes = append(notes, r.host.Name+": unconfirmed (silent, and the host's ICMP rate limit or a firewall kept opsbot from telling closed from open|filtered): "+portwords.Ranges(unconfirmed))
		}
	}
	reply.Text = strings.Join(notes, "\n")
	reply.Fields = []bot.Field{{Name: "duration", Value: bot.Human(took)}}
	return reply
}

// counts is a row's tally: "2 open, 97 closed, 1 filtered".
func counts(r Row) string {
	if !r.checked() {
		return "not checked"
	}
	n := map[string]int{}
	for _, c := range r.cells {
		n[cellState(c)]++
	}
	var parts []string
	for _, st := range []string{"open", "closed", "filtered", "open|filtered", "?"} {
		if n[st] > 0 {
			name := st
			if st == "?" {
				name = "undecided"
			}
			parts = append(parts, fmt.Sprintf("%d %s", n[st], name))
		}
	}
	return strings.Join(parts, ", ")
}
