package relayd

import (
	"fmt"
	"strings"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/hostcmd"
)

// The approval prompt and the reply of an enable or disable.

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
