package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/opsbot/opsbot/bot"
)

// chatAdapter is what serve needs of a chat platform's adapter.
type chatAdapter interface {
	Register(mux *http.ServeMux)
	Ready(ctx context.Context) error
	// Wait waits for the results still being delivered after their
	// acknowledgement (the last step of a graceful shutdown).
	Wait(ctx context.Context) error
	bot.Notifier
}

// runner is implemented by adapters that hold a connection of their own
// (Slack Socket Mode).
type runner interface {
	Run(ctx context.Context) error
}

// platformBuilders build the configured chat adapters, in an explicit list:
// each returns a nil adapter when its platform is not configured.
var platformBuilders = []func(m *Main) (name string, a chatAdapter, err error){
	slackPlatform,
	mattermostPlatform,
}

// Server timeouts: a slow client (slow-loris) cannot hold a connection; the
// write timeout covers Mattermost's 30 s command wait.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	writeTimeout      = 35 * time.Second
	idleTimeout       = 60 * time.Second
	cancelGrace       = 5 * time.Second // for canceled commands to answer and their answers to be posted
)

// Shutdown timings. After SIGTERM serve lets running commands finish for
// OPSBOT_SHUTDOWN_GRACE (default 20 s), then cancels the rest and gives
// them cancelGrace to answer, then gives the chat adapters cancelGrace to
// post those answers: at worst grace + shutdownTail. A supervisor's stop
// timeout (systemd TimeoutStopSec, docker stop -t, the pod's
// terminationGracePeriodSeconds less its preStop delay) must leave
// shutdownMargin on top, or the last answers are killed with the process.
const (
	shutdownTail   = 2 * cancelGrace
	shutdownMargin = 5 * time.Second
)

// approvalLease checks OPSBOT_APPROVAL_LEASE and works out how often this
// replica sweeps for requests past their time: every 15 s, or every
// quarter lease if that is shorter, so a lapsed lease is reported within
// a quarter lease of lapsing.
func approvalLease(env Env) (lease, sweep time.Duration, err error) {
	lease = env.ApprovalLease
	if lease == 0 {
		lease = bot.DefaultLease
	}
	if lease < time.Second || lease > time.Hour {
		return 0, 0, bot.Errorf(bot.ECONFIG, "OPSBOT_APPROVAL_LEASE=%s: give a duration from 1s to 1h, such as 1m", lease)
	}
	return lease, min(15*time.Second, lease/4), nil
}

