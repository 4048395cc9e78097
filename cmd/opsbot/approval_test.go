package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/postgres/pgtest"
	"github.com/opsbot/opsbot/adapters/sqlite"
	"github.com/opsbot/opsbot/bot"
)

// The approval flow of issue 3, driven as separate `opsbot run` processes
// sharing one store, the way two people at two terminals would.

const approvalPolicy = `
roles:
  requester: {commands: [portcheck, scan]}
  approver:  {commands: [portcheck, "opsbot audit"], approve: [scan]}
users:
  "shell:alice": [requester]
  "shell:carol": [approver]
  "shell:erin":  [approver]
approval:
  required: [scan]
  ttl: %s
`

type cli struct {
	t   *testing.T
	bin string
	env []string
}

func newCLI(t *testing.T, ttl, database string) *cli {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(approvalPolicy, ttl)), 0o600))
	if database == "" {
		database = filepath.Join(dir, "opsbot.db")
	}
	env := append(os.Environ(), "OPSBOT_CONFIG="+cfg, "OPSBOT_DATABASE="+database, "OPSBOT_LOG_LEVEL=error")
	return &cli{t: t, bin: opsbotBinary(t), env: env}
}

func (c *cli) run(args ...string) (string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = c.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(c.t, err)
	}
	return out.String(), code
}

func (c *cli) audit() []map[string]any {
	c.t.Helper()
	out, code := c.run("audit", "export")
	require.Equal(c.t, 0, code, out)
	var recs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		require.NoError(c.t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		recs = append(recs, m)
	}
	return recs
}

var approvalIDLine = regexp.MustCompile(`(?m)^approval ID: ([0-9a-f]{12})$`)

func listener(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestApproval_RequestApproveRunOnce(t *testing.T) {
	c := newCLI(t, "15m", "")
	port := listener(t)
	line := fmt.Sprintf("/scan 127.0.0.1 %d", port)

	// 1. alice asks: exit 4 and the ID on its own line.
	out, code := c.run("run", "--as", "alice", line)
	require.Equal(t, 4, code, out)
	m := approvalIDLine.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	id := m[1]
	assert.Contains(t, out, "[Approve] /opsbot approve "+id)

	// 2. alice may not approve her own request.
	out, code = c.run("run", "--as", "alice", "/opsbot approve "+id)
	assert.Equal(t, 3, code, out)
	assert.Contains(t, out, "another person must approve it")

	// Nor may someone without an approver role.
	out, code = c.run("run", "--as", "mallory", "/opsbot approve "+id)
	assert.Equal(t, 3, code, out)

	// 3. carol, in another process, approves: the scan runs and its result
	// is printed; a second approve says it already ran.
	out, code = c.run("run", "--as", "carol", "/opsbot approve "+id)
	assert.Equal(t, 0, code, out)
	assert.Regexp(t, fmt.Sprintf(`(?m)^%d/tcp\s+open`, port), out)
	assert.Contains(t, out, "Approved by shell:carol; requested by shell:alice")
	out, code = c.run("run", "--as", "erin", "/opsbot approve "+id)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "already")

	// 6. the audit log shows it all, in order.
	var kinds []string
	for _, r := range c.audit() {
		if r["approval_id"] == id {
			kinds = append(kinds, r["kind"].(string)+":"+r["user"].(string))
		}
	}
	assert.Equal(t, []string{"requested:alice", "approve:alice", "approve:mallory", "approve:carol", "execution:alice", "approve:erin"}, kinds)

	// Every identity came from --as: nobody verified it, and the log says so.
	for _, r := range c.audit() {
		if r["user"] != nil && r["kind"] != "execution" {
			assert.Equal(t, true, r["self_asserted"], "%v", r)
		}
	}
}

func TestApproval_ExpiredCannotBeApproved(t *testing.T) {
	// A request that expired an hour ago, as alice's would have: the
	// store holds it, no test waits for it to expire.
	c := newCLI(t, "15m", "")
	var db string
	for _, kv := range c.env {
		if v, ok := strings.CutPrefix(kv, "OPSBOT_DATABASE="); ok {
			db = v
		}
	}
	st, err := sqlite.Open(context.Background(), db)
	require.NoError(t, err)
	past := time.Now().Add(-time.Hour)
	id := "0123456789ab"
	require.NoError(t, st.CreateApproval(context.Background(), bot.Approval{ID: id, Command: "scan", Line: "/scan 127.0.0.1 1",
		Args: []string{"127.0.0.1", "1"}, Hosts: []string{"127.0.0.1"}, Digest: strings.Repeat("0", 64), Platform: "shell", User: "alice",
		UserName: "alice", Channel: "terminal", RequestID: "0123456789ac", Needed: 1, Created: past.Add(-time.Minute), Expires: past}))
	require.NoError(t, st.Close())
	out, code := c.run("run", "--as", "carol", "/opsbot approve "+id)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "expired")
	var executions int
	for _, r := range c.audit() {
		if r["kind"] == "execution" {
			executions++
		}
	}
	assert.Zero(t, executions, "nothing ran")
}

