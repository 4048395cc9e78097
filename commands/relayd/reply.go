package relayd

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/hostcmd"
)

// The functions here turn typed results into replies and do nothing else.

// --- status ----------------------------------------------------------------

func statusReply(r request, snaps []snapshot) bot.Reply {
	if !r.Group {
		return hostStatusReply(snaps[0])
	}
	t := &bot.Table{Header: []string{"host", "relayd", "redirects", "relays", "hosts up", "not up"}}
	running, up, total := 0, 0, 0
	healthy := true
	var notes []string
	for _, s := range snaps {
		if s.Err != nil {
			healthy = false
			t.Rows = append(t.Rows, []string{s.Host.Name, "not answering", "-", "-", "-", "-"})
			notes = append(notes, hostcmd.ErrText(s.Err))
			continue
		}
		running++
		d := s.Summary.Digest(s.Hosts)
		healthy = healthy && d.Healthy()
		up += d.HostsUp
		total += d.Hosts
		t.Rows = append(t.Rows, []string{s.Host.Name, "running",
			activeOf(s.Summary.Redirects, nil), activeOf(nil, s.Summary.Relays),
			fmt.Sprintf("%d of %d", d.HostsUp, d.Hosts), hostcmd.Dash(breakdown(d))})
		for _, h := range d.HostsDown {
			notes = append(notes, fmt.Sprintf("%s: %s %s in %s, %s", s.Host.Name, h.Name, h.Status, h.Table.Name, lastCheck(h)))
		}
		for _, n := range append(unknownNotes("show summary", s.Summary.Unknown), unknownNotes("show hosts", s.Hosts.Unknown)...) {
			notes = append(notes, s.Host.Name+": "+n)
		}
	}
	rep := bot.Reply{Status: bot.StatusOK, Table: t,
		Title: fmt.Sprintf("relayd on %s: running on %d of %d hosts, %d of %d backend hosts up", r.Target, running, len(snaps), up, total)}
	if !healthy {
		rep.Status = bot.StatusNegative
	}
	rep.Text = strings.Join(limit(notes, 20), "\n")
	return rep
}

func hostStatusReply(s snapshot) bot.Reply {
	name := s.Host.Label()
	if s.Err != nil {
		rep := bot.Reply{Status: bot.StatusNegative, Title: hostcmd.ErrText(s.Err)}
		if notRunning(s.Err) {
			rep.Text = fmt.Sprintf("Start it with /relayd restart %s: config check, CARP demote, rcctl restart, wait for the hosts, undemote.", s.Host.Name)
		}
		return rep
	}
	d := s.Summary.Digest(s.Hosts)
	rep := bot.Reply{Status: bot.StatusOK}
	if d.Healthy() {
		rep.Title = fmt.Sprintf("relayd on %s: all %d hosts up, %s", name, d.Hosts, parentsText(d))
	} else {
		rep.Status = bot.StatusNegative
		rep.Title = fmt.Sprintf("relayd on %s: %d of %d hosts up", name, d.HostsUp, d.Hosts)
		if b := breakdown(d); b != "" {
			rep.Title += ", " + b
		}
		if n := len(d.NotActive); n > 0 {
			// Degraded, not "not active": a redirect on its backup table is
			// active, and the redirects field below counts it so.
			rep.Title += fmt.Sprintf("; %d of %d redirects, relays and routers degraded", n, d.Redirects+d.Relays+d.Routers)
		}
	}

	var rows [][]string
	for _, p := range s.Summary.parents() {
		rows = append(rows, []string{string(p.Type), p.Name, p.Status})
	}
	for _, t := range d.TablesDown {
		rows = append(rows, []string{"table", fmt.Sprintf("%s (id %d)", t.Name, t.ID),
			fmt.Sprintf("%s: %d of %d hosts up%s", t.Status, t.HostsUp, t.Hosts, usedBy(t.Parents))})
	}
	rep.Lines = align(rows)

	if len(d.HostsDown) > 0 {
		t := &bot.Table{Header: []string{"host", "id", "table", "status", "availability", "last check"}}
		for _, h := range d.HostsDown {
			last := lastCheck(h)
			if s.HostsErr != nil {
				last = "?"
			}
			t.Rows = append(t.Rows, []string{h.Name, strconv.FormatUint(uint64(h.ID), 10),
				fmt.Sprintf("%s (id %d)", h.Table.Name, h.Table.ID), h.Status, availText(h.Availability), last})
		}
		rep.Table = t
	}
	rep.Fields = []bot.Field{
		{Name: "redirects", Value: activeOf(s.Summary.Redirects, nil)},
		{Name: "relays", Value: activeOf(nil, s.Summary.Relays)},
		{Name: "tables", Value: fmt.Sprintf("%d of %d with every host up", d.Tables-len(d.TablesDown), d.Tables)},
		{Name: "hosts", Value: fmt.Sprintf("%d of %d up", d.HostsUp, d.Hosts)},
	}
	if len(s.Summary.Routers) > 0 {
		rep.Fields = append(rep.Fields, bot.Field{Name: "routers", Value: fmt.Sprintf("%d", len(s.Summary.Routers))})
	}
	var notes []string
	if s.HostsErr != nil {
		notes = append(notes, "No check counts or last errors: "+hostcmd.ErrText(s.HostsErr))
	}
	notes = append(notes, unknownNotes("show summary", s.Summary.Unknown)...)
	notes = append(notes, unknownNotes("show hosts", s.Hosts.Unknown)...)
	notes = append(notes, s.Notes...)
	if hasState(d, StateUnknown) {
		notes = append(notes, "unknown: no check has completed since relayd started, reloaded or enabled the host.")
	}
	if n := len(s.Summary.Unknown) + len(s.Hosts.Unknown); n > 0 {
		// The digest may be missing what those lines said: no all-clear.
		rep.Status = bot.StatusNegative
		rep.Title += fmt.Sprintf("; %s of relayctl output not understood", hostcmd.Plural(n, "line"))
	}
	rep.Text = strings.Join(notes, "\n")
	host := s.Host.Name
	rep.Actions = []bot.Action{
		{Label: "Hosts", Command: "/relayd show hosts " + host},
		{Label: "Summary", Command: "/relayd show summary " + host},
		{Label: "Redirects", Command: "/relayd show redirects " + host},
		{Label: "Relays", Command: "/relayd show relays " + host},
		{Label: "Sessions", Command: "/relayd show sessions " + host},
	}
	return rep
}

