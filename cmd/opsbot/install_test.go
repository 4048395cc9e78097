package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/metrics"
	"github.com/opsbot/opsbot/bot"
)

// clearEnv empties every OPSBOT_ variable for the test, so that the
// developer's own settings do not leak in.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OPSBOT_") {
			t.Setenv(k, "")
		}
	}
}

// What serve refuses, config check refuses first, with the same words and
// what is accepted: a setting that passes the check must not become a
// restart loop.
func TestConfigCheck_RefusesWhatServeRefuses(t *testing.T) {
	good := map[string]string{"OPSBOT_SLACK_BOT_TOKEN": "xoxb-1", "OPSBOT_SLACK_SIGNING_SECRET": "s3cret"}
	mm := map[string]string{"OPSBOT_MATTERMOST_URL": "https://chat.example.com", "OPSBOT_MATTERMOST_TOKEN": "tok",
		"OPSBOT_MATTERMOST_COMMAND_TOKENS": "c1", "OPSBOT_MATTERMOST_ACTION_SECRET": strings.Repeat("k", 32)}
	for name, tc := range map[string]struct {
		base map[string]string
		key  string
		val  string
		want string
	}{
		"mattermost URL without a scheme": {mm, "OPSBOT_MATTERMOST_URL", "chat.example.com", "OPSBOT_MATTERMOST_URL is not an http(s) URL, e.g. https://chat.example.com"},
		"a 1-character action secret":     {mm, "OPSBOT_MATTERMOST_ACTION_SECRET", "x", "OPSBOT_MATTERMOST_ACTION_SECRET is too short (1 characters, want 16 or more)"},
		"a Slack user token":              {good, "OPSBOT_SLACK_BOT_TOKEN", "xoxp-1", "OPSBOT_SLACK_BOT_TOKEN must be a bot token (xoxb-...)"},
		"a lease of 5 hours":              {good, "OPSBOT_APPROVAL_LEASE", "5h", "OPSBOT_APPROVAL_LEASE=5h0m0s: give a duration from 1s to 1h"},
		"a port without a colon":          {good, "OPSBOT_HTTP_ADDR", "8080", `OPSBOT_HTTP_ADDR="8080" is not an address to listen on: give HOST:PORT or :PORT`},
		"a metrics port out of range":     {good, "OPSBOT_METRICS_ADDR", ":99999", `OPSBOT_METRICS_ADDR=":99999" is not an address to listen on`},
		"an unknown log level":            {good, "OPSBOT_LOG_LEVEL", "verbose", `OPSBOT_LOG_LEVEL="verbose": accepted debug, info, warn, error`},
		"an unknown log format":           {good, "OPSBOT_LOG_FORMAT", "logfmt", `OPSBOT_LOG_FORMAT="logfmt": accepted text (the default) or json`},
		"a zero shutdown grace":           {good, "OPSBOT_SHUTDOWN_GRACE", "0s", "OPSBOT_SHUTDOWN_GRACE=0s: give a duration from 1s to 10m"},
	} {
		t.Run(name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.base {
				t.Setenv(k, v)
			}
			t.Setenv("OPSBOT_HTTP_ADDR", "127.0.0.1:0")
			code, out, errOut := run(t, "config", "check")
			require.Equal(t, 0, code, "the base settings pass: %s", errOut)
			assert.Contains(t, out, "serve: listens on 127.0.0.1:0")

			t.Setenv(tc.key, tc.val)
			code, out, errOut = run(t, "config", "check")
			assert.Equal(t, 2, code, "config check refuses it")
			assert.Contains(t, errOut, tc.want)
			assert.NotContains(t, out, "policy OK", "no verdict of OK before the refusal")

			code, _, serveErr := run(t, "serve")
			assert.Equal(t, 2, code, "serve refuses it")
			assert.Contains(t, serveErr, tc.want, "with the same words")
		})
	}
}

func TestConfigCheck_NamesThePlatformsServeWillRun(t *testing.T) {
	clearEnv(t)
	t.Setenv("OPSBOT_SLACK_BOT_TOKEN", "xoxb-1")
	t.Setenv("OPSBOT_SLACK_APP_TOKEN", "xapp-1")
	code, out, errOut := run(t, "config", "check")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "  chat: slack\n")
	assert.Contains(t, out, "shutdown grace 20s (at most 30s after SIGTERM)")
}

