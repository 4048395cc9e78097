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
	"regexp"
	"slices"
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
	TS     string // the message's ts, as answered
}

// fakeSlack is slacktest's server with recording handlers for the methods
// the adapter calls (its own record nothing, or answer 404). It enforces
// what the real Web API enforces and slacktest does not: chat.update
// changes only a message the app posted with chat.postMessage, never an
// ephemeral one (message_not_found); a reply's thread_ts names the thread
// root (a reply's ts threads under its root); files arrive through the
// external upload (files.getUploadURLExternal, the bytes,
// files.completeUploadExternal). It records whom a message notifies as
// Slack does: a <@U...> mention in a new message's text or blocks; an edit
// (chat.update) notifies no one.
type fakeSlack struct {
	*slacktest.Server
	mu        sync.Mutex
	calls     []apiCall
	ts        atomic.Int64
	limitNext map[string]int    // method -> number of 429s still to answer
	refuse    map[string]string // method -> the error it answers (not_in_channel)
	msgs      map[string]fakeMsg
	uploads   map[string]string // file ID -> content
	files     []fakeFile        // completed uploads
	notified  []string          // user IDs a new message mentioned, in order
}

// fakeMsg is a message the fake holds, by channel/ts.
type fakeMsg struct {
	ephemeral bool
	thread    string // the root's ts for a reply, "" for a root
}

// fakeFile is a file shared by files.completeUploadExternal.
type fakeFile struct {
	ID, Channel, ThreadTS, Title, Content string
}

func newFakeSlack(t *testing.T) *fakeSlack {
	t.Helper()
	f := &fakeSlack{limitNext: map[string]int{}, refuse: map[string]string{}, msgs: map[string]fakeMsg{}, uploads: map[string]string{}}
	f.ts.Store(1700000000)
	answer := func(w http.ResponseWriter, v map[string]any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
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
			if e := f.refuse[method]; e != "" {
				f.mu.Unlock()
				answer(w, map[string]any{"ok": false, "error": e})
				return
			}
			channel := r.PostForm.Get("channel")
			ts := strconv.FormatInt(f.ts.Add(1), 10) + ".000100"
			switch method {
			case "chat.update":
				ts = r.PostForm.Get("ts")
				if m, ok := f.msgs[channel+"/"+ts]; !ok || m.ephemeral {
					f.mu.Unlock()
					answer(w, map[string]any{"ok": false, "error": "message_not_found"})
					return
				}
			case "chat.postMessage":
				thread := r.PostForm.Get("thread_ts")
				if root, ok := f.msgs[channel+"/"+thread]; ok && root.thread != "" {
					thread = root.thread // a reply to a reply joins the root's thread
				}
				f.msgs[channel+"/"+ts] = fakeMsg{thread: thread}
				var once []string // a message notifies each person once
				for _, m := range slackMention.FindAllStringSubmatch(r.PostForm.Get("text")+r.PostForm.Get("blocks"), -1) {
					if !slices.Contains(once, m[1]) {
						once = append(once, m[1])
					}
				}
				f.notified = append(f.notified, once...)
			case "chat.postEphemeral":
				f.msgs[channel+"/"+ts] = fakeMsg{ephemeral: true}
			}
			f.calls = append(f.calls, apiCall{Method: method, Form: r.PostForm, At: time.Now(), TS: ts})
			f.mu.Unlock()
			answer(w, map[string]any{"ok": true, "channel": channel, "ts": ts, "message_ts": ts})
		}
	}
	f.Server = slacktest.NewTestServer(func(c slacktest.Customize) {
		for _, m := range []string{"chat.postMessage", "chat.update", "chat.postEphemeral"} {
			c.Handle("/"+m, record(m))
		}
		c.Handle("/files.getUploadURLExternal", func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			n, err := strconv.Atoi(r.PostForm.Get("length"))
			if r.PostForm.Get("filename") == "" || err != nil || n <= 0 {
				answer(w, map[string]any{"ok": false, "error": "invalid_arguments"})
				return
			}
			id := "F" + strconv.FormatInt(f.ts.Add(1), 10)
			f.mu.Lock()
			f.calls = append(f.calls, apiCall{Method: "files.getUploadURLExternal", Form: r.PostForm, At: time.Now()})
			f.mu.Unlock()
			answer(w, map[string]any{"ok": true, "file_id": id, "upload_url": "http://" + r.Host + "/upload/" + id})
		})
		c.Handle("/upload/", func(w http.ResponseWriter, r *http.Request) {
			file, _, err := r.FormFile("file")
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			b, _ := io.ReadAll(file)
			f.mu.Lock()
			f.uploads[strings.TrimPrefix(r.URL.Path, "/upload/")] = string(b)
			f.mu.Unlock()
			_, _ = io.WriteString(w, "OK")
		})
		c.Handle("/files.completeUploadExternal", func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			var files []struct{ ID, Title string }
			_ = json.Unmarshal([]byte(r.PostForm.Get("files")), &files)
			f.mu.Lock()
			defer f.mu.Unlock()
			f.calls = append(f.calls, apiCall{Method: "files.completeUploadExternal", Form: r.PostForm, At: time.Now()})
			var out []map[string]any
			for _, fl := range files {
				content, ok := f.uploads[fl.ID]
				if !ok {
					answer(w, map[string]any{"ok": false, "error": "file_not_found"})
					return
				}
				f.files = append(f.files, fakeFile{ID: fl.ID, Channel: r.PostForm.Get("channel_id"), ThreadTS: r.PostForm.Get("thread_ts"), Title: fl.Title, Content: content})
				out = append(out, map[string]any{"id": fl.ID, "title": fl.Title})
			}
			answer(w, map[string]any{"ok": true, "files": out})
		})
	})
	f.Start()
	t.Cleanup(f.Stop)
	return f
}