func hasState(d Digest, st State) bool {
	for _, h := range d.HostsDown {
		if h.State == st {
			return true
		}
	}
	return false
}

// breakdown says how the hosts not up are: "2 down, 1 unknown".
func breakdown(d Digest) string {
	counts := map[State]int{}
	for _, h := range d.HostsDown {
		counts[h.State]++
	}
	var parts []string
	for _, st := range []State{StateDown, StateUnknown, StateDisabled} {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
		}
	}
	return strings.Join(parts, ", ")
}

func parentsText(d Digest) string {
	var parts []string
	for _, c := range []struct {
		n    int
		what string
	}{{d.Redirects, "redirect"}, {d.Relays, "relay"}, {d.Routers, "router"}} {
		if c.n > 0 {
			parts = append(parts, hostcmd.Plural(c.n, c.what))
		}
	}
	if len(parts) == 0 {
		return "no redirects or relays"
	}
	return strings.Join(parts, ", ") + " active"
}

// activeOf counts the redirects or relays that are active; a redirect on
// its backup table is active, and said apart: "1 of 1 active, 1 on its
// backup table", so that the count agrees with the rows and with the
// "degraded" of the title.
func activeOf(rdrs []Redirect, relays []Relay) string {
	n, active, backup := 0, 0, 0
	for _, r := range rdrs {
		n++
		if r.State == StateActive {
			active++
			if r.UsingBackup {
				backup++
			}
		}
	}
	for _, r := range relays {
		n++
		if r.State == StateActive {
			active++
		}
	}
	if n == 0 {
		return "none"
	}
	if backup > 0 {
		return fmt.Sprintf("%d of %d active, %d on its backup table", active, n, backup)
	}
	return fmt.Sprintf("%d of %d active", active, n)
}

func usedBy(refs []Ref) string {
	if len(refs) == 0 {
		return ""
	}
	var s []string
	for _, r := range refs {
		s = append(s, string(r.Type)+" "+r.Name)
	}
	return ", used by " + strings.Join(s, ", ")
}

func lastCheck(h HostDown) string {
	c := h.Checks
	if c == nil {
		if h.State == StateDisabled {
			return "disabled: not checked"
		}
		return "no check completed yet"
	}
	s := fmt.Sprintf("%d/%d checks up", c.Up, c.Total)
	if c.Retries > 0 {
		s += fmt.Sprintf(", %s", retriesLeft(c.Retries))
	}
	if c.Error != "" {
		s = c.Error + " (" + s + ")"
	}
	return s
}

// retriesLeft reads relayctl's "N retries": the failed checks relayd
// still allows before it calls the host down, reset to the table's retry
// value after every good check (hce.c), so not failures.
func retriesLeft(n uint64) string {
	if n == 1 {
		return "1 retry left"
	}
	return fmt.Sprintf("%d retries left", n)
}

func availText(a *float64) string {
	if a == nil {
		return "-"
	}
	return strconv.FormatFloat(*a, 'f', 2, 64) + "%"
}

// unknownNotes reports lines a parser did not understand: a view that
// quietly shows less than relayctl printed is worse than one that says so.
func unknownNotes(what string, lines []Line) []string {
	if len(lines) == 0 {
		return nil
	}
	out := []string{fmt.Sprintf("%s: %s not understood:", what, hostcmd.Plural(len(lines), "line"))}
	for i, l := range lines {
		if i == 10 {
			out = append(out, fmt.Sprintf("  (%d more)", len(lines)-10))
			break
		}
		out = append(out, fmt.Sprintf("  line %d: %q (%s)", l.N, strings.TrimRight(l.Text, " \t\r"), l.Reason))
	}
	return out
}

// align pads the columns of rows for a monospace block.
func align(rows [][]string) []string {
	var widths []int
	for _, row := range rows {
		for i, c := range row {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	out := make([]string, len(rows))
	for j, row := range rows {
		var b strings.Builder
		for i, c := range row {
			b.WriteString(c)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2))
			}
		}
		out[j] = b.String()
	}
	return out
}

func limit(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(s[:n:n], fmt.Sprintf("(%d more)", len(s)-n))
}

