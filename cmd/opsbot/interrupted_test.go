package main

import (
	"fmt"
	"net/http"
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

	"github.com/opsbot/opsbot/adapters/postgres"
	"github.com/opsbot/opsbot/adapters/postgres/pgtest"
	"github.com/opsbot/opsbot/bot"
)

// Audit before action, with real processes: `opsbot run '/apache reload'`
// is killed with SIGKILL after it recorded the start and while apache2ctl
// runs; the next opsbot that starts records the action interrupted, once,
// and says so.

const interruptPolicy = `
roles:
  oncall: {commands: [apache, "opsbot audit", "opsbot whoami"]}
users:
  "shell:alice": [oncall]
hosts:
  local: {via: local, apache: {ctl: %s, status_url: "http://127.0.0.1:1/server-status?auto"}}
`

// blockingCtl is a stand-in apache2ctl that says it started (its PID in
// mark) and then hangs, as a reload stuck on a slow host would.
func blockingCtl(t *testing.T, dir string) (ctl, mark string) {
	t.Helper()
	ctl, mark = filepath.Join(dir, "apache2ctl"), filepath.Join(dir, "ctl-started")
	script := fmt.Sprintf("#!/bin/sh\necho $$ > %[1]s.tmp && mv %[1]s.tmp %[1]s\nexec sleep 600\n", mark)
	require.NoError(t, os.WriteFile(ctl, []byte(script), 0o700)) //nolint:gosec // a test script
	t.Cleanup(func() {
		if b, err := os.ReadFile(mark); err == nil { //nolint:gosec // the test's own file
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return ctl, mark
}

func TestInterrupted_KillNineBetweenStartAndOutcome(t *testing.T) {
	dir := t.TempDir()
	ctl, mark := blockingCtl(t, dir)
	cfg := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(interruptPolicy, ctl)), 0o600))
	c := &cli{t: t, bin: opsbotBinary(t), env: append(os.Environ(), "OPSBOT_CONFIG="+cfg, "OPSBOT_DATABASE="+filepath.Join(dir, "opsbot.db"),
		"OPSBOT_LOG_LEVEL=error", "OPSBOT_APPROVAL_LEASE=1s")}

	reload := exec.Command(c.bin, "run", "--as", "alice", "/apache reload local") //nolint:gosec // the binary this test built
	reload.Env = c.env
	var out syncBuffer
	reload.Stdout, reload.Stderr = &out, &out
	require.NoError(t, reload.Start())
	exited := make(chan struct{})
	go func() { _ = reload.Wait(); close(exited) }()
	require.Eventually(t, func() bool { _, err := os.Stat(mark); return err == nil }, 30*time.Second, 20*time.Millisecond,
		"apache2ctl started: %s", out.String())

	// The start is in the log before anything acted.
	kinds := func() []string {
		var k []string
		for _, r := range c.audit() {
			if r["line"] == "/apache reload local" {
				k = append(k, r["kind"].(string))
			}
		}
		return k
	}
	require.Equal(t, []string{"started"}, kinds())

	require.NoError(t, reload.Process.Signal(syscall.SIGKILL))
	<-exited
	killed := time.Now()

	// The next opsbot to start (once the dead one's lease lapsed) records
	// it interrupted and tells the terminal.
	var notice string
	require.Eventually(t, func() bool {
		o, code := c.run("run", "--as", "alice", "/opsbot whoami")
		notice = o
		return code == 0 && strings.Contains(o, "Interrupted: /apache reload local")
	}, 20*time.Second, 100*time.Millisecond, "the next start reports it")
	t.Logf("reported %s after the kill:\n%s", time.Since(killed).Round(time.Millisecond), notice)
	assert.Contains(t, notice, "outcome unknown")
	assert.Contains(t, notice, "check the host")

	o, code := c.run("run", "--as", "alice", "/opsbot whoami")
	assert.Equal(t, 0, code)
	assert.NotContains(t, o, "Interrupted", "recorded and reported once")

	assert.Equal(t, []string{"started", "interrupted"}, kinds())
	for _, r := range c.audit() {
		if r["kind"] == "interrupted" {
			assert.Equal(t, "unknown", r["result"])
			assert.Equal(t, "alice", r["user"])
			assert.Contains(t, r["message"], "outcome unknown")
		}
	}
}

