package routertest

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
)

// People, not accounts; approver scope; who sees which requests.

// hostCmd is an action bound to the inventory host its first word names.
type hostCmd struct{ runs atomic.Int32 }

var labels = map[string]string{"web01": "web01 (10.0.0.11)", "db01": "db01 (10.0.0.21)"}

func (*hostCmd) Name() string    { return "deploy" }
func (*hostCmd) Summary() string { return "deploys" }
func (*hostCmd) Usage() string   { return "/deploy HOST" }
func (*hostCmd) Prepare(_ context.Context, req bot.Request) (bot.Prepared, error) {
	return bot.Prepared{Hosts: []string{labels[req.Args[0]]}}, nil
}
func (c *hostCmd) Run(_ context.Context, req bot.Request) (bot.Reply, error) {
	c.runs.Add(1)
	return bot.Reply{Status: bot.StatusOK, Title: "deployed " + req.Args[0]}, nil
}

const peoplePolicy = `
roles:
  dev:         {commands: [deploy]}
  approver:    {approve: [deploy]}
  webapprover: {approve: [deploy], hosts: [web]}
users:
  "chat:alice":      [dev]
  "mattermost:alice": [approver]
  "chat:bob":        [dev]
  "chat:carol":      [approver]
  "mattermost:carol": [approver]
  "chat:erin":       [approver]
  "chat:wendy":      [webapprover]
people:
  alice: ["chat:alice", "mattermost:alice", "shell:alice"]
  carol: ["chat:carol", "mattermost:carol"]
approval:
  required: [deploy]
  approvals: %d
hosts:
  web01: {address: 10.0.0.11}
  db01:  {address: 10.0.0.21}
groups:
  web: [web01]
`

func peopleRouter(t *testing.T, approvals int) (*bot.Router, *hostCmd, bot.Store) {
	t.Helper()
	p, err := bot.ParsePolicy([]byte(strings.Replace(peoplePolicy, "%d", string(rune('0'+approvals)), 1)))
	require.NoError(t, err)
	st := openStore(t)
	cmd := &hostCmd{}
	r := bot.NewRouter(bot.RouterConfig{Commands: []bot.Command{cmd}, Perms: bot.NewPermissions(p), Approval: p.Approval, Store: st})
	r.Add(opsbotLike{r})
	return r, cmd, st
}

func as(t *testing.T, r *bot.Router, platform, user, channel, line string) bot.Reply {
	t.Helper()
	return r.Handle(context.Background(), bot.Request{Platform: platform, User: user, Channel: channel, Line: line})
}

func TestPeople_RequestersOtherIdentityMayNotApprove(t *testing.T) {
	r, cmd, st := peopleRouter(t, 1)
	prompt := as(t, r, "chat", "alice", "inc", "/deploy web01")
	id := pendingID(t, prompt)
	assert.Contains(t, prompt.Fields, bot.Field{Name: "requested by", Value: "alice (chat:alice)"}, "the prompt names the person")

	out := as(t, r, "mattermost", "alice", "town-square", "/opsbot approve "+id)
	assert.Equal(t, bot.StatusDenied, out.Status)
	assert.Contains(t, out.Title, "you requested "+id+" yourself, as chat:alice (policy people: says chat:alice and mattermost:alice are both alice): another person must approve it")
	assert.Zero(t, cmd.runs.Load())

	recs, err := st.Audit(context.Background(), bot.AuditQuery{})
	require.NoError(t, err)
	var decision bot.AuditRecord
	for _, rec := range recs {
		assert.Equal(t, "alice", rec.Person, "the audit names the person: %s %s:%s", rec.Kind, rec.Platform, rec.User)
		if rec.Kind == bot.AuditApprove {
			decision = rec
		}
	}
	assert.Equal(t, bot.AuditRequested, recs[0].Kind)
	assert.Equal(t, "mattermost", decision.Platform)
	assert.Equal(t, "denied", decision.Result)
}

func TestPeople_OnePersonCountsOnceTowardTheApprovals(t *testing.T) {
	r, cmd, _ := peopleRouter(t, 2)
	id := pendingID(t, as(t, r, "chat", "alice", "inc", "/deploy web01"))
	first := as(t, r, "chat", "carol", "inc", "/opsbot approve "+id)
	assert.Contains(t, first.Title, "Approval 1 of 2 recorded")
	again := as(t, r, "mattermost", "carol", "town-square", "/opsbot approve "+id)
	assert.Equal(t, 1, again.Status.ExitCode(), again.Title)
	assert.Contains(t, again.Title, "already approved by you")
	assert.Zero(t, cmd.runs.Load(), "carol's second account is not a second person")

	second := as(t, r, "chat", "erin", "inc", "/opsbot approve "+id)
	assert.Equal(t, bot.StatusOK, second.Status, second.Title)
	assert.Contains(t, second.Text, "Approved by chat:erin; requested by alice (chat:alice)")
	assert.Equal(t, int32(1), cmd.runs.Load())
}

