package slack

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/internal/golden"
)

func longReply() bot.Reply {
	lines := make([]string, 1200)
	for i := range lines {
		lines[i] = fmt.Sprintf("10.0.%d.%d 443 port [tcp/https] succeeded! (0.%03d ms)", i/250, i%250, i%1000)
	}
	return bot.Reply{Status: bot.StatusOK, Title: "Sweep of 10.0.0.0/22: 1200 open", Lines: lines}
}

var goldenReplies = map[string]bot.Reply{
	"portcheck": {
		Status: bot.StatusOK, Title: "10.0.0.10 80/tcp open",
		Lines:  []string{"Connection to 10.0.0.10 80 port [tcp/http] succeeded! (0.4 ms)"},
		Fields: []bot.Field{{Name: "address", Value: "10.0.0.10"}, {Name: "took", Value: "0.4 ms"}},
	},
	"scan": {
		Status: bot.StatusOK, Title: "Scan of 10.0.0.10 (tcp 1-1024): 3 open",
		Table: &bot.Table{Header: []string{"port", "state", "service"}, Rows: [][]string{
			{"22", "open", "ssh"}, {"80", "open", "http"}, {"443", "open", "https"},
		}},
		Fields: []bot.Field{{Name: "open", Value: "3"}, {Name: "closed", Value: "1019"}, {Name: "filtered", Value: "2"}, {Name: "took", Value: "0.61 s"}},
	},
	"approval_prompt": {
		Status: bot.StatusPending, Title: "Approval needed: /apache restart web01",
		Lines: []string{"approval ID: 3f2a9c1b7d4e"},
		Fields: []bot.Field{
			{Name: "requested by", Value: "slack:alice"}, {Name: "expires", Value: "10:15:00 UTC (in 15m0s)"},
			{Name: "approvals needed", Value: "1"}, {Name: "bound to", Value: "10.0.0.11"},
		},
		Text: "Hard restart: in-flight requests are killed.\nMay approve: roles approver (not the requester).\nApproving runs exactly this action, once.",
		Actions: []bot.Action{
			{Label: "Approve", Command: "/opsbot approve 3f2a9c1b7d4e", Style: bot.ActionPrimary},
			{Label: "Deny", Command: "/opsbot deny 3f2a9c1b7d4e", Style: bot.ActionDanger},
		},
	},
	"help": {
		Status: bot.StatusInfo, Title: "opsbot commands you may run",
		Table: &bot.Table{Header: []string{"command", "what it does"}, Rows: [][]string{
			{"/portcheck", "is this port reachable? (nc -zv)"}, {"/scan", "which ports are open?"}, {"/opsbot", "the bot itself"},
		}},
		Text: "Type a command followed by help for its usage, e.g. /portcheck help.",
	},
	"error": {Status: bot.StatusFailed, Title: "internal error, ref 9c1b7d4e3f2a"},
	"usage": {Status: bot.StatusUsage, Title: `port "http<>" is not a number or range: use 1-65535 & names like <b>`},
	"long":  longReply(),
}

func TestRender_Golden(t *testing.T) {
	for name, r := range goldenReplies {
		t.Run(name, func(t *testing.T) {
			m := render(r)
			checkLimits(t, m)
			golden.Check(t, filepath.Join("testdata", name+".golden.json"), golden.JSON(t, m))
		})
	}
	t.Run("decided_prompt", func(t *testing.T) {
		r := bot.Reply{Status: bot.StatusOK, Title: "Apache restarted on web01",
			Fields:  []bot.Field{{Name: "generation", Value: "2 → 3"}, {Name: "took", Value: "1.2 s"}},
			Text:    "Approved by slack:U0APPROVER; requested by slack:U024BE7LH (approval 3f2a9c1b7d4e).",
			Decides: &bot.Decided{Approval: "3f2a9c1b7d4e", Verdict: bot.VerdictApproved, By: "slack:carol"}, Supersedes: "3f2a9c1b7d4e"}
		m := decidedPrompt(r, "U0APPROVER", "carol")
		checkLimits(t, m)
		golden.Check(t, filepath.Join("testdata", "decided_prompt.golden.json"), golden.JSON(t, m))
	})
	t.Run("working_ack", func(t *testing.T) {
		golden.Check(t, filepath.Join("testdata", "working_ack.golden.json"), golden.JSON(t, workingAck("/scan 10.0.0.10 1-65535", "incident-42", "9c1b7d4e3f2a")))
	})
}