// concurrentApproves races n approve processes on one request and returns
// how many ran the scan.
func concurrentApproves(t *testing.T, c *cli, procs int) {
	port := listener(t)
	out, code := c.run("run", "--as", "alice", fmt.Sprintf("/scan 127.0.0.1 %d", port))
	require.Equal(t, 4, code, out)
	id := approvalIDLine.FindStringSubmatch(out)[1]

	var wg sync.WaitGroup
	results := make([]string, procs)
	codes := make([]int, procs)
	for i := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			who := []string{"carol", "erin"}[i%2]
			results[i], codes[i] = c.run("run", "--as", who, "/opsbot approve "+id)
		}()
	}
	wg.Wait()
	ran := 0
	for i, out := range results {
		switch codes[i] {
		case 0:
			ran++
			assert.Regexp(t, fmt.Sprintf(`(?m)^%d/tcp\s+open`, port), out)
		case 1:
			assert.Contains(t, out, "already", out)
		default:
			t.Errorf("approve process %d exited %d: %s", i, codes[i], out)
		}
	}
	assert.Equal(t, 1, ran, "exactly one process runs the approved action")
	executions := 0
	for _, r := range c.audit() {
		if r["kind"] == "execution" && r["approval_id"] == id {
			executions++
		}
	}
	assert.Equal(t, 1, executions)
}

func TestApproval_FiftyConcurrentApprovesRunOnce_SQLite(t *testing.T) {
	concurrentApproves(t, newCLI(t, "15m", ""), 50)
}

func TestApproval_FiftyConcurrentApprovesRunOnce_PostgreSQL(t *testing.T) {
	concurrentApproves(t, newCLI(t, "15m", pgtest.Database(t)), 50)
}

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestApproval_BadInputIsAudited(t *testing.T) {
	c := newCLI(t, "15m", "")
	for _, tc := range []struct {
		as, line string
		code     int
		want     string
	}{
		{"carol", "/opsbot approve zzz", 2, `"zzz" is not an approval ID`},
		{"carol", "/opsbot approve 0123456789ab", 2, "no approval request 0123456789ab"},
		{"carol", "/opsbot deny", 2, "deny needs the approval ID"},
		{"nobody", "/portcheck 127.0.0.1 1", 3, "shell:nobody has no role"},
		{"alice", "/opsbot audit", 3, `may not run "opsbot audit"`},
	} {
		out, code := c.run("run", "--as", tc.as, tc.line)
		assert.Equal(t, tc.code, code, tc.line+": "+out)
		assert.Contains(t, out, tc.want, tc.line)
	}
	recs := c.audit()
	var lines []string
	for _, r := range recs {
		lines = append(lines, fmt.Sprint(r["user"], " ", r["line"], " ", r["kind"], " ", r["result"]))
	}
	joined := strings.Join(lines, "\n")
	assert.Contains(t, joined, "carol /opsbot approve zzz request usage")
	assert.Contains(t, joined, "nobody /portcheck 127.0.0.1 1 denied denied")
	assert.Contains(t, joined, "alice /opsbot audit denied denied")
}

func TestApproval_BrokenPolicyIsRefusedAndAudited(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "opsbot.db")
	for _, tc := range []struct{ policy, want string }{
		{"roles:\n  r: {commands: [scan], comands: [x]}\n", `unknown field "comands"`},
		{"users:\n  \"shell:alice\": [ghost]\n", `role "ghost"`},
	} {
		cfg := filepath.Join(dir, "p.yaml")
		require.NoError(t, os.WriteFile(cfg, []byte(tc.policy), 0o600))
		c := &cli{t: t, bin: opsbotBinary(t), env: append(os.Environ(), "OPSBOT_CONFIG="+cfg, "OPSBOT_DATABASE="+db)}
		out, code := c.run("run", "--as", "alice", "/portcheck 127.0.0.1 1")
		assert.Equal(t, 2, code, out)
		assert.Contains(t, out, tc.want)
		recs := c.audit()
		require.NotEmpty(t, recs)
		last := recs[len(recs)-1]
		assert.Equal(t, "rejected", last["kind"])
		assert.Contains(t, last["message"], tc.want)
	}
}
