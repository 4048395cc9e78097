package apache

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/hostcmd"
)

// The functions here turn typed results into replies and do nothing else.

// groupStatusReply is a table of the hosts; one host's status is
// hostStatusReply.
func groupStatusReply(r request, snaps []snapshot) bot.Reply {
	t := &bot.Table{Header: []string{"host", "state", "generation", "busy/idle", "req/s", "uptime", "certificates"}}
	up := 0
	for _, s := range snaps {
		state := stateWord(s)
		if state == "up" {
			up++
		}
		row := []string{s.Host.Name, state, "-", "-", "-", "-", certCell(s)}
		if s.StatusErr == nil {
			st := s.Status
			row[2] = strconv.Itoa(st.Generation)
			row[3] = fmt.Sprintf("%d/%d", st.BusyWorkers, st.IdleWorkers)
			if st.HasReqPerSec {
				row[4] = strconv.FormatFloat(st.ReqPerSec, 'f', 1, 64)
			}
			row[5] = roundUptime(st.Uptime)
		}
		t.Rows = append(t.Rows, row)
	}
	status := bot.StatusOK
	if up < len(snaps) {
		status = bot.StatusNegative
	}
	rep := bot.Reply{Status: status, Title: fmt.Sprintf("Apache on %s: %d of %d hosts up", r.Target, up, len(snaps)), Table: t}
	var notes []string
	for _, s := range snaps {
		if n := problemText(s); n != "" {
			notes = append(notes, s.Host.Name+": "+n)
		}
		_, mismatches := certFields(s)
		for _, m := range mismatches {
			notes = append(notes, s.Host.Name+": "+m)
		}
		if len(mismatches) > 0 {
			rep.Status = bot.StatusNegative
		}
	}
	rep.Text = strings.Join(notes, "\n")
	return rep
}

// stateWord is one word for a host's Apache: up, down, degraded (running
// but the status page does not answer), unknown.
func stateWord(s snapshot) string {
	switch {
	case s.Parent.alive() && s.StatusErr == nil:
		return "up"
	case s.Parent.alive():
		return "degraded"
	case s.Parent.State == "unknown" && s.StatusErr == nil:
		return "up"
	case s.Parent.State == "unknown":
		return "unknown"
	}
	return "down"
}

func problemText(s snapshot) string {
	var p []string
	if !s.Parent.alive() {
		p = append(p, "parent "+s.Parent.String())
	}
	if s.StatusErr != nil {
		p = append(p, hostcmd.ErrText(s.StatusErr))
	}
	return strings.Join(p, "; ")
}

func hostStatusReply(s snapshot) bot.Reply {
	name := s.Host.Label()
	switch stateWord(s) {
	case "down":
		return bot.Reply{Status: bot.StatusNegative, Title: "Apache on " + name + " is down",
			Fields: []bot.Field{{Name: "parent", Value: s.Parent.String()}},
			Text:   "Start it with /apache restart " + s.Host.Name + " (it runs configtest first)."}
	case "unknown":
		return bot.Reply{Status: bot.StatusNegative, Title: "Apache on " + name + ": state unknown",
			Fields: []bot.Field{{Name: "parent", Value: s.Parent.String()}, {Name: "server-status", Value: hostcmd.ErrText(s.StatusErr)}}}
	case "degraded":
		return bot.Reply{Status: bot.StatusNegative, Title: "Apache on " + name + " runs, but server-status does not answer",
			Fields: []bot.Field{{Name: "parent", Value: s.Parent.String()}, {Name: "server-status", Value: hostcmd.ErrText(s.StatusErr)}},
			Text:   "Either workers are not serving, or the status URL is wrong for this host (set apache.status_url in the inventory)."}
	}
	st := s.Status
	title := fmt.Sprintf("Apache on %s is up: generation %d, %d of %d workers busy", name, st.Generation, st.BusyWorkers, st.BusyWorkers+st.IdleWorkers)
	fields := []bot.Field{
		{Name: "version", Value: strings.TrimSpace(st.ServerVersion + " " + mpmText(st.MPM))},
		{Name: "uptime", Value: roundUptime(st.Uptime)},
		{Name: "generation", Value: fmt.Sprintf("config %d, MPM %d", st.Generation, st.MPMGeneration)},
		{Name: "workers", Value: fmt.Sprintf("%d busy, %d idle, %d finishing after a reload", st.BusyWorkers, st.IdleWorkers, st.GracefulWorkers)},
		{Name: "processes", Value: strconv.Itoa(st.Processes)},
	}
	if st.HasReqPerSec {
		fields = append(fields, bot.Field{Name: "requests", Value: fmt.Sprintf("%.2f/s on average since the last restart, %d in total", st.ReqPerSec, st.TotalAccesses)})
	}
	fields = append(fields, bot.Field{Name: "parent", Value: s.Parent.String()})
	cf, mismatches := certFields(s)
	fields = append(fields, cf...)
	rep := bot.Reply{Status: bot.StatusOK, Title: title, Fields: fields}
	var text []string
	if s.Parent.State == "unknown" {
		text = append(text, "Whether the parent process is alive is unknown: "+s.Parent.String())
	}
	if len(mismatches) > 0 {
		rep.Status = bot.StatusNegative
		text = append(text, mismatches...)
		text = append(text, "What is served is not what a reload would load: the file changed since the last reload or restart, or the config points elsewhere.")
	}
	rep.Text = strings.Join(text, "\n")
	return rep
}

