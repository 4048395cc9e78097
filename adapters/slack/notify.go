package slack

import (
	"context"

	"github.com/slack-go/slack"

	"github.com/opsbot/opsbot/bot"
)

// NotifyOutcome implements bot.Notifier: it tells the requester, in the
// request's channel, how their approval request ended. When a Slack
// request from that channel decided it (outcome.Decides says which), the
// full result already shows there (the prompt replaced in place, or the
// approver's own reply), so the mention is short, in the prompt's thread
// when a click decided; otherwise (another channel, another platform, the
// terminal, an expiry) the full outcome is posted.
func (a *Adapter) NotifyOutcome(ctx context.Context, ap bot.Approval, outcome bot.Reply) {
	if ap.Channel == "" {
		return
	}
	mention := "<@" + escape(ap.User) + ">"
	about := "your request `" + escape(ap.Line) + "`"
	if ap.ID != "" { // an action that needed no approval (one interrupted)
		about += " (approval " + escape(ap.ID) + ")"
	}
	ctx = context.WithoutCancel(ctx)
	if d := outcome.Decides; d != nil && d.Request != "" && d.Platform == "slack" && d.Channel == ap.Channel {
		text := mention + " " + about + ": " + statusEmoji[outcome.Status] + " " + escape(outcome.Title)
		if _, err := a.postMessage(ctx, ap.Channel, a.clickedMessage(d.Request), text, []slack.Block{mrkdwnSection(truncateRunes(text, maxSectionChars))}); err != nil {
			a.log.Warn("outcome notice failed", "approval", ap.ID, "channel", ap.Channel, "err", err)
		}
		return
	}
	m := render(outcome)
	head := contextBlock(truncateRunes(mention+" "+about+":", maxSectionChars))
	blocks := append([]slack.Block{head}, m.Blocks...)
	ts, err := a.postMessage(ctx, ap.Channel, "", mention+" "+m.Text, blocks)
	if err != nil {
		a.log.Warn("outcome notice failed", "approval", ap.ID, "channel", ap.Channel, "err", err)
		return
	}
	a.sendMore(ctx, delivery{reqID: ap.RequestID, channel: ap.Channel, user: ap.User}, m, ts)
}
