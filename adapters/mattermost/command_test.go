package mattermost

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/opsbot/opsbot/adapters/mattermost/mmapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
)

func portcheckReply() bot.Reply {
	return bot.Reply{Status: bot.StatusOK, Title: "127.0.0.1: 1 of 1 ports open",
		Lines: []string{"Connection to 127.0.0.1 8080 port [tcp/http-alt] succeeded! (0.2 ms)"}}
}

func TestCommand_ValidTokenAnswersInline(t *testing.T) {
	h := &fakeHandler{fn: func(context.Context, bot.Request) bot.Reply { return portcheckReply() }}
	f := newFixture(t, h)
	w, resp := f.postCommand(t, f.commandForm("/portcheck", "127.0.0.1 8080", "uCarol00000000000000000000", "carol"), testCmdToken)

	require.Equal(t, http.StatusOK, w.Code)
	require.NotNil(t, resp)
	assert.Equal(t, mmapi.CommandResponseTypeInChannel, resp.ResponseType)
	require.Len(t, resp.Attachments, 1)
	assert.Contains(t, resp.Attachments[0].Text, "succeeded!")
	assert.Equal(t, colourOK, resp.Attachments[0].Color)

	reqs := h.requests()
	require.Len(t, reqs, 1)
	assert.Regexp(t, regexp.MustCompile(`^[0-9a-f]{12}$`), reqs[0].ID)
	assert.Equal(t, "mattermost", reqs[0].Platform)
	assert.Equal(t, "uCarol00000000000000000000", reqs[0].User)
	assert.Equal(t, "carol", reqs[0].UserName)
	assert.Equal(t, testChannel, reqs[0].Channel)
	assert.Equal(t, "incident-42", reqs[0].ChannelName, "roles may name the channel")
	assert.Equal(t, "/portcheck 127.0.0.1 8080", reqs[0].Line)
	assert.Empty(t, f.srv.recorded(http.MethodPost, "/api/v4/posts"), "a fast answer is inline, not a bot post")
}

func TestCommand_EveryConfiguredTokenAndTheFieldAloneWork(t *testing.T) {
	h := &fakeHandler{fn: func(context.Context, bot.Request) bot.Reply { return portcheckReply() }}
	f := newFixture(t, h)
	form := f.commandForm("/opsbot", "whoami", "uCarol00000000000000000000", "carol")
	form.Set("token", testCmdToken2)
	w, _ := f.postCommand(t, form, testCmdToken2)
	assert.Equal(t, http.StatusOK, w.Code)
	w, _ = f.postCommand(t, form, "") // older servers: the field only
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Len(t, h.requests(), 2)
}

func TestCommand_BadTokenIs401AuditedAndRunsNothing(t *testing.T) {
	cases := map[string]struct {
		header, field string
		malformed     string
	}{
		"wrong token":                   {header: "nope", field: "nope"},
		"missing token":                 {},
		"header right, field wrong":     {header: testCmdToken, field: "nope"},
		"header wrong, field right":     {header: "nope", field: testCmdToken},
		"prefix of a token":             {header: testCmdToken[:10], field: testCmdToken[:10]},
		"bearer scheme is not accepted": {malformed: "Bearer " + testCmdToken, field: testCmdToken},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			h := &fakeHandler{fn: func(context.Context, bot.Request) bot.Reply { return portcheckReply() }}
			f := newFixture(t, h)
			form := f.commandForm("/portcheck", "127.0.0.1 80", "uCarol00000000000000000000", "carol")
			form.Set("token", c.field)
			if c.field == "" {
				form.Del("token")
			}
			r := httptest.NewRequest(http.MethodPost, "/mattermost/command", strings.NewReader(form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if c.header != "" {
				r.Header.Set("Authorization", "Token "+c.header)
			}
			if c.malformed != "" {
				r.Header.Set("Authorization", c.malformed)
			}
			w := httptest.NewRecorder()
			f.mux.ServeHTTP(w, r)

			// 200, so that the server shows the refusal instead of a
			// generic error.
			assert.Equal(t, http.StatusOK, w.Code)
			assert.Contains(t, w.Body.String(), "OPSBOT_MATTERMOST_COMMAND_TOKENS")
			assert.Empty(t, h.requests(), "nothing may run")
			recs := f.audit.records()
			require.Len(t, recs, 1)
			assert.Equal(t, bot.AuditRejected, recs[0].Kind)
			assert.Equal(t, "mattermost", recs[0].Platform)
			assert.Equal(t, "uCarol00000000000000000000", recs[0].User)
			assert.NotEmpty(t, recs[0].Message)
			for _, secret := range []string{testCmdToken, testCmdToken2, "nope"} {
				assert.NotContains(t, recs[0].Message, secret)
				assert.NotContains(t, w.Body.String(), secret)
			}
		})
	}
}

