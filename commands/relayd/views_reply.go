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

// The replies of status, show, poll and check. Like every *_reply.go
// file, they turn typed results into replies and do nothing else.

// groupStatusReply is the digest of a group, a row a host; one host's
// is hostStatusReply.
func groupStatusReply(r request, snaps []snapshot) bot.Reply {
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

func showReply(r request, outs []viewed) bot.Reply {
	var t *bot.Table
	var errs, notes []string
	count := 0
	for _, v := range outs {
		prefix := r.Prefix(v.Host)
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
		prefix := r.Prefix(c.Host)
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