// --- show ------------------------------------------------------------------

func showReply(r request, outs []viewed) bot.Reply {
	var t *bot.Table
	var errs, notes []string
	count := 0
	for _, v := range outs {
		prefix := ""
		if r.Group {
			prefix = v.Host.Name + ": "
		}
		if v.Err != nil {
			errs = append(errs, hostcmd.ErrText(v.Err))
			continue
		}
		vt, n := viewTable(v)
		count += n
		if r.Group {
			vt.Header = append([]string{"host"}, vt.Header...)
			for i := range vt.Rows {
				vt.Rows[i] = append([]string{v.Host.Name}, vt.Rows[i]...)
			}
		}
		if t == nil {
			t = vt
		} else {
			t.Rows = append(t.Rows, vt.Rows...)
		}
		for _, n := range unknownNotes("show "+v.View, v.Unknown) {
			notes = append(notes, prefix+n)
		}
		for _, n := range v.Notes {
			notes = append(notes, prefix+n)
		}
	}
	where := r.Target
	if !r.Group {
		where = outs[0].Host.Label()
	}
	if !r.Group && len(errs) == 1 {
		return bot.Reply{Status: bot.StatusNegative, Title: errs[0]}
	}
	rep := bot.Reply{Status: bot.StatusInfo, Table: t,
		Title: fmt.Sprintf("relayd on %s: show %s, %s", where, r.view, viewCount(r.view, count))}
	if r.view == "sessions" && count == 0 && len(errs) == 0 {
		rep.Table = nil
		rep.Title = fmt.Sprintf("relayd on %s: no relay sessions", where)
	}
	if len(errs) > 0 {
		rep.Status = bot.StatusNegative
		notes = append(errs, notes...)
	}
	rep.Text = strings.Join(notes, "\n")
	return rep
}

func viewCount(view string, n int) string {
	switch view {
	case "sessions":
		return hostcmd.Plural(n, "session")
	case "redirects":
		return hostcmd.Plural(n, "redirect")
	case "relays":
		return hostcmd.Plural(n, "relay")
	}
	return hostcmd.Plural(n, "row")
}

// viewTable lays out one host's view and counts its objects.
func viewTable(v viewed) (*bot.Table, int) {
	switch v.View {
	case "sessions":
		t := &bot.Table{Header: []string{"relay", "pid", "session", "client", "server", "state", "age", "idle"}}
		for _, s := range v.Sessions {
			server := "(not connected)"
			if s.ServerAddr.IsValid() {
				server = joinHostPort(s.ServerAddr.String(), s.ServerPort)
			}
			state := "running"
			if s.Done {
				state = "done"
			}
			pid := "-"
			if s.PID > 0 {
				pid = strconv.FormatUint(uint64(s.PID), 10)
			}
			t.Rows = append(t.Rows, []string{strconv.FormatUint(uint64(s.Relay), 10), pid,
				fmt.Sprintf("%d:%d", s.PeerID, s.ID), joinHostPort(s.ClientAddr.String(), s.ClientPort), server, state,
				clock(s.Age), clock(s.Idle)})
		}
		return t, len(v.Sessions)
	case "redirects", "relays":
		t := &bot.Table{Header: []string{"id", "name", "status", "sessions", "last (interval/hour/day)", "average (interval/hour/day)"}}
		rows := 0
		add := func(row Row, st *Stats) {
			rows++
			r := []string{strconv.FormatUint(uint64(row.ID), 10), row.Name, row.Status, "-", "-", "-"}
			if st != nil {
				r[3] = strconv.FormatUint(st.Total, 10)
				r[4], r[5] = rate(st.Last), rate(st.Average)
			}
			t.Rows = append(t.Rows, r)
		}
		for _, r := range v.Summary.Redirects {
			add(r.Row, r.Stats)
		}
		for _, r := range v.Summary.Relays {
			add(r.Row, r.Stats)
		}
		return t, rows
	}
	// summary and hosts: relayctl's columns, the tree shown by indenting
	// names; show hosts adds each host's checks.
	hosts := v.View == "hosts"
	t := &bot.Table{Header: []string{"id", "type", "name", "avlblty", "status"}}
	if hosts {
		t.Header = append(t.Header, "checks")
	}
	rows := 0
	add := func(depth int, row Row, avail *float64, c *Checks) {
		rows++
		r := []string{strconv.FormatUint(uint64(row.ID), 10), string(row.Type), strings.Repeat("  ", depth) + row.Name, availOrBlank(avail), row.Status}
		if hosts {
			r = append(r, checksText(c))
		}
		t.Rows = append(t.Rows, r)
	}
	tables := func(depth int, ts []Table) {
		for _, tb := range ts {
			add(depth, tb.Row, nil, nil)
			for _, h := range tb.Hosts {
				name := h.Row
				if h.ParentID > 0 {
					name.Name = fmt.Sprintf("%s parent %d", h.Name, h.ParentID)
				}
				add(depth+1, name, h.Availability, h.Checks)
			}
		}
	}
	for _, r := range v.Summary.Redirects {
		add(0, r.Row, nil, nil)
		tables(1, r.Tables)
	}
	for _, r := range v.Summary.Relays {
		add(0, r.Row, nil, nil)
		tables(1, r.Tables)
	}
	for _, r := range v.Summary.Routers {
		add(0, r.Row, nil, nil)
		tables(1, r.Tables)
	}
	tables(0, v.Summary.Tables)
	return t, rows
}

