package main

import (
	"strings"

	"github.com/opsbot/opsbot/adapters/mattermost"
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
		return "", nil, &bot.Error{Code: bot.ECONFIG, Message: "mattermost: " + err.Error(), Err: err}
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
