package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
)

// serveSetup is what serve works out from the environment before it
// listens: the chat adapters (built, not started: building talks to no
// one), the approval lease and the addresses. checkServe makes it, and
// `opsbot config check` runs checkServe too, so a setting serve would
// refuse is refused by config check first, with the same words.
type serveSetup struct {
	adapters     []chatAdapter
	names        []string
	lease, sweep time.Duration
	grace        time.Duration
}

// checkServe validates every serve setting in the environment and builds
// the chat adapters. requireChat is serve's rule that at least one chat
// platform is configured; config check also accepts a terminal-only setup.
// All problems are reported at once.
func (m *Main) checkServe(requireChat bool) (*serveSetup, error) {
	s := &serveSetup{}
	var problems []string
	for _, build := range platformBuilders {
		name, a, err := build(m)
		if err != nil {
			problems = append(problems, bot.ErrorMessage(err))
			continue
		}
		if a != nil {
			s.adapters = append(s.adapters, a)
			s.names = append(s.names, name)
		}
	}
	if requireChat && len(s.adapters) == 0 && len(problems) == 0 {
		problems = append(problems, "no chat platform is configured: set OPSBOT_SLACK_BOT_TOKEN with OPSBOT_SLACK_SIGNING_SECRET or OPSBOT_SLACK_APP_TOKEN, or OPSBOT_MATTERMOST_URL with its tokens (see README); for the terminal use opsbot shell")
	}
	var err error
	if s.lease, s.sweep, err = approvalLease(m.Env); err != nil {
		problems = append(problems, bot.ErrorMessage(err))
	}
	if err := checkAddr("OPSBOT_HTTP_ADDR", m.Env.HTTPAddr); err != nil {
		problems = append(problems, err.Error())
	}
	if m.Env.MetricsAddr != "" {
		if err := checkAddr("OPSBOT_METRICS_ADDR", m.Env.MetricsAddr); err != nil {
			problems = append(problems, err.Error())
		}
	}
	s.grace = m.Env.ShutdownGrace
	if s.grace < time.Second || s.grace > 10*time.Minute {
		problems = append(problems, fmt.Sprintf("OPSBOT_SHUTDOWN_GRACE=%s: give a duration from 1s to 10m, such as 20s (and keep it %s below the supervisor's stop timeout)", s.grace, shutdownTail))
	}
	if len(problems) > 0 {
		return nil, bot.Errorf(bot.ECONFIG, "%s", strings.Join(problems, "; "))
	}
	return s, nil
}

// checkAddr accepts HOST:PORT and :PORT with a numeric port, as
// net.Listen does.
func checkAddr(name, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		var p int
		p, err = strconv.Atoi(port)
		if err == nil && (p < 0 || p > 65535) {
			err = fmt.Errorf("port %d out of range", p)
		}
	}
	if err != nil {
		return fmt.Errorf("%s=%q is not an address to listen on: give HOST:PORT or :PORT with a numeric port, such as :8080 or 127.0.0.1:8080", name, addr)
	}
	return nil
}

// newLogger logs at level (debug, info, warn, error; "" = def) in format
// (text or json; "" = text). Anything else is a configuration error: a
// mistyped level must not silently log more, or less, than asked.
func newLogger(w io.Writer, level, format string, def slog.Level) (*slog.Logger, error) {
	lv := def
	if level != "" {
		if err := lv.UnmarshalText([]byte(level)); err != nil {
			return nil, bot.Errorf(bot.ECONFIG, "OPSBOT_LOG_LEVEL=%q: accepted debug, info, warn, error", level)
		}
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, bot.Errorf(bot.ECONFIG, "OPSBOT_LOG_FORMAT=%q: accepted text (the default) or json", format)
}