func availOrBlank(a *float64) string {
	if a == nil {
		return ""
	}
	return availText(a)
}

func checksText(c *Checks) string {
	if c == nil {
		return ""
	}
	s := fmt.Sprintf("%d/%d", c.Up, c.Total)
	if c.Retries > 0 {
		s += ", " + retriesLeft(c.Retries)
	}
	if c.Error != "" {
		s += ", error: " + c.Error
	}
	return s
}

func rate(r Rate) string {
	return fmt.Sprintf("%d/%ds %d/h %d/d", r.Sessions, int64(r.Interval/time.Second), r.Hour, r.Day)
}

func joinHostPort(addr string, port uint16) string {
	if strings.Contains(addr, ":") {
		return fmt.Sprintf("[%s]:%d", addr, port)
	}
	return fmt.Sprintf("%s:%d", addr, port)
}

// clock prints a duration the way relayctl does: H:MM:SS.
func clock(d time.Duration) string {
	s := int64(d / time.Second)
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}

// --- poll and check ----------------------------------------------------

func pollReply(r request, polls []polled) bot.Reply {
	if !r.Group {
		p := polls[0]
		if p.Err != nil {
			return bot.Reply{Status: bot.StatusFailed, Title: hostcmd.ErrText(p.Err)}
		}
		return bot.Reply{Status: bot.StatusOK, Title: fmt.Sprintf("relayd on %s checks every host now", p.Host.Label()),
			Text: fmt.Sprintf("relayctl poll answered command succeeded. The results show in /relayd status %s once the checks complete.", p.Host.Name)}
	}
	var lines []string
	failed := 0
	for _, p := range polls {
		if p.Err != nil {
			failed++
			lines = append(lines, p.Host.Name+": "+hostcmd.ErrText(p.Err))
			continue
		}
		lines = append(lines, p.Host.Name+": command succeeded")
	}
	if failed > 0 {
		return bot.Reply{Status: bot.StatusFailed, Title: fmt.Sprintf("relayctl poll on %s failed on %d of %d hosts", r.Target, failed, len(polls)), Lines: lines}
	}
	return bot.Reply{Status: bot.StatusOK, Title: fmt.Sprintf("relayd on %s checks every host now (%d hosts)", r.Target, len(polls)), Lines: lines}
}

func checkReply(r request, checks []checked) bot.Reply {
	var lines, notes []string
	failed, broken := 0, 0
	for _, c := range checks {
		prefix := ""
		if r.Group {
			prefix = c.Host.Name + ": "
		}
		for _, n := range c.Conf.Notes {
			notes = append(notes, prefix+n)
		}
		if c.Conf.Path != "" {
			lines = append(lines, prefix+"file: "+c.Conf.shown())
		}
		switch {
		case c.Err != nil:
			failed++
			lines = append(lines, prefix+hostcmd.ErrText(c.Err))
		case c.Result.OK:
			lines = append(lines, prefix+"configuration OK")
			for _, m := range c.Result.Messages {
				lines = append(lines, prefix+strings.TrimSpace(m.Text))
			}
		default:
			broken++
			lines = append(lines, configErrors(prefix, c.Result)...)
		}
	}
	name := r.Target
	if !r.Group {
		name = checks[0].Host.Label()
	}
	var rep bot.Reply
	switch {
	case failed > 0 && !r.Group:
		rep = bot.Reply{Status: bot.StatusFailed, Title: "relayd -n could not test the configuration on " + name, Text: strings.Join(lines, "\n")}
	case failed > 0:
		rep = bot.Reply{Status: bot.StatusFailed, Title: fmt.Sprintf("relayd -n on %s: could not test %d of %d hosts", name, failed, len(checks)), Lines: lines}
	case broken > 0 && !r.Group:
		res := checks[0].Result
		rep = bot.Reply{Status: bot.StatusNegative, Title: fmt.Sprintf("relayd -n on %s: the configuration does not load (%s)", name, hostcmd.Plural(len(res.Errors), "error")),
			Lines: lines, Text: "The running relayd is not affected: it keeps its configuration until a reload or restart, and both refuse this one."}
	case broken > 0:
		rep = bot.Reply{Status: bot.StatusNegative, Title: fmt.Sprintf("relayd -n on %s: the configuration does not load on %d of %d hosts", name, broken, len(checks)), Lines: lines}
	default:
		rep = bot.Reply{Status: bot.StatusOK, Title: "relayd -n on " + name + ": configuration OK", Lines: lines}
	}
	if len(notes) > 0 {
		rep.Text = strings.TrimPrefix(rep.Text+"\n"+strings.Join(notes, "\n"), "\n")
	}
	return rep
}

// configErrors writes each error as FILE:LINE: message, the way editors
// want it, then the messages relayd printed without a position.
func configErrors(prefix string, res CheckResult) []string {
	var out []string
	for _, e := range res.Errors {
		out = append(out, prefix+e.String())
	}
	for _, m := range res.Messages {
		out = append(out, prefix+strings.TrimSpace(m.Text))
	}
	if len(out) == 0 {
		out = append(out, prefix+"relayd -n failed without a message")
	}
	return out
}