func TestCommand_BadInputRunsNothingAndSaysWhy(t *testing.T) {
	h := &fakeHandler{fn: func(context.Context, bot.Request) bot.Reply { return portcheckReply() }}
	f := newFixture(t, h)

	form := f.commandForm("/portcheck", strings.Repeat("9", 70<<10), "uCarol00000000000000000000", "carol")
	w, _ := f.postCommand(t, form, testCmdToken)
	assert.Equal(t, http.StatusRequestEntityTooLarge, w.Code, "oversized body")

	for _, field := range []string{"user_id", "channel_id", "command"} {
		form := f.commandForm("/portcheck", "127.0.0.1 80", "uCarol00000000000000000000", "carol")
		form.Del(field)
		_, resp := f.postCommand(t, form, testCmdToken)
		require.NotNil(t, resp, "missing %s: a 200 the server shows", field)
		assert.Contains(t, resp.Text, "nothing ran", "missing %s", field)
	}
	assert.Empty(t, h.requests())
}

func TestCommand_UnknownCommandIsSaidWithTheRoutersWords(t *testing.T) {
	router := bot.NewRouter(bot.RouterConfig{Commands: []bot.Command{&countingCommand{name: "portcheck"}}})
	f := newFixture(t, router)
	w, resp := f.postCommand(t, f.commandForm("/frobnicate", "now", "uCarol00000000000000000000", "carol"), testCmdToken)
	assert.Equal(t, http.StatusOK, w.Code, "any other status and the server drops the text")
	require.NotNil(t, resp)
	assert.Equal(t, mmapi.CommandResponseTypeEphemeral, resp.ResponseType)
	assert.Contains(t, resp.Attachments[0].Title, "unknown command")
}

func TestCommand_HelpAndDenialsAreEphemeral(t *testing.T) {
	for _, st := range []bot.Status{bot.StatusInfo, bot.StatusUsage, bot.StatusDenied} {
		h := &fakeHandler{fn: func(context.Context, bot.Request) bot.Reply { return bot.Reply{Status: st, Title: "x"} }}
		f := newFixture(t, h)
		_, resp := f.postCommand(t, f.commandForm("/opsbot", "help", "uCarol00000000000000000000", "carol"), testCmdToken)
		assert.Equal(t, mmapi.CommandResponseTypeEphemeral, resp.ResponseType, st.String())
	}
}

func TestCommand_SlowCommandIsAcknowledgedThenPosted(t *testing.T) {
	release := make(chan struct{})
	h := &fakeHandler{fn: func(context.Context, bot.Request) bot.Reply {
		<-release
		return portcheckReply()
	}}
	f := newFixture(t, h)
	f.a.fastReply = 20 * time.Millisecond

	w, resp := f.postCommand(t, f.commandForm("/portcheck", "127.0.0.1 8080", "uCarol00000000000000000000", "carol"), testCmdToken)
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, mmapi.CommandResponseTypeEphemeral, resp.ResponseType)
	assert.Contains(t, resp.Text, "Working on `/portcheck 127.0.0.1 8080`")
	close(release)

	posts := f.srv.waitFor(t, 1, http.MethodPost, "/api/v4/posts")
	p := posts[0].Post
	assert.Equal(t, testChannel, p.ChannelID)
	assert.Empty(t, p.RootID)
	require.Len(t, p.Attachments(), 1)
	assert.Contains(t, p.Attachments()[0].Text, "succeeded!")
	assert.Empty(t, f.srv.recorded(http.MethodPost, "/hooks/commands/"))
}