const interruptSlackPolicy = `
roles:
  oncall: {commands: [apache]}
users:
  "slack:U0ALICE01": [oncall]
hosts:
  local: {via: local, apache: {ctl: %s, status_url: "http://127.0.0.1:1/server-status?auto"}}
`

// The same with `opsbot serve` replicas on PostgreSQL: replica A is killed
// mid-reload; B and C, started after, both sweep; the action is recorded
// interrupted once and posted once, in the channel it was asked in.
func TestInterrupted_KillNineServeReplicaOtherReplicasPostItOnce_PostgreSQL(t *testing.T) {
	db := pgtest.Database(t)
	api := newSlackAPI(t)
	dir := t.TempDir()
	ctl, mark := blockingCtl(t, dir)
	cfg := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(interruptSlackPolicy, ctl)), 0o600))
	bin := opsbotBinary(t)
	env := func(addr string) []string {
		return append(os.Environ(), "OPSBOT_CONFIG="+cfg, "OPSBOT_DATABASE="+db, "OPSBOT_HTTP_ADDR="+addr,
			"OPSBOT_SLACK_SIGNING_SECRET="+slackSecret, "OPSBOT_SLACK_BOT_TOKEN=xoxb-test", "OPSBOT_SLACK_API_URL="+api.URL+"/",
			"OPSBOT_LOG_LEVEL=info", "OPSBOT_APPROVAL_LEASE=1s")
	}
	addrA := freePort(t)
	a := startBot(t, "replica A", bin, env(addrA), addrA)
	code, body := slackClient{base: a.base, hook: api.URL}.slash(t, "U0ALICE01", "/apache reload local", "trig-reload")
	require.Equal(t, http.StatusOK, code, body)
	require.Eventually(t, func() bool { _, err := os.Stat(mark); return err == nil }, 30*time.Second, 20*time.Millisecond, "apache2ctl started")
	a.kill9(t)
	killed := time.Now()

	addrB, addrC := freePort(t), freePort(t)
	startBot(t, "replica B", bin, env(addrB), addrB)
	startBot(t, "replica C", bin, env(addrC), addrC)
	posted := func() int {
		n := 0
		for _, msg := range api.sentTo("/chat.postMessage") {
			if strings.Contains(msg, "Interrupted: /apache reload local") {
				n++
				assert.Contains(t, msg, "C1", "posted to the channel it came from")
			}
		}
		return n
	}
	require.Eventually(t, func() bool { return posted() == 1 }, 30*time.Second, 50*time.Millisecond, "posted by B or C")
	t.Logf("posted %s after the kill", time.Since(killed).Round(time.Millisecond))

	st, err := postgres.Open(t.Context(), db)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	// Both replicas keep sweeping (every quarter lease): give them a few
	// sweeps, then count what they recorded.
	require.Eventually(t, func() bool {
		recs, err := st.Audit(t.Context(), bot.AuditQuery{})
		require.NoError(t, err)
		sweeps := 0
		for _, r := range recs {
			if r.Kind == bot.AuditInterrupted {
				sweeps++
			}
		}
		return sweeps == 1 && time.Since(killed) > 3*time.Second
	}, 30*time.Second, 100*time.Millisecond)
	var kinds []string
	recs, err := st.Audit(t.Context(), bot.AuditQuery{})
	require.NoError(t, err)
	for _, r := range recs {
		if r.Line == "/apache reload local" {
			kinds = append(kinds, r.Kind)
		}
	}
	assert.Equal(t, []string{"started", "interrupted"}, kinds, "recorded once")
	assert.Equal(t, 1, posted(), "posted once")
}
