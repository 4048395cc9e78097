package relayd

import (
	"fmt"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/hostcmd"
)

// The approval prompt and the reply of a reload.

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
