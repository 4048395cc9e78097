package main

import (
	"bufio"
	"bytes"
	"context"
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
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/postgres"
	"github.com/opsbot/opsbot/adapters/postgres/pgtest"
	"github.com/opsbot/opsbot/bot"
)

// Two `opsbot serve` replicas on loopback ports sharing one PostgreSQL
// database, behind no load balancer: the test sends each request to one or
// the other. Any replica takes any command or click; an approved action
// runs once however many clicks race on it; a replica killed mid-action
// leaves the request abandoned (not running forever), which the other
// replica reports in chat, in /opsbot approvals and in the audit log.

const replicaPolicy = `
roles:
  oncall:   {commands: [portcheck, scan]}
  approver: {commands: ["opsbot audit"], approve: [scan]}
users:
  "slack:U0ALICE01": [oncall]
  "slack:U0CAROL01": [approver]
  "slack:U0ERIN001": [approver]
approval:
  required: [scan]
limits:
  user_per_minute: 100000 # 200 clicks from two people in a second
  scan_rate: 20           # a /scan of 3000 ports takes minutes
`

// testLease is the replicas' OPSBOT_APPROVAL_LEASE: renewed every second,
// swept every 750 ms.
const testLease = 3 * time.Second

// syncBuffer collects a process's output, written and read concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// servedBot is one `opsbot serve` process of a test.
type servedBot struct {
	name   string
	cmd    *exec.Cmd
	base   string
	logs   *syncBuffer
	exited chan struct{}
}

