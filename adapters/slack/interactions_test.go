package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/sqlite"
	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands"
)

// restartCmd is a fake disruptive command that counts its runs.
type restartCmd struct{ runs atomic.Int32 }

func (*restartCmd) Name() string          { return "apache" }
func (*restartCmd) Summary() string       { return "apache" }
func (*restartCmd) Usage() string         { return "/apache restart HOST" }
func (*restartCmd) Subcommands() []string { return []string{"restart"} }
func (c *restartCmd) Prepare(context.Context, bot.Request) (bot.Prepared, error) {
	return bot.Prepared{Hosts: []string{"10.0.0.11"}, Impact: "Hard restart of Apache on web01: in-flight requests are killed."}, nil
}
func (c *restartCmd) Run(context.Context, bot.Request) (bot.Reply, error) {
	c.runs.Add(1)
	return bot.Reply{Status: bot.StatusOK, Title: "Apache restarted on web01", Fields: []bot.Field{{Name: "generation", Value: "2 → 3"}}}, nil
}

const approvalPolicy = `
roles:
  oncall:   {commands: ["apache restart"]}
  approver: {approve: ["apache restart"]}
users:
  "slack:UREQUESTER": [oncall]
  "slack:UAPPROVER":  [approver]
approval:
  required: ["apache restart"]
`

var approvalIDRe = regexp.MustCompile(`approval ID: ([0-9a-f]{12})`)

func approvalSetup(t *testing.T) (*testAdapter, *restartCmd, bot.Store) {
	t.Helper()
	p, err := bot.ParsePolicy([]byte(approvalPolicy))
	require.NoError(t, err)
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "opsbot.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	cmd := &restartCmd{}
	var ta *testAdapter
	notifier := notifierFunc(func(ctx context.Context, a bot.Approval, r bot.Reply) { ta.NotifyOutcome(ctx, a, r) })
	router := bot.NewRouter(bot.RouterConfig{Commands: []bot.Command{cmd}, Perms: bot.NewPermissions(p),
		Approval: p.Approval, Store: st, Notifier: notifier})
	router.Add(commands.NewOpsbot(router, bot.HostAccess{}))
	ta = newTestAdapter(t, router, func(c *Config) { c.Audit = st })
	return ta, cmd, st
}

type notifierFunc func(context.Context, bot.Approval, bot.Reply)

func (f notifierFunc) NotifyOutcome(ctx context.Context, a bot.Approval, r bot.Reply) { f(ctx, a, r) }

// buttons returns the button values of a response's blocks, by label.
func buttons(t *testing.T, blocks any) map[string]map[string]any {
	t.Helper()
	b, err := json.Marshal(blocks)
	require.NoError(t, err)
	var list []struct {
		Type     string           `json:"type"`
		Elements []map[string]any `json:"elements"`
	}
	require.NoError(t, json.Unmarshal(b, &list))
	out := map[string]map[string]any{}
	for _, blk := range list {
		if blk.Type != "actions" {
			continue
		}
		for _, e := range blk.Elements {
			out[e["text"].(map[string]any)["text"].(string)] = e
		}
	}
	return out
}

