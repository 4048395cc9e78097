package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

func TestE2E_SlackServe(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"ok":true,"channel":"C1","ts":"1700000000.000100"}`)
	}))
	t.Cleanup(api.Close)
	dir := t.TempDir()
	addr := freePort(t)
	srv := exec.Command(opsbotBinary(t), "serve")
	srv.Env = append(os.Environ(), "OPSBOT_CONFIG=", "OPSBOT_DATABASE="+filepath.Join(dir, "opsbot.db"), "OPSBOT_HTTP_ADDR="+addr,
		"OPSBOT_SLACK_SIGNING_SECRET="+slackSecret, "OPSBOT_SLACK_BOT_TOKEN=xoxb-test", "OPSBOT_SLACK_API_URL="+api.URL+"/")
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
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 15*time.Second, 50*time.Millisecond)

	post := func(body string, ts time.Time, sign bool) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, base+"/slack/commands", bytes.NewBufferString(body))
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
	form := url.Values{"command": {"/portcheck"}, "text": {fmt.Sprintf("127.0.0.1 %d", port)}, "user_id": {"U024BE7LH"}, "user_name": {"alice"},
		"channel_id": {"C1"}, "channel_name": {"inc-web"}, "team_id": {"T1"}, "trigger_id": {"trig-1"}, "response_url": {api.URL + "/hook"}}.Encode()

	code, body := post(form, time.Now(), true)
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, fmt.Sprintf("Connection to 127.0.0.1 %d port [tcp/*] succeeded!", port))

	code, _ = post(form, time.Now(), false)
	assert.Equal(t, http.StatusUnauthorized, code, "a bad signature")
	code, _ = post(form, time.Now().Add(-6*time.Minute), true)
	assert.Equal(t, http.StatusUnauthorized, code, "outside the 5-minute window")
}
