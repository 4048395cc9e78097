package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
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
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/opsbot/opsbot/adapters/mattermost/mmapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/sqlite"
	"github.com/opsbot/opsbot/bot"
)

// Abuse through the real HTTP endpoints of one `opsbot serve` process:
// replayed and forged Slack requests, forged Mattermost button contexts,
// 10 MB bodies, slow-loris connections, a flood of 10 000 commands from
// one user, and random bytes from Go's fuzzer at every endpoint. Nothing
// executes that should not, nothing crashes, the process stays healthy and
// its memory bounded.

const abusePolicy = `
roles:
  oncall:   {commands: [portcheck, scan, listen]}
  approver: {commands: ["opsbot audit"], approve: [scan]}
users:
  "slack:U0ALICE01": [oncall]
  "slack:U0CAROL01": [approver]
  "slack:U0FLOOD01": [oncall]
  "mattermost:alice": [oncall]
  "mattermost:carol": [approver]
approval:
  required: [scan]
`

// envAbuseURL points FuzzServeEndpoints at a running server (TestAbuse's);
// without it the fuzz target starts its own.
const envAbuseURL = "OPSBOT_TEST_ABUSE_URL"

// Generous bounds: what a healthy process stays well within, on a noisy
// 2-core machine.
const (
	abuseRequests = 10000
	// Inputs, not seconds: Go 1.26's fuzz coordinator can report a
	// spurious "context deadline exceeded" when a duration -fuzztime ends
	// while a worker is mid-input (go.dev/issue/75804, fixed in 1.27).
	abuseFuzzInputs = 8000
	maxMemoryGrowth = 200 << 10 // KiB: peak resident set over the baseline
)

