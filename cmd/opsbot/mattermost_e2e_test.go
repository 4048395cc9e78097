package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsbot/opsbot/adapters/mattermost/mmapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The Mattermost path end to end: the built binary in `opsbot serve`, a
// stand-in for the Mattermost server's API v4 (no server can run here), and
// the bot's endpoints fed real payloads in the server's formats.

const (
	mmBotToken = "mmbottoken0000000000000000"
	mmCmdToken = "cmdtoken00000000000000000a"
	mmSecret   = "0123456789abcdef0123456789abcdef"
)

type fakeMattermost struct {
	*httptest.Server
	mu      sync.Mutex
	posts   []*mmapi.Post // created and updated
	creates int
}

// created is how many posts were created (not updated).
func (f *fakeMattermost) created() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.creates
}

// all is every post's JSON, one a line.
func (f *fakeMattermost) all() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, p := range f.posts {
		j, _ := json.Marshal(p)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

func newFakeMattermost(t *testing.T) *fakeMattermost {
	f := &fakeMattermost{}
	users := map[string]string{"ualice": "alice", "ucarol": "carol", "me": "opsbot"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v4/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		name, ok := users[r.PathValue("id")]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(mmapi.User{ID: r.PathValue("id"), Username: name})
	})
	mux.HandleFunc("GET /api/v4/system/ping", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"status":"OK"}`)
	})
	save := func(w http.ResponseWriter, r *http.Request) {
		p := &mmapi.Post{}
		_ = json.NewDecoder(r.Body).Decode(p)
		f.mu.Lock()
		if r.Method == http.MethodPost {
			f.creates++
		}
		if p.ID == "" {
			p.ID = fmt.Sprintf("post%022d", len(f.posts)+1)
		}
		f.posts = append(f.posts, p)
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(p)
	}
	mux.HandleFunc("POST /api/v4/posts", save)
	mux.HandleFunc("PUT /api/v4/posts/{id}", save)
	mux.HandleFunc("PUT /api/v4/posts/{id}/patch", save)
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

func TestE2E_MattermostServe(t *testing.T) {
	mm := newFakeMattermost(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
roles:
  oncall:   {commands: [portcheck, scan]}
  approver: {commands: [portcheck], approve: [scan]}
users:
  "mattermost:alice": [oncall]
  "mattermost:carol": [approver]
approval:
  required: [scan]
`), 0o600))
	addr := freePort(t)
	db := filepath.Join(dir, "opsbot.db")
	env := append(os.Environ(),
		"OPSBOT_CONFIG="+cfg, "OPSBOT_DATABASE="+db, "OPSBOT_HTTP_ADDR="+addr,
		"OPSBOT_MATTERMOST_URL="+mm.URL, "OPSBOT_MATTERMOST_TOKEN="+mmBotToken,
		"OPSBOT_MATTERMOST_COMMAND_TOKENS=othertoken000000000000000,"+mmCmdToken,
		"OPSBOT_MATTERMOST_ACTION_SECRET="+mmSecret, "OPSBOT_PUBLIC_URL=http://"+addr)
	base := startServe(t, env, addr, "/healthz")

	command := func(token, userID, userName, line string) (int, mmapi.CommandResponse) {
		name, text, _ := strings.Cut(line, " ")
		form := url.Values{"token": {token}, "team_id": {"team1"}, "channel_id": {"chan1"}, "channel_name": {"inc-web"},
			"user_id": {userID}, "user_name": {userName}, "command": {name}, "text": {text}, "trigger_id": {"trig"}, "response_url": {mm.URL + "/hooks/commands/x"}}
		req, _ := http.NewRequest(http.MethodPost, base+"/mattermost/command", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Token "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var cr mmapi.CommandResponse
		_ = json.NewDecoder(resp.Body).Decode(&cr)
		return resp.StatusCode, cr
	}
	click := func(userID string, ctxMap map[string]any) (int, string) {
		body, _ := json.Marshal(mmapi.PostActionIntegrationRequest{UserID: userID, ChannelID: "chan1", TeamID: "team1", PostID: "post1", Context: ctxMap})
		resp, err := http.Post(base+"/mattermost/action", "application/json", bytes.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	text := func(cr mmapi.CommandResponse) string {
		b, _ := json.Marshal(cr)
		return string(b)
	}

	// A /portcheck on a listening loopback port: the nc-style line.
	port := listener(t)
	code, cr := command(mmCmdToken, "ualice", "alice", fmt.Sprintf("/portcheck 127.0.0.1 %d", port))
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, text(cr), fmt.Sprintf("Connection to 127.0.0.1 %d port [tcp/*] succeeded!", port))

	// A wrong token: nothing run, and said with a 200 (Mattermost shows
	// only a generic error for any other status).
	code, cr = command("wrongtoken000000000000000", "ualice", "alice", "/portcheck 127.0.0.1 1")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, cr.Text, "nothing ran")

	// A disruptive command gets buttons.
	code, cr = command(mmCmdToken, "ualice", "alice", fmt.Sprintf("/scan 127.0.0.1 %d", port))
	require.Equal(t, http.StatusOK, code)
	var approve map[string]any
	for _, att := range cr.Attachments {
		for _, a := range att.Actions {
			if strings.HasPrefix(a.Name, "Approve") {
				approve = a.Integration.Context
			}
		}
	}
	require.NotNil(t, approve, text(cr))

	// A forged context is refused.
	forged := map[string]any{}
	for k, v := range approve {
		forged[k] = v
	}
	for k, v := range forged {
		if s, ok := v.(string); ok && strings.Contains(s, "/opsbot approve") {
			forged[k] = strings.Replace(s, "approve", "deny", 1)
		}
	}
	code, body := click("ucarol", forged)
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "nothing ran")

	// carol's click approves and runs it once; the post is updated.
	code, body = click("ucarol", approve)
	require.Equal(t, http.StatusOK, code, body)
	var upd mmapi.PostActionIntegrationResponse
	require.NoError(t, json.Unmarshal([]byte(body), &upd))
	require.NotNil(t, upd.Update, "the prompt is updated in place")
	updated, _ := json.Marshal(upd.Update)
	assert.Contains(t, string(updated), fmt.Sprintf("%d/tcp", port), "the result")
	assert.Contains(t, string(updated), "carol", "who decided")
	assert.NotContains(t, string(updated), `"actions"`, "buttons gone")
	// A replayed click runs nothing more.
	code, body = click("ucarol", approve)
	assert.Less(t, code, 500, body)

	out, exitCode := (&cli{t: t, bin: opsbotBinary(t), env: env}).run("audit", "export")
	require.Equal(t, 0, exitCode, out)
	assert.Equal(t, 1, strings.Count(out, `"kind":"execution"`), out)
	assert.Equal(t, 2, strings.Count(out, `"kind":"rejected"`), "the wrong token and the forged click are audited")
}

// startServe runs the built binary as `opsbot serve` with env until the
// test ends, waits until path answers 200, and returns the base URL. On
// failure the server's output is logged.
func startServe(t *testing.T, env []string, addr, path string) string {
	t.Helper()
	srv := exec.Command(opsbotBinary(t), "serve")
	srv.Env = env
	var logs bytes.Buffer
	srv.Stdout, srv.Stderr = &logs, &logs
	require.NoError(t, srv.Start())
	t.Cleanup(func() {
		_ = srv.Process.Signal(os.Interrupt)
		_ = srv.Wait()
		if t.Failed() {
			t.Logf("opsbot serve output:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + path)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 15*time.Second, 50*time.Millisecond)
	return base
}
