package slack

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/slack-go/slack"

	"github.com/opsbot/opsbot/bot"
)

// serveInteraction is POST /slack/interactions: button clicks. Slack wants
// a 200 within 3 seconds; the command runs after it.
func (a *Adapter) serveInteraction(w http.ResponseWriter, r *http.Request) {
	body, ok := a.verified(w, r)
	if !ok {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	cb, err := slack.InteractionCallbackParse(r)
	if err != nil {
		http.Error(w, "malformed interaction payload", http.StatusBadRequest)
		return
	}
	if err := a.interaction(context.WithoutCancel(r.Context()), cb, body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// interaction accepts a verified click and runs it in the background.
func (a *Adapter) interaction(ctx context.Context, cb slack.InteractionCallback, raw []byte) error {
	if cb.Type != slack.InteractionTypeBlockActions {
		return nil // nothing of ours: shortcuts, modals
	}
	if len(cb.ActionCallback.BlockActions) == 0 || cb.User.ID == "" {
		return errors.New("block_actions without an action or a user")
	}
	act := cb.ActionCallback.BlockActions[0]
	if !strings.HasPrefix(act.Value, "/") {
		return errors.New("button value is not a command line")
	}
	if !a.first(ctx, prefixed("trigger:", cb.TriggerID), bodyKey("click", raw)) {
		a.log.Info("duplicate click ignored", "user", cb.User.ID, "line", act.Value)
		return nil
	}
	a.hooks.issue(cb.ResponseURL)
	a.inflight.Go(func() { a.click(ctx, cb, *act) })
	return nil
}

// clickOn registers the message a click was on while its request runs,
// so that NotifyOutcome can thread its notice under the prompt the
// request decided (Reply.Decides names the request).
func (a *Adapter) clickOn(reqID, messageTS string) (done func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.clicks[reqID] = messageTS
	return func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		delete(a.clicks, reqID)
	}
}

// clickedMessage is the message the click of request reqID was on, "" when
// the request is not a running click.
func (a *Adapter) clickedMessage(reqID string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.clicks[reqID]
}

// click runs a button's command line as the clicking user. A click whose
// reply supersedes a prompt (Reply.Supersedes: it decided an approval)
// replaces the message it was on with who decided and the result, buttons
// gone; any other answer (a refusal, a partial approval, a Cancel) goes to
// the clicker alone and leaves the message be.
func (a *Adapter) click(ctx context.Context, cb slack.InteractionCallback, act slack.BlockAction) {
	channel := firstNonEmpty(cb.Channel.ID, cb.Container.ChannelID)
	msgTS := firstNonEmpty(cb.Container.MessageTs, cb.Message.Timestamp)
	name := firstNonEmpty(cb.User.Name, cb.User.Username, cb.User.ID)
	d := delivery{reqID: bot.NewID(), channel: channel, user: cb.User.ID, responseURL: cb.ResponseURL}
	st := a.newStream(ctx, d)
	unregister := a.clickOn(d.reqID, msgTS)
	rctx, cancel := context.WithTimeout(ctx, maxRun)
	defer cancel()
	reply := a.handler.Handle(rctx, bot.Request{
		ID: d.reqID, Platform: "slack", User: cb.User.ID, UserName: name,
		Channel: channel, ChannelName: cb.Channel.Name, Line: act.Value, Time: a.now(), Stream: st,
	})
	unregister()
	if ts := st.close(); ts != "" {
		if err := st.finish(ts, withDropped(render(reply), st.droppedPosts())); err != nil {
			a.log.Warn("final edit of the progress message failed", "req", d.reqID, "err", err)
		}
		a.untrack(channel, ts)
	}

	if reply.Supersedes == "" || a.tracked(channel, msgTS) {
		m := withDropped(render(reply), st.droppedPosts())
		m.Ephemeral = true
		a.answerClicker(ctx, d, m)
		return
	}
	m := withDropped(decidedPrompt(reply, cb.User.ID, name), st.droppedPosts())
	var err error
	if msgTS != "" && a.posted.has(channel+"/"+msgTS) {
		err = a.updateMessage(ctx, channel, msgTS, m.Text, m.Blocks)
	} else {
		err = a.webhook(ctx, d.responseURL, webhookMessage(m.Text, m.Blocks, false, true))
		// chat.update cannot change an ephemeral message (the /opsbot
		// approvals list): the clicker is answered on their own below.
		if err != nil && msgTS != "" && !cb.Container.IsEphemeral {
			err = a.updateMessage(ctx, channel, msgTS, m.Text, m.Blocks)
		}
	}
	if err != nil {
		a.log.Error("updating the decided message failed", "req", d.reqID, "channel", channel, "err", err)
		a.answerClicker(ctx, d, m)
		return
	}
	a.sendMore(ctx, d, m, msgTS)
}

// answerClicker shows a reply to the clicking user only.
func (a *Adapter) answerClicker(ctx context.Context, d delivery, m rendered) {
	err := a.webhook(ctx, d.responseURL, webhookMessage(m.Text, m.Blocks, true, false))
	if err != nil {
		err = a.postEphemeral(ctx, d.channel, d.user, m.Text, m.Blocks)
	}
	if err != nil {
		a.log.Error("answer to a click lost", "req", d.reqID, "err", err)
		return
	}
	a.sendMore(ctx, d, m, "")
}

// decidedPrompt renders the message that replaces an approval prompt once a
// click decided it: how it ended (Reply.Decides) and who clicked, then the
// result, with no prompt buttons left.
func decidedPrompt(reply bot.Reply, userID, userName string) rendered {
	m := render(reply)
	m.Ephemeral = false
	who := "<@" + escape(userID) + ">"
	if userName != "" && userName != userID {
		who += " (" + escape(userName) + ")"
	}
	verdict := "Decided"
	if reply.Decides != nil {
		verdict = verdictLabel[reply.Decides.Verdict]
	}
	note := contextBlock(":ballot_box_with_check: *" + verdict + "* by " + who)
	at := min(1, len(m.Blocks))
	m.Blocks = append(m.Blocks[:at], append([]slack.Block{note}, m.Blocks[at:]...)...)
	m.Text = verdict + " by " + escape(firstNonEmpty(userName, userID)) + ": " + m.Text
	return m
}

// verdictLabel is how a decided prompt says how it ended.
var verdictLabel = map[bot.Verdict]string{
	bot.VerdictApproved:  "Approved",
	bot.VerdictDenied:    "Denied",
	bot.VerdictCancelled: "Cancelled",
	bot.VerdictExpired:   "Expired",
}
