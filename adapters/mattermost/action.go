package mattermost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/opsbot/opsbot/adapters/mattermost/mmapi"
	"github.com/opsbot/opsbot/bot"
)

// handleAction serves a button click: JSON mmapi.PostActionIntegrationRequest
// with no signature of its own. The context's HMAC proves the button is
// ours and unaltered; the user is the one the server says clicked.
func (a *Adapter) handleAction(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	var in mmapi.PostActionIntegrationRequest
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "bad JSON", http.StatusBadRequest)
		return
	}
	if in.UserID == "" || in.ChannelID == "" {
		writeJSON(w, http.StatusOK, ephemeral("The click lacks user_id or channel_id; nothing ran."))
		return
	}
	act, err := verify(a.secret, in.Context, a.now())
	switch {
	case errors.Is(err, errExpired):
		// Signed by us, so the line is ours and safe to show and audit.
		a.reject(r.Context(), r, in.UserID, in.ChannelID, act.Line, "button expired at "+act.Expires.UTC().Format(time.RFC3339))
		writeJSON(w, http.StatusOK, ephemeral(fmt.Sprintf("This button expired at %s; nothing ran. To do it anyway, type `%s`.",
			act.Expires.UTC().Format("2006-01-02 15:04 MST"), act.Line)))
		return
	case err != nil:
		a.reject(r.Context(), r, in.UserID, in.ChannelID, "", err.Error())
		// 200, or Mattermost drops the text and shows a generic error.
		writeJSON(w, http.StatusOK, ephemeral("This button could not be verified (made before the action secret changed, or not by this bot); nothing ran. Type the command instead."))
		return
	case act.Channel != in.ChannelID:
		a.reject(r.Context(), r, in.UserID, in.ChannelID, act.Line, "button of channel "+act.Channel+" clicked in channel "+in.ChannelID)
		writeJSON(w, http.StatusOK, ephemeral("This button belongs to another channel; nothing ran."))
		return
	}

	who := a.user(r.Context(), in.UserID)
	req := bot.Request{
		ID:       bot.NewID(),
		Platform: Platform,
		User:     in.UserID,
		UserName: who.name, // from the server, not the callback's unsigned user_name
		Channel:  in.ChannelID,
		// As trusted as user_id: the server fills both; the signed
		// context binds the channel ID, checked above.
		ChannelName: in.ChannelName,
		Line:        act.Line,
		Time:        a.now(),
	}
	actionURL := a.actionURL(r)
	st := a.newStream(in.ChannelID, req.ID, actionURL, in.PostID)
	req.Stream = st
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), workTimeout)
	done := a.run(ctx, req)
	timer := time.NewTimer(a.clickWait)
	defer timer.Stop()
	select {
	case reply := <-done:
		defer cancel()
		st.finish(ctx, reply)
		writeJSON(w, http.StatusOK, a.clickResponse(reply, who, in.ChannelID))
	case <-timer.C:
		// The buttons stay until the result is in: a second click meanwhile
		// is refused by the store ("already running").
		writeJSON(w, http.StatusOK, ephemeral(fmt.Sprintf("Working on `%s` (request %s)… the result will be posted here.", act.Line, req.ID)))
		a.inflight.Go(func() {
			defer cancel()
			reply := <-done
			if st.finish(ctx, reply) {
				return
			}
			resp := a.clickResponse(reply, who, in.ChannelID)
			if resp.Update != nil {
				// Editing works when the bot owns the post; a slash command's
				// inline answer belongs to the asker, so reply in its thread.
				if err := a.updatePost(ctx, in.PostID, resp.Update); err == nil {
					return
				}
				reply = decided(reply, who)
			}
			if _, err := a.postReply(ctx, in.ChannelID, in.PostID, reply, a.buttons(actionURL, in.ChannelID, req.ID)); err != nil {
				a.log.Error("a late click result could not be delivered", "req", req.ID, "err", err)
			}
		})
	}
}

func ephemeral(text string) *mmapi.PostActionIntegrationResponse {
	return &mmapi.PostActionIntegrationResponse{EphemeralText: text, SkipSlackParsing: true}
}

// clickResponse answers a click. A reply that supersedes the prompt (an
// approval that ran, a deny, a requester's cancel: Reply.Supersedes)
// replaces the post: who decided, the result, no buttons. Anything else (a
// refusal, a vote that is not yet enough, a replay of a decided request, a
// cancel of a running command) goes to the clicker alone and leaves the
// post as it is, so that a late or refused click never hides the real
// decision.
func (a *Adapter) clickResponse(reply bot.Reply, who cachedUser, channel string) *mmapi.PostActionIntegrationResponse {
	if reply.Supersedes != "" {
		pages := render(decided(reply, who), buttons{})
		// An update is one post: a result longer than that shows its first
		// page, numbered "1 of N" by render, so it is never silently cut.
		return &mmapi.PostActionIntegrationResponse{Update: pages[0].post(channel, ""), SkipSlackParsing: true}
	}
	text := renderText(reply)
	switch reply.Status {
	case bot.StatusNegative, bot.StatusDenied, bot.StatusUsage, bot.StatusFailed:
		text += "\nNothing ran for this click."
	}
	return ephemeral(text)
}

// decidedBy is how a decided post names who ended it, by verdict.
var decidedBy = map[bot.Verdict]string{
	bot.VerdictApproved:  "approved by",
	bot.VerdictDenied:    "denied by",
	bot.VerdictCancelled: "cancelled by",
}

// decided is the reply as the decided post shows it: who decided, first
// (the clicker: the click is the decision), and how (Reply.Decides).
func decided(r bot.Reply, who cachedUser) bot.Reply {
	verb := "decided by"
	if r.Decides != nil && decidedBy[r.Decides.Verdict] != "" {
		verb = decidedBy[r.Decides.Verdict]
	}
	r.Fields = append([]bot.Field{{Name: verb, Value: who.display}}, r.Fields...)
	r.Actions, r.Cancel = nil, ""
	return r
}
