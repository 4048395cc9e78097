package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The Slack path end to end: the built binary in `opsbot serve` (HTTP
// mode), slash commands signed exactly as Slack signs them.

const slackSecret = "8f742231b10e8888abcd99yyyzzz85a5"

func slackSign(body string, ts time.Time) (string, string) {
	stamp := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(slackSecret))
	fmt.Fprintf(mac, "v0:%s:%s", stamp, body)
	return stamp, "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// slackAPI stands in for Slack's Web API and response_url, recording what
// the bot sends.
type slackAPI struct {
	*httptest.Server
	mu       sync.Mutex
	sent     []string
	hookUses map[string]int // posts to each response_url
	refused  int            // posts past a response_url's five
}

// refusals is how many response_url posts the fake refused as used up.
func (s *slackAPI) refusals() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// count is how many calls went to a path containing path.
func (s *slackAPI) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.sent {
		if p, _, _ := strings.Cut(c, " "); strings.Contains(p, path) {
			n++
		}
	}
	return n
}

func (s *slackAPI) all() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.sent, "\n")
}

func TestE2E_SlackServe(t *testing.T) {
	api := &slackAPI{}
	api.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		text := string(b)
		if u, err := url.QueryUnescape(text); err == nil { // Web API calls are form-encoded
			text = u
		}
		api.mu.Lock()
		api.sent = append(api.sent, r.URL.Path+" "+text)
		api.mu.Unlock()
		_, _ = io.WriteString(w, `{"ok":true,"channel":"C1","ts":"1700000000.000100"}`)
	}))
	t.Cleanup(api.Close)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
roles:
  oncall:   {commands: [portcheck, scan]}
  approver: {approve: [scan]}
users:
  "slack:U024BE7LH": [oncall]
  "slack:U0CAROL01": [approver]
approval:
  required: [scan]
