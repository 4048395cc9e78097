package metrics_test

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/metrics"
	"github.com/opsbot/opsbot/bot"
)

type echo struct{}

func (echo) Name() string    { return "echo" }
func (echo) Summary() string { return "echo" }
func (echo) Usage() string   { return "echo" }
func (echo) Run(ctx context.Context, req bot.Request) (bot.Reply, error) {
	bot.ObserverFrom(ctx).ScanPorts(1000, 0)
	if len(req.Args) > 0 {
		return bot.Reply{}, bot.Errorf(bot.EINVALID, "no arguments")
	}
	return bot.Reply{Status: bot.StatusOK, Title: "ok"}, nil
}

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 200, rec.Code)
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestMetrics_RouterRequestsAndBoundedLabels(t *testing.T) {
	m := metrics.New("v1.2.3")
	r := bot.NewRouter(bot.RouterConfig{Commands: []bot.Command{echo{}}, Observer: m, Users: bot.NewRateLimiter(3)})
	for _, line := range []string{"/echo", "/echo x", "/no-such-command-" + strings.Repeat("z", 50), "/echo", "/echo"} {
		r.Handle(context.Background(), bot.Request{Platform: "shell", User: "alice", Line: line})
	}
	out := scrape(t, m)
	assert.Contains(t, out, `opsbot_requests_total{command="echo",outcome="ok"} 2`)
	assert.Contains(t, out, `opsbot_requests_total{command="echo",outcome="usage"} 1`)
	assert.Contains(t, out, `opsbot_requests_total{command="unknown",outcome="usage"} 1`, "what a user typed never becomes a label")
	assert.NotContains(t, out, "zzzz")
	assert.Contains(t, out, `opsbot_rate_limited_total 1`, "the fourth command of alice in a minute")
	assert.Contains(t, out, `opsbot_requests_total{command="echo",outcome="denied"} 1`)
	assert.Contains(t, out, `opsbot_scan_ports_total 3000`, "commands reach the observer through their context")
	assert.Contains(t, out, `opsbot_build_info{version="v1.2.3"} 1`)
	assert.Contains(t, out, "go_goroutines")
}

// Counters exist at zero before their first event: an alert on
// increase() or rate() then sees the first error, not a series appearing.
func TestMetrics_InitStartsEverySeriesAtZero(t *testing.T) {
	m := metrics.New("v1")
	out := scrape(t, m)
	assert.NotContains(t, out, `opsbot_requests_total{command="scan"`, "before Init")
	m.Init([]string{"scan", "apache"}, []string{"slack"})
	out = scrape(t, m)
	for _, series := range []string{
		`opsbot_requests_total{command="scan",outcome="failed"} 0`,
		`opsbot_requests_total{command="apache",outcome="ok"} 0`,
		`opsbot_request_duration_seconds_count{command="scan"} 0`,
		`opsbot_adapter_errors_total{adapter="slack"} 0`,
		`opsbot_approvals_total{outcome="expired"} 0`,
		`opsbot_approvals_total{outcome="abandoned"} 0`,
		`opsbot_audit_write_failures_total{kind="started"} 0`,
		`opsbot_busy_total{what="sockets"} 0`,
		`opsbot_busy_total{what="jobs_per_user"} 0`,
		`opsbot_busy_total{what="jobs_total"} 0`,
		`opsbot_policy_reloads_total{result="failed"} 0`,
	} {
		assert.Contains(t, out, series)
	}
	m.AuditFailed(bot.AuditStarted)
	m.Busy("sockets")
	m.SetReady("store", false)
	m.PolicyReload(false)
	out = scrape(t, m)
	assert.Contains(t, out, `opsbot_audit_write_failures_total{kind="started"} 1`)
	assert.Contains(t, out, `opsbot_busy_total{what="sockets"} 1`)
	assert.Contains(t, out, `opsbot_ready{component="store"} 0`)
	assert.Contains(t, out, `opsbot_policy_reloads_total{result="failed"} 1`)
}

func TestMetrics_BusyReachesTheObserverThroughTheContext(t *testing.T) {
	m := metrics.New("v1")
	bot.ObserveBusy(bot.WithObserver(context.Background(), m), "jobs_total")
	bot.ObserveBusy(context.Background(), "jobs_total") // no observer: nothing, no panic
	assert.Contains(t, scrape(t, m), `opsbot_busy_total{what="jobs_total"} 1`)
}
