package slack

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
)

// Slack's rules that slacktest does not enforce, each against the fake
// that does (helpers_test.go): response_url's 5 uses in 30 minutes,
// chat.update never on an ephemeral message, follow-ups in the first
// message's thread, long output as a file.

// tableReply is a result of n table rows (a scan of n open ports, one row
// each: the worst case, when no rows can be grouped).
func tableReply(n int) bot.Reply {
	t := &bot.Table{Header: []string{"port", "state", "service", "evidence"}}
	for p := 1; p <= n; p++ {
		t.Rows = append(t.Rows, []string{fmt.Sprintf("%d/tcp", 2*p), "open", "-", "handshake completed, 0.1 ms"})
	}
	return bot.Reply{Status: bot.StatusOK, Title: fmt.Sprintf("10.0.0.9 tcp 1-65535: %d open", n), Table: t}
}

func TestResponseURL_FiveUsesSharedByPostsReplyAndFollowUps(t *testing.T) {
	// The bot is not in the channel: every post falls back to the
	// response_url, whose five uses must cover the thread posts, the reply
	// and its follow-ups; the fake refuses a sixth.
	release := make(chan struct{})
	h := &fakeHandler{HandleFn: func(_ context.Context, req bot.Request) bot.Reply {
		<-release
		for i := range 10 {
			req.Stream.Post(bot.Reply{Status: bot.StatusInfo, Lines: []string{fmt.Sprintf("event %d", i)}})
		}
		return tableReply(3000)
	}}
	ta := newTestAdapter(t, h, nil)
	ta.slack.refuseAll("chat.postMessage", "not_in_channel")
	ta.slack.refuseAll("chat.postEphemeral", "not_in_channel")
	status, body := ta.post(t, "/slack/commands", ta.slashBody("/scan", "10.0.0.9 1-65535", "U1", "trig-budget"), nil)
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, "Working on")
	close(release)
	require.NoError(t, ta.Wait(t.Context()))
	assert.LessOrEqual(t, len(ta.hook.got()), hookUses)
	assert.Zero(t, ta.hook.refusals(), "the adapter never spent a use it did not have")
	var texts []string
	for _, p := range ta.hook.got() {
		texts = append(texts, fmt.Sprint(p["text"], p["blocks"]))
	}
	assert.Contains(t, strings.Join(texts, "\n"), "10.0.0.9 tcp 1-65535: 3000 open", "the reply got through")
}

func TestResponseURL_ExpiredAfterThirtyMinutesPostsInstead(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	release := make(chan struct{})
	h := &fakeHandler{HandleFn: func(context.Context, bot.Request) bot.Reply {
		<-release
		return bot.Reply{Status: bot.StatusOK, Title: "scan done"}
	}}
	ta := newTestAdapter(t, h, func(c *Config) { c.Now = clock })
	ta.hook.mu.Lock()
	ta.hook.now = clock
	ta.hook.mu.Unlock()
	status, _ := ta.post(t, "/slack/commands", ta.slashBody("/scan", "10.0.0.9", "U1", "trig-late"), nil)
	require.Equal(t, http.StatusOK, status)
	mu.Lock()
	now = now.Add(31 * time.Minute)
	mu.Unlock()
	close(release)
	require.NoError(t, ta.Wait(t.Context()))
	assert.Empty(t, ta.hook.got())
	assert.Zero(t, ta.hook.refusals(), "an expired response_url is not even tried")
	posts := ta.slack.got("chat.postMessage")
	require.Len(t, posts, 1)
	assert.Contains(t, posts[0].Form.Get("text"), "scan done")
}

