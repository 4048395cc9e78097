package relayd

import (
	"fmt"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/hostcmd"
)

// The approval prompt, the progress and the reply of a restart.

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
	case rb.LeftIn != "":
		state = rb.LeftIn
	}
	fields = append(fields, bot.Field{Name: "left in", Value: state})
	if rb.After != "" {
		fields = append(fields, bot.Field{Name: "relayd", Value: rb.After})
	}
	fields = append(fields, bot.Field{Name: "took", Value: bot.Human(rb.Took)})
	if !rb.Check.OK && (len(rb.Check.Errors) > 0 || len(rb.Check.Messages) > 0) {
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
