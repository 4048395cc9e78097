package slack

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
)

func TestVerify_RejectedRequestsAre4xxAuditedAndRunNothing(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name   string
		path   string
		body   func(ta *testAdapter) string
		edit   func(r *http.Request, body string)
		clock  func() time.Time
		status int
		reason string
	}{
		{
			name: "stale timestamp, 6 minutes old", path: "/slack/commands",
			edit:   func(r *http.Request, body string) { sign(r.Header, testSecret, now.Add(-6*time.Minute), body) },
			status: http.StatusUnauthorized, reason: "5-minute window",
		},
		{
			name: "stale by the configured clock", path: "/slack/commands",
			clock:  func() time.Time { return time.Now().Add(6 * time.Minute) },
			status: http.StatusUnauthorized, reason: "5-minute window",
		},
		{
			name: "timestamp from the future", path: "/slack/commands",
			edit:   func(r *http.Request, body string) { sign(r.Header, testSecret, now.Add(6*time.Minute), body) },
			status: http.StatusUnauthorized, reason: "5-minute window",
		},
		{
			name: "forged: signed with another secret", path: "/slack/commands",
			edit:   func(r *http.Request, body string) { sign(r.Header, "not-the-secret", now, body) },
			status: http.StatusUnauthorized, reason: "signature does not match",
		},
		{
			name: "body changed after signing", path: "/slack/commands",
			edit: func(r *http.Request, body string) {
				sign(r.Header, testSecret, now, strings.Replace(body, "scan", "apache", 1))
			},
			status: http.StatusUnauthorized, reason: "signature does not match",
		},
		{
			name: "missing signature", path: "/slack/commands",
			edit:   func(r *http.Request, _ string) { r.Header.Del("X-Slack-Signature") },
			status: http.StatusUnauthorized, reason: "missing",
		},
		{
			name: "missing timestamp", path: "/slack/interactions",
			body: func(ta *testAdapter) string {
				return ta.clickBody(t, "U1", "/opsbot approve 3f2a9c1b7d4e", "Approve", "t1", "1.2")
			},
			edit:   func(r *http.Request, _ string) { r.Header.Del("X-Slack-Request-Timestamp") },
			status: http.StatusUnauthorized, reason: "missing",
		},
		{
			name: "signature not hex", path: "/slack/interactions",
			body: func(ta *testAdapter) string {
				return ta.clickBody(t, "U1", "/opsbot approve 3f2a9c1b7d4e", "Approve", "t1", "1.2")
			},
			edit:   func(r *http.Request, _ string) { r.Header.Set("X-Slack-Signature", "v0=zz") },
			status: http.StatusUnauthorized, reason: "signature",
		},
		{
			name: "oversized body", path: "/slack/commands",
			body:   func(*testAdapter) string { return "text=" + strings.Repeat("a", maxBody) },
			status: http.StatusRequestEntityTooLarge, reason: "larger than",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &fakeHandler{}
			ta := newTestAdapter(t, h, func(c *Config) { c.Now = tt.clock })
			body := ta.slashBody("/scan", "10.0.0.1", "U1", "trig1")
			if tt.body != nil {
				body = tt.body(ta)
			}
			status, _ := ta.post(t, tt.path, body, func(r *http.Request) {
				if tt.edit != nil {
					tt.edit(r, body)
				}
			})
			assert.Equal(t, tt.status, status)
			time.Sleep(50 * time.Millisecond)
			assert.Zero(t, h.calls.Load(), "the handler must never run")
			recs := ta.audit.records()
			require.Len(t, recs, 1)
			assert.Equal(t, bot.AuditRejected, recs[0].Kind)
			assert.Equal(t, "slack", recs[0].Platform)
			assert.Contains(t, recs[0].Message, tt.reason)
			assert.Contains(t, recs[0].Message, tt.path)
			assert.NotContains(t, recs[0].Message, testSecret)
			assert.Empty(t, recs[0].User, "an unverified user is not recorded as if it were")
			assert.Empty(t, ta.slack.got(""), "nothing reached Slack")
			assert.Empty(t, ta.hook.got())
		})
	}
}

func TestVerify_MalformedButSignedIs400AndRunsNothing(t *testing.T) {
	h := &fakeHandler{}
	ta := newTestAdapter(t, h, nil)
	for name, c := range map[string]struct{ path, body string }{
		"form garbage":          {"/slack/commands", "%zz%%=&&;"},
		"no command":            {"/slack/commands", "user_id=U1&channel_id=C1&text=hi"},
		"command without slash": {"/slack/commands", "user_id=U1&channel_id=C1&command=scan"},
		"no user":               {"/slack/commands", "channel_id=C1&command=%2Fscan"},
		"click without payload": {"/slack/interactions", "foo=bar"},
		"click payload garbage": {"/slack/interactions", "payload=%7Bnot-json"},
		"button value not a command": {"/slack/interactions",
			ta.clickBody(t, "U1", "rm -rf /", "Approve", "tx", "1.2")},
	} {
		status, _ := ta.post(t, c.path, c.body, nil)
		assert.Equal(t, http.StatusBadRequest, status, name)
	}
	time.Sleep(50 * time.Millisecond)
	assert.Zero(t, h.calls.Load())
	assert.Empty(t, ta.audit.records(), "a signed request is Slack's: not a rejection to audit")
}

func TestVerify_FloodOfForgeriesIsAuditedAtABoundedRate(t *testing.T) {
	ta := newTestAdapter(t, &fakeHandler{}, nil)
	for range 60 {
		status, _ := ta.post(t, "/slack/commands", "command=%2Fscan", func(r *http.Request) {
			sign(r.Header, "forger", time.Now(), "command=%2Fscan")
		})
		require.Equal(t, http.StatusUnauthorized, status)
	}
	recs := ta.audit.records()
	assert.Less(t, len(recs), 40)
	assert.GreaterOrEqual(t, len(recs), 20)
}

func TestVerify_NoSigningSecretRejectsHTTP(t *testing.T) {
	h := &fakeHandler{}
	ta := newTestAdapter(t, h, func(c *Config) { c.SigningSecret = ""; c.AppToken = "xapp-1-test" })
	status, _ := ta.post(t, "/slack/commands", ta.slashBody("/scan", "", "U1", "t"), nil)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Zero(t, h.calls.Load())
}

func TestNew_Validates(t *testing.T) {
	h := &fakeHandler{}
	for name, cfg := range map[string]Config{
		"no bot token":         {SigningSecret: "s", Handler: h},
		"user token":           {SigningSecret: "s", BotToken: "xoxp-1", Handler: h},
		"no secret, no app":    {BotToken: "xoxb-1", Handler: h},
		"bot token as app":     {BotToken: "xoxb-1", AppToken: "xoxb-2", Handler: h},
		"no handler":           {BotToken: "xoxb-1", SigningSecret: "s"},
		"api url not absolute": {BotToken: "xoxb-1", SigningSecret: "s", Handler: h, APIURL: "slack.local"},
	} {
		_, err := New(cfg)
		if assert.Error(t, err, name) {
			assert.NotContains(t, err.Error(), "xoxb-1", "errors never carry a token")
		}
	}
	_, err := New(Config{BotToken: "xoxb-1", AppToken: "xapp-1", Handler: h})
	assert.NoError(t, err)
}
