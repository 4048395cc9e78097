package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
)

const policyAlice = "roles:\n  ops: {commands: [\"*\"]}\nusers:\n  \"shell:alice\": [ops]\n"

func whoami(t *testing.T, m *Main) string {
	t.Helper()
	r := m.Handler.Handle(context.Background(), bot.Request{Platform: "shell", User: "alice", Line: "/opsbot whoami"})
	return r.Fields[0].Value
}

// A good file takes effect at once for new requests; a bad one changes
// nothing and says why, in the error, the log and /readyz.
func TestReload_GoodPolicyTakesEffectBadOneKeepsTheOld(t *testing.T) {
	clearEnv(t)
	t.Setenv("OPSBOT_DATABASE", filepath.Join(t.TempDir(), "opsbot.db"))
	file := writeFile(t, policyAlice)
	var logs lockedLog
	m, err := NewMain(t.Context(), file, &logs)
	require.NoError(t, err)
	t.Cleanup(m.Close)
	assert.Equal(t, "ops", whoami(t, m))

	require.NoError(t, os.WriteFile(file, []byte("roles:\n  ops: {commands: [\"*\"]}\n  oncall: {commands: [scan]}\nusers:\n  \"shell:alice\": [ops, oncall]\n"), 0o600))
	require.NoError(t, m.Reload(t.Context()))
	assert.Equal(t, "oncall, ops", whoami(t, m), "the new policy is in force")
	assert.Empty(t, m.policyStatus())
	assert.Equal(t, m.Router.Replica(), m.live.Load().Replica(), "the same replica name in leases")

	require.NoError(t, os.WriteFile(file, []byte("roles:\n  ops: {commands: [\"*\"]}\nuserz: {}\n"), 0o600))
	err = m.Reload(t.Context())
	require.Error(t, err)
	assert.Contains(t, bot.ErrorMessage(err), `unknown field "userz"`)
	assert.Equal(t, "oncall, ops", whoami(t, m), "the previous policy stays")
	assert.Contains(t, m.policyStatus(), "failed, the previous policy stays in force")
	assert.Contains(t, m.policyStatus(), `3:1: unknown field "userz"`)
	assert.Contains(t, logs.String(), "policy reload failed; the previous policy stays in force")
	recs, err := m.Store.Audit(t.Context(), bot.AuditQuery{Last: 10})
	require.NoError(t, err)
	var rejected []string
	for _, r := range recs {
		if r.Kind == bot.AuditRejected {
			rejected = append(rejected, r.Message)
		}
	}
	require.Len(t, rejected, 1, "the rejected file is audited")
	assert.Contains(t, rejected[0], `unknown field "userz"`)

	rd := &readiness{store: m.Store, adapters: []chatAdapter{&fakeChat{}}, names: []string{"slack"}, log: m.Log, policy: m.policyStatus}
	code, body := readyz(t, rd, "")
	assert.Equal(t, 200, code, "the bot still serves, under the previous policy")
	assert.Contains(t, body, `policy: the reload at `)
	assert.Contains(t, body, `unknown field "userz"`)

	require.NoError(t, os.WriteFile(file, []byte(policyAlice), 0o600))
	require.NoError(t, m.Reload(t.Context()))
	assert.Empty(t, m.policyStatus(), "a good reload clears the problem")
	_, body = readyz(t, rd, "")
	assert.NotContains(t, body, "policy:")
}

// SIGHUP to opsbot serve reloads the policy file (systemctl reload).
func TestE2E_SIGHUPReloadsThePolicy(t *testing.T) {
	t.Parallel()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"ok":true}`) }))
	t.Cleanup(api.Close)
	file := writeFile(t, policyAlice)
	base, logs, srv := serveCmdProcess(t, "OPSBOT_CONFIG="+file, "OPSBOT_SLACK_SIGNING_SECRET="+slackSecret, "OPSBOT_SLACK_BOT_TOKEN=xoxb-1", "OPSBOT_SLACK_API_URL="+api.URL+"/")
	require.NoError(t, os.WriteFile(file, []byte("bogus: 1\n"), 0o600))
	require.NoError(t, srv.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "policy reload failed") }, 10*time.Second, 20*time.Millisecond)
	resp, err := http.Get(base + "/readyz")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	assert.Contains(t, string(b), `unknown field "bogus"`)

	require.NoError(t, os.WriteFile(file, []byte(policyAlice), 0o600))
	require.NoError(t, srv.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "msg=\"policy reloaded\"") }, 10*time.Second, 20*time.Millisecond)
	assert.True(t, srv.ProcessState == nil, "still running")
}
