// Package routertest holds the Router's approval tests that need a real
// Store (SQLite): kept out of package bot so that bot's own test binary,
// which the fuzzer instruments, does not compile the SQLite driver.
package routertest

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/sqlite"
	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/bot/bottest"
)

// deployCmd is a hand-written fake: an action that resolves hosts (so the
// binding can be tested) and counts its runs.
type deployCmd struct {
	hosts []string
	runs  int
}

func (*deployCmd) Name() string    { return "deploy" }
func (*deployCmd) Summary() string { return "deploys" }
func (*deployCmd) Usage() string   { return "/deploy HOST" }
func (d *deployCmd) Prepare(context.Context, bot.Request) (bot.Prepared, error) {
	return bot.Prepared{Hosts: d.hosts, Impact: "Deploys to " + strings.Join(d.hosts, ", ") + "."}, nil
}
func (d *deployCmd) Run(_ context.Context, req bot.Request) (bot.Reply, error) {
	d.runs++
	return bot.Reply{Status: bot.StatusOK, Title: "deployed " + strings.Join(req.Args, " ")}, nil
}

const twoApprovers = `
roles:
  dev:      {commands: [deploy]}
  approver: {approve: [deploy]}
users:
  "chat:alice": [dev]
  "chat:carol": [approver]
  "chat:erin":  [approver]
approval:
  required: [deploy]
  approvals: %d
`

func approvalRouter(t *testing.T, approvals int) (*bot.Router, *deployCmd, bot.Store) {
	t.Helper()
	p, err := bot.ParsePolicy([]byte(strings.Replace(twoApprovers, "%d", string(rune('0'+approvals)), 1)))
	require.NoError(t, err)
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "opsbot.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	cmd := &deployCmd{hosts: []string{"10.0.0.11"}}
	return bot.NewRouter(bot.RouterConfig{Commands: []bot.Command{cmd}, Perms: bot.NewPermissions(p), Approval: p.Approval, Store: st}), cmd, st
}

var idLine = regexp.MustCompile(`^approval ID: ([0-9a-f]{12})$`)

func ask(t *testing.T, r *bot.Router, user, line string) bot.Reply {
	t.Helper()
	return r.Handle(context.Background(), bot.Request{Platform: "chat", User: user, Channel: "inc", Line: line})
}

func pendingID(t *testing.T, reply bot.Reply) string {
	t.Helper()
	require.Equal(t, bot.StatusPending, reply.Status, reply.Title)
	require.NotEmpty(t, reply.Lines)
	m := idLine.FindStringSubmatch(reply.Lines[0])
	require.NotNil(t, m, reply.Lines[0])
	return m[1]
}

func TestApprovals_TwoApproversNeeded(t *testing.T) {
	r, cmd, _ := approvalRouter(t, 2)
	prompt := ask(t, r, "alice", "/deploy web01")
	id := pendingID(t, prompt)
	assert.Equal(t, []bot.Action{
		{Label: "Approve", Command: "/opsbot approve " + id, Style: bot.ActionPrimary},
		{Label: "Deny", Command: "/opsbot deny " + id, Style: bot.ActionDanger},
	}, prompt.Actions, "buttons carry ordinary commands")
	assert.Contains(t, prompt.Text, "Deploys to 10.0.0.11.")
	assert.Contains(t, prompt.Text, "May approve: roles approver")

	r.Add(opsbotLike{r})
	first := ask(t, r, "carol", "/opsbot approve "+id)
	assert.Equal(t, bot.StatusPending, first.Status)
	assert.Contains(t, first.Title, "Approval 1 of 2 recorded")
	again := ask(t, r, "carol", "/opsbot approve "+id)
	assert.Contains(t, again.Title, "already approved by you")
	assert.Zero(t, cmd.runs)

	second := ask(t, r, "erin", "/opsbot approve "+id)
	assert.Equal(t, bot.StatusOK, second.Status, second.Title)
	assert.Equal(t, "deployed web01", second.Title)
	assert.Equal(t, 1, cmd.runs)
}