// slackMention is a user mention as Slack reads it in mrkdwn.
var slackMention = regexp.MustCompile(`<@([UW][A-Z0-9]+)(?:\|[^>]*)?>`)

// mentioned returns the users new messages have notified so far, once
// per message.
func (f *fakeSlack) mentioned() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.notified...)
}

// thread is the thread root of a posted message: "" for a root.
func (f *fakeSlack) thread(channel, ts string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.msgs[channel+"/"+ts].thread
}

// shared returns the files shared so far.
func (f *fakeSlack) shared() []fakeFile {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeFile(nil), f.files...)
}

// refuseAll makes method answer err (ok: false) from now on.
func (f *fakeSlack) refuseAll(method, err string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuse[method] = err
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

// hook records what is posted to a response_url, and enforces Slack's
// rule: each response_url takes at most 5 posts within 30 minutes of its
// command; after that it answers 404 (used_url, expired_url).
type hook struct {
	*httptest.Server
	mu      sync.Mutex
	posts   []map[string]any
	limited int // 429s still to answer
	uses    map[string]int
	issued  map[string]time.Time
	refused int
	now     func() time.Time
}

func newHook(t *testing.T) *hook {
	t.Helper()
	h := &hook{uses: map[string]int{}, issued: map[string]time.Time{}, now: time.Now}
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
		now := h.now()
		if _, ok := h.issued[r.URL.Path]; !ok {
			h.issued[r.URL.Path] = now
		}
		switch {
		case now.Sub(h.issued[r.URL.Path]) > 30*time.Minute:
			h.refused++
			h.mu.Unlock()
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte("expired_url"))
			return
		case h.uses[r.URL.Path] >= 5:
			h.refused++
			h.mu.Unlock()
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte("used_url"))
			return
		}
		h.uses[r.URL.Path]++
		h.posts = append(h.posts, m)
		h.mu.Unlock()
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(h.Close)
	return h
}

// refusals is how many posts the hook refused as used or expired.
func (h *hook) refusals() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.refused
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

// waitFor and tick bound require.Eventually in these tests: what another
// goroutine does (an HTTP post, a retry) comes within waitFor even on a
// loaded machine, and is seen within tick of it.
const (
	waitFor = 10 * time.Second
	tick    = 10 * time.Millisecond
)
