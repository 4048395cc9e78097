package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
)

var hexID = regexp.MustCompile(`^[0-9a-f]{12}$`)

func TestCommand_FastReplyIsTheHTTPResponse(t *testing.T) {
	h := &fakeHandler{HandleFn: func(context.Context, bot.Request) bot.Reply {
		return bot.Reply{Status: bot.StatusOK, Title: "10.0.0.1 80 open", Lines: []string{"Connection to 10.0.0.1 80 port [tcp/http] succeeded! (0.4 ms)"}}
	}}
	ta := newTestAdapter(t, h, nil)
	status, body := ta.post(t, "/slack/commands", ta.slashBody("/portcheck", " -zv 10.0.0.1 80 ", "U024BE7LH", "trig-fast"), nil)
	require.Equal(t, http.StatusOK, status)

	var resp map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	assert.Equal(t, "in_channel", resp["response_type"])
	assert.Contains(t, resp["text"], "10.0.0.1 80 open")
	assert.Contains(t, body, "succeeded!")

	reqs := h.requests()
	require.Len(t, reqs, 1)
	r := reqs[0]
	assert.Equal(t, "slack", r.Platform)
	assert.Equal(t, "U024BE7LH", r.User)
	assert.Equal(t, "u024be7lh-name", r.UserName)
	assert.Equal(t, "C2147483705", r.Channel)
	assert.Equal(t, "incident-42", r.ChannelName, "roles may name the channel")
	assert.Equal(t, "/portcheck -zv 10.0.0.1 80", r.Line)
	assert.Regexp(t, hexID, r.ID)
	assert.NotNil(t, r.Stream)
	assert.Equal(t, "slack:U024BE7LH", r.Principal())
	time.Sleep(50 * time.Millisecond)
	assert.Empty(t, ta.hook.got(), "nothing more through response_url")
}

func TestCommand_HelpErrorsAndDenialsAreEphemeral(t *testing.T) {
	for _, st := range []bot.Status{bot.StatusInfo, bot.StatusUsage, bot.StatusDenied} {
		h := &fakeHandler{HandleFn: func(context.Context, bot.Request) bot.Reply { return bot.Reply{Status: st, Title: "x"} }}
		ta := newTestAdapter(t, h, nil)
		_, body := ta.post(t, "/slack/commands", ta.slashBody("/opsbot", "help", "U1", "t-"+st.String()), nil)
		assert.Contains(t, body, `"response_type":"ephemeral"`, st.String())
	}
	for _, st := range []bot.Status{bot.StatusOK, bot.StatusNegative, bot.StatusFailed, bot.StatusPending} {
		h := &fakeHandler{HandleFn: func(context.Context, bot.Request) bot.Reply { return bot.Reply{Status: st, Title: "x"} }}
		ta := newTestAdapter(t, h, nil)
		_, body := ta.post(t, "/slack/commands", ta.slashBody("/portcheck", "h 1", "U1", "t-"+st.String()), nil)
		assert.Contains(t, body, `"response_type":"in_channel"`, st.String())
	}
}

func TestCommand_SlowReplyIsAckedThenDeliveredThroughResponseURL(t *testing.T) {
	release := make(chan struct{})
	h := &fakeHandler{HandleFn: func(context.Context, bot.Request) bot.Reply {
		<-release
		return bot.Reply{Status: bot.StatusOK, Title: "scan done: 2 open"}
	}}
	ta := newTestAdapter(t, h, nil)
	start := time.Now()
	status, body := ta.post(t, "/slack/commands", ta.slashBody("/scan", "10.0.0.1 1-1000", "U1", "trig-slow"), nil)
	took := time.Since(start)
	require.Equal(t, http.StatusOK, status)
	assert.Less(t, took, 3*time.Second, "Slack's deadline")
	assert.Contains(t, body, `"response_type":"ephemeral"`)
	assert.Contains(t, body, "Working on")
	assert.Contains(t, body, "#incident-42", "the channel name is shown")
	id := h.requests()[0].ID
	assert.Contains(t, body, `"value":"/opsbot cancel `+id+`"`, "the ack can cancel the command")
	assert.Empty(t, ta.hook.got())

	close(release)
	require.Eventually(t, func() bool { return len(ta.hook.got()) == 1 }, waitFor, tick, "result through response_url")
	got := ta.hook.got()[0]
	assert.Equal(t, "in_channel", got["response_type"])
	assert.Equal(t, false, got["replace_original"], "an in-channel result cannot replace the ephemeral ack")
	assert.Contains(t, got["text"], "scan done: 2 open")
}

func TestCommand_SlowEphemeralReplyReplacesTheAck(t *testing.T) {
	h := &fakeHandler{HandleFn: func(context.Context, bot.Request) bot.Reply {
		time.Sleep(500 * time.Millisecond)
		return bot.Reply{Status: bot.StatusDenied, Title: "rate limit: retry in 5s"}
	}}
	ta := newTestAdapter(t, h, nil)
	_, body := ta.post(t, "/slack/commands", ta.slashBody("/scan", "10.0.0.1", "U1", "trig-eph"), nil)
	assert.Contains(t, body, "Working on")
	require.Eventually(t, func() bool { return len(ta.hook.got()) == 1 }, waitFor, tick, "result")
	got := ta.hook.got()[0]
	assert.Equal(t, "ephemeral", got["response_type"])
	assert.Equal(t, true, got["replace_original"])
}