func TestAbuse_HTTPEndpoints(t *testing.T) {
	began := time.Now()
	mm := newFakeMattermost(t)
	api := newSlackAPI(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(abusePolicy), 0o600))
	db := filepath.Join(dir, "opsbot.db")
	addr := freePort(t)
	env := append(os.Environ(), "OPSBOT_CONFIG="+cfg, "OPSBOT_DATABASE="+db, "OPSBOT_HTTP_ADDR="+addr,
		"OPSBOT_SLACK_SIGNING_SECRET="+slackSecret, "OPSBOT_SLACK_BOT_TOKEN=xoxb-test", "OPSBOT_SLACK_API_URL="+api.URL+"/",
		"OPSBOT_MATTERMOST_URL="+mm.URL, "OPSBOT_MATTERMOST_TOKEN="+mmBotToken, "OPSBOT_MATTERMOST_COMMAND_TOKENS="+mmCmdToken,
		"OPSBOT_MATTERMOST_ACTION_SECRET="+mmSecret, "OPSBOT_PUBLIC_URL=http://"+addr, "OPSBOT_LOG_LEVEL=warn")
	srv := startBot(t, "abuse", opsbotBinary(t), env, addr)
	sc := slackClient{base: srv.base, hook: api.URL}
	trapPort, trap := countingListener(t)

	// Two approval requests to attack, one per platform, bound to a port
	// that counts every connection: nothing may ever reach it.
	code, body := sc.slash(t, "U0ALICE01", fmt.Sprintf("/scan 127.0.0.1 %d", trapPort), "trig-ask")
	require.Equal(t, http.StatusOK, code, body)
	m := approveButton.FindStringSubmatch(body)
	require.NotNil(t, m, body)
	slackID := m[1]
	mmID, approveCtx := mattermostPrompt(t, srv.base, fmt.Sprintf("/scan 127.0.0.1 %d", trapPort))

	for range 20 { // warm up, then the baseline
		code, _ = sc.slash(t, "U0CAROL01", "/opsbot approvals", fmt.Sprintf("trig-warm-%d", time.Now().UnixNano()))
		require.Equal(t, http.StatusOK, code)
	}
	rss0, _ := srv.memory(t)
	goroutines0 := goroutines(t, srv.base)
	t.Logf("baseline: RSS %d KiB, %d goroutines", rss0, goroutines0)

	// Slow-loris connections hang on for the whole test; the server's
	// timeouts must cut them, while it goes on serving everyone else.
	lorisHeaders := slowLoris(t, addr, 50, false)
	lorisBodies := slowLoris(t, addr, 20, true)

	// A health probe throughout: the process stays healthy.
	stopProbe := make(chan struct{})
	probeDone := make(chan struct{})
	var probes, probeFailures atomic.Int64
	go func() {
		defer close(probeDone)
		client := &http.Client{Timeout: 10 * time.Second}
		for {
			select {
			case <-stopProbe:
				return
			case <-time.After(200 * time.Millisecond):
			}
			resp, err := client.Get(srv.base + "/healthz")
			probes.Add(1)
			if err != nil {
				probeFailures.Add(1)
				continue
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				probeFailures.Add(1)
			}
		}
	}()

	t.Run("ReplayedAndForgedSlackRequests", func(t *testing.T) {
		approve := sc.clickForm("U0CAROL01", "/opsbot approve "+slackID, "trig-replay")
		slash := sc.slashForm("U0ALICE01", "/portcheck", fmt.Sprintf("127.0.0.1 %d", trapPort), "trig-replay-2")
		for _, tc := range []struct {
			name, path, body string
			at               time.Time
		}{
			{"approve click captured 6 minutes ago", "/slack/interactions", approve, time.Now().Add(-6 * time.Minute)},
			{"approve click captured an hour ago", "/slack/interactions", approve, time.Now().Add(-time.Hour)},
			{"approve click stamped 6 minutes ahead", "/slack/interactions", approve, time.Now().Add(6 * time.Minute)},
			{"slash command captured 6 minutes ago", "/slack/commands", slash, time.Now().Add(-6 * time.Minute)},
			{"slash command captured a day ago", "/slack/commands", slash, time.Now().Add(-24 * time.Hour)},
		} {
			code, _ := sc.post(t, tc.path, tc.body, tc.at)
			assert.Equal(t, http.StatusUnauthorized, code, tc.name)
		}
		// Signed with another secret, or re-signed body altered after
		// signing: the signature does not match.
		stamp, sig := slackSign(approve, time.Now())
		for _, tc := range []struct{ name, body, sig string }{
			{"altered after signing", strings.Replace(approve, "U0CAROL01", "U0ERIN001", 1), sig},
			{"signature of another secret", approve, "v0=" + hex.EncodeToString(hmacSHA256("not-the-secret", "v0:"+stamp+":"+approve))},
			{"empty signature", approve, ""},
			{"signature not hex", approve, "v0=zz"},
		} {
			req, err := http.NewRequest(http.MethodPost, srv.base+"/slack/interactions", strings.NewReader(tc.body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Slack-Request-Timestamp", stamp)
			req.Header.Set("X-Slack-Signature", tc.sig)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			_ = resp.Body.Close()
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, tc.name)
		}
		// A valid delivery replayed within the window (Slack's own retry,
		// or a copy): the second runs nothing.
		port, hits := countingListener(t)
		once := sc.slashForm("U0ALICE01", "/portcheck", fmt.Sprintf("127.0.0.1 %d", port), "trig-once")
		at := time.Now()
		code, body := sc.post(t, "/slack/commands", once, at)
		require.Equal(t, http.StatusOK, code, body)
		code, body = sc.post(t, "/slack/commands", once, at)
		assert.Equal(t, http.StatusOK, code)
		assert.NotContains(t, body, "succeeded", "the replay ran nothing")
		assert.Equal(t, int64(1), hits.Load())
	})

	t.Run("ForgedMattermostContexts", func(t *testing.T) {
		clone := func(c map[string]any) map[string]any {
			out := map[string]any{}
			for k, v := range c {
				out[k] = v
			}
			return out
		}
		deny := clone(approveCtx)
		deny["line"] = "/opsbot deny " + mmID
		otherSecret := clone(approveCtx)
		exp, _ := approveCtx["exp"].(string)
		otherSecret["sig"] = hex.EncodeToString(hmacSHA256("not-the-secret", string(mmCanonical("/opsbot approve "+mmID, mmID, "chan1", exp))))
		unsigned := clone(approveCtx)
		delete(unsigned, "sig")
		numbers := clone(approveCtx)
		numbers["exp"] = 99999999999
		longer := clone(approveCtx)
		longer["exp"] = "99999999999" // a later expiry, not signed
		otherID := clone(approveCtx)
		otherID["line"], otherID["ref"] = "/opsbot approve "+slackID, slackID
		for _, tc := range []struct {
			name    string
			context map[string]any
			channel string
		}{
			{"line changed from approve to deny", deny, "chan1"},
			{"signed with another secret", otherSecret, "chan1"},
			{"no signature", unsigned, "chan1"},
			{"expiry as a number", numbers, "chan1"},
			{"expiry extended", longer, "chan1"},
			{"another request's ID", otherID, "chan1"},
			{"a genuine button clicked in another channel", approveCtx, "chan2"},
			{"empty context", map[string]any{}, "chan1"},
		} {
			// 200 with the refusal in ephemeral_text: Mattermost drops the
			// text of any other status.
			code, body := mattermostClick(t, srv.base, "ucarol", tc.channel, tc.context)
			assert.Equal(t, http.StatusOK, code, "%s: %s", tc.name, body)
			assert.Contains(t, body, "nothing ran", tc.name)
		}
		// A wrong command token: refused in words, nothing run.
		code, cr := mattermostCommand(t, srv.base, "wrongtoken000000000000000", "ualice", "alice", fmt.Sprintf("/portcheck 127.0.0.1 %d", trapPort))
		assert.Equal(t, http.StatusOK, code)
		assert.Contains(t, cr.Text, "nothing ran")
	})

	t.Run("TenMegabyteBodies", func(t *testing.T) {
		big := bytes.Repeat([]byte("a"), 10<<20)
		type target struct{ path, contentType string }
		targets := []target{
			{"/slack/commands", "application/x-www-form-urlencoded"},
			{"/slack/interactions", "application/x-www-form-urlencoded"},
			{"/mattermost/command", "application/x-www-form-urlencoded"},
			{"/mattermost/action", "application/json"},
		}
		const each = 10 // 40 bodies of 10 MB at once: 400 MB if any were read whole
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			counts = map[string]int{}
		)
		for i := range len(targets) * each {
			wg.Go(func() {
				tg := targets[i%len(targets)]
				req, err := http.NewRequest(http.MethodPost, srv.base+tg.path, bytes.NewReader(big))
				if !assert.NoError(t, err) {
					return
				}
				req.Header.Set("Content-Type", tg.contentType)
				stamp, sig := slackSign("", time.Now())
				req.Header.Set("X-Slack-Request-Timestamp", stamp)
				req.Header.Set("X-Slack-Signature", sig)
				req.Header.Set("Authorization", "Token "+mmCmdToken)
				resp, err := http.DefaultClient.Do(req)
				key := ""
				switch {
				case err != nil && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)):
					key = "connection closed while sending" // the server stopped reading: fine
				case err != nil:
					t.Errorf("%s: %v", tg.path, err)
					return
				default:
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					assert.GreaterOrEqual(t, resp.StatusCode, 400, tg.path)
					assert.Less(t, resp.StatusCode, 500, tg.path)
					key = strconv.Itoa(resp.StatusCode)
				}
				mu.Lock()
				counts[tg.path+" "+key]++
				mu.Unlock()
			})
		}
		wg.Wait()
		// A 10 MB header line.
		req, err := http.NewRequest(http.MethodGet, srv.base+"/healthz", nil)
		require.NoError(t, err)
		req.Header.Set("X-Big", string(big))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
			counts["header "+strconv.Itoa(resp.StatusCode)]++
		} else {
			counts["header: connection closed while sending"]++
		}
		t.Logf("10 MB bodies, by endpoint and answer: %v", counts)
		_, peak := srv.memory(t)
		assert.Less(t, peak-rss0, int64(maxMemoryGrowth), "peak RSS %d KiB over a baseline of %d KiB", peak, rss0)
	})

	t.Run("TenThousandCommandsFromOneUser", func(t *testing.T) {
		port, hits := countingListener(t)
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 60 * time.Second}
		defer client.CloseIdleConnections()
		var (
			ran, limited, other atomic.Int64
			wg                  sync.WaitGroup
			next                atomic.Int64
			sample              sync.Once
		)
		start := time.Now()
		for range 16 {
			wg.Go(func() {
				for {
					i := next.Add(1)
					if i > abuseRequests {
						return
					}
					form := sc.slashForm("U0FLOOD01", "/portcheck", fmt.Sprintf("127.0.0.1 %d", port), fmt.Sprintf("trig-flood-%05d", i))
					req, _ := http.NewRequest(http.MethodPost, srv.base+"/slack/commands", strings.NewReader(form))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					stamp, sig := slackSign(form, time.Now())
					req.Header.Set("X-Slack-Request-Timestamp", stamp)
					req.Header.Set("X-Slack-Signature", sig)
					resp, err := client.Do(req)
					if !assert.NoError(t, err) {
						return
					}
					b, _ := io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					assert.Equal(t, http.StatusOK, resp.StatusCode)
					switch s := string(b); {
					case strings.Contains(s, "rate limit: too many commands from you; retry in"):
						limited.Add(1)
					case strings.Contains(s, "succeeded!"):
						ran.Add(1)
					default:
						other.Add(1)
						sample.Do(func() { t.Logf("another answer: %.300s", s) })
					}
				}
			})
		}
		wg.Wait()
		took := time.Since(start)
		// 60 a minute, refilled continuously: at most 60 plus one a second.
		allowed := int64(60 + took/time.Second + 1)
		assert.LessOrEqual(t, ran.Load()+other.Load(), allowed, "no more ran than the rate limit allows")
		assert.GreaterOrEqual(t, limited.Load(), int64(abuseRequests)-allowed, "the rest were told to retry later")
		assert.LessOrEqual(t, hits.Load(), allowed, "connections that reached the target")
		t.Logf("%d commands from one user in %s (%.0f/s): %d ran, %d answered with the rate limit, %d other; %d connections reached the port",
			abuseRequests, took.Round(time.Millisecond), float64(abuseRequests)/took.Seconds(), ran.Load(), limited.Load(), other.Load(), hits.Load())
	})

	t.Run("TwentyThousandConnectionsToListenPorts", func(t *testing.T) {
		// One /listen from each platform, each port hit by 20 000
		// connect-and-close connections: each request posts its first
		// connections, then counts, then sums up; the posts stay under the
		// cap and the queues bounded.
		slackPort, mmPort := listenPort(t), listenPort(t)
		slackBefore, mmBefore := api.count("/chat.postMessage"), mm.created()
		hooksBefore := api.count("/hook/")
		code, _ := sc.slash(t, "U0ALICE01", fmt.Sprintf("/listen %d for 20s", slackPort), "trig-listen")
		require.Equal(t, http.StatusOK, code)
		code, _ = mattermostCommand(t, srv.base, mmCmdToken, "ualice", "alice", fmt.Sprintf("/listen %d for 20s", mmPort))
		require.Equal(t, http.StatusOK, code)
		listening := func(port int) bool {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
			if err == nil {
				_ = c.Close()
			}
			return err == nil
		}
		require.Eventually(t, func() bool { return listening(slackPort) && listening(mmPort) }, 10*time.Second, 20*time.Millisecond)
		rss1, _ := srv.memory(t)
		var wg sync.WaitGroup
		var made, failed atomic.Int64
		start := time.Now()
		for _, port := range []int{slackPort, mmPort} {
			var next atomic.Int64
			for range 8 {
				wg.Go(func() {
					for next.Add(1) <= 20000 {
						c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
						if err != nil {
							failed.Add(1)
							continue
						}
						made.Add(1)
						_ = c.Close()
					}
				})
			}
		}
		wg.Wait()
		t.Logf("%d connections made (%d failed) to two /listen ports in %s", made.Load(), failed.Load(), time.Since(start).Round(time.Millisecond))
		_, peak := srv.memory(t)
		for _, port := range []int{slackPort, mmPort} {
			want := fmt.Sprintf("Listener on tcp port %d closed", port)
			require.Eventually(t, func() bool {
				return strings.Contains(api.all(), want) || strings.Contains(mm.all(), want)
			}, 60*time.Second, 100*time.Millisecond, want)
		}
		slackPosts := api.count("/chat.postMessage") - slackBefore + api.count("/hook/") - hooksBefore
		mmPosts := mm.created() - mmBefore
		// The listening notice, the first connections, one progress message.
		const most = 1 + 10 + 1
		assert.LessOrEqual(t, slackPosts, most, "Slack messages from the /listen")
		assert.LessOrEqual(t, mmPosts, most, "Mattermost posts from the /listen")
		assert.Contains(t, api.all(), "came from 127.0.0.1", "the summary counts the rest")
		assert.Contains(t, mm.all(), "came from 127.0.0.1", "the summary counts the rest")
		assert.Zero(t, api.refusals(), "no response_url was used more than five times")
		assert.Less(t, peak-rss1, int64(64<<10), "peak RSS %d KiB, %d KiB before the connections", peak, rss1)
		t.Logf("posted: %d Slack messages, %d Mattermost posts; RSS %d KiB before, peak %d KiB", slackPosts, mmPosts, rss1, peak)
	})

	t.Run("RandomBytesFromTheFuzzerAtEveryEndpoint", func(t *testing.T) {
		// The Go fuzzer's mutator, run by this test binary in fuzzing mode
		// for a bounded time against this server (FuzzServeEndpoints). The
		// binary is not built for coverage guidance, so the fuzzer mutates
		// blind: random bytes, as asked.
		cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.fuzz=^FuzzServeEndpoints$", //nolint:gosec // this test binary, run again
			"-test.fuzztime="+strconv.Itoa(abuseFuzzInputs)+"x", "-test.fuzzcachedir="+t.TempDir(), "-test.parallel=2", "-test.timeout=5m")
		cmd.Env = append(os.Environ(), envAbuseURL+"="+srv.base)
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		require.NoError(t, err, "the fuzzer found a failing input:\n%s", out.String())
		t.Logf("fuzzer: %d inputs in %s across the endpoints", abuseFuzzInputs, time.Since(start).Round(time.Millisecond))
	})

	// The slow-loris connections were cut by the server's timeouts
	// (ReadHeaderTimeout 5 s, ReadTimeout 15 s), not left to hang.
	headerCut := lorisHeaders.wait(t, 60*time.Second)
	bodyCut := lorisBodies.wait(t, 60*time.Second)
	assert.Less(t, headerCut, readHeaderTimeout+20*time.Second, "slow headers cut near ReadHeaderTimeout")
	assert.Less(t, bodyCut, readTimeout+30*time.Second, "slow bodies cut near ReadTimeout")
	t.Logf("slow-loris: 50 connections trickling headers all cut within %s, 20 trickling bodies within %s",
		headerCut.Round(100*time.Millisecond), bodyCut.Round(100*time.Millisecond))

	close(stopProbe)
	<-probeDone
	assert.Zero(t, probeFailures.Load(), "/healthz answered throughout (%d probes)", probes.Load())

	// Nothing executed: both requests still pending, nothing reached the
	// port they are bound to, and no execution in the audit log.
	assert.Zero(t, trap.Load(), "connections to the approved-action port")
	st, err := sqlite.Open(t.Context(), db)
	require.NoError(t, err)
	defer func() { _ = st.Close() }()
	for _, id := range []string{slackID, mmID} {
		a, err := st.Approval(t.Context(), id)
		require.NoError(t, err)
		assert.Equal(t, bot.ApprovalPending, a.State, id)
		assert.Empty(t, a.Decisions, "no decision got through on %s", id)
	}
	recs, err := st.Audit(t.Context(), bot.AuditQuery{})
	require.NoError(t, err)
	kinds := map[string]int{}
	for _, r := range recs {
		kinds[r.Kind]++
	}
	assert.Zero(t, kinds[bot.AuditExecution], "no approved action ran")
	assert.Positive(t, kinds[bot.AuditRejected], "refusals are audited")
	t.Logf("audit records by kind: %v", kinds)

	// Nothing crashed; the process is healthy and its memory bounded.
	assert.False(t, srv.dead(), "the process is alive")
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(srv.base + path)
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
	assert.NotContains(t, srv.logs.String(), "panic")
	var goroutinesNow int
	assert.Eventually(t, func() bool {
		goroutinesNow = goroutines(t, srv.base)
		return goroutinesNow <= goroutines0+50
	}, 30*time.Second, 250*time.Millisecond, "goroutines back near the baseline of %d", goroutines0)
	rss, peak := srv.memory(t)
	assert.Less(t, peak-rss0, int64(maxMemoryGrowth), "peak RSS %d KiB over a baseline of %d KiB", peak, rss0)
	t.Logf("memory: RSS %d KiB before, %d KiB after, peak %d KiB; goroutines %d before, %d after; whole test %s",
		rss0, rss, peak, goroutines0, goroutinesNow, time.Since(began).Round(100*time.Millisecond))
}

