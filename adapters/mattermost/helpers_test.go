package mattermost

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsbot/opsbot/adapters/mattermost/mmapi"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
)

const (
	testBotToken  = "bot-access-token-0123456789"
	testCmdToken  = "slash-token-portcheck-abcdef"
	testCmdToken2 = "slash-token-opsbot-uvwxyz"
	testSecret    = "0123456789abcdef0123456789abcdef0123456789abcdef"
	testChannel   = "chan0000000000000000000000"
)

// call is one API v4 request the bot made to the fake server.
type call struct {
	Method, Path string
	Post         *mmapi.Post // for posts routes
	Body         []byte
}

// mmServer implements the API v4 routes the bot calls, and a command hook
// for response_url, recording every call.
type mmServer struct {
	*httptest.Server
	t     *testing.T
	mu    sync.Mutex
	calls []call
	posts map[string]*mmapi.Post
	users map[string]*mmapi.User
	seq   int
	// denyUpdate makes PUT /posts/{id} answer 403, as for a post the bot
	// does not own.
	denyUpdate bool
	files      map[string]string // uploaded file ID -> content
	prefix     string            // the subpath the site is served under ("" = none)
	// notified are the usernames new posts mentioned, as the server
	// reads mentions: @username of a known user in a post's message (not
	// its attachments), on creation only (an edit notifies no one).
	notified []string
}

// mmMention is an @ mention as the server reads it: at a word start, a
// username's characters after it (a zero-width space breaks it).
var mmMention = regexp.MustCompile(`(?:^|[^\p{L}\p{N}_.\-])@([a-z0-9._\-]+)`)

// mentioned returns the usernames new posts have notified so far.
func (s *mmServer) mentioned() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.notified...)
}

// newMMServerAt serves the site under a subpath (SiteURL
// https://host/sub): the API and the command hooks live only below it.
func newMMServerAt(t *testing.T, prefix string) *mmServer {
	t.Helper()
	s := &mmServer{t: t, files: map[string]string{}, prefix: prefix, posts: map[string]*mmapi.Post{}, users: map[string]*mmapi.User{
		"uCarol00000000000000000000": {ID: "uCarol00000000000000000000", Username: "carol", FirstName: "Carol", LastName: "Danvers"},
		"uDave000000000000000000000": {ID: "uDave000000000000000000000", Username: "dave"},
		"uBot0000000000000000000000": {ID: "uBot0000000000000000000000", Username: "opsbot", IsBot: true},
	}}
	mux := http.NewServeMux()
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !strings.EqualFold(r.Header.Get("Authorization"), "Bearer "+testBotToken) {
				appError(w, http.StatusUnauthorized, "api.context.session_expired.app_error")
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("POST /api/v4/files", auth(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseMultipartForm(8 << 20); err != nil {
			appError(w, http.StatusBadRequest, "api.file.upload_file.read_form.app_error")
			return
		}
		fhs := r.MultipartForm.File["files"]
		if len(fhs) != 1 || r.FormValue("channel_id") == "" {
			appError(w, http.StatusBadRequest, "api.file.upload_file.incorrect_number_of_files.app_error")
			return
		}
		fh, _ := fhs[0].Open()
		content, _ := io.ReadAll(fh)
		s.mu.Lock()
		s.seq++
		id := fmt.Sprintf("file%022d", s.seq)
		s.files[id] = string(content)
		s.calls = append(s.calls, call{Method: r.Method, Path: r.URL.Path, Body: content})
		s.mu.Unlock()
		writeJSON(w, http.StatusCreated, mmapi.FileUploadResponse{FileInfos: []*mmapi.FileInfo{{ID: id, Name: fhs[0].Filename, ChannelID: r.FormValue("channel_id")}}})
	}))
	mux.HandleFunc("POST /api/v4/posts", auth(func(w http.ResponseWriter, r *http.Request) {
		p, body := s.readPost(r)
		s.mu.Lock()
		for _, id := range p.FileIDs {
			if _, ok := s.files[id]; !ok {
				s.mu.Unlock()
				appError(w, http.StatusBadRequest, "api.post.create_post.attach_files.error")
				return
			}
		}
		s.seq++
		p.ID = fmt.Sprintf("post%022d", s.seq)
		p.UserID = "uBot0000000000000000000000"
		s.posts[p.ID] = p
		for _, m := range mmMention.FindAllStringSubmatch(p.Message, -1) {
			name := strings.TrimRight(m[1], ".-_") // the server trims trailing punctuation
			for _, u := range s.users {
				if u.Username == name {
					s.notified = append(s.notified, name)
				}
			}
		}
		s.calls = append(s.calls, call{Method: r.Method, Path: r.URL.Path, Post: p, Body: body})
		s.mu.Unlock()
		writeJSON(w, http.StatusCreated, p)
	}))
	update := func(w http.ResponseWriter, r *http.Request) {
		p, body := s.readPost(r)
		id := r.PathValue("id")
		s.mu.Lock()
		s.calls = append(s.calls, call{Method: r.Method, Path: r.URL.Path, Post: p, Body: body})
		_, known := s.posts[id]
		deny := s.denyUpdate
		if known && !deny {
			p.ID = id
			s.posts[id] = p
		}
		s.mu.Unlock()
		switch {
		case deny:
			appError(w, http.StatusForbidden, "api.context.permissions.app_error")
		case !known:
			appError(w, http.StatusNotFound, "app.post.get.app_error")
		default:
			writeJSON(w, http.StatusOK, p)
		}
	}
	mux.HandleFunc("PUT /api/v4/posts/{id}", auth(update))
	mux.HandleFunc("PUT /api/v4/posts/{id}/patch", auth(update))
	mux.HandleFunc("GET /api/v4/users/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if id == "me" {
			id = "uBot0000000000000000000000"
		}
		s.mu.Lock()
		s.calls = append(s.calls, call{Method: r.Method, Path: r.URL.Path})
		u, ok := s.users[id]
		s.mu.Unlock()
		if !ok {
			appError(w, http.StatusNotFound, "app.user.missing_account.const")
			return
		}
		writeJSON(w, http.StatusOK, u)
	}))
	mux.HandleFunc("POST /hooks/commands/{id}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.calls = append(s.calls, call{Method: r.Method, Path: r.URL.Path, Body: body})
		s.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	var h http.Handler = mux
	if prefix != "" {
		outer := http.NewServeMux()
		outer.Handle(prefix+"/", http.StripPrefix(prefix, mux))
		h = outer
	}
	s.Server = httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

// file returns an uploaded file's content.
func (s *mmServer) file(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[id]
}

func appError(w http.ResponseWriter, status int, id string) {
	writeJSON(w, status, &mmapi.AppError{ID: id, Message: id, StatusCode: status})
}

func (s *mmServer) readPost(r *http.Request) (*mmapi.Post, []byte) {
	body, err := io.ReadAll(r.Body)
	require.NoError(s.t, err)
	var p mmapi.Post
	require.NoError(s.t, json.Unmarshal(body, &p), "post body %s", body)
	return &p, body
}

// recorded returns the calls so far whose method and path prefix match.
func (s *mmServer) recorded(method, pathPrefix string) []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []call
	for _, c := range s.calls {
		if c.Method == method && strings.HasPrefix(c.Path, pathPrefix) {
			out = append(out, c)
		}
	}
	return out
}

