package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/opsbot/opsbot/bot"
)

// liveRouter is the handler the adapters hold: the Router in force, which
// a policy reload replaces. Requests already running finish on the Router
// they started on.
type liveRouter struct {
	atomic.Pointer[bot.Router]
}

var _ bot.Handler = (*liveRouter)(nil)

// Handle implements bot.Handler: every command also answers under /opsbot.
func (l *liveRouter) Handle(ctx context.Context, req bot.Request) bot.Reply {
	return bot.Prefixed{Router: l.Load()}.Handle(ctx, req)
}

// Knows tells the adapters which slash commands exist.
func (l *liveRouter) Knows(name string) bool { return l.Load().Knows(name) }

// Reload loads the policy file again and, when it is valid, puts a Router
// built from it in force: new requests see the new targets, limits,
// permissions, approvals and inventory; running ones finish under the old.
// A policy that does not load changes nothing: the error says why, the
// log and /readyz say so until a reload succeeds, and the file is audited
// as rejected.
func (m *Main) Reload(ctx context.Context) error {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	fail := func(err error) error {
		msg := bot.ErrorMessage(err)
		if msg == "" {
			msg = err.Error()
		}
		m.policyProblem.Store(fmt.Sprintf("the reload at %s failed, the previous policy stays in force: %s", time.Now().UTC().Format(time.RFC3339), msg))
		m.Metrics.PolicyReload(false)
		m.Log.Error("policy reload failed; the previous policy stays in force", "file", m.Env.Config, "err", msg)
		return err
	}
	if m.Env.Config == "" {
		return fail(bot.Errorf(bot.ECONFIG, "no policy file (OPSBOT_CONFIG or --config): the built-in policy cannot be reloaded"))
	}
	p, err := bot.LoadPolicy(m.Env.Config, hostSettings()...)
	if err != nil {
		m.auditRejected(ctx, err)
		return fail(err)
	}
	r, err := m.buildRouter(p)
	if err != nil {
		m.auditRejected(ctx, err)
		return fail(err)
	}
	old := m.live.Load()
	r.SetLease(old.Replica(), m.lease)
	m.live.Store(r)
	m.auditPolicy.Store(&p.Audit)
	m.routers = append(m.routers, r)
	m.policyProblem.Store("")
	m.Metrics.PolicyReload(true)
	m.Log.Info("policy reloaded", "file", m.Env.Config, "roles", len(p.Roles), "users", len(p.Users), "hosts", len(p.Hosts))
	return nil
}

// policyStatus is why the last reload failed, or "".
func (m *Main) policyStatus() string {
	s, _ := m.policyProblem.Load().(string)
	return s
}

// notifyReload starts catching SIGHUP. serve calls it before it says it
// is serving: until then SIGHUP's default action would end the process
// (a systemctl reload right after start killed the bot).
func notifyReload() (hup chan os.Signal, stop func()) {
	hup = make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup, func() { signal.Stop(hup) }
}

// watchReload reloads the policy on each SIGHUP on hup until ctx ends.
func (m *Main) watchReload(ctx context.Context, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_ = m.Reload(ctx)
		}
	}
}

// drainAll is the Routers' part of a shutdown: the one in force and those
// a reload replaced, which may still run requests.
func (m *Main) drainAll(ctx context.Context) int {
	m.reloadMu.Lock()
	routers := append([]*bot.Router(nil), m.routers...)
	m.reloadMu.Unlock()
	n := 0
	for _, r := range routers {
		n += r.Drain(ctx, cancelGrace)
	}
	return n
}
