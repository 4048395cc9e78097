package main

import (
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
	a, err := mattermost.New(mattermost.Config{
		URL:           e.MattermostURL,
		Token:         e.MattermostToken,
		CommandTokens: splitList(e.MattermostCommandTokens),
		ActionSecret:  e.MattermostActionSecret,
		PublicURL:     e.PublicURL,
		Handler:       m.Router,
		Audit:         m.Store,
		Log:           m.Log.With("platform", "mattermost"),
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
		Handler:       m.Router,
		Audit:         m.Store,
		Log:           m.Log.With("platform", "slack"),
	})
	if err != nil {
		return "", nil, &bot.Error{Code: bot.ECONFIG, Message: err.Error()}
	}
	return "slack", a, nil
}
