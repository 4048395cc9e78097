package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/metrics"
	"github.com/opsbot/opsbot/internal/testenv"
)

// exported is the set of metric names the bot serves on /metrics.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New("test")
	m.Init([]string{"scan"}, []string{"slack"})
	m.SetReady("store", true)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	names := map[string]bool{"up": true} // Prometheus' own, per scrape target
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[0] == "#" && f[1] == "TYPE" {
			names[f[2]] = true
			if f[3] == "histogram" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					names[f[2]+s] = true
				}
			}
		}
	}
	require.True(t, names["opsbot_ready"])
	return names
}

var metricRE = regexp.MustCompile(`\b((?:opsbot|go|process)_[a-z_]+|up)\b`)

// assertExported fails for every metric an expression reads that the bot
// does not export: a dashboard panel or an alert on a misspelt metric is
// silently empty forever.
func assertExported(t *testing.T, where, expr string, names map[string]bool) int {
	t.Helper()
	n := 0
	for _, m := range metricRE.FindAllString(expr, -1) {
		n++
		assert.True(t, names[m], "%s reads %s, which the bot does not export: %s", where, m, expr)
	}
	return n
}

func TestMonitoring_AlertRulesPassPromtoolAndReadExportedMetrics(t *testing.T) {
	dir := filepath.Join(repo, "deploy", "monitoring")
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		testenv.Missing(t, "promtool is missing (Debian: apt-get install prometheus)")
	}
	for _, args := range [][]string{{"check", "rules", "opsbot-alerts.yaml"}, {"test", "rules", "opsbot-alerts.test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
		assert.Contains(t, string(out), "SUCCESS")
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(readRepo(t, "deploy/monitoring/opsbot-alerts.yaml")), &rules))
	names := exported(t)
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			assert.Positive(t, assertExported(t, r.Alert, r.Expr, names), r.Alert)
		}
	}
	for _, want := range []string{"OpsbotChatErrors", "OpsbotApprovalsExpiring", "OpsbotAuditWriteFailures", "OpsbotScansRefusedBusy", "OpsbotNotReady"} {
		assert.True(t, alerts[want], "an alert %s", want)
	}
}

func TestMonitoring_DashboardLoadsAndReadsExportedMetrics(t *testing.T) {
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	dec := json.NewDecoder(strings.NewReader(readRepo(t, "deploy/monitoring/grafana-dashboard.json")))
	require.NoError(t, dec.Decode(&dash))
	assert.Equal(t, "opsbot", dash.UID)
	require.GreaterOrEqual(t, len(dash.Panels), 8)
	names := exported(t)
	read := map[string]bool{}
	for _, p := range dash.Panels {
		require.NotEmpty(t, p.Targets, p.Title)
		for _, tg := range p.Targets {
			assert.Positive(t, assertExported(t, p.Title, tg.Expr, names), p.Title)
			for _, m := range metricRE.FindAllString(tg.Expr, -1) {
				read[m] = true
			}
		}
	}
	for _, m := range []string{"opsbot_ready", "opsbot_adapter_errors_total", "opsbot_approvals_total", "opsbot_audit_write_failures_total", "opsbot_busy_total", "opsbot_requests_total"} {
		assert.True(t, read[m], "the dashboard shows %s", m)
	}
}
