package mattermost

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/opsbot/opsbot/adapters/mattermost/mmapi"
	"github.com/opsbot/opsbot/bot"
)

// handleCommand serves a custom slash command: a form POST (or, for a
// command configured as GET, the query string) carrying the command's
// token in the Authorization header and the token field. Every answer
// with something to say is HTTP 200: Mattermost drops the text of any
// other status and shows the user a generic error.
func (a *Adapter) handleCommand(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	var f url.Values
	if r.Method == http.MethodGet {
		if len(r.URL.RawQuery) > maxBody {
			http.Error(w, "query too long", http.StatusRequestURITooLong)
			return
		}
		f = r.URL.Query()
	} else {
		if err := r.ParseForm(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		f = r.PostForm // never the query string of a POST
	}
	user, channel := f.Get("user_id"), f.Get("channel_id")
	if why := a.checkToken(r.Context(), r.Header.Get("Authorization"), f.Get("token")); why != "" {
		a.reject(r.Context(), r, user, channel, "", why)
		writeJSON(w, http.StatusOK, refusal("opsbot does not know this slash command's token, so nothing ran. "+
			"An admin runs opsbot mattermost register --team NAME, or adds it to OPSBOT_MATTERMOST_COMMAND_TOKENS (Integrations > Slash Commands shows it)."))
		return
	}
	command := strings.TrimSpace(f.Get("command"))
	if user == "" || channel == "" || !strings.HasPrefix(command, "/") {
		writeJSON(w, http.StatusOK, refusal("The request lacks user_id, channel_id or command; nothing ran."))
		return
	}
	root := f.Get("root_id") // typed in a thread: answers go there
	req := bot.Request{
		ID:       bot.NewID(),
		Platform: Platform,
		User:     user,
		UserName: f.Get("user_name"),
		Channel:  channel,
		// The channel's name (its handle, "town-square"), for roles
		// limited to channels by name.
		ChannelName: f.Get("channel_name"),
		Line:        strings.TrimSpace(command + " " + f.Get("text")),
		Time:        a.now(),
	}
	actionURL := a.actionURL(r)
	st := a.newStream(channel, req.ID, actionURL, root)
	req.Stream = st

	// The work outlives this HTTP request when it is slow.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), workTimeout)
	done := a.run(ctx, req)
	timer := time.NewTimer(a.fastReply)
	defer timer.Stop()
	select {
	case reply := <-done:
		defer cancel()
		if a.unknownCommand(command) {
			// A slash command we hold a token for but do not implement: the
			// server's setup is wrong. Say so to the user, with a 200 so
			// that they see it.
			writeJSON(w, http.StatusOK, a.inline(reply, req, actionURL, root))
			return
		}
		if st.finish(ctx, reply) {
			writeJSON(w, http.StatusOK, &mmapi.CommandResponse{ResponseType: mmapi.CommandResponseTypeEphemeral,
				Text: "Done: the result is in the bot's post.", SkipSlackParsing: true})
			return
		}
		writeJSON(w, http.StatusOK, a.inline(reply, req, actionURL, root))
	case <-timer.C:
		writeJSON(w, http.StatusOK, &mmapi.CommandResponse{
			ResponseType:     mmapi.CommandResponseTypeEphemeral,
			Text:             fmt.Sprintf("Working on `%s` (request %s)… the result will be posted here.", strings.ReplaceAll(neutralize(req.Line), "`", "'"), req.ID),
			SkipSlackParsing: true,
		})
		responseURL := f.Get("response_url")
		a.inflight.Go(func() {
			defer cancel()
			a.deliver(ctx, req, st, <-done, actionURL, responseURL, root)
		})
	}
}

// refusal is a command answer for the asker alone.
func refusal(text string) *mmapi.CommandResponse {
	return &mmapi.CommandResponse{ResponseType: mmapi.CommandResponseTypeEphemeral, Text: text, SkipSlackParsing: true}
}

// inline is the immediate answer to a command: its first page, always
// well under the 1 MiB Mattermost reads of a command response. The other
// pages of a result for the channel follow through the API, in the
// thread; those of an answer for the asker alone ride along as extra
// responses, as many as a reply may post.
func (a *Adapter) inline(reply bot.Reply, req bot.Request, actionURL, root string) *mmapi.CommandResponse {
	resp, pages, file := a.commandResponse(reply, req, actionURL)
	if len(pages) == 1 || resp.ResponseType == mmapi.CommandResponseTypeEphemeral {
		return resp
	}
	resp.ExtraResponses = nil
	a.inflight.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), workTimeout)
		defer cancel()
		if _, err := a.postRest(ctx, req.Channel, root, pages[1:], file); err != nil {
			a.log.Error("further pages of a reply", "req", req.ID, "err", err)
		}
	})
	return resp
}