// checkLimits asserts Slack's limits on a rendered message.
func checkLimits(t *testing.T, m rendered) {
	t.Helper()
	assert.NotEmpty(t, m.Text, "a plain-text fallback, always")
	all := [][]slack.Block{m.Blocks}
	for _, p := range m.More {
		all = append(all, p.Blocks)
		assert.NotEmpty(t, p.Text)
	}
	actionID := regexp.MustCompile(`^[a-zA-Z0-9]{1,255}$`)
	for _, blocks := range all {
		assert.LessOrEqual(t, len(blocks), 50)
		b := golden.JSON(t, blocks) // as Slack reads it, entities unescaped
		assert.Less(t, len(b), 40000+len(blocks)*100, "message size")
		ids := map[string]bool{}
		for _, blk := range blocks {
			switch blk := blk.(type) {
			case *slack.HeaderBlock:
				assert.LessOrEqual(t, len([]rune(blk.Text.Text)), 150)
			case *slack.SectionBlock:
				if blk.Text != nil {
					assert.LessOrEqual(t, len([]rune(blk.Text.Text)), 3000)
				}
				assert.LessOrEqual(t, len(blk.Fields), 10)
			case *slack.ActionBlock:
				for _, e := range blk.Elements.ElementSet {
					btn := e.(*slack.ButtonBlockElement)
					assert.Regexp(t, actionID, btn.ActionID)
					assert.False(t, ids[btn.ActionID], "action_id unique")
					ids[btn.ActionID] = true
					assert.True(t, strings.HasPrefix(btn.Value, "/"), "a button's value is a command line")
				}
			}
		}
	}
}

func TestRender_LongOutputIsSplitNeverCut(t *testing.T) {
	r := longReply()
	m := render(r)
	require.NotEmpty(t, m.More, "too long for one message")
	b, _ := json.Marshal(m.Blocks)
	assert.Contains(t, string(b), "continues in")
	var text strings.Builder
	collect := func(blocks []slack.Block) {
		for _, blk := range blocks {
			if s, ok := blk.(*slack.SectionBlock); ok && s.Text != nil && strings.HasPrefix(s.Text.Text, "```") {
				text.WriteString(strings.TrimSuffix(strings.TrimPrefix(s.Text.Text, "```\n"), "\n```") + "\n")
			}
		}
	}
	collect(m.Blocks)
	for _, p := range m.More {
		collect(p.Blocks)
	}
	assert.Equal(t, strings.Join(r.Lines, "\n")+"\n", text.String(), "every line, in order")
}

func TestRender_OneHugeLineIsSplitWithinItself(t *testing.T) {
	line := strings.Repeat("a<b>&", 2000) // 10 000 chars, 24 000 escaped
	m := render(bot.Reply{Status: bot.StatusOK, Title: "x", Lines: []string{line}})
	checkLimits(t, m)
	var got strings.Builder
	for _, blk := range m.Blocks {
		if s, ok := blk.(*slack.SectionBlock); ok && s.Text != nil {
			got.WriteString(strings.TrimSuffix(strings.TrimPrefix(s.Text.Text, "```\n"), "\n```"))
		}
	}
	assert.Equal(t, escape(line), got.String())
}

func TestRender_ManyFieldsAndButtonsRespectLimits(t *testing.T) {
	r := bot.Reply{Status: bot.StatusInfo, Title: strings.Repeat("very long title ", 20)}
	for i := range 23 {
		r.Fields = append(r.Fields, bot.Field{Name: fmt.Sprint("f", i), Value: "v"})
	}
	for i := range 30 {
		r.Actions = append(r.Actions, bot.Action{Label: fmt.Sprint("Approve ", i), Command: fmt.Sprint("/opsbot approve ", i)})
	}
	m := render(r)
	checkLimits(t, m)
	sections := 0
	for _, b := range m.Blocks {
		if s, ok := b.(*slack.SectionBlock); ok && len(s.Fields) > 0 {
			sections++
		}
	}
	assert.Equal(t, 3, sections, "23 fields in sections of 10")
	assert.IsType(t, &slack.SectionBlock{}, m.Blocks[0], "a title too long for a header goes in a section, whole")
}

func TestRender_EphemeralByStatus(t *testing.T) {
	for st, want := range map[bot.Status]bool{
		bot.StatusOK: false, bot.StatusNegative: false, bot.StatusFailed: false, bot.StatusPending: false,
		bot.StatusInfo: true, bot.StatusUsage: true, bot.StatusDenied: true,
	} {
		assert.Equal(t, want, render(bot.Reply{Status: st, Title: "x"}).Ephemeral, st.String())
	}
}