func TestCommand_SlowEphemeralResultGoesToResponseURL(t *testing.T) {
	h := &fakeHandler{fn: func(context.Context, bot.Request) bot.Reply {
		time.Sleep(100 * time.Millisecond)
		return bot.Reply{Status: bot.StatusDenied, Title: "permission denied"}
	}}
	f := newFixture(t, h)
	f.a.fastReply = 10 * time.Millisecond
	f.postCommand(t, f.commandForm("/scan", "10.0.0.1", "uCarol00000000000000000000", "carol"), testCmdToken)

	hooks := f.srv.waitFor(t, 1, http.MethodPost, "/hooks/commands/")
	var resp mmapi.CommandResponse
	require.NoError(t, json.Unmarshal(hooks[0].Body, &resp))
	assert.Equal(t, mmapi.CommandResponseTypeEphemeral, resp.ResponseType)
	assert.Equal(t, "permission denied", resp.Attachments[0].Title)
	assert.Empty(t, f.srv.recorded(http.MethodPost, "/api/v4/posts"), "a refusal is not posted in the channel")
}

func TestCommand_ProgressEditsOnePostAtABoundedRateWithCancel(t *testing.T) {
	const updates = 60
	h := &fakeHandler{fn: func(_ context.Context, req bot.Request) bot.Reply {
		for i := range updates {
			// Cancel is what the Router sets on a running request's progress.
			req.Stream.Progress(bot.Reply{Status: bot.StatusRunning, Title: "Scanning 10.0.0.1", Text: strings.Repeat(".", i), Cancel: req.ID})
			time.Sleep(5 * time.Millisecond)
		}
		return bot.Reply{Status: bot.StatusOK, Title: "10.0.0.1 tcp top100: 1 open"}
	}}
	f := newFixture(t, h)
	f.a.editEvery = 50 * time.Millisecond
	f.a.fastReply = 10 * time.Millisecond
	start := time.Now()
	_, resp := f.postCommand(t, f.commandForm("/scan", "10.0.0.1", "uCarol00000000000000000000", "carol"), testCmdToken)
	assert.Contains(t, resp.Text, "Working on")

	// The final result replaces the progress post: its last edit has no button.
	require.Eventually(t, func() bool {
		ups := f.srv.recorded(http.MethodPut, "/api/v4/posts/")
		return len(ups) > 0 && strings.Contains(ups[len(ups)-1].Post.Attachments()[0].Title, "1 open")
	}, 5*time.Second, 10*time.Millisecond)
	elapsed := time.Since(start)

	creates := f.srv.recorded(http.MethodPost, "/api/v4/posts")
	require.Len(t, creates, 1, "one progress post")
	progressID := "post0000000000000000000001"
	ups := f.srv.recorded(http.MethodPut, "/api/v4/posts/")
	maxEdits := int(elapsed/f.a.editEvery) + 2
	assert.LessOrEqual(t, len(ups), maxEdits, "edits bounded by the rate (%d in %s)", len(ups), elapsed)
	assert.Less(t, len(ups), updates, "not one edit per update")

	reqID := h.requests()[0].ID
	cancel := buttonNamed(t, creates[0].Post.Attachments(), "Cancel")
	assert.Regexp(t, alnum, cancel.ID)
	assert.Equal(t, "/opsbot cancel "+reqID, cancel.Integration.Context["line"])
	for _, u := range ups {
		assert.Equal(t, "/api/v4/posts/"+progressID, u.Path)
	}
	for _, u := range ups[:len(ups)-1] {
		assert.Equal(t, 1, countActions(u.Post.Attachments()), "progress keeps its Cancel button")
	}
	assert.Zero(t, countActions(ups[len(ups)-1].Post.Attachments()), "the result has no Cancel button")
}