`), 0o600))
	addr := freePort(t)
	env := append(os.Environ(), "OPSBOT_CONFIG="+cfg, "OPSBOT_DATABASE="+filepath.Join(dir, "opsbot.db"), "OPSBOT_HTTP_ADDR="+addr,
		"OPSBOT_SLACK_SIGNING_SECRET="+slackSecret, "OPSBOT_SLACK_BOT_TOKEN=xoxb-test", "OPSBOT_SLACK_API_URL="+api.URL+"/")
	base := startServe(t, env, addr, "/readyz")

	post := func(path, body string, ts time.Time, sign bool) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, base+path, bytes.NewBufferString(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		stamp, sig := slackSign(body, ts)
		if !sign {
			sig = "v0=" + hex.EncodeToString(make([]byte, 32))
		}
		req.Header.Set("X-Slack-Request-Timestamp", stamp)
		req.Header.Set("X-Slack-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	port := listener(t)
	slash := func(user, command, text, trigger string) string {
		return url.Values{"command": {command}, "text": {text}, "user_id": {user}, "user_name": {"someone"},
			"channel_id": {"C1"}, "channel_name": {"inc-web"}, "team_id": {"T1"}, "trigger_id": {trigger}, "response_url": {api.URL + "/hook/" + trigger}}.Encode()
	}
	form := slash("U024BE7LH", "/portcheck", fmt.Sprintf("127.0.0.1 %d", port), "trig-1")

	code, body := post("/slack/commands", form, time.Now(), true)
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, fmt.Sprintf("Connection to 127.0.0.1 %d port [tcp/*] succeeded!", port))

	// Refused before anything runs: 4xx, never a panic.
	code, _ = post("/slack/commands", form, time.Now(), false)
	assert.Equal(t, http.StatusUnauthorized, code, "a bad signature")
	code, _ = post("/slack/commands", form, time.Now().Add(-6*time.Minute), true)
	assert.Equal(t, http.StatusUnauthorized, code, "outside the 5-minute window")
	resp, err := http.Post(base+"/slack/commands", "application/x-www-form-urlencoded", bytes.NewBufferString(form))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "missing headers")
	code, _ = post("/slack/commands", string(bytes.Repeat([]byte("a"), 2<<20)), time.Now(), true)
	assert.GreaterOrEqual(t, code, 400, "an oversized body")
	assert.Less(t, code, 500)
	code, _ = post("/slack/commands", "%zz=%%&&;", time.Now(), true)
	assert.Equal(t, http.StatusBadRequest, code, "form garbage")
	code, _ = post("/slack/commands", slash("U024BE7LH", "/frobnicate", "x", "trig-u"), time.Now(), true)
	assert.Equal(t, http.StatusBadRequest, code, "an unknown command")

	// A disruptive command gets buttons; a second person's signed click
	// approves it, the prompt is updated, the scan runs once.
	code, body = post("/slack/commands", slash("U024BE7LH", "/scan", fmt.Sprintf("127.0.0.1 %d", port), "trig-2"), time.Now(), true)
	require.Equal(t, http.StatusOK, code, body)
	m := regexp.MustCompile(`/opsbot approve ([0-9a-f]{12})`).FindStringSubmatch(body)
	require.NotNil(t, m, body)
	click := func(user, trigger string) int {
		payload, _ := json.Marshal(map[string]any{
			"type": "block_actions", "user": map[string]any{"id": user, "username": "carol", "name": "carol"},
			"team": map[string]any{"id": "T1"}, "channel": map[string]any{"id": "C1", "name": "inc-web"},
			"container":  map[string]any{"type": "message", "message_ts": "1700000000.000100", "channel_id": "C1"},
			"message":    map[string]any{"type": "message", "ts": "1700000000.000100", "text": "prompt"},
			"trigger_id": trigger, "response_url": api.URL + "/hook/" + trigger,
			"actions": []map[string]any{{"action_id": "opsbot0", "block_id": "b1", "type": "button", "value": "/opsbot approve " + m[1],
				"text": map[string]any{"type": "plain_text", "text": "Approve"}}},
		})
		code, _ := post("/slack/interactions", url.Values{"payload": {string(payload)}}.Encode(), time.Now(), true)
		return code
	}
	require.Equal(t, http.StatusOK, click("U0CAROL01", "trig-3"))
	require.Eventually(t, func() bool {
		return strings.Contains(api.all(), fmt.Sprintf("%d/tcp", port))
	}, 10*time.Second, 50*time.Millisecond, "the result reaches Slack")
	// The progress message becomes the result first; the prompt's update
	// follows.
	require.Eventually(t, func() bool {
		return strings.Contains(api.all(), "U0CAROL01")
	}, 10*time.Second, 50*time.Millisecond, "the update names who approved")
	assert.Equal(t, http.StatusOK, click("U0CAROL01", "trig-4"), "a second click is answered")

	time.Sleep(500 * time.Millisecond)
	out, exitCode := (&cli{t: t, bin: opsbotBinary(t), env: env}).run("audit", "export")
	require.Equal(t, 0, exitCode, out)
	assert.Equal(t, 1, strings.Count(out, `"kind":"execution"`), "the scan ran once")

	// /metrics counts what happened above.
	resp, err = http.Get(base + "/metrics") //nolint:noctx // a test against our own server
	require.NoError(t, err)
	metricsText, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, want := range []string{
		`opsbot_requests_total{command="portcheck",outcome="ok"}`,
		`opsbot_requests_total{command="scan",outcome="pending"} 1`,
		`opsbot_approvals_total{outcome="requested"} 1`,
		`opsbot_approvals_total{outcome="done"} 1`,
		`opsbot_request_duration_seconds_bucket{command="portcheck",le="0.1"}`,
		`opsbot_build_info{version="dev"} 1`,
		"process_resident_memory_bytes",
	} {
		assert.Contains(t, string(metricsText), want)
	}
}