func TestApprovals_DenyWithReason(t *testing.T) {
	r, cmd, st := approvalRouter(t, 1)
	r.Add(opsbotLike{r})
	id := pendingID(t, ask(t, r, "alice", "/deploy web01"))
	denied := ask(t, r, "carol", "/opsbot deny "+id+" not during the sale")
	assert.Equal(t, bot.StatusNegative, denied.Status)
	assert.Contains(t, denied.Text, "Denied by chat:carol: not during the sale. Nothing ran.")
	late := ask(t, r, "erin", "/opsbot approve "+id)
	assert.Equal(t, 1, late.Status.ExitCode())
	assert.Contains(t, late.Title, "denied")
	assert.Zero(t, cmd.runs)
	a, err := st.Approval(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, bot.ApprovalDenied, a.State)
}

func TestApprovals_BindingChangedNothingRuns(t *testing.T) {
	r, cmd, st := approvalRouter(t, 1)
	r.Add(opsbotLike{r})
	id := pendingID(t, ask(t, r, "alice", "/deploy web01"))
	cmd.hosts = []string{"10.0.0.99"} // DNS now points elsewhere
	out := ask(t, r, "carol", "/opsbot approve "+id)
	assert.Equal(t, bot.StatusFailed, out.Status)
	assert.Contains(t, out.Title, "the action changed since it was approved (it now resolves to 10.0.0.99, approved for 10.0.0.11): nothing ran")
	assert.Zero(t, cmd.runs)
	a, err := st.Approval(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, bot.ApprovalFailed, a.State)
}

func TestApprovals_ExpiredRequestsAreAuditedWhenListed(t *testing.T) {
	p, err := bot.ParsePolicy([]byte(strings.Replace(twoApprovers, "%d", "1", 1) + "  ttl: 1s\n"))
	require.NoError(t, err)
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "opsbot.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	clock := bottest.NewClock(time.Now())
	r := bot.NewRouter(bot.RouterConfig{Commands: []bot.Command{&deployCmd{}}, Perms: bot.NewPermissions(p), Approval: p.Approval, Store: st, Clock: clock})
	id := pendingID(t, ask(t, r, "alice", "/deploy web01"))
	clock.Advance(time.Second)
	alice := bot.Request{Platform: "chat", User: "alice", Channel: "inc"}
	list, err := r.Approvals(context.Background(), alice, false)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, bot.ApprovalPending, list[0].State, "at the instant of expiry it is still pending")
	clock.Advance(time.Millisecond)

	list, err = r.Approvals(context.Background(), alice, false)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, bot.ApprovalExpired, list[0].State)
	a, err := st.Approval(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, bot.ApprovalExpired, a.State)
	recs, err := st.Audit(context.Background(), bot.AuditQuery{})
	require.NoError(t, err)
	var kinds []string
	for _, rec := range recs {
		kinds = append(kinds, rec.Kind+" "+rec.ApprovalID)
	}
	assert.Equal(t, []string{"requested " + id, "expired " + id}, kinds)
}

// opsbotLike routes /opsbot approve|deny to the Router, as commands.Opsbot
// does (bot cannot import commands).
type opsbotLike struct{ r *bot.Router }

func (opsbotLike) Name() string          { return "opsbot" }
func (opsbotLike) Summary() string       { return "" }
func (opsbotLike) Usage() string         { return "" }
func (opsbotLike) Subcommands() []string { return []string{"approve", "deny"} }
func (opsbotLike) Changes(string) bool   { return false }
func (o opsbotLike) Run(ctx context.Context, req bot.Request) (bot.Reply, error) {
	return o.r.Decide(ctx, req, req.Args[1], req.Args[0] == "approve", strings.Join(req.Args[2:], " "))
}

// recorder keeps what a Notifier is told.
type recorder struct{ got []bot.Reply }

func (n *recorder) NotifyOutcome(_ context.Context, _ bot.Approval, r bot.Reply) {
	n.got = append(n.got, r)
}

// progressCmd reports progress once, then finishes.
type progressCmd struct{}

func (progressCmd) Name() string        { return "scan" }
func (progressCmd) Summary() string     { return "" }
func (progressCmd) Usage() string       { return "" }
func (progressCmd) Changes(string) bool { return false }
func (progressCmd) Run(_ context.Context, req bot.Request) (bot.Reply, error) {
	req.Stream.Progress(bot.Reply{Status: bot.StatusRunning, Title: "scanning"})
	return bot.Reply{Status: bot.StatusOK, Title: "scanned"}, nil
}

type progressSeen struct {
	bot.NopStream
	got []bot.Reply
}