// run hands the request to the Handler in its own goroutine.
func (a *Adapter) run(ctx context.Context, req bot.Request) <-chan bot.Reply {
	done := make(chan bot.Reply, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				a.log.Error("handler panicked", "req", req.ID, "panic", p)
				done <- bot.ErrorReply(fmt.Errorf("panic: %v", p), req.ID)
			}
		}()
		done <- a.handler.Handle(ctx, req)
	}()
	return done
}

// deliver posts a result that came after the command was acknowledged: into
// the progress post if there is one; else a bot post in the channel, or
// through response_url when the answer is for the asker only or the bot
// may not post there.
func (a *Adapter) deliver(ctx context.Context, req bot.Request, st *stream, reply bot.Reply, actionURL, responseURL, root string) {
	if st.finish(ctx, reply) {
		return
	}
	resp, pages, file := a.commandResponse(reply, req, actionURL)
	if resp.ResponseType == mmapi.CommandResponseTypeInChannel {
		_, err := a.postRest(ctx, req.Channel, root, pages, file)
		if err == nil {
			return
		}
		a.log.Warn("posting a late result; trying response_url", "req", req.ID, "err", err)
	}
	if err := a.respond(ctx, responseURL, resp); err != nil {
		a.log.Error("a late result could not be delivered", "req", req.ID, "err", err)
	}
}

// commandResponse is a reply as the answer to a slash command: in the
// channel for results and approval prompts, to the asker alone for help,
// usage errors and refusals.
func (a *Adapter) commandResponse(reply bot.Reply, req bot.Request, actionURL string) (*mmapi.CommandResponse, []page, *outFile) {
	typ := mmapi.CommandResponseTypeInChannel
	switch reply.Status {
	case bot.StatusInfo, bot.StatusUsage, bot.StatusDenied:
		typ = mmapi.CommandResponseTypeEphemeral
	}
	pages, file := capPages(render(reply, a.buttons(actionURL, req.Channel, req.ID)), reply, typ == mmapi.CommandResponseTypeInChannel)
	resp := &mmapi.CommandResponse{ResponseType: typ, Text: pages[0].Message, Attachments: pages[0].Attachments, SkipSlackParsing: true}
	for _, p := range pages[1:] {
		resp.ExtraResponses = append(resp.ExtraResponses, &mmapi.CommandResponse{
			ResponseType: typ, Text: p.Message, Attachments: p.Attachments, SkipSlackParsing: true})
	}
	return resp, pages, file
}

// unknownCommand reports a slash command the bot does not have, as the
// Router says (Knows); a handler that cannot say has its reply shown like
// any other (never guessed from the wording). The request still went
// through the handler, so it is audited.
func (a *Adapter) unknownCommand(command string) bool {
	if k, ok := a.handler.(interface{ Knows(string) bool }); ok {
		return !k.Knows(strings.ToLower(strings.TrimPrefix(command, "/")))
	}
	return false
}

// checkToken compares what the request presents (the Authorization header
// "Token X" and the token field; both, when both are sent) against every
// configured command token, then against those opsbot mattermost register
// keeps in the store. Digests make every comparison the same length,
// and the loop never stops early, so timing tells nothing about the tokens.
// It returns why the request is refused, or "".
func (a *Adapter) checkToken(ctx context.Context, header, field string) string {
	var presented []string
	if header != "" {
		scheme, tok, ok := strings.Cut(header, " ")
		if !ok || !strings.EqualFold(scheme, "Token") || strings.TrimSpace(tok) == "" {
			return "malformed Authorization header (want \"Token <slash command token>\")"
		}
		presented = append(presented, strings.TrimSpace(tok))
	}
	if field != "" {
		presented = append(presented, field)
	}
	if len(presented) == 0 {
		return "no slash command token in the request"
	}
	for _, t := range presented {
		d := sha256.Sum256([]byte(t))
		match := 0
		for i := range a.tokens {
			match |= subtle.ConstantTimeCompare(d[:], a.tokens[i][:])
		}
		if match != 1 {
			ok, err := a.stored.match(ctx, d, a.now())
			if err != nil {
				a.log.Error("reading the registered slash command tokens", "err", err)
				return "the registered slash command tokens could not be read: " + err.Error()
			}
			if !ok {
				return "slash command token matches none in OPSBOT_MATTERMOST_COMMAND_TOKENS or registered by opsbot mattermost register"
			}
		}
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if len(b) > maxInline {
		// Mattermost cuts a command response at 1 MiB and then shows
		// nothing: never send one near that.
		b, _ = json.Marshal(refusal("The answer is too long to show here; nothing was cut silently: run it again with fewer ports or hosts."))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