// waitFor polls until at least n matching calls were made.
func (s *mmServer) waitFor(t *testing.T, n int, method, pathPrefix string) []call {
	t.Helper()
	var got []call
	require.Eventually(t, func() bool {
		got = s.recorded(method, pathPrefix)
		return len(got) >= n
	}, 5*time.Second, 10*time.Millisecond, "waiting for %d %s %s", n, method, pathPrefix)
	return got
}

// handlerFunc is a fake bot.Handler recording what it is asked.
type fakeHandler struct {
	mu   sync.Mutex
	reqs []bot.Request
	fn   func(ctx context.Context, req bot.Request) bot.Reply
}

func (h *fakeHandler) Handle(ctx context.Context, req bot.Request) bot.Reply {
	h.mu.Lock()
	h.reqs = append(h.reqs, req)
	h.mu.Unlock()
	return h.fn(ctx, req)
}

func (h *fakeHandler) requests() []bot.Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]bot.Request(nil), h.reqs...)
}

// fakeAudit records what the adapter audits.
type fakeAudit struct {
	mu   sync.Mutex
	recs []bot.AuditRecord
}

func (f *fakeAudit) AppendAudit(_ context.Context, r bot.AuditRecord) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs = append(f.recs, r)
	return int64(len(f.recs)), nil
}

func (f *fakeAudit) records() []bot.AuditRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bot.AuditRecord(nil), f.recs...)
}

// fixture is an adapter wired to a fake server, with its mux.
type fixture struct {
	srv   *mmServer
	a     *Adapter
	mux   *http.ServeMux
	audit *fakeAudit
	now   time.Time
	clock func() time.Time
}

func newFixture(t *testing.T, h bot.Handler) *fixture { return newFixtureAt(t, h, "") }