func mpmText(m string) string {
	if m == "" {
		return ""
	}
	return "(" + m + " MPM)"
}

func roundUptime(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%dd%s", int(d.Hours())/24, (d % (24 * time.Hour)).Round(time.Hour))
}

func configTestReply(r request, tests []hostTest) bot.Reply {
	var lines, notes []string
	failed := 0
	for _, t := range tests {
		prefix := r.Prefix(t.Host)
		switch {
		case t.Err != nil:
			failed++
			lines = append(lines, prefix+"could not run: "+hostcmd.ErrText(t.Err))
		case t.Test.OK:
			lines = append(lines, prefix+"Syntax OK")
		default:
			failed++
			lines = append(lines, configErrors(prefix, t.Test)...)
		}
		for _, w := range t.Test.Warnings {
			notes = append(notes, prefix+"warning: "+w)
		}
	}
	rep := bot.Reply{Lines: lines, Text: strings.Join(dedupe(notes), "\n")}
	switch {
	case failed == 0:
		rep.Status, rep.Title = bot.StatusOK, "configtest on "+r.Target+": Syntax OK"
	case !r.Group:
		rep.Status, rep.Title = bot.StatusNegative, "configtest on "+tests[0].Host.Label()+" failed"
	default:
		rep.Status, rep.Title = bot.StatusNegative, fmt.Sprintf("configtest on %s failed on %d of %d hosts", r.Target, failed, len(tests))
	}
	return rep
}