func TestFollowUps_ThreadedUnderTheFirstMessageAndCappedWithAFile(t *testing.T) {
	// 65 535 open ports, a row each: far more than a few messages. At most
	// 1+maxMore messages, all after the first in its thread, and the whole
	// output as a file in that thread.
	h := &fakeHandler{HandleFn: func(context.Context, bot.Request) bot.Reply { return tableReply(65535) }}
	ta := newTestAdapter(t, h, nil)
	status, body := ta.post(t, "/slack/commands", ta.slashBody("/scan", "10.0.0.9 1-65535", "U1", "trig-long"), nil)
	require.Equal(t, http.StatusOK, status)
	assert.NotContains(t, body, "3000 open", "not answered inline: the follow-ups need the first message's timestamp")
	require.NoError(t, ta.Wait(t.Context()))
	posts := ta.slack.got("chat.postMessage")
	require.Len(t, posts, 1+maxMore, "the capped number of messages")
	first := posts[0]
	assert.Empty(t, first.Form.Get("thread_ts"))
	assert.Contains(t, first.Form.Get("blocks"), "all of it is in the file opsbot-output.txt")
	firstTS := first.TS
	require.NotEmpty(t, firstTS)
	for _, p := range posts[1:] {
		assert.Equal(t, firstTS, p.Form.Get("thread_ts"), "a follow-up in the first message's thread")
	}
	files := ta.slack.shared()
	require.Len(t, files, 1)
	assert.Equal(t, "C2147483705", files[0].Channel)
	assert.Equal(t, firstTS, files[0].ThreadTS)
	assert.Equal(t, 65535+2, strings.Count(files[0].Content, "\n"), "title, header and every row")
	assert.Contains(t, files[0].Content, "131070/tcp")
	assert.Empty(t, ta.hook.got())
}

func TestClick_OnTheEphemeralApprovalsListIsNeverAChatUpdate(t *testing.T) {
	ta, cmd, _ := approvalSetup(t)
	_, body := ta.post(t, "/slack/commands", ta.slashBody("/apache", "restart web01", "UREQUESTER", "trig-req3"), nil)
	id := approvalIDRe.FindStringSubmatch(body)[1]
	// The click comes from the approver's /opsbot approvals list, which
	// only they see; its response_url is already spent.
	listTS := "1700000099.000100"
	click := strings.Replace(ta.clickBody(t, "UAPPROVER", "/opsbot approve "+id, "Approve", "trig-list", listTS),
		"%22is_ephemeral%22%3Afalse", "%22is_ephemeral%22%3Atrue", 1)
	require.Contains(t, click, "%22is_ephemeral%22%3Atrue")
	for range hookUses {
		resp, err := http.Post(ta.hook.URL+"/actions/T0001/trig-list", "application/json", strings.NewReader(`{"text":"x"}`))
		require.NoError(t, err)
		_ = resp.Body.Close()
	}
	ta.post(t, "/slack/interactions", click, nil)
	require.Eventually(t, func() bool { return len(ta.slack.got("chat.postEphemeral")) >= 1 }, waitFor, tick, "the approver is answered")
	require.NoError(t, ta.Wait(t.Context()))
	assert.EqualValues(t, 1, cmd.runs.Load())
	assert.Empty(t, ta.slack.got("chat.update"), "chat.update cannot change an ephemeral message")
	eph := ta.slack.got("chat.postEphemeral")[0]
	assert.Equal(t, "UAPPROVER", eph.Form.Get("user"))
	assert.Contains(t, eph.Form.Get("blocks"), "Apache restarted on web01")
}

func TestFakeSlack_RefusesWhatSlackRefuses(t *testing.T) {
	// The fake's rules themselves: a regression in them would let the
	// tests above pass where Slack refuses.
	ta := newTestAdapter(t, &fakeHandler{}, nil)
	ctx := t.Context()
	require.NoError(t, ta.postEphemeral(ctx, "C1", "U1", "only you", nil))
	eph := ta.slack.got("chat.postEphemeral")[0]
	assert.Contains(t, ta.updateMessage(ctx, "C1", eph.TS, "edited", nil).Error(), "message_not_found", "an ephemeral message cannot be edited")
	ts, err := ta.postMessage(ctx, "C1", "", "root", nil)
	require.NoError(t, err)
	reply, err := ta.postMessage(ctx, "C1", ts, "reply", nil)
	require.NoError(t, err)
	replyToReply, err := ta.postMessage(ctx, "C1", reply, "reply to a reply", nil)
	require.NoError(t, err)
	assert.Equal(t, ts, ta.slack.thread("C1", replyToReply), "threads under the root")
	require.NoError(t, ta.updateMessage(ctx, "C1", ts, "edited", nil))
	err = ta.updateMessage(ctx, "C1", "1699999999.000100", "not ours", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "message_not_found")
	for i := range hookUses + 1 {
		err := ta.webhook(ctx, ta.hook.URL+"/commands/T0001/raw", webhookMessage("x", nil, false, false))
		if i < hookUses {
			require.NoError(t, err)
		} else {
			assert.ErrorIs(t, err, errHookSpent)
		}
	}
	resp, err := http.Post(ta.hook.URL+"/commands/T0001/raw", "application/json", strings.NewReader(`{"text":"sixth"}`))
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "the fake refuses a sixth use too")
}
