package main

import (
	"context"
	"log/slog"
	"strings"

	"github.com/opsbot/opsbot/adapters/mattermost"
	"github.com/opsbot/opsbot/adapters/slack"
	"github.com/opsbot/opsbot/bot"
)

// mattermostPlatform wires the Mattermost adapter when OPSBOT_MATTERMOST_URL
// or command tokens are set.
func mattermostPlatform(m *Main) (string, chatAdapter, error) {
	e := m.Env
	if e.MattermostURL == "" && e.MattermostCommandTokens == "" {
		return "", nil, nil
	}
	if _, err := registerTeams(e); err != nil {
		return "", nil, err
	}
	a, err := mattermost.New(mattermost.Config{
		URL:           e.MattermostURL,
		Token:         e.MattermostToken,
		CommandTokens: splitList(e.MattermostCommandTokens),
		Registered:    m.Store,
		ActionSecret:  e.MattermostActionSecret,
		PublicURL:     e.PublicURL,
		Handler:       m.Handler,
		Audit:         m.Store,
		Log:           errorCounting(m.Log.With("platform", "mattermost"), m.Metrics, "mattermost"),
	})
	if err != nil {
		return "", nil, &bot.Error{Code: bot.ECONFIG, Message: err.Error()}
	}
	return "mattermost", a, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// slackPlatform wires the Slack adapter when a bot token, signing secret or
// app token is set: HTTP mode, Socket Mode, or both.
func slackPlatform(m *Main) (string, chatAdapter, error) {
	e := m.Env
	if e.SlackBotToken == "" && e.SlackSigningSecret == "" && e.SlackAppToken == "" {
		return "", nil, nil
	}
	a, err := slack.New(slack.Config{
		SigningSecret: e.SlackSigningSecret,
		BotToken:      e.SlackBotToken,
		AppToken:      e.SlackAppToken,
		APIURL:        e.SlackAPIURL,
		Handler:       m.Handler,
		Audit:         m.Store,
		Deliveries:    m.Store,
		Log:           errorCounting(m.Log.With("platform", "slack"), m.Metrics, "slack"),
	})
	if err != nil {
		return "", nil, &bot.Error{Code: bot.ECONFIG, Message: err.Error()}
	}
	return "slack", a, nil
}

// errorCounting counts every error an adapter logs as an adapter error:
// the adapters log each failure to deliver or receive once, at error
// level, so the log is where they already report them.
func errorCounting(log *slog.Logger, obs bot.Observer, adapter string) *slog.Logger {
	return slog.New(countingHandler{Handler: log.Handler(), obs: obs, adapter: adapter})
}

type countingHandler struct {
	slog.Handler
	obs     bot.Observer
	adapter string
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.obs.AdapterError(h.adapter)
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

// Enabled lets error records through even when the level would drop them,
// so they are counted; Handle passes them on only if the inner handler
// wants them.
func (h countingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError || h.Handler.Enabled(ctx, l)
}

func (h countingHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return countingHandler{Handler: h.Handler.WithAttrs(a), obs: h.obs, adapter: h.adapter}
}

func (h countingHandler) WithGroup(n string) slog.Handler {
	return countingHandler{Handler: h.Handler.WithGroup(n), obs: h.obs, adapter: h.adapter}
}