// --- enable / disable ------------------------------------------------------

var pastTense = map[string]string{"enable": "Enabled", "disable": "Disabled"}

func matchText(m match) string {
	switch m.Type {
	case TypeHost:
		child := ""
		if m.ParentID > 0 {
			child = fmt.Sprintf(", child of host id %d", m.ParentID)
		}
		return fmt.Sprintf("host %s (id %d) in %s (id %d)%s%s", m.Name, m.ID, m.Table.Name, m.Table.ID, usedBy(m.Users), child)
	case TypeTable:
		return fmt.Sprintf("table %s (id %d)%s", m.Name, m.ID, usedBy(m.Users))
	}
	return fmt.Sprintf("%s %s (id %d)", m.Type, m.Name, m.ID)
}

// toggleImpact is the approval prompt of an enable or disable: what it
// changes, read from show summary on each host.
func toggleImpact(r request, found []lookup) string {
	o := r.obj
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s on %s: %s", strings.ToUpper(r.action[:1])+r.action[1:], o, r.Target, toggleEffect(o.Type, r.action))
	switch {
	case o.Type == TypeHost && !o.ByID:
		b.WriteString("\nBy name, relayd takes the first host of that name in its table order, then every other host of that name in every table, except hosts with a parent; each host changed takes its children along.")
	case o.Type == TypeHost:
		b.WriteString("\nA host changed takes its children (hosts with it as parent) along.")
	case o.Type == TypeTable && !o.ByID:
		b.WriteString("\nBy name, relayd changes only the first table of that name in its list; use the id to choose.")
	}
	for _, l := range found {
		b.WriteString("\nOn " + l.Host.Name + " ")
		if l.Err != nil {
			b.WriteString("what it changes is unknown: " + hostcmd.ErrText(l.Err))
			continue
		}
		if len(l.Matches) == 0 {
			b.WriteString("show summary lists no " + o.String() + ": relayd will answer command failed")
			if len(l.Near) > 0 {
				b.WriteString(" (did you mean " + strings.Join(l.Near, ", ") + "?)")
			}
			continue
		}
		fmt.Fprintf(&b, "it changes %s:", hostcmd.Plural(len(l.Matches), string(o.Type)))
		for _, m := range l.Matches {
			b.WriteString("\n- " + matchText(m) + ", now " + m.Status)
		}
		if len(l.Others) > 0 {
			var others []string
			for _, m := range l.Others {
				others = append(others, fmt.Sprintf("id %d", m.ID))
			}
			what := "the other tables of that name"
			if o.Type == TypeHost {
				what = "the hosts of that name with a parent"
			}
			fmt.Fprintf(&b, "\nNot changed: %s (%s).", what, strings.Join(others, ", "))
		}
	}
	return b.String()
}

func toggleEffect(t Type, action string) string {
	switch t {
	case TypeHost:
		if action == "disable" {
			return "relayd stops checking it and sends it no new connections."
		}
		return "relayd checks it again and uses it once a check finds it up."
	case TypeTable:
		if action == "disable" {
			return "relayd stops checking its hosts and stops using it."
		}
		return "relayd checks its hosts again and uses the ones found up."
	}
	if action == "disable" {
		return "relayd removes its pf rules: new connections to it are no longer forwarded."
	}
	return "relayd puts its pf rules back and checks its tables again."
}

func toggleReply(t toggled) bot.Reply {
	name := t.Host.Label()
	if t.Err != nil {
		rep := bot.Reply{Status: bot.StatusFailed, Title: hostcmd.ErrText(t.Err)}
		if condition(t.Err) == CommandFailed && t.Before.Err == nil && len(t.Before.Matches) == 0 {
			rep.Text = "show summary lists no " + t.Obj.String() + "."
			if len(t.Before.Near) > 0 {
				rep.Text += " Did you mean " + strings.Join(t.Before.Near, ", ") + "? relayd names tables with their port."
			}
		}
		return rep
	}
	rep := bot.Reply{Status: bot.StatusOK, Title: fmt.Sprintf("%s %s on %s", pastTense[t.Action], t.Obj, name)}
	after := map[Ref]match{}
	for _, m := range t.After.Matches {
		after[m.Ref] = m
	}
	already := len(t.Before.Matches) > 0
	want := StateDisabled
	for _, m := range t.Before.Matches {
		now := "?"
		if a, ok := after[m.Ref]; ok {
			now = a.Status
		}
		rep.Lines = append(rep.Lines, fmt.Sprintf("%s: %s -> %s", matchText(m), m.Status, now))
		if (t.Action == "disable") != (m.State == want) {
			already = false
		}
	}
	var text []string
	if n := len(t.Before.Matches); n > 1 {
		rep.Title += ": " + hostcmd.Plural(n, string(t.Obj.Type))
	}
	if t.Obj.Type == TypeHost && !t.Obj.ByID && len(t.Before.Matches) > 1 {
		text = append(text, "By name, relayd changed every host of that name without a parent, and their children.")
	}
	if len(t.Before.Others) > 0 && t.Obj.Type == TypeHost {
		text = append(text, fmt.Sprintf("%s of that name with a parent not changed by name.", hostcmd.Plural(len(t.Before.Others), "host")))
	} else if len(t.Before.Others) > 0 {
		text = append(text, fmt.Sprintf("By name, relayd changed only the first table of that name; %s of that name not changed.", hostcmd.Plural(len(t.Before.Others), "other table")))
	}
	if already {
		text = append(text, fmt.Sprintf("It was %sd already: relayd answers command succeeded all the same.", t.Action))
	}
	if t.Action == "enable" && t.Obj.Type != TypeRedirect {
		text = append(text, fmt.Sprintf("Enabled hosts read unknown until their next check: /relayd poll %s checks now.", t.Host.Name))
	}
	if t.Before.Err != nil {
		text = append(text, "State before unknown: "+hostcmd.ErrText(t.Before.Err))
	}
	if t.After.Err != nil {
		text = append(text, "State after unknown: "+hostcmd.ErrText(t.After.Err))
	}
	rep.Text = strings.Join(text, "\n")
	rep.Fields = []bot.Field{{Name: "took", Value: bot.Human(t.Took)}}
	return rep
}