func TestClick_ApproveEndToEnd(t *testing.T) {
	ta, cmd, st := approvalSetup(t)

	// The requester asks; the prompt comes back in the channel with buttons.
	status, body := ta.post(t, "/slack/commands", ta.slashBody("/apache", "restart web01", "UREQUESTER", "trig-req"), nil)
	require.Equal(t, http.StatusOK, status)
	var prompt map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &prompt))
	assert.Equal(t, "in_channel", prompt["response_type"])
	m := approvalIDRe.FindStringSubmatch(body)
	require.NotNil(t, m, body)
	id := m[1]
	btns := buttons(t, prompt["blocks"])
	require.Contains(t, btns, "Approve")
	require.Contains(t, btns, "Deny")
	assert.Equal(t, "/opsbot approve "+id, btns["Approve"]["value"])
	assert.Equal(t, "primary", btns["Approve"]["style"])
	assert.Equal(t, "danger", btns["Deny"]["style"])
	assert.NotNil(t, btns["Deny"]["confirm"], "the danger button asks first")
	assert.Zero(t, cmd.runs.Load())
	promptTS := "1700000050.000100" // posted by Slack from the HTTP response

	// The requester cannot approve their own request: they hear why, alone,
	// and the prompt stays.
	ta.post(t, "/slack/interactions", ta.clickBody(t, "UREQUESTER", "/opsbot approve "+id, "Approve", "trig-self", promptTS), nil)
	require.Eventually(t, func() bool { return len(ta.hook.got()) == 1 }, waitFor, tick, "answer to the requester")
	self := ta.hook.got()[0]
	assert.Equal(t, "ephemeral", self["response_type"])
	assert.Equal(t, false, self["replace_original"])
	assert.Contains(t, self["text"], "another person must approve")
	assert.Zero(t, cmd.runs.Load())

	// Another person approves: the action runs once and the prompt is
	// replaced in place with who decided and the result, buttons gone.
	status, _ = ta.post(t, "/slack/interactions", ta.clickBody(t, "UAPPROVER", "/opsbot approve "+id, "Approve", "trig-approve", promptTS), nil)
	require.Equal(t, http.StatusOK, status)
	require.Eventually(t, func() bool { return len(ta.hook.got()) == 2 }, waitFor, tick, "prompt updated")
	upd := ta.hook.got()[1]
	assert.Equal(t, true, upd["replace_original"])
	assert.Equal(t, "in_channel", upd["response_type"])
	ub := fmt.Sprint(upd["blocks"])
	assert.Contains(t, ub, "Apache restarted on web01")
	assert.Contains(t, ub, "<@UAPPROVER>")
	assert.Contains(t, ub, "*Approved* by", "named by the verdict")
	assert.Empty(t, buttons(t, upd["blocks"]), "buttons removed")
	assert.EqualValues(t, 1, cmd.runs.Load())

	// The requester is told, in the prompt's thread, with a mention.
	require.Eventually(t, func() bool { return len(ta.slack.got("chat.postMessage")) == 1 }, waitFor, tick, "notice")
	notice := ta.slack.got("chat.postMessage")[0]
	assert.Equal(t, promptTS, notice.Form.Get("thread_ts"))
	assert.Contains(t, notice.Form.Get("text"), "<@UREQUESTER>")
	assert.Contains(t, notice.Form.Get("text"), id)

	// A second click, and a retry of the first, run nothing.
	ta.post(t, "/slack/interactions", ta.clickBody(t, "UAPPROVER", "/opsbot approve "+id, "Approve", "trig-approve", promptTS),
		func(r *http.Request) { r.Header.Set("X-Slack-Retry-Num", "1") })
	ta.post(t, "/slack/interactions", ta.clickBody(t, "UAPPROVER", "/opsbot approve "+id, "Approve", "trig-again", promptTS), nil)
	require.Eventually(t, func() bool { return len(ta.hook.got()) == 3 }, waitFor, tick, "second click answered")
	again := ta.hook.got()[2]
	assert.Equal(t, "ephemeral", again["response_type"])
	assert.Contains(t, fmt.Sprint(again["text"]), "already")
	require.NoError(t, ta.Wait(t.Context()), "every click's work is done")
	assert.EqualValues(t, 1, cmd.runs.Load(), "ran exactly once")
	assert.Len(t, ta.hook.got(), 3)

	a, err := st.Approval(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, bot.ApprovalDone, a.State)
	recs, err := st.Audit(t.Context(), bot.AuditQuery{})
	require.NoError(t, err)
	var kinds []string
	for _, r := range recs {
		kinds = append(kinds, r.Kind+":"+r.User)
	}
	assert.Contains(t, kinds, "approve:UAPPROVER")
	assert.Contains(t, kinds, "execution:UREQUESTER")
}

func TestClick_DenyUpdatesAPromptPostedByTheBot(t *testing.T) {
	ta, cmd, _ := approvalSetup(t)
	// The prompt reached the channel through chat.postMessage (a slow command
	// whose response_url failed): the decision edits it with chat.update.
	_, body := ta.post(t, "/slack/commands", ta.slashBody("/apache", "restart web01", "UREQUESTER", "trig-req2"), nil)
	id := approvalIDRe.FindStringSubmatch(body)[1]
	m := render(bot.Reply{Status: bot.StatusPending, Title: "Approval needed"})
	ts, err := ta.postMessage(t.Context(), "C2147483705", "", m.Text, m.Blocks)
	require.NoError(t, err)

	ta.post(t, "/slack/interactions", ta.clickBody(t, "UAPPROVER", "/opsbot deny "+id+" not during peak", "Deny", "trig-deny", ts), nil)
	require.Eventually(t, func() bool { return len(ta.slack.got("chat.update")) == 1 }, waitFor, tick, "prompt edited")
	upd := ta.slack.got("chat.update")[0]
	assert.Equal(t, ts, upd.Form.Get("ts"))
	assert.Contains(t, upd.Form.Get("blocks"), "Denied")
	assert.Contains(t, upd.Form.Get("blocks"), "not during peak")
	assert.NotContains(t, upd.Form.Get("blocks"), `"type":"actions"`)
	assert.Zero(t, cmd.runs.Load())
	assert.Empty(t, ta.hook.got(), "chat.update, not response_url, for the bot's own message")
}

func TestNotifyOutcome_PostsToTheChannelMentioningTheRequester(t *testing.T) {
	ta := newTestAdapter(t, &fakeHandler{}, nil)
	ta.slack.rateLimit("chat.postMessage", 1)
	var waits []time.Duration
	ta.sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	ta.NotifyOutcome(t.Context(), bot.Approval{ID: "3f2a9c1b7d4e", Channel: "C9", User: "U024BE7LH", Line: "/apache restart web01"},
		bot.Reply{Status: bot.StatusNegative, Title: "Expired 3f2a9c1b7d4e: /apache restart web01", Text: "Nobody approved it in time."})
	posts := ta.slack.got("chat.postMessage")
	require.Len(t, posts, 1)
	assert.Equal(t, []time.Duration{time.Second}, waits, "429 retried after Retry-After")
	assert.Equal(t, "C9", posts[0].Form.Get("channel"))
	assert.True(t, strings.HasPrefix(posts[0].Form.Get("text"), "<@U024BE7LH>"))
	assert.Contains(t, posts[0].Form.Get("blocks"), "Nobody approved it in time.")
}

