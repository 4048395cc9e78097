package bench

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opsbot/opsbot/commands/apache/apachetest"
)

// (g) /apache beside what people type: `apache2ctl graceful` returns as
// soon as the signal is sent and says nothing of the result; /apache
// reload runs configtest, sends it, and waits for the new generation, the
// parent, the probe URL and the error log. The bench prints both, and the
// cost of that verification, on a private Debian Apache.
func BenchmarkApacheReload(b *testing.B) {
	ts := requireTools(b)
	w := printer(b)
	defer func() { _ = w.Flush() }()
	srv := apachetest.Start(b)
	dir := b.TempDir()
	cfg := filepath.Join(dir, "policy.yaml")
	policy := fmt.Sprintf(`hosts:
  web: {via: local, apache: {ctl: %s, status_url: %q, probe_url: %q}}
roles:
  ops: {commands: ["*"]}
users:
  "shell:bench": [ops]
`, srv.Ctl, srv.StatusURL, srv.ProbeURL)
	if err := os.WriteFile(cfg, []byte(policy), 0o600); err != nil {
		b.Fatal(err)
	}
	env := append(os.Environ(), "OPSBOT_CONFIG="+cfg, "OPSBOT_DATABASE="+filepath.Join(dir, "opsbot.db"), "OPSBOT_LOG_LEVEL=error")
	opsbot := func(line string) (time.Duration, string, error) {
		cmd := exec.Command(ts.opsbot, "run", "--as", "bench", line) //nolint:gosec // our binary, fixed lines
		cmd.Env = env
		start := time.Now()
		out, err := cmd.CombinedOutput()
		return time.Since(start), string(out), err
	}
	waitNewGen := func(before int) time.Duration {
		start := time.Now()
		for time.Since(start) < 10*time.Second {
			if g, err := srv.Generation(); err == nil && g > before {
				return time.Since(start)
			}
			time.Sleep(2 * time.Millisecond)
		}
		return -1
	}
	const rounds = 7
	var raw, rawServing, verified, status, curl Timings
	for range rounds {
		gen, _ := srv.Generation()
		start := time.Now()
		out, err := exec.Command(srv.Ctl, "graceful").CombinedOutput() //nolint:gosec // the test instance's wrapper
		raw = append(raw, time.Since(start))
		if err != nil {
			b.Fatalf("apache2ctl graceful: %v: %s", err, out)
		}
		rawServing = append(rawServing, time.Since(start)+waitNewGen(gen))

		d, out2, err := opsbot("/apache reload web")
		if err != nil || !strings.Contains(out2, "verified") {
			b.Fatalf("opsbot /apache reload: %v\n%s", err, out2)
		}
		verified = append(verified, d)

		d, out2, err = opsbot("/apache status web")
		if err != nil {
			b.Fatalf("opsbot /apache status: %v\n%s", err, out2)
		}
		status = append(status, d)

		start = time.Now()
		resp, err := http.Get(srv.StatusURL) //nolint:noctx // loopback, bounded by the server
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		curl = append(curl, time.Since(start))
	}
	printf(w, "\n=== (g) Apache on loopback (Debian apache2, event MPM, no load), %d rounds, medians\n", rounds)
	printf(w, "  load average at start: %s\n", loadavg())
	printf(w, "  %-62s  %8s  %8s\n", "what", "median", "max")
	row := func(name string, t Timings) {
		printf(w, "  %-62s  %8s  %8s\n", name, millis(t.Median())+" ms", millis(t.Max())+" ms")
	}
	row("apache2ctl graceful (returns; says nothing of the result)", raw)
	row("apache2ctl graceful + polling until the new generation serves", rawServing)
	row("opsbot run /apache reload (configtest, graceful, all checks)", verified)
	row("opsbot run /apache status (process start, store, 3 commands)", status)
	row("one GET of server-status?auto (what status reads)", curl)
	printf(w, "  verified reload / bare graceful-until-serving: %.2fx\n", float64(verified.Median())/float64(rawServing.Median()))
	b.ReportMetric(float64(verified.Median())/float64(time.Millisecond), "reload-ms")
}