// listenPort is a TCP port free on every address right now.
func listenPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func hmacSHA256(key, msg string) []byte {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// mmCanonical is what a Mattermost button context's HMAC covers
// (adapters/mattermost/sign.go), for forging one with another key.
func mmCanonical(line, ref, channel, exp string) []byte {
	var b strings.Builder
	b.WriteString("opsbot-mattermost-action")
	for _, f := range []string{"1", line, ref, channel, exp} {
		fmt.Fprintf(&b, "\n%d:%s", len(f), f)
	}
	return []byte(b.String())
}

func mattermostCommand(t *testing.T, base, token, userID, userName, line string) (int, mmapi.CommandResponse) {
	t.Helper()
	name, text, _ := strings.Cut(line, " ")
	form := url.Values{"token": {token}, "team_id": {"team1"}, "channel_id": {"chan1"}, "channel_name": {"inc-web"},
		"user_id": {userID}, "user_name": {userName}, "command": {name}, "text": {text}, "trigger_id": {"trig"}}
	req, err := http.NewRequest(http.MethodPost, base+"/mattermost/command", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Token "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var cr mmapi.CommandResponse
	_ = json.NewDecoder(resp.Body).Decode(&cr)
	return resp.StatusCode, cr
}

func mattermostClick(t *testing.T, base, userID, channel string, ctxMap map[string]any) (int, string) {
	t.Helper()
	body, err := json.Marshal(mmapi.PostActionIntegrationRequest{UserID: userID, ChannelID: channel, TeamID: "team1", PostID: "post1", Context: ctxMap})
	require.NoError(t, err)
	resp, err := http.Post(base+"/mattermost/action", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// mattermostPrompt asks for an action that needs approval from Mattermost
// and returns the request's ID and its Approve button's signed context.
func mattermostPrompt(t *testing.T, base, line string) (string, map[string]any) {
	t.Helper()
	code, cr := mattermostCommand(t, base, mmCmdToken, "ualice", "alice", line)
	require.Equal(t, http.StatusOK, code)
	for _, att := range cr.Attachments {
		for _, a := range att.Actions {
			if strings.HasPrefix(a.Name, "Approve") && a.Integration != nil {
				ref, _ := a.Integration.Context["ref"].(string)
				require.NotEmpty(t, ref)
				return ref, a.Integration.Context
			}
		}
	}
	b, _ := json.Marshal(cr)
	t.Fatalf("no Approve button in %s", b)
	return "", nil
}

// goroutines reads go_goroutines from /metrics.
func goroutines(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return int(n)
		}
	}
	t.Fatal("no go_goroutines in /metrics")
	return 0
}

// loris is a set of connections that trickle a request a byte at a time.
type loris struct {
	cut chan time.Duration // how long each lasted before the server closed it
	n   int
}

// slowLoris opens n connections to addr that send a request one byte
// every 200 ms: with body, complete headers and then a body that never
// ends; without, headers that never end.
func slowLoris(t *testing.T, addr string, n int, body bool) *loris {
	t.Helper()
	l := &loris{cut: make(chan time.Duration, n), n: n}
	for i := range n {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		start := time.Now()
		head := "POST /slack/commands HTTP/1.1\r\nHost: " + addr + "\r\nX-Slow-" + strconv.Itoa(i) + ": "
		if body {
			head = "POST /mattermost/action HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
		}
		_, err = io.WriteString(conn, head)
		require.NoError(t, err)
		closed := make(chan struct{})
		go func() { // trickle until the server hangs up
			for {
				select {
				case <-closed:
					return
				case <-time.After(200 * time.Millisecond):
				}
				if _, err := conn.Write([]byte("a")); err != nil {
					return
				}
			}
		}()
		go func() { // the server's answer, if any, then its close
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
			_, _ = io.Copy(io.Discard, conn)
			close(closed)
			l.cut <- time.Since(start)
		}()
	}
	return l
}

// wait returns how long the longest-lived connection lasted.
func (l *loris) wait(t *testing.T, bound time.Duration) time.Duration {
	t.Helper()
	var longest time.Duration
	deadline := time.After(bound)
	for range l.n {
		select {
		case d := <-l.cut:
			longest = max(longest, d)
		case <-deadline:
			t.Fatalf("slow-loris connections still open after %s", bound)
		}
	}
	return longest
}

// FuzzServeEndpoints sends each input to one of the bot's HTTP endpoints:
// as the body of a correctly signed Slack command or click (so the bytes
// get past the signature to the parsers), as a Slack request with a forged
// signature, as a Mattermost command with a valid token, as a Mattermost
// button click, or as a path. The server must never answer 5xx or go away.
// TestAbuse_HTTPEndpoints runs it for a bounded time against its server
// (OPSBOT_TEST_ABUSE_URL); go test -fuzz=FuzzServeEndpoints on its own
// starts a server of its own.
func FuzzServeEndpoints(f *testing.F) {
	base := os.Getenv(envAbuseURL)
	if base == "" {
		if fz := flag.Lookup("test.fuzz"); fz == nil || fz.Value.String() == "" {
			f.Skip("the seeds run in TestAbuse_HTTPEndpoints, whose fuzzing step aims this at its server; " +
				"go test -fuzz=FuzzServeEndpoints starts a server of its own")
		}
		base = fuzzServer(f)
	}
	sc := slackClient{base: base, hook: "http://127.0.0.1:1"}
	f.Add(uint8(0), []byte(sc.slashForm("U0MALLORY", "/portcheck", "127.0.0.1 1", "trig-f0")))
	f.Add(uint8(0), []byte(sc.slashForm("U0MALLORY", "/opsbot", "approve 0123456789ab", "trig-f1")))
	f.Add(uint8(1), []byte(sc.clickForm("U0MALLORY", "/opsbot approve 0123456789ab", "trig-f2")))
	f.Add(uint8(2), []byte("command=%2Fscan&text=127.0.0.1&user_id=U0MALLORY&channel_id=C1"))
	f.Add(uint8(3), []byte("command=%2Fscan&text=127.0.0.1+1-10&user_id=umallory&user_name=mallory&channel_id=chan1&token="+mmCmdToken))
	f.Add(uint8(4), []byte(`{"user_id":"umallory","channel_id":"chan1","context":{"v":"1","line":"/opsbot approve 0123456789ab","ref":"0123456789ab","channel":"chan1","exp":"99999999999","sig":"00"}}`))
	f.Add(uint8(5), []byte("metrics"))
	client := &http.Client{Timeout: 60 * time.Second}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		var (
			req *http.Request
			err error
		)
		switch which % 6 {
		case 0, 1:
			path := []string{"/slack/commands", "/slack/interactions"}[which%6]
			req, err = http.NewRequest(http.MethodPost, base+path, bytes.NewReader(body))
			if err == nil {
				stamp, sig := slackSign(string(body), time.Now())
				req.Header.Set("X-Slack-Request-Timestamp", stamp)
				req.Header.Set("X-Slack-Signature", sig)
			}
		case 2:
			n := min(len(body), 32)
			req, err = http.NewRequest(http.MethodPost, base+"/slack/commands", bytes.NewReader(body[n:]))
			if err == nil {
				req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(time.Now().Unix(), 10))
				req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(body[:n]))
			}
		case 3:
			req, err = http.NewRequest(http.MethodPost, base+"/mattermost/command", bytes.NewReader(body))
			if err == nil {
				req.Header.Set("Authorization", "Token "+mmCmdToken)
			}
		case 4:
			req, err = http.NewRequest(http.MethodPost, base+"/mattermost/action", bytes.NewReader(body))
			if err == nil {
				req.Header.Set("Content-Type", "application/json")
			}
		case 5:
			req, err = http.NewRequest(http.MethodGet, base+"/"+url.PathEscape(string(body)), nil)
		}
		if err != nil {
			return // not a request a client could send
		}
		if req.Method == http.MethodPost && req.Header.Get("Content-Type") == "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v (is the server down?)", req.Method, req.URL.Path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s answered %d", req.Method, req.URL.Path, resp.StatusCode)
		}
	})
}

