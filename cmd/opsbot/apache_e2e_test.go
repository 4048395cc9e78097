package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/sshrun/sshtest"
	"github.com/opsbot/opsbot/commands/apache/apachetest"
)

// Issue 6 end to end: `opsbot run` against a real Apache reached as a
// local host and as an ssh host (a private Debian sshd on loopback), with
// the approval flow between two people.

const apachePolicy = `
roles:
  oncall:   {commands: ["apache status", "apache configtest", "apache modules", "apache vhosts", "apache reload", "apache restart"]}
  approver: {commands: ["apache status"], approve: ["apache restart"]}
  viewer:   {commands: ["apache status"], hosts: [web-local]}
users:
  "shell:alice": [oncall]
  "shell:carol": [approver]
  "shell:vic":   [viewer]
hosts:
  web-local: {via: local, tags: [web], apache: {ctl: %[1]s, status_url: %[2]q, probe_url: %[3]q}}
  web-ssh:   {address: 127.0.0.1, port: %[4]d, user: root, tags: [web], apache: {ctl: %[5]s, status_url: %[6]q, probe_url: %[7]q}}
  web-stranger: {address: 127.0.0.1, port: %[8]d, user: root, apache: {ctl: %[5]s, status_url: %[6]q}}
groups:
  web: [web-local, web-ssh]
`

type apacheE2E struct {
	*cli
	local, remote *apachetest.Server
	sshd          *sshtest.Server
}

func newApacheE2E(t *testing.T) *apacheE2E {
	t.Helper()
	e := &apacheE2E{}
	// One after the other, in the test's goroutine: each may fail t.
	e.local = apachetest.Start(t)
	e.remote = apachetest.Start(t)
	e.sshd = sshtest.Start(t)
	stranger := sshtest.Start(t) // its host key is in no known_hosts we use
	dir := t.TempDir()
	cfg := filepath.Join(dir, "policy.yaml")
	policy := fmt.Sprintf(apachePolicy, e.local.Ctl, e.local.StatusURL, e.local.ProbeURL,
		e.sshd.Port, e.remote.Ctl, e.remote.StatusURL, e.remote.ProbeURL, stranger.Port)
	require.NoError(t, os.WriteFile(cfg, []byte(policy), 0o600))
	env := append(os.Environ(), "OPSBOT_CONFIG="+cfg, "OPSBOT_DATABASE="+filepath.Join(dir, "opsbot.db"), "OPSBOT_LOG_LEVEL=error",
		"OPSBOT_SSH_KEY="+e.sshd.UserKey, "OPSBOT_SSH_KNOWN_HOSTS="+e.sshd.KnownHosts)
	e.cli = &cli{t: t, bin: opsbotBinary(t), env: env}
	return e
}

func TestApacheE2E_StatusAndReadOnlyViewsLocalAndSSH(t *testing.T) {
	t.Parallel()
	e := newApacheE2E(t)
	out, code := e.run("config", "check")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "inventory: 3 hosts (1 local, 2 over ssh), 1 groups")

	for host, srv := range map[string]*apachetest.Server{"web-local": e.local, "web-ssh": e.remote} {
		out, code := e.run("run", "--as", "alice", "/apache status "+host)
		require.Equal(t, 0, code, out)
		assert.Contains(t, out, "is up: generation 1")
		assert.Contains(t, out, fmt.Sprintf("pid %d, running", srv.PID()))

		out, code = e.run("run", "--as", "alice", "/apache configtest "+host)
		require.Equal(t, 0, code, out)
		assert.Contains(t, out, "Syntax OK")

		out, code = e.run("run", "--as", "alice", "/apache vhosts "+host)
		require.Equal(t, 0, code, out)
		assert.Contains(t, out, fmt.Sprintf("127.0.0.1:%d", srv.Port))
	}
	out, code = e.run("run", "--as", "alice", "/apache status web")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "Apache on web: 2 of 2 hosts up")

	// Unknown host key: refused with the fix, nothing run.
	out, code = e.run("run", "--as", "alice", "/apache status web-stranger")
	require.Equal(t, 1, code, out)
	assert.Contains(t, out, "known_hosts")

	// Role limited to one host.
	out, code = e.run("run", "--as", "vic", "/apache status web-ssh")
	require.Equal(t, 3, code, out)
	assert.Contains(t, out, "but not on web-ssh")
	out, code = e.run("run", "--as", "vic", "/opsbot hosts")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "web-local")
	assert.NotContains(t, out, "web-ssh")

	// Metacharacters never reach a runner.
	for _, bad := range []string{"'web-local;id'", "'$(id)'", "web-local/../x"} {
		out, code = e.run("run", "--as", "alice", "/apache status "+bad)
		assert.Equal(t, 2, code, out)
		assert.Contains(t, out, "not an inventory host or group name")
	}
}

// load keeps n clients requesting url until stopped, counting answers and
// failures: a bounded load generator.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	stop       context.CancelFunc
	wg         sync.WaitGroup
}

func startLoad(url string, n int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{stop: cancel}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	for range n {
		l.wg.Go(func() {
			// About 300 requests per second per client: steady load that
			// leaves the two cores room for Apache and the bot.
			tick := time.NewTicker(3 * time.Millisecond)
			defer tick.Stop()
			for ctx.Err() == nil {
				<-tick.C
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("HTTP %d", resp.StatusCode)
					}
				}
				switch {
				case err == nil:
					l.ok.Add(1)
				case ctx.Err() != nil:
				default:
					l.failed.Add(1)
					l.mu.Lock()
					l.errs = append(l.errs, err.Error())
					l.mu.Unlock()
				}
			}
		})
	}
	return l
}

