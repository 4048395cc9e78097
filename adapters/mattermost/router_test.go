package mattermost

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opsbot/opsbot/adapters/mattermost/mmapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/sqlite"
	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands"
)

// countingCommand is a disruptive command that counts its runs.
type countingCommand struct {
	name string
	runs atomic.Int32
}

func (c *countingCommand) Name() string    { return c.name }
func (c *countingCommand) Summary() string { return "a disruptive test action" }
func (c *countingCommand) Usage() string   { return "/" + c.name + " HOST" }
func (c *countingCommand) Run(_ context.Context, req bot.Request) (bot.Reply, error) {
	n := c.runs.Add(1)
	return bot.Reply{Status: bot.StatusOK, Title: "restarted " + strings.Join(req.Args, " "),
		Lines: []string{"run " + string(rune('0'+n))}}, nil
}

const routerPolicy = `
roles:
  oncall:   {commands: [restart]}
  approver: {approve: [restart]}
users:
  "mattermost:uCarol00000000000000000000": [oncall]
  "mattermost:dave": [approver]
approval:
  required: [restart]
  ttl: 15m
`

func TestRouter_PromptClickRunsOnceAndReplayRunsNothing(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "opsbot.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	pol, err := bot.ParsePolicy([]byte(routerPolicy))
	require.NoError(t, err)

	cmd := &countingCommand{name: "restart"}
	notifier := &lateNotifier{}
	router := bot.NewRouter(bot.RouterConfig{
		Commands: []bot.Command{cmd}, Perms: bot.NewPermissions(pol), Approval: pol.Approval,
		Store: store, Notifier: notifier,
	})
	router.Add(commands.NewOpsbot(router, bot.HostAccess{}))
	f := newFixture(t, router)
	notifier.n = f.a

	// Carol asks; the prompt comes back inline, with buttons.
	_, resp := f.postCommand(t, f.commandForm("/restart", "web01", "uCarol00000000000000000000", "carol"), testCmdToken)
	require.NotNil(t, resp)
	assert.Equal(t, mmapi.CommandResponseTypeInChannel, resp.ResponseType)
	require.Contains(t, resp.Attachments[0].Title, "Approval needed: /restart web01")
	approve := buttonNamed(t, resp.Attachments, "Approve")
	assert.Zero(t, cmd.runs.Load())

	// Carol may not approve her own request: refused, the post stays.
	_, self := f.click(t, approve, "uCarol00000000000000000000", "promptpost0000000000000000", nil)
	assert.Nil(t, self.Update)
	assert.Contains(t, self.EphemeralText, "another person must approve")
	assert.Zero(t, cmd.runs.Load())

	// A forged click runs nothing either.
	_, forged := f.click(t, approve, "uDave000000000000000000000", "promptpost0000000000000000", func(c map[string]any) {
		c["line"] = "/restart web02"
	})
	assert.Contains(t, forged.EphemeralText, "could not be verified")
	assert.Zero(t, cmd.runs.Load())

	// Dave (an approver by username) clicks: it runs, once, and the post says so.
	w, resp2 := f.click(t, approve, "uDave000000000000000000000", "promptpost0000000000000000", nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.NotNil(t, resp2.Update, "ephemeral: %s", resp2.EphemeralText)
	assert.Equal(t, int32(1), cmd.runs.Load())
	upd := resp2.Update.Attachments()
	assert.Zero(t, countActions(upd))
	assert.Equal(t, "approved by", upd[0].Fields[0].Title)
	assert.Equal(t, "@\u200bdave", upd[0].Fields[0].Value)
	assert.Contains(t, upd[0].Title, "restarted web01")

	// The requester is told in the channel, in one line: the result is in
	// the post right there.
	notes := f.srv.recorded(http.MethodPost, "/api/v4/posts")
	require.Len(t, notes, 1)
	assert.Contains(t, notes[0].Post.Message, "@carol, your request `/restart web01`")
	assert.Contains(t, notes[0].Post.Message, "restarted web01")
	assert.Empty(t, notes[0].Post.Attachments(), "no second copy of the result")
	assert.Equal(t, testChannel, notes[0].Post.ChannelID)

	// The same click again, and a Deny after the fact: nothing more runs.
	_, replay := f.click(t, approve, "uDave000000000000000000000", "promptpost0000000000000000", nil)
	assert.Nil(t, replay.Update, "a replay must not overwrite the decided post")
	assert.Contains(t, replay.EphemeralText, "already")
	assert.Contains(t, replay.EphemeralText, "Nothing ran for this click")
	_, late := f.click(t, buttonNamed(t, resp.Attachments, "Deny"), "uDave000000000000000000000", "promptpost0000000000000000", nil)
	assert.Nil(t, late.Update)
	assert.Equal(t, int32(1), cmd.runs.Load(), "exactly once")

	// The audit log has the story.
	recs, err := store.Audit(ctx, bot.AuditQuery{})
	require.NoError(t, err)
	kinds := map[string]int{}
	for _, r := range recs {
		kinds[r.Kind]++
	}
	assert.Equal(t, 1, kinds[bot.AuditRequested])
	assert.Equal(t, 1, kinds[bot.AuditExecution])
}

// lateNotifier lets the Router be built before the adapter it notifies.
type lateNotifier struct{ n bot.Notifier }

func (l *lateNotifier) NotifyOutcome(ctx context.Context, a bot.Approval, r bot.Reply) {
	l.n.NotifyOutcome(ctx, a, r)
}

// The requester's notice is short only when the typed outcome says a
// Mattermost request in that channel decided it; an expiry, or a decision
// from elsewhere, posts the whole outcome.
func TestNotifyOutcome_FullUnlessDecidedInTheSameChannel(t *testing.T) {
	f := newFixture(t, &fakeHandler{})
	ap := bot.Approval{ID: approvalID, Platform: "mattermost", User: "uCarol00000000000000000000", UserName: "carol",
		Channel: testChannel, Line: "/restart web01"}
	cases := map[string]struct {
		decides *bot.Decided
		short   bool
	}{
		"expired":            {decides: &bot.Decided{Approval: approvalID, Verdict: bot.VerdictExpired}},
		"from another place": {decides: &bot.Decided{Approval: approvalID, Verdict: bot.VerdictApproved, Request: "r1", Platform: "slack", Channel: testChannel}},
		"from this channel":  {decides: &bot.Decided{Approval: approvalID, Verdict: bot.VerdictApproved, Request: "r2", Platform: "mattermost", Channel: testChannel}, short: true},
	}
	for name, c := range cases {
		before := len(f.srv.recorded(http.MethodPost, "/api/v4/posts"))
		f.a.NotifyOutcome(context.Background(), ap, bot.Reply{Status: bot.StatusOK, Title: "restarted web01", Text: "generation 2 → 3",
			Decides: c.decides, Supersedes: approvalID})
		posts := f.srv.recorded(http.MethodPost, "/api/v4/posts")
		require.Len(t, posts, before+1, name)
		p := posts[len(posts)-1].Post
		assert.Contains(t, p.Message, "@carol, your request `/restart web01` (approval "+approvalID+")", name)
		if c.short {
			assert.Empty(t, p.Attachments(), name)
			assert.Contains(t, p.Message, "restarted web01", name)
		} else {
			require.NotEmpty(t, p.Attachments(), name)
			assert.Contains(t, p.Attachments()[0].Text, "generation 2 → 3", name)
		}
	}
}