// --- reload -------------------------------------------------------------------

func reloadImpact(r request, wait time.Duration) string {
	return fmt.Sprintf("Reload relayd on %s, after relayd -n on the file relayd runs with (refused if it fails). A reload flushes relayd's state: hosts read unknown until checked again and their availability starts over. Service is interrupted briefly, and a reload can stop relayd: reload has crashed relayd with TLS relays, and a health check that reports a host of the old configuration during the reload is fatal to relayd (pfe: invalid host id, desynchronized). /relayd restart (the CARP failover runbook) is the safer way on a CARP pair. Afterwards the bot checks for up to %s that relayd answers, that every host started again, that what the file declares runs, and that the hosts are up.",
		r.Target, wait)
}

// reloadWhy is what a reload that did not take effect may come from:
// what relayd itself does and says only at debug level.
const reloadWhy = "relayd drops a reload that arrives while another one is still being applied (relayd.c parent_reload, logged at debug level only): if someone else reloaded at the same moment, run /relayd reload again once /relayd status shows the hosts checked. " +
	"A host someone disabled and enabled restarts its own counters; that is not taken for a reload."

func reloadReply(rl reloaded) bot.Reply {
	name := rl.Host.Label()
	if rl.Refused != "" {
		rep := bot.Reply{Status: bot.StatusFailed, Title: fmt.Sprintf("reload refused on %s: %s", name, rl.Refused),
			Text: "Nothing was done: relayd was not reloaded."}
		switch {
		case rl.CheckErr != nil:
			rep.Lines = []string{hostcmd.ErrText(rl.CheckErr)}
		case !rl.Check.OK:
			rep.Lines = configErrors("", rl.Check)
		}
		if rl.Conf.Path != "" {
			rep.Fields = []bot.Field{{Name: "file", Value: rl.Conf.shown()}}
			rep.Text = strings.Join(append([]string{rep.Text}, rl.Conf.Notes...), "\n")
		}
		return rep
	}
	var fields []bot.Field
	fields = append(fields, bot.Field{Name: "config", Value: "relayd -n: configuration OK, " + rl.Conf.shown()})
	if rl.ReloadErr == nil && rl.Wait.Read {
		took := "no: hosts kept their check counters"
		switch {
		case rl.BySessions:
			took = fmt.Sprintf("yes: no host had been checked before, and the relays' session counts started again (%d before, %d after)", rl.SessionsBefore, rl.SessionsAfter)
		case rl.Wait.Restarted:
			took = "yes: every host started again (check counters from zero)"
		case !rl.Wait.CanTell:
			took = "cannot tell: no host had been checked before"
		}
		fields = append(fields, bot.Field{Name: "reload took effect", Value: took})
	}
	if rl.AfterErr == nil && rl.Wait.Read {
		fields = append(fields, bot.Field{Name: "redirects and relays", Value: objectsChange(rl.Before, rl.Diff)})
		switch {
		case rl.ConfErr != nil:
			fields = append(fields, bot.Field{Name: "declared objects", Value: "not compared: " + hostcmd.ErrText(rl.ConfErr)})
		case rl.notReloaded():
		case len(rl.NotRunning) > 0:
			fields = append(fields, bot.Field{Name: "declared objects", Value: fmt.Sprintf("%d of %d running", len(rl.Declared.Objects)-len(rl.NotRunning), len(rl.Declared.Objects))})
		default:
			fields = append(fields, bot.Field{Name: "declared objects", Value: fmt.Sprintf("all %d running (%s)", len(rl.Declared.Objects), strings.Join(rl.Declared.Files, ", "))})
		}
		up, total := hostsUp(rl.Wait.Final)
		fields = append(fields, bot.Field{Name: "hosts", Value: fmt.Sprintf("%d of %d up after %s", up, total, bot.Human(rl.Wait.Took))})
	}
	fields = append(fields, bot.Field{Name: "took", Value: bot.Human(rl.Took)})

	var lines []string
	for _, c := range rl.Diff.Changed {
		lines = append(lines, fmt.Sprintf("%s %s: %s -> %s", c.Type, c.Name, c.Before, c.After))
	}
	for _, h := range stillDown(rl.BeforeHosts, rl.Wait.Final) {
		when := fmt.Sprintf("%s before the reload and after", h.State)
		if h.Was != h.State {
			when = fmt.Sprintf("%s before the reload, %s after", h.Was, h.State)
		}
		lines = append(lines, fmt.Sprintf("host %s in %s (id %d): %s", h.Host.Name, h.Table.Name, h.Table.ID, when))
	}
	var notes []string
	notes = append(notes, rl.Conf.Notes...)
	for _, m := range rl.Declared.Missed {
		notes = append(notes, "Not read, so not compared: "+m)
	}
	if rl.ok() {
		rep := bot.Reply{Status: bot.StatusOK, Fields: fields, Lines: lines,
			Title: fmt.Sprintf("Reloaded relayd on %s: verified, %s", name, upText(rl.Wait.Final))}
		if len(rl.Diff.Added) > 0 || len(rl.Diff.Removed) > 0 {
			notes = append([]string{"The configuration changed what relayd runs, as the file says."}, notes...)
		}
		if rl.ConfErr != nil {
			notes = append(notes, "Whether relayd runs everything the file declares is unknown: the bot could not read it.")
		}
		rep.Text = strings.Join(notes, "\n")
		return rep
	}
	text := []string{"Problems:"}
	for _, p := range rl.Problems {
		text = append(text, "- "+p)
	}
	if rl.ReloadErr == nil {
		text = append(text, "relayctl reload itself printed nothing and exited 0: only the reads after it show the failure.")
	}
	if rl.notReloaded() {
		text = append(text, reloadWhy)
	}
	if len(rl.NotRunning) > 0 {
		text = append(text, fmt.Sprintf("relayd -n passed, but the reload loaded less: a failure while loading (a host name that did not resolve drops its table and what uses it) is logged at debug level only, and relayd runs what loaded. Recover with /relayd restart %s: the runbook checks the file again, fails the check where the load fails, or starts relayd with the whole configuration.", rl.Host.Name))
	}
	if rl.Wait.Died || rl.AfterErr != nil && notRunning(rl.AfterErr) {
		text = append(text, fmt.Sprintf("relayd is down on %s: start it with /relayd restart %s (config check, CARP demote, restart, wait for the hosts, undemote).", rl.Host.Name, rl.Host.Name))
	}
	text = append(text, notes...)
	return bot.Reply{Status: bot.StatusFailed, Fields: fields, Lines: lines, Text: strings.Join(text, "\n"),
		Title: fmt.Sprintf("reload of relayd on %s FAILED: %s", name, rl.Problems[0])}
}