// startBot runs bin as `opsbot serve` with env until tb ends, and waits
// until /readyz answers 200. On failure its output is logged.
func startBot(tb testing.TB, name, bin string, env []string, addr string) *servedBot {
	tb.Helper()
	s := &servedBot{name: name, cmd: exec.Command(bin, "serve"), base: "http://" + addr, logs: &syncBuffer{}, exited: make(chan struct{})} //nolint:gosec // the binary this test built
	s.cmd.Env = env
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	require.NoError(tb, s.cmd.Start())
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	tb.Cleanup(func() {
		if !s.dead() {
			_ = s.cmd.Process.Signal(os.Interrupt)
			select {
			case <-s.exited:
			case <-time.After(30 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.exited
			}
		}
		if tb.Failed() {
			tb.Logf("opsbot serve (%s) output:\n%s", s.name, s.logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.base + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if s.dead() || time.Now().After(deadline) {
			tb.Fatalf("opsbot serve (%s) not ready on %s:\n%s", s.name, addr, s.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *servedBot) dead() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

// replica is the name the process gives its leases, from its start log.
func (s *servedBot) replica(tb testing.TB) string {
	tb.Helper()
	m := regexp.MustCompile(`msg=serving .*replica=(\S+)`).FindStringSubmatch(s.logs.String())
	require.NotNil(tb, m, "no replica in the serve log:\n%s", s.logs.String())
	return m[1]
}

// kill9 kills the process as the OOM killer or a lost node would: no
// signal handler, no deferred cleanup, no goodbye to the database.
func (s *servedBot) kill9(tb testing.TB) {
	tb.Helper()
	require.NoError(tb, s.cmd.Process.Signal(syscall.SIGKILL))
	<-s.exited
}

// memory returns the process's resident set and its peak, in KiB.
func (s *servedBot) memory(tb testing.TB) (rss, peak int64) {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	require.NoError(tb, err)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			peak = v
		}
	}
	return rss, peak
}

// newSlackAPI stands in for Slack's Web API and response_url. A
// response_url (under /hook/) takes 5 posts, as Slack's does; a sixth gets
// 404 used_url and is counted in refused.
func newSlackAPI(t *testing.T) *slackAPI {
	api := &slackAPI{hookUses: map[string]int{}}
	api.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		text := string(b)
		if u, err := url.QueryUnescape(text); err == nil {
			text = u
		}
		api.mu.Lock()
		if strings.Contains(r.URL.Path, "/hook/") {
			if api.hookUses[r.URL.Path] >= 5 {
				api.refused++
				api.mu.Unlock()
				w.WriteHeader(http.StatusNotFound)
				_, _ = io.WriteString(w, "used_url")
				return
			}
			api.hookUses[r.URL.Path]++
		}
		api.sent = append(api.sent, r.URL.Path+" "+text)
		api.mu.Unlock()
		_, _ = io.WriteString(w, `{"ok":true,"channel":"C1","ts":"1700000000.000100"}`)
	}))
	t.Cleanup(api.Close)
	return api
}

// slackClient signs requests as Slack does, for one serve process.
type slackClient struct {
	base string
	hook string // the response_url prefix
}

func (c slackClient) post(tb testing.TB, path, body string, at time.Time) (int, string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(body))
	require.NoError(tb, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	stamp, sig := slackSign(body, at)
	req.Header.Set("X-Slack-Request-Timestamp", stamp)
	req.Header.Set("X-Slack-Signature", sig)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(tb, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c slackClient) slashForm(user, command, text, trigger string) string {
	return url.Values{"command": {command}, "text": {text}, "user_id": {user}, "user_name": {strings.ToLower(user)},
		"channel_id": {"C1"}, "channel_name": {"inc-web"}, "team_id": {"T1"}, "trigger_id": {trigger},
		"response_url": {c.hook + "/hook/" + trigger}}.Encode()
}

func (c slackClient) slash(tb testing.TB, user, line, trigger string) (int, string) {
	tb.Helper()
	command, text, _ := strings.Cut(line, " ")
	return c.post(tb, "/slack/commands", c.slashForm(user, command, text, trigger), time.Now())
}

func (c slackClient) clickForm(user, line, trigger string) string {
	payload, _ := json.Marshal(map[string]any{
		"type": "block_actions", "user": map[string]any{"id": user, "username": strings.ToLower(user), "name": strings.ToLower(user)},
		"team": map[string]any{"id": "T1"}, "channel": map[string]any{"id": "C1", "name": "inc-web"},
		"container":  map[string]any{"type": "message", "message_ts": "1700000000.000100", "channel_id": "C1"},
		"message":    map[string]any{"type": "message", "ts": "1700000000.000100", "text": "prompt"},
		"trigger_id": trigger, "response_url": c.hook + "/hook/" + trigger,
		"actions": []map[string]any{{"action_id": "opsbot0", "block_id": "b1", "type": "button", "value": line,
			"text": map[string]any{"type": "plain_text", "text": "Approve"}}},
	})
	return url.Values{"payload": {string(payload)}}.Encode()
}

func (c slackClient) click(tb testing.TB, user, line, trigger string) int {
	tb.Helper()
	code, _ := c.post(tb, "/slack/interactions", c.clickForm(user, line, trigger), time.Now())
	return code
}

var approveButton = regexp.MustCompile(`/opsbot approve ([0-9a-f]{12})`)

// countingListener accepts and counts connections on a loopback port.
func countingListener(t *testing.T) (int, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, &n
}

// approvalAudit returns the audit records of one approval.
func approvalAudit(t *testing.T, st bot.Store, id string) []bot.AuditRecord {
	t.Helper()
	recs, err := st.Audit(context.Background(), bot.AuditQuery{})
	require.NoError(t, err)
	var out []bot.AuditRecord
	for _, r := range recs {
		if r.ApprovalID == id {
			out = append(out, r)
		}
	}
	return out
}

func countKind(recs []bot.AuditRecord, kind string) int {
	n := 0
	for _, r := range recs {
		if r.Kind == kind {
			n++
		}
	}
	return n
}

func TestReplicas_PostgreSQL(t *testing.T) {
	db := pgtest.Database(t)
	api := newSlackAPI(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(replicaPolicy), 0o600))
	bin := opsbotBinary(t)
	env := func(addr string) []string {
		return append(os.Environ(), "OPSBOT_CONFIG="+cfg, "OPSBOT_DATABASE="+db, "OPSBOT_HTTP_ADDR="+addr,
			"OPSBOT_SLACK_SIGNING_SECRET="+slackSecret, "OPSBOT_SLACK_BOT_TOKEN=xoxb-test", "OPSBOT_SLACK_API_URL="+api.URL+"/",
			"OPSBOT_LOG_LEVEL=info", "OPSBOT_APPROVAL_LEASE="+testLease.String())
	}
	addrA, addrB := freePort(t), freePort(t)
	a := startBot(t, "replica A", bin, env(addrA), addrA)
	b := startBot(t, "replica B", bin, env(addrB), addrB)
	idA, idB := a.replica(t), b.replica(t)
	require.NotEqual(t, idA, idB)
	t.Logf("replica A is %s, replica B is %s, lease %s", idA, idB, testLease)
	clients := []slackClient{{base: a.base, hook: api.URL}, {base: b.base, hook: api.URL}}
	st, err := postgres.Open(t.Context(), db)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })

	t.Run("200ClicksSplitAcrossReplicasRunOnce", func(t *testing.T) {
		port, connections := countingListener(t)
		code, body := clients[0].slash(t, "U0ALICE01", fmt.Sprintf("/scan 127.0.0.1 %d", port), "trig-ask")
		require.Equal(t, http.StatusOK, code, body)
		m := approveButton.FindStringSubmatch(body)
		require.NotNil(t, m, body)
		id := m[1]

		const clicks = 200
		start := make(chan struct{})
		codes := make([]int, clicks)
		var wg sync.WaitGroup
		for i := range clicks {
			wg.Go(func() {
				<-start
				who := []string{"U0CAROL01", "U0ERIN001"}[i/2%2]
				codes[i] = clients[i%2].click(t, who, "/opsbot approve "+id, fmt.Sprintf("trig-click-%03d", i))
			})
		}
		began := time.Now()
		close(start)
		wg.Wait()
		for i, c := range codes {
			assert.Equal(t, http.StatusOK, c, "click %d is acknowledged", i)
		}

		// Every click is audited as a decision; then nothing more can run.
		var recs []bot.AuditRecord
		require.Eventually(t, func() bool {
			recs = approvalAudit(t, st, id)
			return countKind(recs, bot.AuditApprove) == clicks && countKind(recs, bot.AuditExecution) == 1
		}, 90*time.Second, 100*time.Millisecond, "200 decisions and one execution audited")
		took := time.Since(began)
		got, err := st.Approval(t.Context(), id)
		require.NoError(t, err)
		assert.Equal(t, bot.ApprovalDone, got.State)
		assert.Contains(t, []string{idA, idB}, got.Lease.Holder, "claimed by one of the two")

		claims, running, ran, other := 0, 0, 0, 0
		for _, r := range recs {
			if r.Kind != bot.AuditApprove {
				continue
			}
			switch {
			case r.Message == "approved; running":
				claims++
			case strings.Contains(r.Message, "is already running on replica "+got.Lease.Holder):
				running++
			case strings.Contains(r.Message, "already ran: done"):
				ran++
			default:
				other++
				t.Errorf("unexpected answer to a click: %s %s", r.Result, r.Message)
			}
		}
		assert.Equal(t, 1, claims, "exactly one click claims the action")
		assert.Equal(t, clicks-1, running+ran)
		assert.Equal(t, 1, countKind(approvalAudit(t, st, id), bot.AuditExecution), "the scan ran exactly once")
		assert.Positive(t, connections.Load(), "the scan did reach the port")
		holder := "A"
		if got.Lease.Holder == idB {
			holder = "B"
		}
		t.Logf("%d clicks (100 per replica) in %s: 1 claim (replica %s), %d answered \"already running\", %d \"already ran\", %d other; executions audited: 1; listener connections: %d",
			clicks, took.Round(time.Millisecond), holder, running, ran, other, connections.Load())
	})

	t.Run("KillNineMidScanTheOtherReplicaReportsAbandoned", func(t *testing.T) {
		code, body := clients[1].slash(t, "U0ALICE01", "/scan 127.0.0.1 1-3000", "trig-long")
		require.Equal(t, http.StatusOK, code, body)
		m := approveButton.FindStringSubmatch(body)
		require.NotNil(t, m, body)
		id := m[1]

		// Carol approves on A: A claims it and starts the scan (3000 ports
		// at 20 a second: two and a half minutes).
		require.Equal(t, http.StatusOK, clients[0].click(t, "U0CAROL01", "/opsbot approve "+id, "trig-approve-long"))
		require.Eventually(t, func() bool {
			a, err := st.Approval(t.Context(), id)
			return err == nil && a.State == bot.ApprovalRunning
		}, 30*time.Second, 50*time.Millisecond)
		require.Eventually(t, func() bool { return strings.Contains(api.all(), "Scanning 127.0.0.1") },
			30*time.Second, 50*time.Millisecond, "the scan reports progress")
		running, err := st.Approval(t.Context(), id)
		require.NoError(t, err)
		assert.Equal(t, idA, running.Lease.Holder)

		// B, asked meanwhile, says where it runs.
		code, body = clients[1].slash(t, "U0CAROL01", "/opsbot approvals", "trig-list-1")
		require.Equal(t, http.StatusOK, code)
		assert.Contains(t, body, id)
		assert.Contains(t, body, "on replica "+idA)
		assert.Contains(t, body, "lease renewed until")
		t.Logf("B's /opsbot approvals while A runs it: %s", approvalRow(body, id))

		a.kill9(t)
		killed := time.Now()

		// B's sweep sees the lease lapse, and reports the request abandoned.
		var abandoned bot.Approval
		require.Eventually(t, func() bool {
			abandoned, err = st.Approval(t.Context(), id)
			return err == nil && abandoned.State != bot.ApprovalRunning
		}, 30*time.Second, 50*time.Millisecond, "not running forever")
		after := time.Since(killed)
		assert.Equal(t, bot.ApprovalFailed, abandoned.State)
		require.NotNil(t, abandoned.Outcome)
		assert.Equal(t, bot.OutcomeAbandoned, abandoned.Outcome.Status)
		assert.Contains(t, abandoned.Outcome.Title, "abandoned: replica "+idA+" stopped while running it (lease expired at ")
		assert.Contains(t, abandoned.Outcome.Title, "the action may have partly run — check the host")
		assert.Less(t, after, 20*time.Second, "a lease (3 s) and a sweep (0.75 s) after the kill, with generous slack")
		t.Logf("killed A mid-scan; B reported the request abandoned %s later (lease %s, sweep %s): %q",
			after.Round(time.Millisecond), testLease, testLease/4, abandoned.Outcome.Title)

		// The channel is told, by B.
		require.Eventually(t, func() bool { return strings.Contains(api.all(), "Abandoned "+id) },
			10*time.Second, 50*time.Millisecond, "the channel is told")
		for _, msg := range api.sentTo("/chat.postMessage") {
			if strings.Contains(msg, "Abandoned "+id) {
				assert.Contains(t, msg, "Replica "+idA+" stopped while running it")
				assert.Contains(t, msg, "It will not be run again by itself")
			}
		}

		// /opsbot approvals on B.
		code, body = clients[1].slash(t, "U0CAROL01", "/opsbot approvals", "trig-list-2")
		require.Equal(t, http.StatusOK, code)
		row := approvalRow(body, id)
		assert.Contains(t, row, "abandoned")
		assert.Contains(t, row, "replica "+idA+" stopped while running it")
		t.Logf("B's /opsbot approvals after the kill: %s", row)

		// /opsbot audit on B, and the exported log.
		code, body = clients[1].slash(t, "U0CAROL01", "/opsbot audit 5", "trig-audit")
		require.Equal(t, http.StatusOK, code)
		assert.Contains(t, body, "abandoned "+id)
		recs := approvalAudit(t, st, id)
		var kinds []string
		for _, r := range recs {
			kinds = append(kinds, r.Kind+":"+r.User)
		}
		assert.Equal(t, []string{"requested:U0ALICE01", "approve:U0CAROL01", "abandoned:U0ALICE01"}, kinds,
			"no execution record: A died before it could write one")
		out, exit := (&cli{t: t, bin: bin, env: env("127.0.0.1:1")}).run("audit", "export")
		require.Equal(t, 0, exit, out)
		var last map[string]any
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var r map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &r))
			if r["approval_id"] == id {
				last = r
			}
		}
		require.NotNil(t, last)
		assert.Equal(t, "abandoned", last["kind"])
		assert.Equal(t, "failed", last["result"])
		t.Logf("audit export, last record of %s: %v", id, last)

		// Approving again, on B, runs nothing and says why.
		require.Equal(t, http.StatusOK, clients[1].click(t, "U0ERIN001", "/opsbot approve "+id, "trig-again"))
		require.Eventually(t, func() bool {
			for _, msg := range api.sentTo("/hook/trig-again") {
				if strings.Contains(msg, "was abandoned: replica "+idA) {
					return true
				}
			}
			return false
		}, 10*time.Second, 50*time.Millisecond)
		final, err := st.Approval(t.Context(), id)
		require.NoError(t, err)
		assert.Equal(t, abandoned.Outcome, final.Outcome, "still abandoned")
		assert.Zero(t, countKind(approvalAudit(t, st, id), bot.AuditExecution))
		assert.False(t, b.dead(), "B is up")
	})
}

// approvalRow picks the table row of id out of a rendered Slack reply.
func approvalRow(body, id string) string {
	var resp struct {
		Text   string           `json:"text"`
		Blocks []map[string]any `json:"blocks"`
	}
	_ = json.Unmarshal([]byte(body), &resp)
	all, _ := json.Marshal(resp.Blocks)
	text := resp.Text + "\n" + string(all)
	text = strings.NewReplacer(`\n`, "\n", `\u003e`, ">", `\u0026`, "&").Replace(text)
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, id) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

func (s *slackAPI) sentTo(path string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.sent {
		if strings.HasPrefix(m, path+" ") {
			out = append(out, m)
		}
	}
	return out
}
