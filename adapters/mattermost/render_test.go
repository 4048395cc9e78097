package mattermost

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/mattermost/mmtest"
	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/internal/golden"
)

var goldenButtons = buttons{
	secret:  []byte(testSecret),
	url:     "https://opsbot.example.com/mattermost/action",
	channel: testChannel,
	ref:     "0123456789ab",
	expires: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
}

func longReply() bot.Reply {
	r := bot.Reply{Status: bot.StatusOK, Title: "10.0.0.1 tcp 1-65535: 3000 open"}
	t := &bot.Table{Header: []string{"port", "state", "service", "evidence"}}
	for p := 1; p <= 3000; p++ {
		t.Rows = append(t.Rows, []string{fmt.Sprintf("%d/tcp", p), "open", "-", "handshake"})
	}
	r.Table = t
	for p := 1; p <= 400; p++ {
		r.Lines = append(r.Lines, fmt.Sprintf("Connection to 10.0.0.1 %d port [tcp/*] succeeded! (0.1 ms)", p))
	}
	r.Text = strings.Repeat("x", 20000) // one line longer than a post
	return r
}

func renderCases() map[string]bot.Reply {
	return map[string]bot.Reply{
		"portcheck": {Status: bot.StatusOK, Lines: []string{
			"Connection to 127.0.0.1 80 port [tcp/http] succeeded! (0.4 ms)",
			"127.0.0.1 81 port [tcp/*] closed: connection refused (0.1 ms)",
		}, Title: "127.0.0.1: 1 of 2 ports open"},
		"scan": {Status: bot.StatusOK, Title: "web01 (10.0.0.11) tcp top100: 2 open",
			Table: &bot.Table{Header: []string{"port", "state", "service", "evidence"}, Rows: [][]string{
				{"22/tcp", "open", "ssh", "handshake"},
				{"443/tcp", "open", "https", "a|b pipe"},
			}},
			Fields: []bot.Field{{Name: "ports", Value: "2 open, 98 closed"}, {Name: "duration", Value: "41 ms"}, {Name: "rate", Value: "2439 ports/s"}}},
		"approval": {Status: bot.StatusPending, Title: "Approval needed: /apache restart web01",
			Lines:  []string{"approval ID: 0123456789ab"},
			Fields: []bot.Field{{Name: "requested by", Value: "mattermost:carol"}, {Name: "expires", Value: "12:15:00 UTC (in 15m0s)"}, {Name: "approvals needed", Value: "1"}},
			Text:   "Hard restart: in-flight requests are cut.\nMay approve: roles approver (not the requester).\nApproving runs exactly this action, once.",
			Actions: []bot.Action{
				{Label: "Approve", Command: "/opsbot approve 0123456789ab", Style: bot.ActionPrimary},
				{Label: "Deny", Command: "/opsbot deny 0123456789ab", Style: bot.ActionDanger},
			}},
		"decided": decided(bot.Reply{Status: bot.StatusOK, Title: "apache restart web01: done",
			Text:    "Approved by mattermost:uDave; requested by mattermost:uCarol (approval 0123456789ab).",
			Decides: &bot.Decided{Approval: "0123456789ab", Verdict: bot.VerdictApproved, By: "mattermost:dave"}, Supersedes: "0123456789ab"},
			cachedUser{name: "dave", display: "Dave (@dave)"}),
		"error": {Status: bot.StatusUsage, Title: `invalid host "@channel": not an address or a name`},
		"help":  {Status: bot.StatusInfo, Title: "/opsbot: the bot itself", Text: "/opsbot help | whoami\n  whoami   your roles\n  audit N  the last N records"},
		"long":  longReply(),
	}
}

func TestRender_Golden(t *testing.T) {
	for name, r := range renderCases() {
		t.Run(name, func(t *testing.T) {
			pages := render(r, goldenButtons)
			b, err := json.MarshalIndent(pages, "", "  ")
			require.NoError(t, err)
			golden.Check(t, filepath.Join("testdata", name+".json"), append(b, '\n'))
		})
	}
}

var alnum = regexp.MustCompile(`^[A-Za-z0-9]+$`)

func TestRender_ActionsAreSignedAlphanumericButtons(t *testing.T) {
	pages := render(renderCases()["approval"], goldenButtons)
	require.Len(t, pages, 1)
	acts := pages[0].Attachments[0].Actions
	require.Len(t, acts, 2)
	for _, act := range acts {
		assert.Regexp(t, alnum, act.ID)
		assert.Equal(t, "button", act.Type)
		assert.NoError(t, mmtest.CheckAction(act))
		assert.Equal(t, "https://opsbot.example.com/mattermost/action", act.Integration.URL)
		got, err := verify([]byte(testSecret), act.Integration.Context, goldenButtons.expires.Add(-time.Minute))
		require.NoError(t, err)
		assert.Equal(t, "0123456789ab", got.Ref)
	}
	assert.Equal(t, "primary", acts[0].Style)
	assert.Equal(t, "danger", acts[1].Style)
	assert.Equal(t, "/opsbot approve 0123456789ab", acts[0].Integration.Context["line"])
	assert.NoError(t, mmtest.CheckAttachment(pages[0].Attachments[0]))
}

func TestRender_LongReplySplitsWithoutLoss(t *testing.T) {
	r := longReply()
	pages := render(r, goldenButtons)
	require.Greater(t, len(pages), 2)
	var all strings.Builder
	for i, p := range pages {
		text := p.Attachments[0].Text
		assert.LessOrEqual(t, utf8.RuneCountInString(text), maxRunes, "page %d", i)
		assert.Equal(t, 0, strings.Count(text, "```")%2, "page %d has an unclosed code block", i)
		assert.Contains(t, p.Attachments[0].Title, fmt.Sprintf("%d of %d", i+1, len(pages)))
		all.WriteString(text + "\n")
	}
	for _, l := range r.Lines {
		assert.Contains(t, all.String(), l)
	}
	for _, row := range r.Table.Rows {
		assert.Contains(t, all.String(), "| "+row[0]+" |")
	}
	// The over-long line is broken with a mark, and every x is kept.
	assert.Equal(t, 20000, strings.Count(all.String(), "x"))
	assert.Contains(t, all.String(), "↩")
}

func TestRender_Colours(t *testing.T) {
	for st, want := range map[bot.Status]string{
		bot.StatusOK: colourOK, bot.StatusNegative: colourBad, bot.StatusFailed: colourBad,
		bot.StatusPending: colourPending, bot.StatusInfo: colourInfo,
	} {
		assert.Equal(t, want, render(bot.Reply{Status: st, Title: "x"}, goldenButtons)[0].Attachments[0].Color, st.String())
	}
}

func TestNeutralize_MentionsDoNotNotify(t *testing.T) {
	assert.Equal(t, "hi @\u200bchannel and @\u200bcarol", neutralize("hi @channel and @carol"))
	assert.Equal(t, "ops@example.com", neutralize("ops@example.com"))
}
