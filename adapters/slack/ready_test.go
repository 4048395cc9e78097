package slack

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack/slacktest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// authSlack is slacktest with auth.test (and apps.connections.open)
// answering what the test says, counting the auth.test calls.
func authSlack(t *testing.T, authJSON, connectJSON string) (*slacktest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	s := slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/auth.test", func(w http.ResponseWriter, _ *http.Request) {
			n.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(authJSON))
		})
		if connectJSON != "" {
			c.Handle("/apps.connections.open", func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(connectJSON))
			})
		}
	})
	s.Start()
	t.Cleanup(s.Stop)
	return s, &n
}

const authOK = `{"ok":true,"team":"T","user":"opsbot","team_id":"T1","user_id":"U1","bot_id":"B1"}`

func TestReady_HTTPModeAsksSlackWhetherTheTokenWorks(t *testing.T) {
	s, calls := authSlack(t, `{"ok":false,"error":"invalid_auth"}`, "")
	now := time.Unix(1700000000, 0)
	a, err := New(Config{SigningSecret: testSecret, BotToken: "xoxb-wrong", APIURL: s.GetAPIURL(), Handler: &fakeHandler{}, Now: func() time.Time { return now }})
	require.NoError(t, err)
	err = a.Ready(t.Context())
	require.Error(t, err, "a token Slack refuses is not ready")
	assert.Contains(t, err.Error(), "auth.test refused the bot token (OPSBOT_SLACK_BOT_TOKEN): invalid_auth")
	require.Error(t, a.Ready(t.Context()))
	assert.EqualValues(t, 1, calls.Load(), "remembered for a while: a busy /readyz does not hammer Slack")
	now = now.Add(readyCacheTTL + time.Second)
	require.Error(t, a.Ready(t.Context()))
	assert.EqualValues(t, 2, calls.Load(), "asked again once the answer is old")
}

func TestReady_HTTPModeReadyWhenSlackAcceptsTheToken(t *testing.T) {
	s, calls := authSlack(t, authOK, "")
	a, err := New(Config{SigningSecret: testSecret, BotToken: "xoxb-good", APIURL: s.GetAPIURL(), Handler: &fakeHandler{}})
	require.NoError(t, err)
	require.NoError(t, a.Ready(t.Context()))
	assert.EqualValues(t, 1, calls.Load())
}

func TestReady_UnreachableSlackSaysSo(t *testing.T) {
	a, err := New(Config{SigningSecret: testSecret, BotToken: "xoxb-good", APIURL: "http://127.0.0.1:1/api/", Handler: &fakeHandler{}})
	require.NoError(t, err)
	err = a.Ready(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Slack's Web API did not answer")
	assert.Contains(t, err.Error(), "connection refused")
}

func TestReady_SocketModeNamesTheConnectionTrouble(t *testing.T) {
	s, _ := authSlack(t, authOK, `{"ok":false,"error":"not_allowed_token_type"}`)
	var logged lockedBuffer
	a, err := New(Config{AppToken: "xapp-1-A1-x", BotToken: "xoxb-good", APIURL: s.GetAPIURL(), Handler: &fakeHandler{}, Log: newTextLogger(&logged)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); assert.NoError(t, <-done, "Run returns nil when asked to stop") }()
	var rerr error
	require.Eventually(t, func() bool {
		rerr = a.Ready(t.Context())
		return rerr != nil && rerr.Error() != "slack: socket mode is not connected yet"
	}, waitFor, tick, "the cause of the connection trouble")
	assert.Contains(t, rerr.Error(), "socket mode is not connected: attempt 1: not_allowed_token_type")
	require.Eventually(t, func() bool { return logged.Contains("cause=") }, waitFor, tick, "a log line with the cause")
	assert.Contains(t, logged.String(), "not_allowed_token_type")
}

// lockedBuffer is a log sink the adapter's goroutines may write to while
// the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) Contains(s string) bool { return strings.Contains(b.String(), s) }

func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
