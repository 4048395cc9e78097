package relayd

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/hostcmd"
)

// reload: relayd -n, relayctl reload, and the reads that verify it.

// reloaded is one host's reload, from the config check to the verdict.
type reloaded struct {
	Host     bot.Host
	Conf     confFile // the file relayd runs with, which relayd -n checked
	Check    CheckResult
	CheckErr error
	Refused  string // why nothing was done; "" when relayctl reload ran

	Declared Conf  // what that file declares
	ConfErr  error // it could not be read: no comparison

	Before      Summary // show summary before
	BeforeHosts Summary // show hosts before
	// Relay statistics, read only when no host had been checked before:
	// a reload builds its relays anew, with their counts from zero.
	SessionsBefore, SessionsAfter uint64
	BySessions                    bool // the reload was told by them

	ReloadErr  error
	Wait       waited
	After      Summary
	AfterErr   error
	Diff       Diff
	NotRunning []Declared // declared in the file, not run after the reload
	Problems   []string
	Took       time.Duration
}

func (rl reloaded) ok() bool { return rl.Refused == "" && len(rl.Problems) == 0 }

func (rl reloaded) OK() bool { return rl.ok() }

func (rl reloaded) Acted() bool { return rl.Refused == "" }

func (rl reloaded) reply() bot.Reply { return reloadReply(rl) }

// notReloaded says the check counters kept counting: relayd still runs
// its old configuration.
func (rl reloaded) notReloaded() bool {
	return rl.ReloadErr == nil && rl.Wait.Read && rl.Wait.CanTell && !rl.Wait.Restarted
}

func (c *Command) reload(ctx context.Context, stream bot.Stream, r request, i int, h hostIO) (rl reloaded) {
	start := c.now()
	rl = reloaded{Host: h.Host}
	defer func() { rl.Took = c.now().Sub(start) }()
	progress := func(what string) {
		stream.Progress(bot.Reply{Status: bot.StatusRunning, Title: fmt.Sprintf("reload of relayd on %s%s: %s", h.Host.Name, hostOf(r, i), what)})
	}

	progress("relayd -n")
	rl.Conf = h.confFile(ctx)
	rl.Check, rl.CheckErr = h.check(ctx, rl.Conf)
	switch {
	case rl.CheckErr != nil:
		rl.Refused = "relayd -n could not test the configuration"
		return rl
	case !rl.Check.OK:
		rl.Refused = "relayd -n found errors: the running relayd keeps its configuration"
		return rl
	}
	rl.Declared, rl.ConfErr = h.readConf(ctx, rl.Conf)
	before, err := h.show(ctx, viewSummary)
	if err != nil {
		rl.Refused = hostcmd.ErrText(err)
		if notRunning(err) {
			rl.Refused += ": there is nothing to reload; /relayd restart " + h.Host.Name + " starts it"
		}
		return rl
	}
	rl.Before = before.Summary
	beforeHosts, err := h.show(ctx, viewHosts)
	if err != nil {
		rl.Refused = "cannot read the hosts to verify the reload by: " + hostcmd.ErrText(err)
		return rl
	}
	rl.BeforeHosts = beforeHosts.Summary

	if !anyChecked(rl.BeforeHosts) {
		if out, err := h.show(ctx, viewRelays); err == nil {
			rl.SessionsBefore = relaySessions(out.Summary)
		}
	}

	progress("relayctl reload")
	if _, _, rl.ReloadErr = h.relayctl(ctx, "reload"); rl.ReloadErr != nil {
		rl.Problems = append(rl.Problems, hostcmd.ErrText(rl.ReloadErr))
		return rl
	}
	progress(fmt.Sprintf("waiting up to %s for the hosts", c.cfg.Wait))
	rl.Wait = c.waitHosts(ctx, h, &rl.BeforeHosts, true)
	if rl.Wait.Read && !rl.Wait.CanTell && rl.SessionsBefore > 0 {
		if out, err := h.show(ctx, viewRelays); err == nil {
			rl.SessionsAfter = relaySessions(out.Summary)
			if rl.SessionsAfter < rl.SessionsBefore {
				rl.Wait.Restarted, rl.Wait.CanTell, rl.BySessions = true, true, true
			}
		}
	}
	switch {
	case rl.Wait.Died:
		rl.Problems = append(rl.Problems, "relayd died on reload: "+hostcmd.ErrText(rl.Wait.Err))
		return rl
	case !rl.Wait.Read:
		rl.Problems = append(rl.Problems, "relayd did not answer after the reload: "+hostcmd.ErrText(rl.Wait.Err))
		return rl
	case rl.notReloaded():
		rl.Problems = append(rl.Problems, fmt.Sprintf("relayd did not reload within %s: not every host's check counters started again, so it still runs its old configuration (relayctl reload says nothing either way; the reason is in relayd's syslog)", c.cfg.Wait))
	case len(rl.Wait.Pending) > 0:
		rl.Problems = append(rl.Problems, fmt.Sprintf("%d hosts not up %s after the reload: %s", len(rl.Wait.Pending), c.cfg.Wait, pendingList(rl.Wait.Pending, 5)))
	}
	after, err := h.show(ctx, viewSummary)
	if err != nil {
		rl.AfterErr = err
		rl.Problems = append(rl.Problems, "relayd after the reload: "+hostcmd.ErrText(err))
		return rl
	}
	rl.After = after.Summary
	rl.Diff = Compare(rl.Before, rl.After)
	if rl.ConfErr == nil && !rl.notReloaded() {
		rl.NotRunning = Dropped(rl.Declared, rl.After)
	}
	if n := len(rl.NotRunning); n > 0 {
		var names []string
		for _, d := range rl.NotRunning {
			names = append(names, d.String())
		}
		rl.Problems = append(rl.Problems, fmt.Sprintf("relayd runs only part of %s after the reload: %s declared there %s not running (%s)",
			rl.Conf.Path, hostcmd.Plural(n, "object"), map[bool]string{true: "is", false: "are"}[n == 1], strings.Join(names, ", ")))
	}
	if len(rl.Before.parents()) > 0 && len(rl.After.parents()) == 0 {
		rl.Problems = append(rl.Problems, "relayd runs with no redirect, relay or router after the reload")
	}
	return rl
}

func hostOf(r request, i int) string {
	if !r.Group {
		return ""
	}
	return fmt.Sprintf(" (host %d of %d in %s)", i+1, len(r.Hosts), r.Target)
}