func TestStore_MistypedSQLitePathCreatesNothing(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "var", "lib", "opsbto", "opsbot.db")
	t.Setenv("OPSBOT_DATABASE", db)
	code, _, errOut := run(t, "config", "check")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "the directory "+filepath.Dir(db)+" does not exist; create it (the bot creates only the file), or correct the path")
	_, err := os.Stat(filepath.Join(dir, "var"))
	assert.True(t, errors.Is(err, os.ErrNotExist), "no directory was created")

	require.NoError(t, os.MkdirAll(filepath.Dir(db), 0o700))
	code, _, errOut = run(t, "config", "check")
	assert.Equal(t, 0, code, errOut)
	assert.FileExists(t, db, "an existing directory gets the file")
}

func TestRun_EveryCommandAnswersUnderOpsbot(t *testing.T) {
	clearEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	code, out, errOut := run(t, "run", "--as", "alice", fmt.Sprintf("/opsbot portcheck 127.0.0.1 %d", port))
	assert.Equal(t, 0, code, errOut)
	assert.Regexp(t, fmt.Sprintf(`Connection to 127\.0\.0\.1 %d port \[tcp/[^\]]+\] succeeded!`, port), out)

	code, out, _ = run(t, "run", "/opsbot scan help")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "/scan")
	code, out, _ = run(t, "run", "/opsbot whoami")
	assert.Equal(t, 0, code, "/opsbot's own subcommands keep their meaning")
	assert.Contains(t, out, "You are shell:")
}

func TestLog_JSONFormatAndLevel(t *testing.T) {
	clearEnv(t)
	t.Setenv("OPSBOT_LOG_FORMAT", "json")
	t.Setenv("OPSBOT_LOG_LEVEL", "info")
	code, _, errOut := run(t, "run", "help")
	require.Equal(t, 0, code)
	sc := bufio.NewScanner(strings.NewReader(errOut))
	var lines int
	for sc.Scan() {
		var rec map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &rec), "a JSON object per line: %s", sc.Text())
		lines++
		if rec["msg"] == "request" {
			assert.Equal(t, "INFO", rec["level"])
			assert.Equal(t, "help", rec["line"])
		}
	}
	assert.Positive(t, lines, "the request was logged at info")

	t.Setenv("OPSBOT_LOG_LEVEL", "")
	t.Setenv("OPSBOT_LOG_FORMAT", "")
	code, _, errOut = run(t, "run", "help")
	require.Equal(t, 0, code)
	assert.Empty(t, errOut, "the terminal's default level is warn: no request lines")
}

// fakeChat is a chatAdapter whose readiness the test sets.
type fakeChat struct{ err error }

func (f *fakeChat) Register(*http.ServeMux)                                {}
func (f *fakeChat) Ready(context.Context) error                            { return f.err }
func (f *fakeChat) Wait(context.Context) error                             { return nil }
func (f *fakeChat) NotifyOutcome(context.Context, bot.Approval, bot.Reply) {}

type pinger struct{ err error }

func (p *pinger) Ping(context.Context) error { return p.err }

func readyz(t *testing.T, rd *readiness, query string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	rd.serveHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz"+query, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestReadyz_NamesTheCauseAndOnePlatformDoesNotTakeTheOtherDown(t *testing.T) {
	var logs bytes.Buffer
	st, sl, mm := &pinger{}, &fakeChat{}, &fakeChat{}
	met := metrics.New("test")
	rd := &readiness{store: st, adapters: []chatAdapter{sl, mm}, names: []string{"slack", "mattermost"},
		log: slog.New(slog.NewTextHandler(&logs, nil)), set: met.SetReady}

	code, body := readyz(t, rd, "")
	assert.Equal(t, 200, code)
	assert.Equal(t, "ready\nstore: ok\nslack: ok\nmattermost: ok\n", body)

	mm.err = errors.New("mattermost: the server at https://chat.example.com does not accept the bot token: connection refused")
	code, body = readyz(t, rd, "")
	assert.Equal(t, 200, code, "Slack still works here: the pod stays in the Slack endpoints")
	assert.Contains(t, body, "ready, but not every chat platform is\n")
	assert.Contains(t, body, "mattermost: not ready: mattermost: the server at https://chat.example.com does not accept the bot token: connection refused\n")
	code, _ = readyz(t, rd, "?all")
	assert.Equal(t, 503, code, "?all: every component")
	assert.Equal(t, 1, strings.Count(logs.String(), "msg=\"not ready\" component=mattermost"), "logged once, not per probe:\n%s", logs.String())
	assert.Contains(t, logs.String(), "connection refused")

	sl.err = errors.New("slack: auth.test refused the bot token (OPSBOT_SLACK_BOT_TOKEN): invalid_auth")
	code, body = readyz(t, rd, "")
	assert.Equal(t, 503, code, "no platform can answer")
	assert.Contains(t, body, "not ready\n")
	assert.Contains(t, body, "slack: not ready: slack: auth.test refused the bot token (OPSBOT_SLACK_BOT_TOKEN): invalid_auth")

	sl.err, mm.err = nil, nil
	st.err = errors.New("dial tcp 10.0.0.5:5432: connect: connection refused")
	code, body = readyz(t, rd, "")
	assert.Equal(t, 503, code, "without the store nothing can be audited")
	assert.Contains(t, body, "store: not ready: the store does not answer: dial tcp 10.0.0.5:5432: connect: connection refused")
	assert.Contains(t, logs.String(), `msg="ready again" component=mattermost`)

	rec := httptest.NewRecorder()
	met.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	assert.Contains(t, rec.Body.String(), `opsbot_ready{component="store"} 0`)
	assert.Contains(t, rec.Body.String(), `opsbot_ready{component="slack"} 1`)
}