// stillDown lists the hosts not up both before and after: not the
// reload's doing, but worth seeing.
func stillDown(before, after Summary) []pendingHost {
	was, _ := hostsByPath(before)
	now, order := hostsByPath(after)
	var out []pendingHost
	for _, k := range order {
		b, ok := was[k]
		h := now[k]
		if ok && b.Before != StateUp && h.Before != StateUp && h.Before != StateUnknown {
			out = append(out, pendingHost{Table: h.Table, Host: h.Host, State: h.Before, Was: b.Before})
		}
	}
	return out
}

func upText(s Summary) string {
	up, total := hostsUp(s)
	return fmt.Sprintf("%d of %d hosts up", up, total)
}

func objectsChange(before Summary, d Diff) string {
	if d.SameObjects() {
		var names []string
		for _, p := range before.parents() {
			names = append(names, string(p.Type)+" "+p.Name)
		}
		if len(names) == 0 {
			return "none, as before"
		}
		return "the same as before: " + strings.Join(names, ", ")
	}
	var parts []string
	for _, a := range d.Added {
		parts = append(parts, fmt.Sprintf("added %s %s", a.Type, a.Name))
	}
	for _, r := range d.Removed {
		parts = append(parts, fmt.Sprintf("removed %s %s", r.Type, r.Name))
	}
	return strings.Join(parts, ", ")
}

// --- restart ----------------------------------------------------------------

func restartImpact(r request, wait time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Restart relayd on %s with the failover runbook, one step at a time:", r.Target)
	for i, h := range r.Hosts {
		if r.Group {
			fmt.Fprintf(&b, "\n%d. %s:", i+1, h.Name)
		}
		s := settingsOf(h)
		io := hostcmd.IO{Host: h}
		fmt.Fprintf(&b, " %s; %s (the CARP peer takes over the addresses); %s; %s; wait up to %s for the hosts; %s.",
			io.Shown(s.checkArgv(confFile{})), io.Shown(s.demoteArgv()), io.Shown(s.restartArgv()), io.Shown(s.relayctlArgv("poll")), wait, io.Shown(s.undemoteArgv()))
	}
	b.WriteString("\nRelay sessions through the host are cut; connections the peer takes over survive only where pfsync carries their state. A failed step stops the runbook and says how to recover")
	if r.Group {
		b.WriteString("; hosts are restarted one after another, the next only once the first is back")
	}
	b.WriteString(".")
	return b.String()
}

// stepLine is one step of the runbook: ✓ done, ✗ failed, … running,
// · not run.
func stepLine(n int, s step) string {
	mark := map[stepState]string{stepWaiting: "·", stepRunning: "…", stepOK: "✓", stepFailed: "✗"}[s.State]
	line := fmt.Sprintf("%s %d. %s: %s", mark, n, s.Name, s.Command)
	switch s.State {
	case stepWaiting:
		return line + " — not run"
	case stepRunning:
		return line + " — running"
	}
	line += " — " + bot.Human(s.Took)
	if note := strings.TrimPrefix(s.Note, s.Command+" "); note != "" {
		line += ", " + note
	}
	return line
}

