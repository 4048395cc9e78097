package slack

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack/slacktest"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
)

const testSecret = "8f742231b10e8888abcd99yyyzzz85a5"

// fakeHandler is a bot.Handler whose behaviour each test sets.
type fakeHandler struct {
	HandleFn func(ctx context.Context, req bot.Request) bot.Reply
	calls    atomic.Int32
	mu       sync.Mutex
	reqs     []bot.Request
}

func (f *fakeHandler) Handle(ctx context.Context, req bot.Request) bot.Reply {
	f.calls.Add(1)
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	if f.HandleFn == nil {
		return bot.Reply{Status: bot.StatusOK, Title: "ok"}
	}
	return f.HandleFn(ctx, req)
}

func (f *fakeHandler) requests() []bot.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bot.Request(nil), f.reqs...)
}

// fakeAuditor records audit records.
type fakeAuditor struct {
	mu   sync.Mutex
	recs []bot.AuditRecord
}

func (f *fakeAuditor) AppendAudit(_ context.Context, r bot.AuditRecord) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs = append(f.recs, r)
	return int64(len(f.recs)), nil
}

func (f *fakeAuditor) records() []bot.AuditRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bot.AuditRecord(nil), f.recs...)
}

// apiCall is one Web API call the fake Slack received.
type apiCall struct {
	Method string
	Form   url.Values
	At     time.Time
}

// fakeSlack is slacktest's server with recording handlers for the methods
// the adapter calls (its own record nothing, or answer 404).
type fakeSlack struct {
	*slacktest.Server
	mu        sync.Mutex
	calls     []apiCall
	ts        atomic.Int64
	limitNext map[string]int // method -> number of 429s still to answer
}

func newFakeSlack(t *testing.T) *fakeSlack {
	t.Helper()
	f := &fakeSlack{limitNext: map[string]int{}}
	f.ts.Store(1700000000)
	record := func(method string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			f.mu.Lock()
			if f.limitNext[method] > 0 {
				f.limitNext[method]--
				f.mu.Unlock()
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			f.calls = append(f.calls, apiCall{Method: method, Form: r.PostForm, At: time.Now()})
			f.mu.Unlock()
			ts := r.PostForm.Get("ts")
			if ts == "" {
				ts = strconv.FormatInt(f.ts.Add(1), 10) + ".000100"
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": r.PostForm.Get("channel"), "ts": ts, "message_ts": ts})
		}
	}
	f.Server = slacktest.NewTestServer(func(c slacktest.Customize) {
		for _, m := range []string{"chat.postMessage", "chat.update", "chat.postEphemeral"} {
			c.Handle("/"+m, record(m))
		}
	})
	f.Start()
	t.Cleanup(f.Stop)
	return f
}

func (f *fakeSlack) rateLimit(method string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limitNext[method] = n
}

func (f *fakeSlack) got(method string) []apiCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []apiCall
	for _, c := range f.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// hook records what is posted to a response_url.
type hook struct {
	*httptest.Server
	mu      sync.Mutex
	posts   []map[string]any
	limited int // 429s still to answer
}

func newHook(t *testing.T) *hook {
	t.Helper()
	h := &hook{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &m)
		h.mu.Lock()
		if h.limited > 0 {
			h.limited--
			h.mu.Unlock()
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		h.posts = append(h.posts, m)
		h.mu.Unlock()
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) got() []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]any(nil), h.posts...)
}

// testAdapter is an adapter wired to a fake Slack, served over HTTP.
type testAdapter struct {
	*Adapter
	slack   *fakeSlack
	hook    *hook
	handler *fakeHandler
	audit   *fakeAuditor
	srv     *httptest.Server
	sleepMu sync.Mutex
}

func newTestAdapter(t *testing.T, h bot.Handler, tweak func(*Config)) *testAdapter {
	t.Helper()
	ta := &testAdapter{slack: newFakeSlack(t), hook: newHook(t), audit: &fakeAuditor{}}
	if fh, ok := h.(*fakeHandler); ok {
		ta.handler = fh
	}
	cfg := Config{SigningSecret: testSecret, BotToken: "xoxb-test-token", APIURL: ta.slack.GetAPIURL(), Handler: h, Audit: ta.audit}
	if tweak != nil {
		tweak(&cfg)
	}
	a, err := New(cfg)
	require.NoError(t, err)
	a.inlineWait = 300 * time.Millisecond
	a.editInterval = 50 * time.Millisecond
	ta.Adapter = a
	mux := http.NewServeMux()
	a.Register(mux)
	ta.srv = httptest.NewServer(mux)
	t.Cleanup(ta.srv.Close)
	return ta
}

// sign sets the headers Slack sets: v0=HMAC-SHA256(secret, "v0:ts:body").
func sign(h http.Header, secret string, ts time.Time, body string) {
	stamp := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	_, _ = fmt.Fprintf(mac, "v0:%s:%s", stamp, body)
	h.Set("X-Slack-Request-Timestamp", stamp)
	h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
}

// post sends a signed form to one of the adapter's endpoints.
func (ta *testAdapter) post(t *testing.T, path, body string, edit func(*http.Request)) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ta.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	sign(req.Header, testSecret, time.Now(), body)
	if edit != nil {
		edit(req)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// slashBody is the form Slack posts for a slash command.
func (ta *testAdapter) slashBody(command, text, user, trigger string) string {
	return url.Values{
		"token": {"verification-token"}, "team_id": {"T0001"}, "team_domain": {"example"},
		"channel_id": {"C2147483705"}, "channel_name": {"incident-42"},
		"user_id": {user}, "user_name": {strings.ToLower(user) + "-name"},
		"command": {command}, "text": {text},
		"response_url": {ta.hook.URL + "/commands/T0001/" + trigger},
		"trigger_id":   {trigger}, "api_app_id": {"A123"},
	}.Encode()
}

// clickBody is the form Slack posts when a button is clicked.
func (ta *testAdapter) clickBody(t *testing.T, user, value, label, trigger, messageTS string) string {
	t.Helper()
	payload := map[string]any{
		"type":         "block_actions",
		"user":         map[string]any{"id": user, "username": strings.ToLower(user), "name": strings.ToLower(user) + "-name", "team_id": "T0001"},
		"api_app_id":   "A123",
		"token":        "verification-token",
		"container":    map[string]any{"type": "message", "message_ts": messageTS, "channel_id": "C2147483705", "is_ephemeral": false},
		"trigger_id":   trigger,
		"team":         map[string]any{"id": "T0001", "domain": "example"},
		"channel":      map[string]any{"id": "C2147483705", "name": "incident-42"},
		"message":      map[string]any{"type": "message", "ts": messageTS, "text": "prompt"},
		"response_url": ta.hook.URL + "/actions/T0001/" + trigger,
		"actions": []map[string]any{{
			"action_id": "opsbot0", "block_id": "b1", "type": "button", "value": value,
			"text": map[string]any{"type": "plain_text", "text": label, "emoji": true}, "action_ts": "1700000001.000200",
		}},
	}
	b, err := json.Marshal(payload)
	require.NoError(t, err)
	return url.Values{"payload": {string(b)}}.Encode()
}

// eventually waits for cond.
func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting: %s", msg)
}
