package mattermost

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/opsbot/opsbot/adapters/mattermost/mmapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
)

const approvalID = "0123456789ab"

// promptFixture answers the first command with an approval prompt, and
// every later request as fn says.
func promptFixture(t *testing.T, fn func(req bot.Request) bot.Reply) (*fixture, *fakeHandler, []*mmapi.MessageAttachment) {
	t.Helper()
	first := true
	h := &fakeHandler{}
	h.fn = func(_ context.Context, req bot.Request) bot.Reply {
		if first {
			first = false
			return renderCases()["approval"]
		}
		return fn(req)
	}
	f := newFixture(t, h)
	_, resp := f.postCommand(t, f.commandForm("/apache", "restart web01", "uCarol00000000000000000000", "carol"), testCmdToken)
	require.NotNil(t, resp)
	assert.Equal(t, mmapi.CommandResponseTypeInChannel, resp.ResponseType, "a prompt is for the channel")
	return f, h, resp.Attachments
}

// approvedReply is what the Router answers the approval that ran the
// action: the outcome says so in typed fields, whatever its wording.
func approvedReply(req bot.Request) bot.Reply {
	return bot.Reply{Status: bot.StatusOK, Title: "apache restart web01: done",
		Text:       "Approved by mattermost:" + req.User + "; requested by mattermost:uCarol00000000000000000000 (approval " + approvalID + ").",
		Decides:    &bot.Decided{Approval: approvalID, Verdict: bot.VerdictApproved, By: "mattermost:dave", Request: req.ID, Platform: req.Platform, Channel: req.Channel},
		Supersedes: approvalID}
}

func TestAction_ValidClickBySecondUserRunsApproveAndUpdatesThePost(t *testing.T) {
	f, h, atts := promptFixture(t, func(req bot.Request) bot.Reply {
		return approvedReply(req)
	})
	w, resp := f.click(t, buttonNamed(t, atts, "Approve"), "uDave000000000000000000000", "promptpost0000000000000000", nil)

	require.Equal(t, http.StatusOK, w.Code)
	reqs := h.requests()
	require.Len(t, reqs, 2)
	got := reqs[1]
	assert.Equal(t, "/opsbot approve "+approvalID, got.Line)
	assert.Equal(t, "mattermost", got.Platform)
	assert.Equal(t, "uDave000000000000000000000", got.User)
	assert.Equal(t, "dave", got.UserName, "the name comes from the server, not the callback")
	assert.Equal(t, testChannel, got.Channel)
	assert.Equal(t, "incident-42", got.ChannelName, "roles may name the channel")

	require.NotNil(t, resp.Update)
	atts2 := resp.Update.Attachments()
	require.NotEmpty(t, atts2)
	assert.Zero(t, countActions(atts2), "buttons gone")
	assert.Equal(t, "approved by", atts2[0].Fields[0].Title)
	assert.Equal(t, "@\u200bdave", atts2[0].Fields[0].Value, "named, without a notification")
	assert.Contains(t, atts2[0].Title, "done")
	assert.Len(t, f.srv.recorded(http.MethodGet, "/api/v4/users/uDave"), 1)

	// The name is cached.
	f.click(t, buttonNamed(t, atts, "Approve"), "uDave000000000000000000000", "promptpost0000000000000000", nil)
	assert.Len(t, f.srv.recorded(http.MethodGet, "/api/v4/users/uDave"), 1)
}

func TestAction_DenyUpdatesThePostNamingTheDecider(t *testing.T) {
	f, _, atts := promptFixture(t, func(bot.Request) bot.Reply {
		return bot.Reply{Status: bot.StatusNegative, Title: "Denied " + approvalID + ": /apache restart web01", Text: "Denied by mattermost:uDave. Nothing ran.",
			Decides: &bot.Decided{Approval: approvalID, Verdict: bot.VerdictDenied, By: "mattermost:dave"}, Supersedes: approvalID}
	})
	_, resp := f.click(t, buttonNamed(t, atts, "Deny"), "uDave000000000000000000000", "promptpost0000000000000000", nil)
	require.NotNil(t, resp.Update)
	assert.Zero(t, countActions(resp.Update.Attachments()))
	assert.Equal(t, "denied by", resp.Update.Attachments()[0].Fields[0].Title)
}

func TestAction_RefusedDecisionLeavesThePostAlone(t *testing.T) {
	f, _, atts := promptFixture(t, func(bot.Request) bot.Reply {
		return bot.Reply{Status: bot.StatusDenied, Title: "you requested 0123456789ab yourself: another person must approve it"}
	})
	w, resp := f.click(t, buttonNamed(t, atts, "Approve"), "uCarol00000000000000000000", "promptpost0000000000000000", nil)
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Nil(t, resp.Update, "the buttons stay for someone else")
	assert.Contains(t, resp.EphemeralText, "another person must approve")
	assert.Contains(t, resp.EphemeralText, "Nothing ran")
}

