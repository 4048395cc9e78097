package relayd

import (
	"context"
	"fmt"
	"strings"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/hostcmd"
)

// A change (enable or disable, reload, restart) goes host by host, and
// the first failure stops it.

// changed is one host's enable or disable, reload or restart.
type changed interface {
	hostcmd.Result
	reply() bot.Reply
}

// change runs an action that changes relayd (enable/disable, reload,
// restart) host by host: a group is never changed all at once, and the
// first failure stops it, so that the peer of a CARP pair is never
// restarted while the first host is still down.
func (c *Command) change(ctx context.Context, req bot.Request, r request) bot.Reply {
	ro := hostcmd.Rollout[changed]{Batch: 1, Change: func(ctx context.Context, i int, h bot.Host) changed {
		switch r.Sub {
		case "reload":
			return c.reload(ctx, req.Stream, r, i, c.io(h))
		case "restart":
			return c.restart(ctx, req.Stream, r, i, c.io(h))
		}
		return c.toggle(ctx, r, c.io(h))
	}}
	done := ro.Run(ctx, r.Hosts)
	if !r.Group && len(done.Done) == 1 {
		return done.Done[0].reply()
	}
	return groupChangeReply(r, done)
}

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
