package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// SIGTERM while a command runs: serve stops taking requests, gives the
// running command its grace period, cancels it, and the result that
// reaches Slack says it was cut by the shutdown; the process exits 0.
func TestE2E_ShutdownCancelsRunningCommandsAndSaysSo(t *testing.T) {
	t.Parallel()
	api := &slackAPI{}
	api.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		text := string(b)
		if u, err := url.QueryUnescape(text); err == nil {
			text = u
		}
		api.mu.Lock()
		api.sent = append(api.sent, r.URL.Path+" "+text)
		api.mu.Unlock()
		_, _ = io.WriteString(w, `{"ok":true,"channel":"C1","ts":"1700000000.000100"}`)
	}))
	t.Cleanup(api.Close)
	dir := t.TempDir()
	addr := freePort(t)
	srv := exec.Command(opsbotBinary(t), "serve")
	srv.Env = append(os.Environ(), "OPSBOT_DATABASE="+filepath.Join(dir, "opsbot.db"), "OPSBOT_HTTP_ADDR="+addr,
		"OPSBOT_SLACK_SIGNING_SECRET="+slackSecret, "OPSBOT_SLACK_BOT_TOKEN=xoxb-test", "OPSBOT_SLACK_API_URL="+api.URL+"/",
		"OPSBOT_SHUTDOWN_GRACE=1s", "OPSBOT_CONFIG=")
	var logs bytes.Buffer
	srv.Stdout, srv.Stderr = &logs, &logs
	require.NoError(t, srv.Start())
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	t.Cleanup(func() {
		_ = srv.Process.Kill()
		if t.Failed() {
			t.Logf("opsbot serve output:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 15*time.Second, 50*time.Millisecond)

	_, portText, _ := net.SplitHostPort(freePort(t)) // free now; the bot's /listen takes it
	port, err := strconv.Atoi(portText)
	require.NoError(t, err)
	body := url.Values{"command": {"/listen"}, "text": {fmt.Sprintf("%d for 2m", port)}, "user_id": {"U1"}, "user_name": {"alice"},
		"channel_id": {"C1"}, "channel_name": {"inc-web"}, "team_id": {"T1"}, "trigger_id": {"t1"}, "response_url": {api.URL + "/hook/t1"}}.Encode()
	req, _ := http.NewRequest(http.MethodPost, base+"/slack/commands", bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	stamp, sig := slackSign(body, time.Now())
	req.Header.Set("X-Slack-Request-Timestamp", stamp)
	req.Header.Set("X-Slack-Signature", sig)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	ack, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(ack))
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 10*time.Second, 50*time.Millisecond, "the /listen runs")

	start := time.Now()
	require.NoError(t, srv.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, "serve exits 0 after a graceful shutdown")
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not exit after SIGTERM")
	}
	took := time.Since(start)
	t.Logf("exited %s after SIGTERM", took.Round(time.Millisecond))
	assert.Less(t, took, 15*time.Second, "the grace period (1 s) bounds the wait, not the 2 minutes the command asked for")
	all := api.all()
	assert.Contains(t, all, "opsbot was shutting down", "the cut result reached Slack and says why")
	assert.True(t, strings.Contains(logs.String(), "canceled running requests"), logs.String())
}