func TestNotifyOutcome_TypedApprovalInTheSameChannelMentionsShortly(t *testing.T) {
	ta, cmd, _ := approvalSetup(t)
	ta.inlineWait = time.Minute // answered inline however loaded the machine is
	_, body := ta.post(t, "/slack/commands", ta.slashBody("/apache", "restart web01", "UREQUESTER", "trig-r"), nil)
	id := approvalIDRe.FindStringSubmatch(body)[1]
	_, body = ta.post(t, "/slack/commands", ta.slashBody("/opsbot", "approve "+id, "UAPPROVER", "trig-a"), nil)
	assert.Contains(t, body, "Apache restarted on web01", "the approver's own reply shows the result")
	assert.Contains(t, body, `"response_type":"in_channel"`)
	assert.EqualValues(t, 1, cmd.runs.Load())
	posts := ta.slack.got("chat.postMessage")
	require.Len(t, posts, 1)
	assert.Empty(t, posts[0].Form.Get("thread_ts"))
	assert.Contains(t, posts[0].Form.Get("text"), "<@UREQUESTER> your request `/apache restart web01`")
	assert.NotContains(t, posts[0].Form.Get("blocks"), "header", "short: the result is right above")
}

func TestCommand_SSLCheckIsAnswered(t *testing.T) {
	h := &fakeHandler{}
	ta := newTestAdapter(t, h, nil)
	status, _ := ta.post(t, "/slack/commands", "ssl_check=1&token=x", nil)
	assert.Equal(t, http.StatusOK, status)
	assert.Zero(t, h.calls.Load())
}

// The adapter decides on the reply's typed outcome, never on its words: a
// reply worded like a decision but without Supersedes leaves the clicked
// message alone; a decision worded unlike any replaces it, named by its
// verdict; and the requester's short notice goes under the clicked message
// because Decides names the clicking request.
func TestClick_OutcomeIsReadFromTypedFieldsNotWords(t *testing.T) {
	const id, promptTS = "3f2a9c1b7d4e", "1700000050.000100"
	t.Run("decision words, no decision", func(t *testing.T) {
		ta := newTestAdapter(t, &fakeHandler{HandleFn: func(context.Context, bot.Request) bot.Reply {
			return bot.Reply{Status: bot.StatusOK, Title: "Denied " + id + ": /apache restart web01",
				Text: "Approved by slack:UAPPROVER; requested by slack:UREQUESTER (approval " + id + ")."}
		}}, nil)
		ta.post(t, "/slack/interactions", ta.clickBody(t, "UAPPROVER", "/opsbot approve "+id, "Approve", "trig-words", promptTS), nil)
		require.Eventually(t, func() bool { return len(ta.hook.got()) == 1 }, waitFor, tick, "answer to the clicker")
		got := ta.hook.got()[0]
		assert.Equal(t, "ephemeral", got["response_type"], "no Supersedes: the clicker alone hears it")
		assert.Equal(t, false, got["replace_original"])
		assert.Empty(t, ta.slack.got("chat.update"))
	})
	t.Run("unusual words, a decision", func(t *testing.T) {
		var ta *testAdapter
		ta = newTestAdapter(t, &fakeHandler{HandleFn: func(ctx context.Context, req bot.Request) bot.Reply {
			r := bot.Reply{Status: bot.StatusNegative, Title: "Withdrawn.", Text: "¯\\_(ツ)_/¯",
				Decides: &bot.Decided{Approval: id, Verdict: bot.VerdictCancelled, By: "slack:UREQUESTER",
					Request: req.ID, Platform: req.Platform, Channel: req.Channel},
				Supersedes: id}
			ta.NotifyOutcome(ctx, bot.Approval{ID: id, Platform: "slack", User: "UREQUESTER", Channel: req.Channel, Line: "/apache restart web01"}, r)
			return r
		}}, nil)
		ta.post(t, "/slack/interactions", ta.clickBody(t, "UREQUESTER", "/opsbot deny "+id, "Deny", "trig-odd", promptTS), nil)
		require.Eventually(t, func() bool { return len(ta.hook.got()) == 1 }, waitFor, tick, "prompt replaced")
		got := ta.hook.got()[0]
		assert.Equal(t, true, got["replace_original"], "Supersedes: the prompt is replaced")
		assert.Equal(t, "in_channel", got["response_type"])
		assert.Contains(t, fmt.Sprint(got["blocks"]), "*Cancelled* by <@UREQUESTER>", "named by the verdict, not by the button")
		assert.Empty(t, buttons(t, got["blocks"]), "buttons gone")
		notices := ta.slack.got("chat.postMessage")
		require.Len(t, notices, 1)
		assert.Equal(t, promptTS, notices[0].Form.Get("thread_ts"), "short notice under the clicked prompt")
		assert.NotContains(t, notices[0].Form.Get("blocks"), "header")
	})
}
