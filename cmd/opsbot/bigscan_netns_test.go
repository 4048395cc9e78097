package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/commands/probe/testbed"
)

// everyPortOpen makes a target answer on every TCP port: each connection
// is redirected to one listener.
const everyPortOpen = `
table ip nat {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		tcp dport 1-65535 redirect to :7
	}
}
`

// envBigScanBin hands the parent's built binary to the child in the probe
// namespace.
const envBigScanBin = "OPSBOT_TEST_BIGSCAN_BIN"

// A /scan 1-65535 of a host that answers on every port, from Slack and from
// Mattermost, through `opsbot serve` in the probe namespace with the real
// engine: each posts at most the capped number of messages (the first and
// three follow-ups), and the open ports read as one range, not 65 535 rows
// (91 Slack messages and 181 Mattermost posts before).
func TestE2E_FullScanOfAHostOpenOnEveryPortPostsTheCap(t *testing.T) {
	env, child := testbed.Child()
	if !child {
		bed := testbed.New(t, testbed.Options{Targets: []testbed.TargetOptions{{}}})
		tg := bed.Target(1)
		tg.Nft(t, everyPortOpen)
		tg.ListenTCP(t, 7)
		t.Setenv(envBigScanBin, opsbotBinary(t))
		bed.RunInProbe(t, t.Name())
		return
	}
	target := env.Target(1).Addr(false).String()
	mm := newFakeMattermost(t)
	api := newSlackAPI(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
roles:
  oncall: {commands: [scan]}
users:
  "slack:U0ALICE01": [oncall]
  "mattermost:alice": [oncall]
limits:
  scan_ports: 65535
`), 0o600))
	addr := freePort(t)
	srvEnv := append(os.Environ(), "OPSBOT_CONFIG="+cfg, "OPSBOT_DATABASE="+filepath.Join(dir, "opsbot.db"), "OPSBOT_HTTP_ADDR="+addr,
		"OPSBOT_SLACK_SIGNING_SECRET="+slackSecret, "OPSBOT_SLACK_BOT_TOKEN=xoxb-test", "OPSBOT_SLACK_API_URL="+api.URL+"/",
		"OPSBOT_MATTERMOST_URL="+mm.URL, "OPSBOT_MATTERMOST_TOKEN="+mmBotToken, "OPSBOT_MATTERMOST_COMMAND_TOKENS="+mmCmdToken,
		"OPSBOT_MATTERMOST_ACTION_SECRET="+mmSecret, "OPSBOT_PUBLIC_URL=http://"+addr, "OPSBOT_LOG_LEVEL=warn")
	bin := os.Getenv(envBigScanBin)
	require.NotEmpty(t, bin)
	srv := startBot(t, "bigscan", bin, srvEnv, addr)
	sc := slackClient{base: srv.base, hook: api.URL}
	done := target + " tcp 1-65535: 65535 open"

	code, body := sc.slash(t, "U0ALICE01", "/scan "+target+" 1-65535", "trig-bigscan")
	require.Equal(t, http.StatusOK, code, body)
	require.Eventually(t, func() bool { return strings.Contains(body+api.all(), done) }, 3*time.Minute, 200*time.Millisecond, "the Slack result")

	code, cr := mattermostCommand(t, srv.base, mmCmdToken, "ualice", "alice", "/scan "+target+" 1-65535")
	require.Equal(t, http.StatusOK, code)
	inline := fmt.Sprint(cr.Text, cr.Attachments)
	require.Eventually(t, func() bool { return strings.Contains(inline+mm.all(), done) }, 3*time.Minute, 200*time.Millisecond, "the Mattermost result")

	// A graceful stop delivers everything still on its way (follow-ups,
	// files) before the process exits: then nothing more can come.
	require.NoError(t, srv.cmd.Process.Signal(os.Interrupt))
	select {
	case <-srv.exited:
	case <-time.After(time.Minute):
		t.Fatal("opsbot serve did not stop")
	}
	slackMsgs := api.count("/chat.postMessage") + api.count("/hook/")
	assert.LessOrEqual(t, slackMsgs, 4, "Slack messages")
	assert.Contains(t, api.all()+body, "1-65535/tcp", "one range")
	assert.LessOrEqual(t, mm.created(), 4, "Mattermost posts")
	assert.Contains(t, inline+mm.all(), "1-65535/tcp", "one range")
	t.Logf("a 65535-open-port scan: %d Slack messages, %d Mattermost posts", slackMsgs, mm.created())
}