func TestCommand_DuplicateDeliveryRunsOnce(t *testing.T) {
	h := &fakeHandler{}
	ta := newTestAdapter(t, h, nil)
	body := ta.slashBody("/portcheck", "10.0.0.1 80", "U1", "trig-dup")
	status, _ := ta.post(t, "/slack/commands", body, nil)
	require.Equal(t, http.StatusOK, status)
	for i := 1; i <= 3; i++ {
		status, resp := ta.post(t, "/slack/commands", body, func(r *http.Request) {
			r.Header.Set("X-Slack-Retry-Num", fmt.Sprint(i))
			r.Header.Set("X-Slack-Retry-Reason", "http_timeout")
		})
		assert.Equal(t, http.StatusOK, status, "a retry gets 200 so Slack stops")
		assert.Empty(t, resp)
	}
	// The same trigger in a different body (a replay edited) runs nothing either.
	other := strings.Replace(body, "80", "443", 1)
	status, _ = ta.post(t, "/slack/commands", other, nil)
	assert.Equal(t, http.StatusOK, status)
	time.Sleep(50 * time.Millisecond)
	assert.EqualValues(t, 1, h.calls.Load())

	// A retry of a delivery that never arrived runs: nothing is dropped.
	fresh := ta.slashBody("/portcheck", "10.0.0.1 80", "U1", "trig-lost")
	_, resp := ta.post(t, "/slack/commands", fresh, func(r *http.Request) { r.Header.Set("X-Slack-Retry-Num", "1") })
	assert.Contains(t, resp, "in_channel")
	assert.EqualValues(t, 2, h.calls.Load())
}

func TestCommand_DedupeForgetsAfterTTL(t *testing.T) {
	now := time.Unix(1700000000, 0)
	d := newDedupe(10*time.Minute, 3, func() time.Time { return now })
	assert.True(t, d.first("a"))
	assert.False(t, d.first("a"))
	assert.False(t, d.first("b", "a"), "any key seen makes it a duplicate")
	assert.False(t, d.first("b"), "and the new keys are remembered too")
	now = now.Add(11 * time.Minute)
	assert.True(t, d.first("a"))
	for _, k := range []string{"c", "d", "e", "f"} {
		d.first(k)
	}
	assert.LessOrEqual(t, len(d.keys), 4, "bounded")
}

func TestCommand_RateLimitedResponseURLIsRetriedAfterRetryAfter(t *testing.T) {
	h := &fakeHandler{HandleFn: func(context.Context, bot.Request) bot.Reply {
		time.Sleep(400 * time.Millisecond)
		return bot.Reply{Status: bot.StatusOK, Title: "done"}
	}}
	ta := newTestAdapter(t, h, nil)
	ta.hook.mu.Lock()
	ta.hook.limited = 2
	ta.hook.mu.Unlock()
	var waits []time.Duration
	ta.sleep = func(_ context.Context, d time.Duration) error {
		ta.sleepMu.Lock()
		waits = append(waits, d)
		ta.sleepMu.Unlock()
		return nil
	}
	ta.post(t, "/slack/commands", ta.slashBody("/scan", "x", "U1", "trig-429"), nil)
	require.Eventually(t, func() bool { return len(ta.hook.got()) == 1 }, waitFor, tick, "delivered after the rate limit")
	ta.sleepMu.Lock()
	defer ta.sleepMu.Unlock()
	assert.Equal(t, []time.Duration{2 * time.Second, 2 * time.Second}, waits)
}

func TestCommand_RateLimitGivesUpAfterBoundedAttempts(t *testing.T) {
	ta := newTestAdapter(t, &fakeHandler{}, nil)
	ta.slack.rateLimit("chat.postMessage", 100)
	var n int
	ta.sleep = func(context.Context, time.Duration) error { n++; return nil }
	_, err := ta.postMessage(t.Context(), "C1", "", "x", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "chat.postMessage")
	assert.Equal(t, ta.maxAttempts-1, n)
}

func TestLogs_NeverCarrySecretsOrResponseURLs(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logs.Write(p) })
	h := &fakeHandler{HandleFn: func(context.Context, bot.Request) bot.Reply {
		time.Sleep(400 * time.Millisecond)
		return bot.Reply{Status: bot.StatusOK, Title: "done"}
	}}
	ta := newTestAdapter(t, h, func(c *Config) {
		c.Log = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	// A forged request, and a command whose response_url is unreachable
	// (the result then goes through chat.postMessage).
	ta.post(t, "/slack/commands", "command=%2Fscan", func(r *http.Request) { sign(r.Header, "forger", time.Now(), "command=%2Fscan") })
	body := strings.Replace(ta.slashBody("/scan", "x", "U1", "trig-logs"), url.QueryEscape(ta.hook.URL), url.QueryEscape("http://127.0.0.1:1"), 1)
	ta.post(t, "/slack/commands", body, nil)
	require.Eventually(t, func() bool { return len(ta.slack.got("chat.postMessage")) == 1 }, waitFor, tick, "fallback post")

	mu.Lock()
	defer mu.Unlock()
	out := logs.String()
	assert.Contains(t, out, "slack request rejected")
	assert.Contains(t, out, "response_url failed")
	for _, secret := range []string{"xoxb-test-token", testSecret, "/commands/T0001/trig-logs", "verification-token"} {
		assert.NotContains(t, out, secret)
	}
	for _, r := range ta.audit.records() {
		assert.NotContains(t, r.Message, testSecret)
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestRun_WithoutAppTokenReturnsAtOnce(t *testing.T) {
	ta := newTestAdapter(t, &fakeHandler{}, nil)
	done := make(chan error, 1)
	go func() { done <- ta.Run(t.Context()) }()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(time.Second):
		t.Fatal("Run blocked in HTTP mode")
	}
	assert.NoError(t, ta.Ready(t.Context()))
}