// configErrors writes each error as FILE:LINE: message, the way compilers
// and editors want it.
func configErrors(prefix string, t ConfigTest) []string {
	if len(t.Errors) == 0 {
		return []string{prefix + "configtest failed (no message)"}
	}
	var out []string
	for _, e := range t.Errors {
		loc := ""
		switch {
		case e.File != "" && e.Line > 0:
			loc = fmt.Sprintf("%s:%d: ", e.File, e.Line)
		case e.File != "":
			loc = e.File + ": "
		}
		code := ""
		if e.Code != "" {
			code = " (" + e.Code + ")"
		}
		out = append(out, prefix+loc+e.Message+code)
	}
	return out
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

const onDisk = "Read from the config on disk (apache2ctl %s): what a reload would load, which may differ from what the running server loaded."

func modulesReply(r request, outs []listed) bot.Reply {
	perHost := map[string][]string{} // module -> hosts that have it
	kinds := map[string]string{}
	var errs []string
	ok := 0
	for _, o := range outs {
		if msg := listingError(o); msg != "" {
			errs = append(errs, o.host.Name+": "+msg)
			continue
		}
		ok++
		mods, _ := ParseModules(o.out.Stdout)
		for _, m := range mods {
			perHost[m.Name] = append(perHost[m.Name], o.host.Name)
			kinds[m.Name] = m.Kind
		}
	}
	names := make([]string, 0, len(perHost))
	for n := range perHost {
		names = append(names, n)
	}
	sort.Strings(names)
	t := &bot.Table{Header: []string{"module", "kind"}}
	if r.Group {
		t.Header = append(t.Header, "hosts")
	}
	for _, n := range names {
		row := []string{n, kinds[n]}
		if r.Group {
			h := "all"
			if len(perHost[n]) < ok {
				h = strings.Join(perHost[n], ", ")
			}
			row = append(row, h)
		}
		t.Rows = append(t.Rows, row)
	}
	return listingReply(r, fmt.Sprintf("%d modules", len(names)), t, "-M", errs)
}

func listingError(o listed) string {
	switch {
	case o.err != nil:
		return hostcmd.ErrText(o.err)
	case o.out.ExitCode != 0:
		return fmt.Sprintf("exit %d: %s", o.out.ExitCode, firstLine(o.out.Stderr, o.out.Stdout))
	}
	return ""
}

func listingReply(r request, what string, t *bot.Table, flag string, errs []string) bot.Reply {
	rep := bot.Reply{Status: bot.StatusInfo, Title: fmt.Sprintf("Apache on %s: %s", r.Target, what), Table: t}
	text := []string{fmt.Sprintf(onDisk, flag)}
	if len(errs) > 0 {
		rep.Status = bot.StatusNegative
		text = append(errs, text...)
	}
	rep.Text = strings.Join(text, "\n")
	return rep
}

func vhostsReply(r request, outs []listed) bot.Reply {
	t := &bot.Table{Header: []string{"address", "name", "aliases", "defined at"}}
	if r.Group {
		t.Header = append([]string{"host"}, t.Header...)
	}
	var errs []string
	count := 0
	for _, o := range outs {
		if msg := listingError(o); msg != "" {
			errs = append(errs, o.host.Name+": "+msg)
			continue
		}
		vh, _ := ParseVHosts(o.out.Stdout)
		for _, v := range vh.VHosts {
			count++
			addr := v.Address
			if v.Port > 0 {
				addr = net.JoinHostPort(v.Address, strconv.Itoa(v.Port))
			}
			if v.Default {
				addr += " (default)"
			}
			at := v.File
			if v.Line > 0 {
				at = fmt.Sprintf("%s:%d", v.File, v.Line)
			}
			row := []string{addr, v.ServerName, hostcmd.Dash(strings.Join(v.Aliases, ", ")), at}
			if r.Group {
				row = append([]string{o.host.Name}, row...)
			}
			t.Rows = append(t.Rows, row)
		}
	}
	return listingReply(r, fmt.Sprintf("%d virtual hosts", count), t, "-S", errs)
}

var pastTense = map[string]string{"reload": "Reloaded", "restart": "Restarted"}

func changeReply(r request, ro roll) bot.Reply {
	if !r.Group && len(ro.Done) == 1 {
		return hostChangeReply(ro.Done[0])
	}
	t := &bot.Table{Header: []string{"host", "result", "generation", "new generation in", "took"}}
	for _, c := range ro.Done {
		t.Rows = append(t.Rows, []string{c.Host.Name, resultWord(c), genChange(c), newGenText(c), bot.Human(c.Took)})
	}
	for _, h := range ro.Untouched {
		t.Rows = append(t.Rows, []string{h.Name, "not touched", "-", "-", "-"})
	}
	rep := bot.Reply{Table: t}
	if ro.Complete() {
		rep.Status = bot.StatusOK
		rep.Title = fmt.Sprintf("%s Apache on %s: all %d hosts verified", pastTense[r.Sub], r.Target, len(ro.Done))
		return rep
	}
	rep.Status = bot.StatusFailed
	var text []string
	if h, c, failed := ro.Failed(); failed {
		rep.Title = fmt.Sprintf("%s of %s stopped at %s: %s", r.Sub, r.Target, h.Name, shortProblem(c))
		text = append(text, hostDetail(c)...)
	} else {
		rep.Title = fmt.Sprintf("%s of %s stopped: canceled", r.Sub, r.Target)
	}
	text = append(text, "Changed: "+hostcmd.ListOrNone(ro.Changed())+".", "Not touched: "+hostcmd.ListOrNone(hostcmd.Names(ro.Untouched))+".")
	rep.Text = strings.Join(text, "\n")
	return rep
}

func resultWord(c change) string {
	switch {
	case c.Refused != "":
		return "refused"
	case c.ok():
		return "verified"
	}
	return "FAILED"
}

func genChange(c change) string {
	before := "?"
	if c.Before.StatusErr == nil && c.Before.Status.HasGeneration {
		before = strconv.Itoa(c.Before.Status.Generation)
	}
	if c.NewGenIn == 0 {
		return before + " -> ?"
	}
	return before + " -> " + strconv.Itoa(c.GenAfter)
}

func newGenText(c change) string {
	if c.NewGenIn == 0 {
		return "-"
	}
	return bot.Human(c.NewGenIn)
}

func shortProblem(c change) string {
	if c.Refused != "" {
		return "refused, " + c.Refused
	}
	return c.Problems[0]
}

// hostDetail is what a person needs to act on one host's failure.
func hostDetail(c change) []string {
	var out []string
	if c.Refused != "" && !c.Test.Test.OK && c.Test.Err == nil {
		out = append(out, configErrors(c.Host.Name+": ", c.Test.Test)...)
	}
	for _, p := range c.Problems {
		out = append(out, c.Host.Name+": "+p)
	}
	for i, e := range c.Fatal {
		if i == 5 {
			out = append(out, fmt.Sprintf("(%d more fatal entries)", len(c.Fatal)-5))
			break
		}
		out = append(out, "  "+strings.TrimSpace(e.Raw))
	}
	return out
}

func hostChangeReply(c change) bot.Reply {
	name := c.Host.Label()
	if c.Refused != "" {
		rep := bot.Reply{Status: bot.StatusFailed, Title: fmt.Sprintf("%s refused on %s: %s", c.Action, name, c.Refused),
			Text: "Nothing was done: Apache was not touched."}
		if !c.Test.Test.OK && c.Test.Err == nil {
			rep.Lines = configErrors("", c.Test.Test)
		}
		return rep
	}
	fields := []bot.Field{
		{Name: "generation", Value: genChange(c)},
		{Name: "parent", Value: c.After.String()},
	}
	if c.NewGenIn > 0 {
		fields = append(fields, bot.Field{Name: "new generation serving after", Value: bot.Human(c.NewGenIn)})
	}
	if c.Probe.URL != "" {
		fields = append(fields, bot.Field{Name: "probe", Value: probeText(c.Probe)})
	}
	logField := "no fatal entries since the " + c.Action
	switch {
	case len(c.Fatal) > 0:
		logField = fmt.Sprintf("%d fatal entries: %s", len(c.Fatal), strings.Join(codes(c.Fatal), ", "))
	case c.LogNote != "":
		logField = c.LogNote
	}
	fields = append(fields, bot.Field{Name: "error log", Value: logField})
	fields = append(fields, changeCertFields(c)...)
	fields = append(fields, bot.Field{Name: "took", Value: bot.Human(c.Took)})
	if c.ok() {
		title := fmt.Sprintf("%s Apache on %s: generation %s, verified", pastTense[c.Action], name, genChange(c))
		rep := bot.Reply{Status: bot.StatusOK, Title: title, Fields: fields}
		if c.Action == "restart" && c.Before.StatusErr == nil {
			switch n := max(c.Before.Status.BusyWorkers-1, 0); n {
			case 0:
				rep.Text = "No request was in flight before the restart (by server-status)."
			default:
				rep.Text = fmt.Sprintf("%s in flight before the restart (by server-status) were cut.", hostcmd.Plural(n, "request"))
			}
		}
		if c.Action == "restart" && !c.Before.Parent.alive() {
			rep.Text = "Apache was not running before (" + c.Before.Parent.String() + "); it is now."
		}
		return rep
	}
	lines := make([]string, 0, len(c.Fatal))
	for i, e := range c.Fatal {
		if i == 8 {
			break
		}
		lines = append(lines, strings.TrimSpace(e.Raw))
	}
	text := []string{"Problems:"}
	for _, p := range c.Problems {
		text = append(text, "- "+p)
	}
	if c.CtlErr == nil && c.Ctl.ExitCode == 0 {
		text = append(text, fmt.Sprintf("apache2ctl %s itself exited 0: only the checks after it show the failure.", ctlWord[c.Action]))
	}
	if !c.After.alive() {
		text = append(text, "Fix the cause (the log lines above), check with /apache configtest "+c.Host.Name+", then start it with /apache restart "+c.Host.Name+".")
	}
	return bot.Reply{Status: bot.StatusFailed, Title: fmt.Sprintf("%s of Apache on %s FAILED: %s", c.Action, name, c.Problems[0]),
		Fields: fields, Lines: lines, Text: strings.Join(text, "\n")}
}

func rollProgress(r request, done []change, next []bot.Host, canary bool) bot.Reply {
	what := "batch"
	if canary {
		what = "canary"
	}
	lines := make([]string, 0, len(done))
	for _, c := range done {
		lines = append(lines, fmt.Sprintf("%s: %s (%s)", c.Host.Name, resultWord(c), bot.Human(c.Took)))
	}
	return bot.Reply{Status: bot.StatusRunning,
		Title: fmt.Sprintf("%s of %s: %s %s, %d of %d hosts done", r.Sub, r.Target, what, strings.Join(hostcmd.Names(next), ", "), len(done), len(r.Hosts)),
		Lines: lines}
}