func (s *progressSeen) Progress(r bot.Reply) { s.got = append(s.got, r) }

// Outcomes as data: every reply that ends an approval says so in typed
// fields (verdict, by whom, from which request), and supersedes its
// prompt; refusals, partial votes and the prompt itself do not; the
// progress of a running request carries its ID for the one Cancel action.
func TestApprovals_OutcomesAreTypedFields(t *testing.T) {
	p, err := bot.ParsePolicy([]byte(strings.Replace(twoApprovers, "%d", "1", 1) + "  ttl: 1m\n"))
	require.NoError(t, err)
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "opsbot.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	clock := bottest.NewClock(time.Now())
	notes := &recorder{}
	r := bot.NewRouter(bot.RouterConfig{Commands: []bot.Command{&deployCmd{hosts: []string{"10.0.0.11"}}},
		Perms: bot.NewPermissions(p), Approval: p.Approval, Store: st, Clock: clock, Notifier: notes})
	r.Add(opsbotLike{r})
	in := func(user, line string) (bot.Request, bot.Reply) {
		req := bot.Request{ID: bot.NewID(), Platform: "chat", User: user, Channel: "inc", Line: line}
		return req, r.Handle(context.Background(), req)
	}

	_, prompt := in("alice", "/deploy web01")
	id := pendingID(t, prompt)
	assert.Nil(t, prompt.Decides, "a prompt decides nothing")
	assert.Empty(t, prompt.Supersedes)
	_, self := in("alice", "/opsbot approve "+id)
	assert.Nil(t, self.Decides, "a refusal decides nothing")
	assert.Empty(t, self.Supersedes)

	req, ran := in("carol", "/opsbot approve "+id)
	assert.Equal(t, &bot.Decided{Approval: id, Verdict: bot.VerdictApproved, By: "chat:carol", Request: req.ID, Platform: "chat", Channel: "inc"}, ran.Decides)
	assert.Equal(t, id, ran.Supersedes)
	require.Len(t, notes.got, 1)
	assert.Equal(t, ran.Decides, notes.got[0].Decides, "the requester's notice carries it too")

	_, replay := in("erin", "/opsbot approve "+id)
	assert.Nil(t, replay.Decides, "a replay of a decided request decides nothing")

	id = pendingID(t, func() bot.Reply { _, p := in("alice", "/deploy web01"); return p }())
	req, denied := in("erin", "/opsbot deny "+id+" not now")
	assert.Equal(t, &bot.Decided{Approval: id, Verdict: bot.VerdictDenied, By: "chat:erin", Request: req.ID, Platform: "chat", Channel: "inc"}, denied.Decides)
	assert.Equal(t, id, denied.Supersedes)

	id = pendingID(t, func() bot.Reply { _, p := in("alice", "/deploy web01"); return p }())
	req, withdrawn := in("alice", "/opsbot deny "+id)
	assert.Equal(t, &bot.Decided{Approval: id, Verdict: bot.VerdictCancelled, By: "chat:alice", Request: req.ID, Platform: "chat", Channel: "inc"}, withdrawn.Decides)
	assert.Equal(t, "Cancelled "+id+": /deploy web01", withdrawn.Title)

	id = pendingID(t, func() bot.Reply { _, p := in("alice", "/deploy web01"); return p }())
	notes.got = nil
	clock.Advance(time.Minute + time.Second)
	r.ExpireApprovals(context.Background())
	require.Len(t, notes.got, 1)
	assert.Equal(t, &bot.Decided{Approval: id, Verdict: bot.VerdictExpired}, notes.got[0].Decides, "time decided: nobody, from no request")
	assert.Equal(t, id, notes.got[0].Supersedes)

	stream := &progressSeen{}
	req = bot.Request{ID: bot.NewID(), Platform: "chat", User: "alice", Channel: "inc", Line: "/scan 10.0.0.1", Stream: stream}
	final := bot.NewRouter(bot.RouterConfig{Commands: []bot.Command{progressCmd{}}}).Handle(context.Background(), req)
	require.Len(t, stream.got, 1)
	assert.Equal(t, req.ID, stream.got[0].Cancel, "progress may be cancelled: by this request's ID")
	assert.Equal(t, []bot.Action{bot.CancelAction(req.ID)}, stream.got[0].WithActions())
	assert.Empty(t, final.Cancel, "a final reply may not")
}
