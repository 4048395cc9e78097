package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/opsbot/opsbot/bot"
)

// maxRun bounds a command started from Slack: its response_url is valid
// for 30 minutes.
const maxRun = 30 * time.Minute

// response is the body of a slash command's immediate answer (the HTTP
// response, or the Socket Mode ack payload).
type response struct {
	ResponseType string        `json:"response_type,omitempty"`
	Text         string        `json:"text"`
	Blocks       []slack.Block `json:"blocks,omitempty"`
}

var errBadCommand = errors.New("not a slash command")

// serveCommand is POST /slack/commands.
func (a *Adapter) serveCommand(w http.ResponseWriter, r *http.Request) {
	body, ok := a.verified(w, r)
	if !ok {
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "malformed form", http.StatusBadRequest)
		return
	}
	if form.Get("ssl_check") == "1" { // Slack checking the certificate of the command URL
		w.WriteHeader(http.StatusOK)
		return
	}
	cmd := slack.SlashCommand{
		TeamID: form.Get("team_id"), ChannelID: form.Get("channel_id"), ChannelName: form.Get("channel_name"),
		UserID: form.Get("user_id"), UserName: form.Get("user_name"), Command: form.Get("command"),
		Text: form.Get("text"), ResponseURL: form.Get("response_url"), TriggerID: form.Get("trigger_id"),
	}
	resp, err := a.command(context.WithoutCancel(r.Context()), cmd, body, 0)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if resp == nil { // a duplicate, or answered elsewhere
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// command starts a verified slash command and returns its immediate
// answer, within Slack's 3 seconds: the reply itself when the command is
// done in inlineWait, otherwise an ephemeral "working" ack, and the result
// follows through the progress message or response_url. nil means answer
// with an empty 200 (a duplicate delivery runs nothing). maxBytes > 0 caps
// the immediate answer's size (Socket Mode rejects 20 KB); a bigger reply
// goes through response_url.
func (a *Adapter) command(ctx context.Context, cmd slack.SlashCommand, raw []byte, maxBytes int) (*response, error) {
	name := strings.TrimPrefix(cmd.Command, "/")
	if !strings.HasPrefix(cmd.Command, "/") || name == "" || strings.ContainsAny(name, " \t\r\n/") ||
		cmd.UserID == "" || cmd.ChannelID == "" {
		return nil, errBadCommand
	}
	// A command the bot does not have is a misconfigured app: 400, not a
	// chat message (Slack shows the user that the command failed).
	if k, ok := a.handler.(interface{ Knows(string) bool }); ok && !k.Knows(strings.ToLower(name)) {
		return nil, fmt.Errorf("unknown command %s: the app lists a command this bot does not have", cmd.Command)
	}
	if !a.first(ctx, prefixed("trigger:", cmd.TriggerID), bodyKey("command", raw)) {
		a.log.Info("duplicate slash command ignored", "user", cmd.UserID, "command", cmd.Command)
		return nil, nil
	}
	line := "/" + name
	if t := strings.TrimSpace(cmd.Text); t != "" {
		line += " " + t
	}
	d := delivery{reqID: bot.NewID(), channel: cmd.ChannelID, user: cmd.UserID, responseURL: cmd.ResponseURL}
	a.hooks.issue(cmd.ResponseURL)
	st := a.newStream(ctx, d)
	type result struct {
		reply bot.Reply
		ts    string
	}
	done := make(chan result, 1)
	go func() {
		rctx, cancel := context.WithTimeout(ctx, maxRun)
		defer cancel()
		reply := a.handler.Handle(rctx, bot.Request{
			ID: d.reqID, Platform: "slack", User: cmd.UserID, UserName: cmd.UserName,
			Channel: cmd.ChannelID, ChannelName: cmd.ChannelName, Line: line, Time: a.now(), Stream: st,
		})
		done <- result{reply, st.close()}
	}()

	t := time.NewTimer(a.inlineWait)
	defer t.Stop()
	select {
	case res := <-done:
		if res.ts != "" { // the progress message becomes the result
			a.inflight.Go(func() { a.deliver(ctx, d, st, res.ts, res.reply, false) })
			return nil, nil
		}
		m := withDropped(render(res.reply), st.droppedPosts())
		resp := &response{ResponseType: m.ResponseType(), Text: m.Text, Blocks: m.Blocks}
		if maxBytes > 0 {
			if b, _ := json.Marshal(resp); len(b) >= maxBytes {
				a.inflight.Go(func() { a.deliver(ctx, d, st, "", res.reply, false) })
				return nil, nil
			}
		}
		if len(m.More) > 0 && !m.Ephemeral {
			// Follow-ups thread under the first message, whose timestamp
			// the HTTP answer would not give: post it instead.
			a.inflight.Go(func() { a.deliver(ctx, d, st, "", res.reply, false) })
			return nil, nil
		}
		if len(m.More) > 0 {
			a.inflight.Go(func() { a.sendMore(ctx, d, m, "") })
		}
		return resp, nil
	case <-t.C:
		a.inflight.Go(func() {
			res := <-done
			a.deliver(ctx, d, st, res.ts, res.reply, true)
		})
		return workingAck(line, cmd.ChannelName, d.reqID), nil
	}
}

// workingAck tells the asker, and only them, that the command runs.
func workingAck(line, channelName, reqID string) *response {
	where := ""
	if channelName != "" && channelName != "directmessage" && channelName != "privategroup" {
		where = " for #" + escape(channelName)
	}
	text := ":hourglass_flowing_sand: Working on `" + escape(line) + "`" + where + " (ref " + reqID + "). The result will be posted here."
	blocks := []slack.Block{mrkdwnSection(text)}
	blocks = append(blocks, actionBlocks([]bot.Action{bot.CancelAction(reqID)})...)
	return &response{ResponseType: slack.ResponseTypeEphemeral, Text: "Working on " + escape(line), Blocks: blocks}
}

// deliver sends a command's final reply: into its progress message when
// there is one, otherwise through response_url (replacing the ephemeral
// ack when the reply is ephemeral too), falling back to the Web API.
func (a *Adapter) deliver(ctx context.Context, d delivery, st *stream, ts string, reply bot.Reply, acked bool) {
	m := withDropped(render(reply), st.droppedPosts())
	if ts != "" {
		err := st.finish(ts, m)
		a.untrack(d.channel, ts)
		if err == nil {
			a.sendMore(ctx, d, m, ts)
			return
		}
		a.log.Warn("final edit of the progress message failed", "req", d.reqID, "err", err)
	}
	threadTS := ""
	if !m.Ephemeral && (len(m.More) > 0 || m.File != nil) {
		// Follow-ups thread under the first message: post it where its
		// timestamp comes back (response_url gives none).
		var err error
		if threadTS, err = a.postMessage(ctx, d.channel, "", m.Text, m.Blocks); err == nil {
			a.sendMore(ctx, d, m, threadTS)
			return
		}
		a.log.Warn("posting a long reply failed, trying response_url", "req", d.reqID, "err", err)
	}
	err := a.webhook(ctx, d.responseURL, webhookMessage(m.Text, m.Blocks, m.Ephemeral, acked && m.Ephemeral))
	if err != nil {
		a.log.Warn("response_url failed, posting instead", "req", d.reqID, "err", err)
		if m.Ephemeral {
			err = a.postEphemeral(ctx, d.channel, d.user, m.Text, m.Blocks)
		} else {
			threadTS, err = a.postMessage(ctx, d.channel, "", m.Text, m.Blocks)
		}
	}
	if err != nil {
		a.log.Error("reply lost", "req", d.reqID, "channel", d.channel, "status", reply.Status.String(), "err", err)
		return
	}
	a.sendMore(ctx, d, m, threadTS)
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}