func serveCmd(ctx context.Context, args []string, stderr io.Writer) int {
	fs, _, cfg := commonFlags("serve", stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	return serve(ctx, *cfg, stderr)
}

func serve(ctx context.Context, cfg string, stderr io.Writer) int {
	if os.Getenv("OPSBOT_LOG_LEVEL") == "" {
		_ = os.Setenv("OPSBOT_LOG_LEVEL", "info") // a server logs each request
	}
	m, err := NewMain(ctx, cfg, stderr)
	if err != nil {
		return configError(stderr, err)
	}
	defer m.Close()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.Serve(ctx); err != nil {
		if bot.ErrorCode(err) == bot.ECONFIG {
			return configError(stderr, err)
		}
		fmt.Fprintln(stderr, "opsbot serve:", err)
		return 1
	}
	return 0
}

// Serve runs the HTTP endpoints and the chat adapters until ctx ends, then
// stops taking requests and lets running ones finish within a bound.
func (m *Main) Serve(ctx context.Context) error {
	setup, err := m.checkServe(true)
	if err != nil {
		return err
	}
	adapters, names := setup.adapters, setup.names
	mux := http.NewServeMux()
	for i, a := range adapters {
		a.Register(mux)
		m.Notifiers[names[i]] = a
	}
	m.Metrics.Init(nil, names)
	rd := &readiness{store: m.Store, adapters: adapters, names: names, log: m.Log, set: m.Metrics.SetReady, policy: m.policyStatus}
	if m.Env.MetricsAddr == "" {
		mux.Handle("GET /metrics", m.Metrics.Handler())
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", rd.serveHTTP)

	m.lease = setup.lease
	m.Router.SetLease("", setup.lease)
	ln, err := net.Listen("tcp", m.Env.HTTPAddr)
	if err != nil {
		return &bot.Error{Code: bot.ECONFIG, Message: fmt.Sprintf("cannot listen on OPSBOT_HTTP_ADDR %s: %v", m.Env.HTTPAddr, err), Err: err}
	}
	servers := []*http.Server{m.httpServer(ctx, http.MaxBytesHandler(mux, 1<<20))}
	listeners := []net.Listener{ln}
	if m.Env.MetricsAddr != "" {
		mln, err := net.Listen("tcp", m.Env.MetricsAddr)
		if err != nil {
			_ = ln.Close()
			return &bot.Error{Code: bot.ECONFIG, Message: fmt.Sprintf("cannot listen on OPSBOT_METRICS_ADDR %s: %v", m.Env.MetricsAddr, err), Err: err}
		}
		mmux := http.NewServeMux()
		mmux.Handle("GET /metrics", m.Metrics.Handler())
		servers = append(servers, m.httpServer(ctx, mmux))
		listeners = append(listeners, mln)
		m.Log.Info("serving /metrics on its own address", "addr", mln.Addr().String())
	}
	hup, stopHUP := notifyReload()
	defer stopHUP()
	m.Log.Info("serving", "addr", ln.Addr().String(), "platforms", names, "replica", m.Router.Replica(), "lease", setup.lease, "version", version)

	var wg sync.WaitGroup
	errs := make(chan error, len(adapters)+len(servers))
	for i, srv := range servers {
		wg.Go(func() {
			if err := srv.Serve(listeners[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- err
			}
		})
	}
	for _, a := range adapters {
		if r, ok := a.(runner); ok {
			wg.Go(func() {
				if err := r.Run(ctx); err != nil && ctx.Err() == nil {
					errs <- err
				}
			})
		}
	}
	// Readiness at start (a token the platform refuses is logged now) and
	// every readyInterval, each change logged with its cause.
	wg.Go(func() { rd.watch(ctx) })
	// SIGHUP loads the policy file again (systemctl reload opsbot).
	wg.Go(func() { m.watchReload(ctx, hup) })
	// audit.retain: export, then remove, at start and every hour.
	wg.Go(func() { m.watchRetention(ctx) })
	// OPSBOT_MATTERMOST_REGISTER: create or update the slash commands.
	wg.Go(func() { m.registerAtStart(ctx) })
	// Expire approval requests as they fall due, so their prompts say so,
	// and report as abandoned the approved actions whose replica stopped
	// renewing its lease (it died mid-action): first at start, since this
	// may be the replica restarted after such a death.
	wg.Go(func() {
		m.live.Load().ExpireApprovals(ctx)
		t := time.NewTicker(setup.sweep)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				m.live.Load().ExpireApprovals(ctx)
			}
		}
	})

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errs:
	}
	grace := setup.grace
	m.Log.Info("shutting down: no new requests; running ones get a grace period", "grace", grace, "at_most", grace+shutdownTail)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil {
			m.Log.Warn("shutdown", "err", err)
		}
	}
	// Commands acknowledged before the shutdown (a scan posting its result
	// later) get the rest of the grace period; those still running then
	// are canceled, and their replies say why.
	if n := m.drainAll(sctx); n > 0 {
		m.Log.Warn("shutting down: canceled running requests", "count", n)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), cancelGrace)
	defer dcancel()
	for i, a := range adapters {
		if err := a.Wait(dctx); err != nil {
			m.Log.Warn("shutting down: results still undelivered", "platform", names[i], "err", err)
		}
	}
	wg.Wait()
	return runErr
}

// httpServer is an http.Server with serve's timeouts whose requests
// outlive ctx (a shutdown lets them finish).
func (m *Main) httpServer(ctx context.Context, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
}