func runbookProgress(rb *runbook) bot.Reply {
	lines := make([]string, len(rb.Steps))
	current := ""
	n := 0
	for i, s := range rb.Steps {
		lines[i] = stepLine(i+1, s)
		if s.State == stepRunning {
			current, n = s.Name, i+1
		}
	}
	return bot.Reply{Status: bot.StatusRunning, Lines: lines,
		Title: fmt.Sprintf("restart of relayd on %s%s: step %d of %d, %s", rb.Host.Name, rb.Of, n, len(rb.Steps), current)}
}

func restartReply(rb *runbook) bot.Reply {
	name := rb.Host.Label()
	lines := make([]string, len(rb.Steps))
	for i, s := range rb.Steps {
		lines[i] = stepLine(i+1, s)
	}
	fields := []bot.Field{}
	if rb.Before != nil {
		fields = append(fields, bot.Field{Name: "before", Value: upText(*rb.Before)})
	} else if rb.BeforeE != nil {
		fields = append(fields, bot.Field{Name: "before", Value: hostcmd.ErrText(rb.BeforeE)})
	}
	if rb.Failed == -1 {
		fields = append(fields, bot.Field{Name: "after", Value: upText(rb.Wait.Final)}, bot.Field{Name: "took", Value: bot.Human(rb.Took)})
		rep := bot.Reply{Status: bot.StatusOK, Lines: lines, Fields: fields,
			Title: fmt.Sprintf("Restarted relayd on %s: %s, CARP undemoted", name, upText(rb.Wait.Final))}
		if down := stillDown(derefOr(rb.Before), rb.Wait.Final); len(down) > 0 {
			rep.Text = fmt.Sprintf("Down before the restart and still down: %s.", pendingList(down, 5))
		}
		if rb.BeforeE != nil && notRunning(rb.BeforeE) {
			rep.Text = "relayd was not running before; it is now."
		}
		return rep
	}
	failed := rb.Steps[rb.Failed]
	state := fmt.Sprintf("CARP group %s not demoted; relayd untouched", rb.Set.carpGroup)
	switch {
	case rb.Demoted:
		state = fmt.Sprintf("CARP group %s still demoted by %d on %s: the peer holds the addresses", rb.Set.carpGroup, rb.Set.demote, rb.Host.Name)
	case rb.Failed == stepDemote:
		state = fmt.Sprintf("CARP group %s most likely not demoted (ifconfig failed); relayd untouched", rb.Set.carpGroup)
	}
	fields = append(fields, bot.Field{Name: "left in", Value: state})
	if rb.After != "" {
		fields = append(fields, bot.Field{Name: "relayd", Value: rb.After})
	}
	fields = append(fields, bot.Field{Name: "took", Value: bot.Human(rb.Took)})
	if rb.Failed == stepCheck && (len(rb.Check.Errors) > 0 || len(rb.Check.Messages) > 0) {
		lines = append(lines, configErrors("  ", rb.Check)...)
	}
	text := []string{rb.Next}
	if len(rb.Recovery) > 0 {
		text = append(text, "To recover, on "+rb.Host.Name+":")
		for _, c := range rb.Recovery {
			text = append(text, "  "+c)
		}
	}
	return bot.Reply{Status: bot.StatusFailed, Lines: lines, Fields: fields, Text: strings.Join(text, "\n"),
		Title: fmt.Sprintf("restart of relayd on %s stopped at step %d of %d, %s: %s", name, rb.Failed+1, len(rb.Steps), failed.Name, failed.Note)}
}

func derefOr(s *Summary) Summary {
	if s == nil {
		return Summary{}
	}
	return *s
}

// --- groups --------------------------------------------------------------------

func groupChangeReply(r request, ro hostcmd.Roll[changed]) bot.Reply {
	var lines []string
	for _, d := range ro.Done {
		lines = append(lines, d.reply().Title)
	}
	for _, h := range ro.Untouched {
		lines = append(lines, h.Name+": not touched")
	}
	what := r.Sub
	if r.action != "" {
		what = fmt.Sprintf("%s %s", r.action, r.obj)
	}
	if ro.Complete() {
		return bot.Reply{Status: bot.StatusOK, Lines: lines,
			Title: fmt.Sprintf("%s of relayd on %s: done on all %d hosts", what, r.Target, len(ro.Done))}
	}
	rep := bot.Reply{Status: bot.StatusFailed, Lines: lines,
		Title: fmt.Sprintf("%s of relayd on %s stopped", what, r.Target)}
	var text []string
	if h, failed, ok := ro.Failed(); ok {
		rep.Title += " at " + h.Name
		frep := failed.reply()
		text = append(text, frep.Lines...)
		if frep.Text != "" {
			text = append(text, frep.Text)
		}
	} else {
		rep.Title += ": canceled"
	}
	text = append(text, "Changed: "+hostcmd.ListOrNone(ro.Changed())+".", "Not touched: "+hostcmd.ListOrNone(hostcmd.Names(ro.Untouched))+".")
	rep.Text = strings.Join(text, "\n")
	return rep
}