// newFixtureAt talks to a server whose site is under prefix
// (OPSBOT_MATTERMOST_URL = https://host/prefix).
func newFixtureAt(t *testing.T, h bot.Handler, prefix string) *fixture {
	t.Helper()
	f := &fixture{srv: newMMServerAt(t, prefix), mux: http.NewServeMux(), audit: &fakeAudit{}, now: time.Now()}
	var mu sync.Mutex
	f.clock = func() time.Time { mu.Lock(); defer mu.Unlock(); return f.now }
	a, err := New(Config{
		URL: f.srv.URL + prefix, Token: testBotToken,
		CommandTokens: []string{testCmdToken, testCmdToken2},
		ActionSecret:  testSecret,
		PublicURL:     "https://opsbot.example.com",
		Handler:       h, Audit: f.audit,
		Now: func() time.Time { return f.clock() },
	})
	require.NoError(t, err)
	f.a = a
	a.Register(f.mux)
	return f
}

// commandForm is a slash command as Mattermost posts it.
func (f *fixture) commandForm(command, text, userID, userName string) url.Values {
	return url.Values{
		"channel_id":   {testChannel},
		"channel_name": {"incident-42"},
		"command":      {command},
		"response_url": {f.srv.URL + f.srv.prefix + "/hooks/commands/hookid0000000000000000000"},
		"team_domain":  {"ops"},
		"team_id":      {"team000000000000000000000a"},
		"text":         {text},
		"token":        {testCmdToken},
		"trigger_id":   {"trigger-abc"},
		"user_id":      {userID},
		"user_name":    {userName},
	}
}

// postCommand sends a slash command with the Authorization header the
// server sets ("" leaves it out).
func (f *fixture) postCommand(t *testing.T, form url.Values, authToken string) (*httptest.ResponseRecorder, *mmapi.CommandResponse) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/mattermost/command", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Accept", "application/json")
	if authToken != "" {
		r.Header.Set("Authorization", "Token "+authToken)
	}
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	return w, serverReadsCommand(t, w)
}

// The Mattermost server's handling of the bot's answers, from its source
// (server/channels/app/command.go, integration_action.go): an answer to a
// command or a button click that is not HTTP 200 becomes a generic error
// and its text is dropped; a command answer is read through a 1 MiB limit
// (MaxIntegrationResponseSize), and a longer one is cut and fails. The
// helpers return what the server makes of the answer: nil when the user
// sees only the generic error.
const mmMaxIntegrationResponse = 1 << 20

func serverReadsCommand(t *testing.T, w *httptest.ResponseRecorder) *mmapi.CommandResponse {
	t.Helper()
	if w.Code != http.StatusOK {
		return nil
	}
	if w.Body.Len() > mmMaxIntegrationResponse {
		t.Logf("command answer of %d bytes: the server cuts it at 1 MiB and fails", w.Body.Len())
		return nil
	}
	if !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		return nil
	}
	resp := &mmapi.CommandResponse{}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), resp))
	return resp
}

// click sends a button click as the server does, for the given action of a
// posted attachment: the context goes through JSON as the server stores it.
func (f *fixture) click(t *testing.T, act *mmapi.PostAction, userID, postID string, mutate func(map[string]any)) (*httptest.ResponseRecorder, *mmapi.PostActionIntegrationResponse) {
	t.Helper()
	raw, err := json.Marshal(act.Integration.Context)
	require.NoError(t, err)
	var ctxMap map[string]any
	require.NoError(t, json.Unmarshal(raw, &ctxMap))
	if mutate != nil {
		mutate(ctxMap)
	}
	in := mmapi.PostActionIntegrationRequest{
		UserID: userID, UserName: "spoofed-name", ChannelID: testChannel, ChannelName: "incident-42",
		TeamID: "team000000000000000000000a", TeamName: "ops", PostID: postID,
		TriggerID: "trigger-xyz", Type: mmapi.PostActionTypeButton, Context: ctxMap,
	}
	body, err := json.Marshal(in)
	require.NoError(t, err)
	return f.postAction(t, body)
}

func (f *fixture) postAction(t *testing.T, body []byte) (*httptest.ResponseRecorder, *mmapi.PostActionIntegrationResponse) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/mattermost/action", strings.NewReader(string(body)))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	var resp *mmapi.PostActionIntegrationResponse
	if w.Code == http.StatusOK && strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		resp = &mmapi.PostActionIntegrationResponse{}
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), resp))
	}
	return w, resp
}

func buttonNamed(t *testing.T, atts []*mmapi.MessageAttachment, name string) *mmapi.PostAction {
	t.Helper()
	for _, a := range atts {
		for _, b := range a.Actions {
			if b.Name == name {
				return b
			}
		}
	}
	require.Failf(t, "no button", "no %q button in %d attachments", name, len(atts))
	return nil
}

func countActions(atts []*mmapi.MessageAttachment) int {
	n := 0
	for _, a := range atts {
		n += len(a.Actions)
	}
	return n
}
