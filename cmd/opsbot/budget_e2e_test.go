package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/commands/probe/testbed"
	"github.com/opsbot/opsbot/internal/testenv"
)

// One `opsbot serve` under RLIMIT_NOFILE 700 (set by prlimit, as a
// container or a systemd LimitNOFILE= would), in the probe namespace, gets
// 100 full TCP scans (1-65535) of a target at once, from 100 Slack users.
// The target drops 2000 of its ports, so a scan's sockets stay open until
// their timeout: before the process-wide budget, each scan sized itself
// from the limit alone (572 sockets), and EMFILE broke HTTP, the store and
// the chat APIs. Meanwhile a /portcheck answers, /healthz and /readyz
// (which reads the store) answer, and afterwards every request is in the
// audit log. Nothing anywhere fails with "too many open files": not the
// chat replies, not the log, not the audit; the process never holds 700
// descriptors. Each scan either finishes or answers busy.
const budgetPolicy = `
limits:
  jobs_per_user: 4
  jobs_total: 200         # let every scan in: the socket budget is what is tested
  user_per_minute: 1000
  target_per_minute: 100000
`

const (
	budgetNofile = 700
	// envBudgetBin hands the parent's built binary to the child in the
	// probe namespace.
	envBudgetBin = "OPSBOT_TEST_BUDGET_BIN"
	// budgetTargetRules drop a block of ports: their probes hold sockets
	// until they time out. The rest answer at once (RST, or the listener).
	budgetTargetRules = `
table inet opsbot_budget {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 20000-21999 drop
	}
}
`
)

func TestE2E_HundredFullScansUnderALowDescriptorLimit(t *testing.T) {
	env, child := testbed.Child()
	if !child {
		bed := testbed.New(t, testbed.Options{Targets: []testbed.TargetOptions{{}}})
		bed.Target(1).Nft(t, budgetTargetRules)
		bed.Target(1).ListenTCP(t, 80)
		t.Setenv(envBudgetBin, opsbotBinary(t))
		bed.RunInProbe(t, t.Name())
		return
	}
	target := env.Target(1).Addr(false).String()
	bin := os.Getenv(envBudgetBin)
	require.NotEmpty(t, bin)
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		testenv.Missing(t, "needs prlimit (util-linux) to start opsbot with a low RLIMIT_NOFILE")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(budgetPolicy), 0o600))
	db := filepath.Join(dir, "opsbot.db")
	// A wrapper that execs: the process startBot watches is opsbot itself.
	wrapper := filepath.Join(dir, "opsbot-nofile")
	require.NoError(t, os.WriteFile(wrapper, fmt.Appendf(nil, "#!/bin/sh\nexec %s --nofile=%d:%d %s \"$@\"\n", prlimit, budgetNofile, budgetNofile, bin), 0o700)) //nolint:gosec // a test script

	api := newSlackAPI(t)
	addr := freePort(t)
	srvEnv := append(os.Environ(), "OPSBOT_CONFIG="+cfg, "OPSBOT_DATABASE="+db, "OPSBOT_HTTP_ADDR="+addr,
		"OPSBOT_SLACK_SIGNING_SECRET="+slackSecret, "OPSBOT_SLACK_BOT_TOKEN=xoxb-test", "OPSBOT_SLACK_API_URL="+api.URL+"/",
		"OPSBOT_LOG_LEVEL=info")
	srv := startBot(t, "nofile", wrapper, srvEnv, addr)
	pid := srv.cmd.Process.Pid
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	require.NoError(t, err)
	require.Regexp(t, fmt.Sprintf(`Max open files\s+%d\s+%d`, budgetNofile, budgetNofile), string(limits))
	sc := slackClient{base: srv.base, hook: api.URL}

	// The process's descriptors, sampled throughout.
	var peakFDs atomic.Int64
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil && int64(len(ents)) > peakFDs.Load() {
				peakFDs.Store(int64(len(ents)))
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})

	const scans = 100
	start := time.Now()
	var wg sync.WaitGroup
	for i := range scans {
		wg.Go(func() {
			code, body := sc.slash(t, fmt.Sprintf("U0SCAN%03d", i), "/scan "+target+" 1-65535", fmt.Sprintf("trig-scan-%d", i))
			assert.Equal(t, http.StatusOK, code, body)
		})
	}
	wg.Wait()
	t.Logf("100 scans acknowledged in %s", time.Since(start).Round(time.Millisecond))

	// Other requests go on working while the scans run.
	code, body := sc.slash(t, "U0CHECK01", "/portcheck "+target+" 80", "trig-check")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "Connection to "+target+" 80 port [tcp/http] succeeded!", "a /portcheck answers during 100 scans")
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(srv.base + path)
		require.NoError(t, err, path)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, "%s during 100 scans", path)
	}

	// Every scan ends in the audit log: finished, or refused as busy.
	var records []map[string]any
	require.Eventually(t, func() bool {
		records = auditScans(t, bin, db)
		return len(records) >= scans
	}, 10*time.Minute, time.Second, "every scan is audited")
	took := time.Since(start)
	close(stopSampling)
	sampler.Wait()

	finished, busy := 0, 0
	for _, r := range records {
		msg, _ := r["message"].(string)
		switch {
		case strings.HasPrefix(msg, "busy: "):
			busy++
			assert.Contains(t, msg, "try again in ")
		case strings.HasPrefix(msg, target+" tcp 1-65535: "):
			finished++
		default:
			t.Errorf("a scan ended neither finished nor busy: %v", r)
		}
	}
	t.Logf("%d scans finished, %d refused as busy, in %s; peak %d descriptors of %d", finished, busy, took.Round(time.Second), peakFDs.Load(), budgetNofile)
	assert.Positive(t, finished, "scans share the budget; they are not all refused")
	assert.Less(t, peakFDs.Load(), int64(budgetNofile), "the process never reached its descriptor limit")

	resp, err := http.Get(srv.base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	var metrics strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&metrics)
	if busy > 0 {
		assert.Contains(t, metrics.String(), fmt.Sprintf(`opsbot_busy_total{what="sockets"} %d`, busy))
	}

	for where, text := range map[string]string{"the log": srv.logs.String(), "the chat replies": api.all(), "the audit": fmt.Sprint(records)} {
		assert.NotContains(t, strings.ToLower(text), "too many open files", where)
	}
}

// auditScans reads the /scan requests from the store, as `opsbot audit
// export` prints them.
func auditScans(t *testing.T, bin, db string) []map[string]any {
	t.Helper()
	cmd := exec.Command(bin, "audit", "export") //nolint:gosec // the binary this test built
	cmd.Env = append(os.Environ(), "OPSBOT_DATABASE="+db, "OPSBOT_CONFIG=")
	out, err := cmd.Output()
	require.NoError(t, err)
	var scans []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil && r["command"] == "scan" {
			scans = append(scans, r)
		}
	}
	return scans
}