func TestStream_PostRepliesInTheThread(t *testing.T) {
	h := &fakeHandler{fn: func(_ context.Context, req bot.Request) bot.Reply {
		req.Stream.Post(bot.Reply{Status: bot.StatusInfo, Title: "listening on 0.0.0.0:3873/tcp"})
		req.Stream.Post(bot.Reply{Status: bot.StatusInfo, Title: "connection from 10.0.0.5:50122, 12 bytes"})
		return bot.Reply{Status: bot.StatusOK, Title: "listener closed"}
	}}
	f := newFixture(t, h)
	f.postCommand(t, f.commandForm("/listen", "3873", "uCarol00000000000000000000", "carol"), testCmdToken)
	posts := f.srv.recorded(http.MethodPost, "/api/v4/posts")
	require.Len(t, posts, 2)
	assert.Empty(t, posts[0].Post.RootID)
	assert.Equal(t, posts[0].Post.ID, posts[1].Post.RootID)
}

// A reply that names its asker (bot.Reply.Mention: /portcheck ... until
// saw the state change) notifies them: @username in a new post's message,
// where Mattermost reads mentions. A person of another platform, or a name
// that is not a username, is never written as a mention.
func TestStream_MentionNotifiesTheAskerInTheThread(t *testing.T) {
	h := &fakeHandler{fn: func(_ context.Context, req bot.Request) bot.Reply {
		req.Stream.Post(bot.Reply{Status: bot.StatusOK, Title: "db01 5432/tcp is now open (was closed)", Mention: bot.MentionOf(req)})
		req.Stream.Post(bot.Reply{Status: bot.StatusInfo, Title: "elsewhere", Mention: &bot.Mention{Platform: "slack", User: "U0DAVE", UserName: "dave"}})
		req.Stream.Post(bot.Reply{Status: bot.StatusInfo, Title: "forged", Mention: &bot.Mention{Platform: Platform, User: "x", UserName: "dave @channel"}})
		return bot.Reply{Status: bot.StatusOK, Title: "db01 5432/tcp is open after 7s (4 checks)"}
	}}
	f := newFixture(t, h)
	f.postCommand(t, f.commandForm("/portcheck", "db01 5432 until open", "uCarol00000000000000000000", "carol"), testCmdToken)
	posts := f.srv.recorded(http.MethodPost, "/api/v4/posts")
	require.Len(t, posts, 3)
	assert.Equal(t, "@carol", posts[0].Post.Message)
	assert.Equal(t, []string{"carol"}, f.srv.mentioned(), "the asker, once")
	for _, p := range posts[1:] {
		assert.Empty(t, p.Post.Message)
		assert.Equal(t, posts[0].Post.ID, p.Post.RootID, "in the thread")
	}
}

func TestNew_SaysWhatIsMissing(t *testing.T) {
	_, err := New(Config{URL: "https://chat.example.com", Token: "t", Handler: &fakeHandler{}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "OPSBOT_MATTERMOST_COMMAND_TOKENS")
	assert.Contains(t, err.Error(), "OPSBOT_MATTERMOST_ACTION_SECRET")
	assert.Contains(t, err.Error(), "openssl rand -hex 32")

	_, err = New(Config{URL: "https://chat.example.com", Token: "t", Handler: &fakeHandler{}, CommandTokens: []string{" ", ""}, ActionSecret: testSecret})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "OPSBOT_MATTERMOST_COMMAND_TOKENS")
}

func TestReady_AsksTheServerAndCaches(t *testing.T) {
	f := newFixture(t, &fakeHandler{})
	require.NoError(t, f.a.Ready(context.Background()))
	require.NoError(t, f.a.Ready(context.Background()))
	assert.Len(t, f.srv.recorded(http.MethodGet, "/api/v4/users/me"), 1, "cached")

	bad, err := New(Config{URL: f.srv.URL, Token: "wrong", CommandTokens: []string{"x"}, ActionSecret: testSecret, Handler: &fakeHandler{}})
	require.NoError(t, err)
	assert.Error(t, bad.Ready(context.Background()))
}