// fuzzServer starts a server for FuzzServeEndpoints run on its own (the
// seeds in a plain go test, or go test -fuzz): built here, with stand-ins
// for Slack's and Mattermost's APIs that answer everything.
func fuzzServer(f *testing.F) string {
	f.Helper()
	dir := f.TempDir()
	bin := filepath.Join(dir, "opsbot")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(f, err, "go build: %s", out)
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch {
		case strings.HasSuffix(r.URL.Path, "/system/ping"):
			_, _ = io.WriteString(w, `{"status":"OK"}`)
		case strings.HasPrefix(r.URL.Path, "/api/v4/users/"):
			_, _ = io.WriteString(w, `{"id":"umallory","username":"mallory"}`)
		case strings.HasPrefix(r.URL.Path, "/api/v4/posts"):
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"id":"post0000000000000000000001"}`)
		default:
			_, _ = io.WriteString(w, `{"ok":true,"channel":"C1","ts":"1700000000.000100"}`)
		}
	}))
	f.Cleanup(stub.Close)
	cfg := filepath.Join(dir, "policy.yaml")
	require.NoError(f, os.WriteFile(cfg, []byte(abusePolicy), 0o600))
	addr := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(f, err)
		defer ln.Close()
		return ln.Addr().String()
	}()
	env := append(os.Environ(), "OPSBOT_CONFIG="+cfg, "OPSBOT_DATABASE="+filepath.Join(dir, "opsbot.db"), "OPSBOT_HTTP_ADDR="+addr,
		"OPSBOT_SLACK_SIGNING_SECRET="+slackSecret, "OPSBOT_SLACK_BOT_TOKEN=xoxb-test", "OPSBOT_SLACK_API_URL="+stub.URL+"/",
		"OPSBOT_MATTERMOST_URL="+stub.URL, "OPSBOT_MATTERMOST_TOKEN="+mmBotToken, "OPSBOT_MATTERMOST_COMMAND_TOKENS="+mmCmdToken,
		"OPSBOT_MATTERMOST_ACTION_SECRET="+mmSecret, "OPSBOT_PUBLIC_URL=http://"+addr, "OPSBOT_LOG_LEVEL=error")
	return startBot(f, "fuzz", bin, env, addr).base
}