func TestPeople_SelfAssertedIdentityIsRecordedSo(t *testing.T) {
	r, _, st := peopleRouter(t, 1)
	r.Handle(context.Background(), bot.Request{Platform: "shell", User: "alice", Channel: "terminal", Line: "/opsbot whoami", SelfAsserted: true})
	recs, err := st.Audit(context.Background(), bot.AuditQuery{})
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.True(t, recs[0].SelfAsserted)
	assert.Equal(t, "alice", recs[0].Person)
}

func TestPeople_PolicyRefusesAnIdentityOfTwoPeople(t *testing.T) {
	_, err := bot.ParsePolicy([]byte("people:\n  alice: [\"chat:U1\"]\n  bob: [\"chat:U1\", \"bob\"]\n"))
	require.Error(t, err)
	assert.Contains(t, bot.ErrorMessage(err), `people: "chat:U1" is listed for both "alice" and "bob": an identity belongs to one person`)
	assert.Contains(t, bot.ErrorMessage(err), `people: "bob" has "bob", which must be platform:user`)
}

func TestApproverScope_HostsOutsideTheRoleAreRefusedAndNamed(t *testing.T) {
	r, cmd, _ := peopleRouter(t, 1)
	db := pendingID(t, as(t, r, "chat", "alice", "inc", "/deploy db01"))
	out := as(t, r, "chat", "wendy", "inc", "/opsbot approve "+db)
	assert.Equal(t, bot.StatusDenied, out.Status)
	assert.Equal(t, `permission denied: chat:wendy may approve "deploy" only for the hosts of webapprover (web), not for db01 (10.0.0.21)`, out.Title)
	assert.Zero(t, cmd.runs.Load())

	web := pendingID(t, as(t, r, "chat", "alice", "inc", "/deploy web01"))
	ok := as(t, r, "chat", "wendy", "inc", "/opsbot approve "+web)
	assert.Equal(t, bot.StatusOK, ok.Status, ok.Title)
	assert.Equal(t, int32(1), cmd.runs.Load())
}

func TestApprovals_ListShowsOwnOrApprovableFromThisChannel(t *testing.T) {
	r, _, _ := peopleRouter(t, 1)
	web := pendingID(t, as(t, r, "chat", "alice", "inc", "/deploy web01"))
	db := pendingID(t, as(t, r, "chat", "bob", "ops", "/deploy db01"))

	list := func(platform, user, channel string, all bool) []string {
		t.Helper()
		got, err := r.Approvals(context.Background(), bot.Request{Platform: platform, User: user, Channel: channel}, all)
		require.NoError(t, err)
		var ids []string
		for _, a := range got {
			ids = append(ids, a.ID)
		}
		return ids
	}
	assert.Equal(t, []string{web}, list("chat", "alice", "inc", false), "her own, here")
	assert.Empty(t, list("chat", "alice", "ops", false), "not bob's, which she may not approve")
	assert.Equal(t, []string{web, db}, list("mattermost", "alice", "town-square", true), "as an approver, with all: her own, and bob's, which she may approve")
	assert.Empty(t, list("mattermost", "alice", "town-square", false), "none from this channel")
	assert.Equal(t, []string{web}, list("chat", "wendy", "inc", false))
	assert.Empty(t, list("chat", "wendy", "ops", false), "db01 is outside her scope")
	assert.Equal(t, []string{web}, list("chat", "wendy", "ops", true), "all channels, still only what she may approve")
	assert.Equal(t, []string{db}, list("chat", "erin", "ops", false))
	assert.Equal(t, []string{web, db}, list("chat", "erin", "inc", true))

	_, err := r.Approvals(context.Background(), bot.Request{Platform: "chat", User: "bob", Channel: "ops"}, true)
	assert.Equal(t, bot.EDENIED, bot.ErrorCode(err), "all is for approvers")
	out := as(t, r, "chat", "bob", "inc", "/opsbot approvals")
	assert.NotContains(t, strings.Join(out.Lines, " ")+out.Title+out.Text, web, "what bob may neither approve nor did ask for is not shown")
}
