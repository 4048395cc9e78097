package slack

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
)

// socketAdapter runs the adapter in Socket Mode against slacktest and
// returns a channel of what the adapter wrote on the websocket (its acks).
func socketAdapter(t *testing.T, h bot.Handler) (*testAdapter, <-chan map[string]any) {
	t.Helper()
	ta := newTestAdapter(t, h, func(c *Config) { c.SigningSecret = ""; c.AppToken = "xapp-1-A123-test" })
	ta.pingInterval = time.Hour // slacktest sends no websocket pings
	acks := make(chan map[string]any, 100)
	go func() { // slacktest blocks its websocket reader until SeenFeed is drained
		for msg := range ta.slack.SeenFeed {
			var m map[string]any
			if json.Unmarshal([]byte(msg), &m) == nil {
				acks <- m
			}
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	require.Error(t, ta.Ready(ctx), "not ready before connecting")
	done := make(chan error, 1)
	go func() { done <- ta.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	require.Eventually(t, func() bool { return ta.Ready(ctx) == nil }, waitFor, tick, "socket mode connected")
	return ta, acks
}

func envelope(t *testing.T, id, typ string, retry int, payload any) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"envelope_id": id, "type": typ, "accepts_response_payload": true,
		"retry_attempt": retry, "retry_reason": "", "payload": payload})
	require.NoError(t, err)
	return string(b)
}

func nextAck(t *testing.T, acks <-chan map[string]any) map[string]any {
	t.Helper()
	select {
	case a := <-acks:
		return a
	case <-time.After(5 * time.Second):
		t.Fatal("no ack")
		return nil
	}
}

func slashPayload(hookURL, trigger string) map[string]any {
	return map[string]any{
		"token": "x", "team_id": "T0001", "team_domain": "example", "channel_id": "C2147483705", "channel_name": "incident-42",
		"user_id": "U024BE7LH", "user_name": "alice", "command": "/portcheck", "text": "10.0.0.10 80",
		"response_url": hookURL + "/commands/" + trigger, "trigger_id": trigger, "api_app_id": "A123", "is_enterprise_install": "false",
	}
}

func TestSocketMode_SlashCommandIsAckedWithTheReply(t *testing.T) {
	h := &fakeHandler{HandleFn: func(context.Context, bot.Request) bot.Reply {
		return bot.Reply{Status: bot.StatusOK, Title: "10.0.0.10 80/tcp open", Lines: []string{"Connection to 10.0.0.10 80 port [tcp/http] succeeded! (0.4 ms)"}}
	}}
	ta, acks := socketAdapter(t, h)

	ta.slack.SendToWebsocket(envelope(t, "env-1", "slash_commands", 0, slashPayload(ta.hook.URL, "trig-sm-1")))
	ack := nextAck(t, acks)
	assert.Equal(t, "env-1", ack["envelope_id"])
	payload, ok := ack["payload"].(map[string]any)
	require.True(t, ok, "the ack carries the reply: %v", ack)
	assert.Equal(t, "in_channel", payload["response_type"])
	assert.Contains(t, payload["text"], "succeeded!")

	reqs := h.requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "/portcheck 10.0.0.10 80", reqs[0].Line)
	assert.Equal(t, "U024BE7LH", reqs[0].User)
	assert.Equal(t, "slack", reqs[0].Platform)

	// Slack retries an envelope it thinks was lost: acked, nothing runs.
	ta.slack.SendToWebsocket(envelope(t, "env-2", "slash_commands", 1, slashPayload(ta.hook.URL, "trig-sm-1")))
	ack = nextAck(t, acks)
	assert.Equal(t, "env-2", ack["envelope_id"])
	assert.Nil(t, ack["payload"])
	assert.EqualValues(t, 1, h.calls.Load())
}

func TestSocketMode_SlowCommandAcksWorkingThenResponseURL(t *testing.T) {
	h := &fakeHandler{HandleFn: func(context.Context, bot.Request) bot.Reply {
		time.Sleep(600 * time.Millisecond)
		return bot.Reply{Status: bot.StatusOK, Title: "scan done"}
	}}
	ta, acks := socketAdapter(t, h)
	ta.slack.SendToWebsocket(envelope(t, "env-slow", "slash_commands", 0, slashPayload(ta.hook.URL, "trig-sm-slow")))
	ack := nextAck(t, acks)
	payload := ack["payload"].(map[string]any)
	assert.Equal(t, "ephemeral", payload["response_type"])
	assert.Contains(t, payload["text"], "Working on")
	require.Eventually(t, func() bool { return len(ta.hook.got()) == 1 }, waitFor, tick, "result through response_url")
	assert.Contains(t, ta.hook.got()[0]["text"], "scan done")
}

func TestSocketMode_BigReplyIsNotPutInTheAck(t *testing.T) {
	lines := make([]string, 600)
	for i := range lines {
		lines[i] = strings.Repeat("x", 60)
	}
	h := &fakeHandler{HandleFn: func(context.Context, bot.Request) bot.Reply {
		return bot.Reply{Status: bot.StatusOK, Title: "big", Lines: lines}
	}}
	ta, acks := socketAdapter(t, h)
	ta.slack.SendToWebsocket(envelope(t, "env-big", "slash_commands", 0, slashPayload(ta.hook.URL, "trig-sm-big")))
	ack := nextAck(t, acks)
	assert.Nil(t, ack["payload"], "payloads of 20 KB or more are dropped by Slack")
	// Long enough for follow-ups: the first message is posted where its
	// timestamp comes back, and the follow-ups go to its thread.
	require.Eventually(t, func() bool { return len(ta.slack.got("chat.postMessage")) >= 2 }, waitFor, tick, "result and a follow-up")
	posts := ta.slack.got("chat.postMessage")
	assert.Contains(t, posts[0].Form.Get("text"), "big")
	assert.Empty(t, posts[0].Form.Get("thread_ts"))
	for _, p := range posts[1:] {
		assert.NotEmpty(t, p.Form.Get("thread_ts"), "a follow-up in the first message's thread")
	}
	assert.Empty(t, ta.hook.got(), "nothing through response_url")
}

func TestSocketMode_ClickIsAckedAndRun(t *testing.T) {
	h := &fakeHandler{HandleFn: func(_ context.Context, req bot.Request) bot.Reply {
		return bot.Reply{Status: bot.StatusInfo, Title: "You are " + req.Principal()}
	}}
	ta, acks := socketAdapter(t, h)
	form, err := url.ParseQuery(ta.clickBody(t, "U0CLICKER", "/opsbot whoami", "Who am I", "trig-sm-click", "1700000001.000100"))
	require.NoError(t, err)
	var payload map[string]any
	require.NoError(t, json.Unmarshal([]byte(form.Get("payload")), &payload))
	ta.slack.SendToWebsocket(envelope(t, "env-click", "interactive", 0, payload))
	ack := nextAck(t, acks)
	assert.Equal(t, "env-click", ack["envelope_id"])
	require.Eventually(t, func() bool { return len(ta.hook.got()) == 1 }, waitFor, tick, "answer to the clicker")
	assert.Contains(t, ta.hook.got()[0]["text"], "slack:U0CLICKER")
	assert.Equal(t, "ephemeral", ta.hook.got()[0]["response_type"])
	reqs := h.requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "/opsbot whoami", reqs[0].Line)
	assert.Equal(t, "C2147483705", reqs[0].Channel)
	assert.Equal(t, "incident-42", reqs[0].ChannelName, "a click passes the channel's name too, for roles that name it")
}
