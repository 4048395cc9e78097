// Package metrics owns opsbot's Prometheus metrics: it implements
// bot.Observer on a registry of its own and serves it on /metrics.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/opsbot/opsbot/bot"
)

// Metrics is a bot.Observer that counts into Prometheus collectors.
type Metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	durations   *prometheus.HistogramVec
	approvals   *prometheus.CounterVec
	rateLimited prometheus.Counter
	scanPorts   prometheus.Counter
	scanSeconds prometheus.Counter
	adapterErrs *prometheus.CounterVec
	auditErrs   *prometheus.CounterVec
	busy        *prometheus.CounterVec
	ready       *prometheus.GaugeVec
	reloads     *prometheus.CounterVec
}

// Outcomes are the label values the counters start at zero with, so that
// a rate() alert sees the first error rather than a series appearing.
var (
	approvalOutcomes = []string{"requested", "approved", "denied", "refused", "expired", "done", "failed", "abandoned"}
)

var _ bot.Observer = (*Metrics)(nil)

// New registers opsbot's metrics, and the Go runtime's and the process's,
// on a fresh registry (not the global one: tests make several).
func New(version string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opsbot_requests_total",
			Help: "Requests by permission key (scan, apache reload, ...) and outcome (ok, negative, info, usage, denied, pending, failed).",
		}, []string{"command", "outcome"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "opsbot_request_duration_seconds",
			Help: "Time from a request's arrival to its reply, by permission key.",
			// From a /portcheck on loopback (sub-millisecond) to a UDP scan
			// paced by ICMP rate limits (minutes).
			Buckets: []float64{0.001, 0.005, 0.025, 0.1, 0.5, 1, 2.5, 10, 30, 120, 600},
		}, []string{"command"}),
		approvals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opsbot_approvals_total",
			Help: "Approval steps: requested, approved, denied, refused, expired, done, failed, abandoned.",
		}, []string{"outcome"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opsbot_rate_limited_total",
			Help: "Requests refused by a per-user or per-target rate limit.",
		}),
		scanPorts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opsbot_scan_ports_total",
			Help: "Ports probed by /scan; rate() of it over rate(opsbot_scan_seconds_total) is ports per second.",
		}),
		scanSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opsbot_scan_seconds_total",
			Help: "Time spent scanning, summed over scans.",
		}),
		auditErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opsbot_audit_write_failures_total",
			Help: "Audit records the store refused, by kind (request, started, execution, ...): a started record refused means the action did not run.",
		}, []string{"kind"}),
		adapterErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opsbot_adapter_errors_total",
			Help: "Chat adapter failures to deliver or receive, by adapter.",
		}, []string{"adapter"}),
	}
	m.busy = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "opsbot_busy_total",
		Help: "Requests refused because the bot was busy, by the limit reached: sockets (the process's socket budget), jobs_per_user, jobs_total (limits.jobs_per_user, limits.jobs_total).",
	}, []string{"what"})
	m.ready = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "opsbot_ready",
		Help: "1 when the component (store, slack, mattermost) was ready at the last check (every 30 s and on each /readyz), else 0.",
	}, []string{"component"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "opsbot_policy_reloads_total",
		Help: "Policy reloads on SIGHUP, by result (ok, failed: the old policy stays in force).",
	}, []string{"result"})
	for _, o := range approvalOutcomes {
		m.approvals.WithLabelValues(o)
	}
	// The kinds whose refusal matters most: a request not recorded, an
	// action that did not run because its start could not be recorded, an
	// outcome not recorded.
	for _, k := range []string{bot.AuditRequest, bot.AuditStarted, bot.AuditExecution} {
		m.auditErrs.WithLabelValues(k)
	}
	for _, w := range []string{"sockets", "jobs_per_user", "jobs_total"} {
		m.busy.WithLabelValues(w)
	}
	for _, r := range []string{"ok", "failed"} {
		m.reloads.WithLabelValues(r)
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "opsbot_build_info", Help: "Always 1; the version label says which build runs.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	build.Set(1)
	m.reg.MustRegister(m.requests, m.durations, m.approvals, m.rateLimited, m.scanPorts, m.scanSeconds, m.adapterErrs, m.auditErrs, build,
		m.busy, m.ready, m.reloads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4, Timeout: 10 * time.Second})
}

// Request implements bot.Observer.
func (m *Metrics) Request(key string, status bot.Status, took time.Duration) {
	m.requests.WithLabelValues(key, status.String()).Inc()
	m.durations.WithLabelValues(key).Observe(took.Seconds())
}

// Approval implements bot.Observer.
func (m *Metrics) Approval(outcome string) { m.approvals.WithLabelValues(outcome).Inc() }

// RateLimited implements bot.Observer.
func (m *Metrics) RateLimited() { m.rateLimited.Inc() }

// ScanPorts implements bot.Observer.
func (m *Metrics) ScanPorts(ports int, took time.Duration) {
	m.scanPorts.Add(float64(ports))
	m.scanSeconds.Add(took.Seconds())
}

// AuditFailed implements bot.Observer.
func (m *Metrics) AuditFailed(kind string) { m.auditErrs.WithLabelValues(kind).Inc() }

// AdapterError implements bot.Observer.
func (m *Metrics) AdapterError(adapter string) { m.adapterErrs.WithLabelValues(adapter).Inc() }

// Init starts at zero the series a deployment will have: each command
// with each outcome, and each configured chat adapter's errors. Counters
// that appear only with their first event hide that event from rate().
func (m *Metrics) Init(commands, adapters []string) {
	for _, c := range commands {
		m.durations.WithLabelValues(c)
		for s := bot.StatusOK; s <= bot.StatusFailed; s++ {
			m.requests.WithLabelValues(c, s.String())
		}
	}
	for _, a := range adapters {
		m.adapterErrs.WithLabelValues(a)
	}
}

// Busy counts one piece of work refused because the bot was busy.
func (m *Metrics) Busy(what string) { m.busy.WithLabelValues(what).Inc() }

// SetReady records whether a component was ready at the last check.
func (m *Metrics) SetReady(component string, ok bool) {
	v := 0.0
	if ok {
		v = 1
	}
	m.ready.WithLabelValues(component).Set(v)
}

// PolicyReload counts one policy reload and whether it took effect.
func (m *Metrics) PolicyReload(ok bool) {
	r := "failed"
	if ok {
		r = "ok"
	}
	m.reloads.WithLabelValues(r).Inc()
}
