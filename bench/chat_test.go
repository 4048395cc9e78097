package bench

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
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
	"sync"
	"testing"
	"time"

	"github.com/opsbot/opsbot/adapters/postgres/pgtest"
)

// (f) The chat path: 1 000 slash commands at concurrency 50 against
// `opsbot serve`, signed as Slack signs them and tokened as Mattermost
// sends them; the acknowledgement latency (the HTTP answer, which here is
// the result itself) and the process's peak memory.
func BenchmarkChatAck(b *testing.B) {
	ts := requireTools(b)
	w := printer(b)
	defer func() { _ = w.Flush() }()

	const (
		n    = chatN
		conc = chatConc
	)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"ok":true,"id":"u1","username":"bench","status":"OK","channel":"C1","ts":"1.2"}`)
	}))
	defer api.Close()
	dir := b.TempDir()
	cfg := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(cfg, []byte("limits: {user_per_minute: 100000, target_per_minute: 100000}\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer target.Close()
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	port := target.Addr().(*net.TCPAddr).Port

	base, pid := startServe(b, ts.opsbot, chatEnv(cfg, api.URL, filepath.Join(dir, "opsbot.db")))
	rest := procStatus(pid)

	line := fmt.Sprintf("127.0.0.1 %d", port)
	slackReq := func(i int) *http.Request { return slackCommand(base, api.URL, line, i) }
	mmReq := func(i int) *http.Request { return mmCommand(base, api.URL, line, i) }
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: chatConc}, Timeout: 10 * time.Second}
	runN := func(count int, mk func(int) *http.Request) (Timings, int) { return fire(client, count, mk) }
	run := func(mk func(int) *http.Request) (Timings, int) { return runN(n, mk) }
	printf(w, "\n=== (f) chat path: %d slash commands (/portcheck %s, a listening port) at concurrency %d against opsbot serve\n", n, line, conc)
	printf(w, "  load average at start: %s\n", loadavg())
	printf(w, "  the answer is the command's result (a /portcheck finishes inside Slack's 3 s and Mattermost's 30 s), so ack latency = time to the result\n")
	printf(w, "  %-28s  %5s  %8s  %8s  %8s  %6s\n", "path", "n", "p50 ms", "p99 ms", "max ms", "failed")
	var worst time.Duration
	for _, p := range []struct {
		name string
		mk   func(int) *http.Request
	}{{"slack (signed)", slackReq}, {"mattermost (token)", mmReq}} {
		times, failed := run(p.mk)
		worst = max(worst, times.Quantile(0.99))
		printf(w, "  %-28s  %5d  %8s  %8s  %8s  %6d\n", p.name, len(times), millis(times.Median()), millis(times.Quantile(0.99)), millis(times.Max()), failed)
	}
	peak := procStatus(pid)
	printf(w, "  opsbot serve memory: at rest VmRSS %s; after both runs VmRSS %s, peak VmHWM %s\n", rest["VmRSS"], peak["VmRSS"], peak["VmHWM"])

	// Memory must not grow with use: 10 000 more commands (each with its
	// audit record), then the resident size again.
	const more = 10000
	start := time.Now()
	moreTimes, moreFailed := runN(more, mmReq)
	after := procStatus(pid)
	printf(w, "  after %d more commands (%.1f s, p99 %s ms, %d failed): VmRSS %s, peak VmHWM %s\n",
		more, time.Since(start).Seconds(), millis(moreTimes.Quantile(0.99)), moreFailed, after["VmRSS"], after["VmHWM"])
	peak = after
	hwm, _ := strconv.Atoi(firstField(peak["VmHWM"]))
	sayln(w, "  targets:")
	printf(w, "    ack p99 under 50 ms: %s (worst p99 %s ms)\n", met(worst < 50*time.Millisecond), millis(worst))
	printf(w, "    peak RSS under 64 MiB: %s (%d KiB)\n", met(hwm > 0 && hwm < 64*1024), hwm)
	b.ReportMetric(float64(worst)/float64(time.Millisecond), "ack-p99-ms")
	b.ReportMetric(float64(hwm)/1024, "peak-RSS-MiB")
}

func firstField(s string) string {
	for i, c := range s {
		if c == ' ' {
			return s[:i]
		}
	}
	return s
}

const (
	chatSecret = "benchsigningsecret0000000000000000"
	chatToken  = "benchcommandtoken000000000000000"
	chatN      = 1000
	chatConc   = 50
)

// chatEnv is opsbot serve's environment for the chat benchmarks: both
// platforms against the stand-in API, the given store.
func chatEnv(cfg, apiURL, database string) []string {
	return append(os.Environ(), "OPSBOT_CONFIG="+cfg, "OPSBOT_DATABASE="+database,
		"OPSBOT_LOG_LEVEL=warn", "OPSBOT_SLACK_SIGNING_SECRET="+chatSecret, "OPSBOT_SLACK_BOT_TOKEN=xoxb-bench", "OPSBOT_SLACK_API_URL="+apiURL+"/",
		"OPSBOT_MATTERMOST_URL="+apiURL, "OPSBOT_MATTERMOST_TOKEN=benchbottoken", "OPSBOT_MATTERMOST_COMMAND_TOKENS="+chatToken,
		"OPSBOT_MATTERMOST_ACTION_SECRET="+chatSecret)
}

// startServe starts opsbot serve on a free loopback port, waits for
// /healthz, and stops it when b ends.
func startServe(b *testing.B, bin string, env []string) (base string, pid int) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	srv := exec.Command(bin, "serve") //nolint:gosec // our binary
	srv.Env = append(env, "OPSBOT_HTTP_ADDR="+addr)
	var logs bytes.Buffer
	srv.Stdout, srv.Stderr = &logs, &logs
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = srv.Process.Signal(os.Interrupt)
		_ = srv.Wait()
	})
	base = "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz") //nolint:noctx // loopback, bounded by the loop
		if err == nil {
			resp.Body.Close()
			return base, srv.Process.Pid
		}
		if time.Now().After(deadline) {
			b.Fatalf("opsbot serve did not start: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// slackCommand is a slash command signed as Slack signs it.
func slackCommand(base, apiURL, line string, i int) *http.Request {
	body := url.Values{"command": {"/portcheck"}, "text": {line}, "user_id": {"U0BENCH" + strconv.Itoa(i%50)}, "user_name": {"bench"},
		"channel_id": {"C1"}, "team_id": {"T1"}, "trigger_id": {"trig" + strconv.Itoa(i)}, "response_url": {apiURL + "/hook"}}.Encode()
	stamp := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(chatSecret))
	fmt.Fprintf(mac, "v0:%s:%s", stamp, body)
	req, _ := http.NewRequest(http.MethodPost, base+"/slack/commands", bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", stamp)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	return req
}

// mmCommand is a slash command as Mattermost sends it.
func mmCommand(base, apiURL, line string, i int) *http.Request {
	body := url.Values{"token": {chatToken}, "command": {"/portcheck"}, "text": {line}, "user_id": {"ubench" + strconv.Itoa(i%50)}, "user_name": {"bench"},
		"channel_id": {"c1"}, "channel_name": {"bench"}, "team_id": {"t1"}, "trigger_id": {"trig" + strconv.Itoa(i)}, "response_url": {apiURL + "/hook"}}.Encode()
	req, _ := http.NewRequest(http.MethodPost, base+"/mattermost/command", bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Token "+chatToken)
	return req
}

// fire sends count requests made by mk at concurrency chatConc and times
// each answer; a request fails unless it answers 200 with the port open.
func fire(client *http.Client, count int, mk func(int) *http.Request) (Timings, int) {
	var (
		mu     sync.Mutex
		times  Timings
		failed int
		wg     sync.WaitGroup
	)
	next := make(chan int)
	for range chatConc {
		wg.Go(func() {
			for i := range next {
				req := mk(i)
				start := time.Now()
				resp, err := client.Do(req)
				d := time.Since(start)
				ok := err == nil && resp.StatusCode == http.StatusOK
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					ok = ok && bytes.Contains(body, []byte("succeeded"))
				}
				mu.Lock()
				times = append(times, d)
				if !ok {
					failed++
				}
				mu.Unlock()
			}
		})
	}
	for i := range count {
		next <- i
	}
	close(next)
	wg.Wait()
	return times, failed
}

// (f2) The same chat path with two replicas of opsbot serve sharing one
// PostgreSQL database, requests alternating between them as a load
// balancer would spread them: the acknowledgement latency with the store
// on PostgreSQL (each command's audit record goes there).
func BenchmarkChatAckTwoReplicas(b *testing.B) {
	ts := requireTools(b)
	w := printer(b)
	defer func() { _ = w.Flush() }()
	db := pgtest.Database(b)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"ok":true,"id":"u1","username":"bench","status":"OK","channel":"C1","ts":"1.2"}`)
	}))
	defer api.Close()
	dir := b.TempDir()
	cfg := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(cfg, []byte("limits: {user_per_minute: 100000, target_per_minute: 100000}\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer target.Close()
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	line := fmt.Sprintf("127.0.0.1 %d", target.Addr().(*net.TCPAddr).Port)
	env := chatEnv(cfg, api.URL, db)
	baseA, _ := startServe(b, ts.opsbot, env)
	baseB, _ := startServe(b, ts.opsbot, env)
	bases := []string{baseA, baseB}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: chatConc}, Timeout: 10 * time.Second}
	fire(client, 100, func(i int) *http.Request { return mmCommand(bases[i%2], api.URL, line, i) }) // warm both

	printf(w, "\n=== (f2) chat path, two replicas on one PostgreSQL: %d slash commands at concurrency %d, alternating replicas\n", chatN, chatConc)
	printf(w, "  load average at start: %s\n", loadavg())
	printf(w, "  %-28s  %5s  %8s  %8s  %8s  %6s\n", "path", "n", "p50 ms", "p99 ms", "max ms", "failed")
	var worst time.Duration
	for _, p := range []struct {
		name string
		mk   func(int) *http.Request
	}{
		{"slack (signed), 2 replicas", func(i int) *http.Request { return slackCommand(bases[i%2], api.URL, line, i) }},
		{"mattermost (token), 2 repl.", func(i int) *http.Request { return mmCommand(bases[i%2], api.URL, line, i) }},
	} {
		times, failed := fire(client, chatN, p.mk)
		worst = max(worst, times.Quantile(0.99))
		printf(w, "  %-28s  %5d  %8s  %8s  %8s  %6d\n", p.name, len(times), millis(times.Median()), millis(times.Quantile(0.99)), millis(times.Max()), failed)
	}
	printf(w, "  target: ack p99 under 50 ms: %s (worst p99 %s ms)\n", met(worst < 50*time.Millisecond), millis(worst))
	b.ReportMetric(float64(worst)/float64(time.Millisecond), "ack-p99-ms")
}