func TestAction_ForgedAlteredOrExpiredContextIsRefused(t *testing.T) {
	cases := map[string]struct {
		mutate  func(map[string]any)
		advance time.Duration
		status  int
	}{
		"forged signature": {mutate: func(c map[string]any) {
			c["sig"] = "00" + c["sig"].(string)[2:]
		}, status: http.StatusOK},
		"altered command": {mutate: func(c map[string]any) {
			c["line"] = "/opsbot approve ffffffffffff"
		}, status: http.StatusOK},
		"altered expiry": {mutate: func(c map[string]any) {
			c["exp"] = "9999999999"
		}, status: http.StatusOK},
		"no signature":  {mutate: func(c map[string]any) { delete(c, "sig") }, status: http.StatusOK},
		"no context":    {mutate: func(c map[string]any) { clear(c) }, status: http.StatusOK},
		"number as sig": {mutate: func(c map[string]any) { c["sig"] = 12 }, status: http.StatusOK},
		"other channel": {mutate: func(c map[string]any) {
			c["channel"] = "otherchannel00000000000000"
		}, status: http.StatusOK},
		"expired": {advance: buttonTTL + time.Minute, status: http.StatusOK},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			f, h, atts := promptFixture(t, func(bot.Request) bot.Reply {
				t.Fatal("nothing may run")
				return bot.Reply{}
			})
			f.now = f.now.Add(c.advance)
			w, resp := f.click(t, buttonNamed(t, atts, "Approve"), "uDave000000000000000000000", "promptpost0000000000000000", c.mutate)

			assert.Equal(t, c.status, w.Code)
			require.NotNil(t, resp)
			assert.Nil(t, resp.Update)
			assert.Contains(t, resp.EphemeralText, "nothing ran")
			assert.Len(t, h.requests(), 1, "only the command that made the prompt")
			recs := f.audit.records()
			require.Len(t, recs, 1)
			assert.Equal(t, bot.AuditRejected, recs[0].Kind)
			assert.Equal(t, "uDave000000000000000000000", recs[0].User)
			assert.NotContains(t, recs[0].Message, testSecret)
		})
	}
}

func TestAction_GarbageIs4xx(t *testing.T) {
	f := newFixture(t, &fakeHandler{fn: func(context.Context, bot.Request) bot.Reply {
		t.Fatal("nothing may run")
		return bot.Reply{}
	}})
	for name, body := range map[string]string{
		"not json":   "{{{",
		"empty":      "",
		"wrong type": `{"user_id":5}`,
		"huge":       `{"user_id":"` + string(make([]byte, 70<<10)) + `"}`,
	} {
		w, _ := f.postAction(t, []byte(body))
		assert.GreaterOrEqual(t, w.Code, 400, name)
		assert.Less(t, w.Code, 500, name)
	}
	// A click the server could send, lacking who or where: said in text,
	// with the 200 the server needs to show it.
	w, resp := f.postAction(t, []byte(`{"channel_id":"c","context":{}}`))
	assert.Equal(t, http.StatusOK, w.Code)
	require.NotNil(t, resp)
	assert.Contains(t, resp.EphemeralText, "nothing ran")
}

func TestAction_SlowClickAnswersAtOnceThenRepliesInTheThread(t *testing.T) {
	release := make(chan struct{})
	f, _, atts := promptFixture(t, func(req bot.Request) bot.Reply {
		<-release // slower than clickWait: the click is answered first
		return approvedReply(req)
	})
	f.a.clickWait = 10 * time.Millisecond
	f.srv.denyUpdate = true // the prompt was the asker's inline answer: not the bot's to edit

	w, resp := f.click(t, buttonNamed(t, atts, "Approve"), "uDave000000000000000000000", "promptpost0000000000000000", nil)
	require.Equal(t, http.StatusOK, w.Code)
	assert.Nil(t, resp.Update)
	assert.Contains(t, resp.EphemeralText, "Working on `/opsbot approve "+approvalID+"`")
	close(release)

	posts := f.srv.waitFor(t, 1, http.MethodPost, "/api/v4/posts")
	assert.Len(t, f.srv.recorded(http.MethodPut, "/api/v4/posts/promptpost"), 1, "tried to edit the prompt first")
	p := posts[0].Post
	assert.Equal(t, "promptpost0000000000000000", p.RootID, "in the prompt's thread")
	assert.Equal(t, "approved by", p.Attachments()[0].Fields[0].Title)
	assert.Zero(t, countActions(p.Attachments()))
}

// The adapter decides on the reply's typed outcome, never on its words: a
// reply worded like a decision but without Supersedes leaves the post
// alone; a decision worded unlike any leaves it replaced, named by its
// verdict.
func TestAction_OutcomeIsReadFromTypedFieldsNotWords(t *testing.T) {
	t.Run("decision words, no decision", func(t *testing.T) {
		f, _, atts := promptFixture(t, func(bot.Request) bot.Reply {
			return bot.Reply{Status: bot.StatusOK, Title: "Denied " + approvalID + ": /apache restart web01",
				Text: "Approved by mattermost:uDave; requested by mattermost:uCarol (approval " + approvalID + ")."}
		})
		_, resp := f.click(t, buttonNamed(t, atts, "Approve"), "uDave000000000000000000000", "promptpost0000000000000000", nil)
		assert.Nil(t, resp.Update, "no Supersedes: the prompt stays")
		assert.Contains(t, resp.EphemeralText, "Approved by", "the clicker alone hears it")
	})
	t.Run("unusual words, a decision", func(t *testing.T) {
		f, _, atts := promptFixture(t, func(req bot.Request) bot.Reply {
			return bot.Reply{Status: bot.StatusNegative, Title: "Withdrawn.", Text: "¯\\_(ツ)_/¯",
				Decides: &bot.Decided{Approval: approvalID, Verdict: bot.VerdictCancelled, By: "carol", Request: req.ID}, Supersedes: approvalID}
		})
		_, resp := f.click(t, buttonNamed(t, atts, "Deny"), "uCarol00000000000000000000", "promptpost0000000000000000", nil)
		require.NotNil(t, resp.Update, "Supersedes: the prompt is replaced")
		upd := resp.Update.Attachments()
		assert.Zero(t, countActions(upd), "buttons gone")
		assert.Equal(t, "cancelled by", upd[0].Fields[0].Title, "named by the verdict, not by the button or the words")
		assert.Contains(t, upd[0].Title, "Withdrawn.")
	})
}