func (l *load) finish() {
	l.stop()
	l.wg.Wait()
}

func TestApacheE2E_ReloadUnderLoadDropsNothing(t *testing.T) {
	t.Parallel()
	e := newApacheE2E(t)
	for _, tc := range []struct {
		host string
		srv  *apachetest.Server
	}{{"web-local", e.local}, {"web-ssh", e.remote}} {
		l := startLoad(tc.srv.ProbeURL, 6)
		time.Sleep(200 * time.Millisecond)
		for i := range 3 {
			out, code := e.run("run", "--as", "alice", "/apache reload "+tc.host)
			require.Equal(t, 0, code, out)
			assert.Contains(t, out, fmt.Sprintf("generation %d -> %d, verified", i+1, i+2))
			assert.Contains(t, out, "no fatal entries since the reload")
		}
		time.Sleep(200 * time.Millisecond)
		l.finish()
		t.Logf("%s: %d requests answered during 3 reloads, %d failed", tc.host, l.ok.Load(), l.failed.Load())
		assert.Zero(t, l.failed.Load(), "dropped requests: %v", l.errs)
		assert.Greater(t, l.ok.Load(), int64(100), "the load really ran")
	}
}

// slowDownloads starts n downloads of a large file read slowly, and
// reports for each whether it was cut before its end.
func slowDownloads(t *testing.T, url string, size int64, n int) (cut func() int, wait func()) {
	t.Helper()
	var wg sync.WaitGroup
	var cuts atomic.Int32
	started := make(chan struct{}, n)
	for range n {
		wg.Go(func() {
			resp, err := http.Get(url) //nolint:noctx // bounded by the reads below
			if err != nil {
				cuts.Add(1)
				started <- struct{}{}
				return
			}
			defer func() { _ = resp.Body.Close() }()
			buf := make([]byte, 256<<10)
			var got int64
			first := true
			for {
				k, err := resp.Body.Read(buf)
				got += int64(k)
				if first && got > 0 {
					first = false
					started <- struct{}{}
				}
				if err != nil {
					if !errors.Is(err, io.EOF) || got < size {
						cuts.Add(1)
					}
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	for range n {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("downloads did not start")
		}
	}
	return func() int { return int(cuts.Load()) }, wg.Wait
}

func TestApacheE2E_RestartWaitsForApprovalThenCutsInFlight(t *testing.T) {
	t.Parallel()
	e := newApacheE2E(t)
	// A 2 GiB sparse file, read at about 12 MB/s: minutes to finish.
	const size = 2 << 30
	big := filepath.Join(e.remote.Docs, "big.bin")
	f, err := os.Create(big)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(size))
	require.NoError(t, f.Close())
	require.NoError(t, os.Chmod(big, 0o644))

	cut, wait := slowDownloads(t, e.remote.ProbeURL+"big.bin", size, 3)

	out, code := e.run("run", "--as", "alice", "/apache restart web-ssh")
	require.Equal(t, 4, code, out)
	m := approvalIDLine.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	assert.Contains(t, out, "every in-flight request and download is cut")
	assert.Regexp(t, `web-ssh: [3-9] requests in flight now`, out, "the prompt counts the downloads in flight")
	gen, err := e.remote.Generation()
	require.NoError(t, err)
	assert.Equal(t, 1, gen, "nothing ran before the approval")
	assert.Zero(t, cut(), "the downloads still run")

	out, code = e.run("run", "--as", "alice", "/opsbot approve "+m[1])
	require.Equal(t, 3, code, "the requester cannot approve: %s", out)

	out, code = e.run("run", "--as", "carol", "/opsbot approve "+m[1])
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "Restarted Apache on web-ssh")
	assert.Contains(t, out, "generation 1 -> 2, verified")
	assert.Contains(t, out, "Approved by shell:carol")

	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the downloads were not cut by the restart")
	}
	assert.Equal(t, 3, cut(), "every in-flight download was cut")

	// The audit trail has the request, the decision and the execution.
	kinds := map[string]int{}
	for _, r := range e.audit() {
		if r["approval_id"] == m[1] {
			kinds[r["kind"].(string)]++
		}
	}
	assert.Equal(t, 1, kinds["execution"], "%v", kinds)
	assert.GreaterOrEqual(t, kinds["approve"], 2, "both votes audited: %v", kinds)
}

func TestApacheE2E_BrokenConfigOverSSHIsRefusedWithFileAndLine(t *testing.T) {
	t.Parallel()
	e := newApacheE2E(t)
	e.remote.WriteConf(t, "conf-enabled/zz-broken.conf", "\nServerTokens Sideways\n")
	out, code := e.run("run", "--as", "alice", "/apache reload web-ssh")
	require.Equal(t, 1, code, out)
	assert.Contains(t, out, filepath.Join(e.remote.Dir, "conf-enabled/zz-broken.conf")+":2:")
	assert.Contains(t, out, "Apache was not touched")
	gen, err := e.remote.Generation()
	require.NoError(t, err)
	assert.Equal(t, 1, gen)

	port := apachetest.HoldPort(t)
	e.remote.Remove(t, "conf-enabled/zz-broken.conf")
	e.remote.WriteConf(t, "conf-enabled/zz-busy.conf", fmt.Sprintf("Listen 127.0.0.1:%d\n", port))
	out, code = e.run("run", "--as", "alice", "/apache reload web-ssh")
	require.Equal(t, 1, code, out)
	assert.Contains(t, out, "FAILED")
	assert.Contains(t, out, "AH00072")
	assert.True(t, strings.Contains(out, "zombie") || strings.Contains(out, "gone"), out)
}