// serveProcess starts `opsbot serve` with env and returns its base URL and
// its log, once it listens.
func serveProcess(t *testing.T, env ...string) (string, *lockedLog) {
	t.Helper()
	base, logs, _ := serveCmdProcess(t, env...)
	return base, logs
}

// serveCmdProcess is serveProcess, with the process for signals.
func serveCmdProcess(t *testing.T, env ...string) (string, *lockedLog, *exec.Cmd) {
	t.Helper()
	addr := freePort(t)
	srv := exec.Command(opsbotBinary(t), "serve")
	srv.Env = append(os.Environ(), "OPSBOT_CONFIG=", "OPSBOT_DATABASE="+filepath.Join(t.TempDir(), "opsbot.db"), "OPSBOT_HTTP_ADDR="+addr)
	srv.Env = append(srv.Env, env...)
	logs := &lockedLog{}
	srv.Stdout, srv.Stderr = logs, logs
	require.NoError(t, srv.Start())
	t.Cleanup(func() {
		_ = srv.Process.Kill()
		_ = srv.Wait()
		if t.Failed() {
			t.Logf("opsbot serve output:\n%s", logs.String())
		}
	})
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "msg=serving") }, 15*time.Second, 20*time.Millisecond)
	return "http://" + addr, logs, srv
}

// A wrong Slack bot token in HTTP mode: Slack's auth.test refuses it at
// start (logged with Slack's error), and /readyz says so.
func TestE2E_SlackTokenIsCheckedAtStartAndInReadiness(t *testing.T) {
	t.Parallel()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/auth.test" {
			_, _ = io.WriteString(w, `{"ok":false,"error":"invalid_auth"}`)
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(api.Close)
	base, logs := serveProcess(t, "OPSBOT_SLACK_SIGNING_SECRET="+slackSecret, "OPSBOT_SLACK_BOT_TOKEN=xoxb-revoked", "OPSBOT_SLACK_API_URL="+api.URL+"/")
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), `msg="not ready" component=slack`) }, 10*time.Second, 20*time.Millisecond,
		"the start-up check logs the cause")
	assert.Contains(t, logs.String(), "invalid_auth")
	resp, err := http.Get(base + "/readyz")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Contains(t, string(b), "slack: not ready: slack: auth.test refused the bot token (OPSBOT_SLACK_BOT_TOKEN): invalid_auth")
}

// /metrics on its own address, and not beside the chat endpoints; every
// counter a rate() alert reads starts at zero.
func TestE2E_MetricsOnTheirOwnAddressStartAtZero(t *testing.T) {
	t.Parallel()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"ok":true}`) }))
	t.Cleanup(api.Close)
	maddr := freePort(t)
	base, _ := serveProcess(t, "OPSBOT_SLACK_SIGNING_SECRET="+slackSecret, "OPSBOT_SLACK_BOT_TOKEN=xoxb-1", "OPSBOT_SLACK_API_URL="+api.URL+"/", "OPSBOT_METRICS_ADDR="+maddr)
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "not on the chat address")
	var body string
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + maddr + "/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)
	for _, series := range []string{
		`opsbot_adapter_errors_total{adapter="slack"} 0`,
		`opsbot_requests_total{command="scan",outcome="failed"} 0`,
		`opsbot_requests_total{command="apache",outcome="failed"} 0`,
		`opsbot_approvals_total{outcome="expired"} 0`,
		`opsbot_audit_write_failures_total{kind="started"} 0`,
		`opsbot_busy_total{what="sockets"} 0`,
		`opsbot_busy_total{what="jobs_per_user"} 0`,
		`opsbot_build_info{version=`,
	} {
		assert.Contains(t, body, series)
	}
}

// lockedLog collects a child's output while the test reads it.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
