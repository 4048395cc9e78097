package commands

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
)

// fakeControl stands in for the Router behind /opsbot.
type fakeControl struct {
	DecideFn func(id string, approve bool, reason string) (bot.Reply, error)
	pending  []bot.Approval
	audit    []bot.AuditRecord
	lastN    int
}

func (f *fakeControl) Decide(_ context.Context, _ bot.Request, id string, approve bool, reason string) (bot.Reply, error) {
	return f.DecideFn(id, approve, reason)
}
func (f *fakeControl) Approvals(context.Context, bot.Request, bool) ([]bot.Approval, error) {
	return f.pending, nil
}
func (f *fakeControl) Who(bot.Request) ([]string, []string, []string) {
	return []string{"oncall"}, []string{"portcheck", "scan"}, nil
}
func (f *fakeControl) Cancel(_ context.Context, _ bot.Request, id string) (bot.Reply, error) {
	return bot.Reply{Title: "Canceled " + id}, nil
}
func (f *fakeControl) AuditLog(_ context.Context, n int) ([]bot.AuditRecord, error) {
	f.lastN = n
	return f.audit, nil
}

func TestOpsbot_Subcommands(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var gotID, gotReason string
	var gotApprove bool
	ctrl := &fakeControl{
		DecideFn: func(id string, approve bool, reason string) (bot.Reply, error) {
			gotID, gotApprove, gotReason = id, approve, reason
			return bot.Reply{Title: "ok"}, nil
		},
		pending: []bot.Approval{{ID: "0123456789ab", State: bot.ApprovalPending, Line: "/scan 10.0.0.1 1-65535", Platform: "shell", User: "alice", Needed: 2,
			Decisions: []bot.Decision{{Principal: "shell:carol", Approve: true}}, Expires: now.Add(14 * time.Minute)}},
		audit: []bot.AuditRecord{{Time: now, Kind: "request", Platform: "slack", User: "U1", Line: "/portcheck 10.0.0.1 22", Result: "ok"}},
	}
	o := NewOpsbot(ctrl, bot.HostAccess{})
	o.now = func() time.Time { return now }
	run := func(args ...string) (bot.Reply, error) {
		return o.Run(context.Background(), bot.Request{Platform: "shell", User: "bob", Channel: "terminal", Args: args})
	}

	_, err := run("deny", "0123456789AB", "not", "now")
	require.NoError(t, err)
	assert.Equal(t, "0123456789ab", gotID, "IDs are case-insensitive as typed")
	assert.False(t, gotApprove)
	assert.Equal(t, "not now", gotReason)

	list, err := run("approvals")
	require.NoError(t, err)
	assert.Equal(t, [][]string{{"0123456789ab", "/scan 10.0.0.1 1-65535", "shell:alice", "pending", "1 of 2 approvals; expires in 14m0s"}}, list.Table.Rows)
	assert.Equal(t, "/opsbot approve 0123456789ab", list.Actions[0].Command)

	who, err := run("whoami")
	require.NoError(t, err)
	assert.Equal(t, "You are shell:bob", who.Title)
	assert.Contains(t, who.Fields, bot.Field{Name: "may approve", Value: "nothing"})

	audit, err := run("audit", "5")
	require.NoError(t, err)
	assert.Equal(t, 5, ctrl.lastN)
	assert.Equal(t, []string{"11-25 10:00:00", "slack:U1", "request", "/portcheck 10.0.0.1 22", "ok"}, audit.Table.Rows[0])

	for _, bad := range [][]string{{}, {"approve"}, {"approve", "a", "b"}, {"audit", "0"}, {"audit", "x"}, {"frobnicate"}} {
		_, err := run(bad...)
		assert.Equal(t, bot.EINVALID, bot.ErrorCode(err), bad)
	}
}

func TestOpsbot_ApprovalsShowRunningAndAbandoned(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	carol := bot.Decision{Principal: "slack:U0CAROL", UserName: "carol", Approve: true, At: now.Add(-2 * time.Minute)}
	ctrl := &fakeControl{pending: []bot.Approval{
		{ID: "aaaaaaaaaaaa", State: bot.ApprovalRunning, Line: "/scan 10.0.0.1 1-65535", Platform: "slack", User: "U1", Needed: 1,
			Decisions: []bot.Decision{carol}, Lease: bot.Lease{Holder: "opsbot-0/7/a1b2c3", Until: now.Add(40 * time.Second)}},
		{ID: "bbbbbbbbbbbb", State: bot.ApprovalRunning, Line: "/apache restart web01", Platform: "slack", User: "U1", Needed: 1,
			Decisions: []bot.Decision{carol}, Lease: bot.Lease{Holder: "opsbot-1/9/d4e5f6", Until: now.Add(-5 * time.Second)}},
		{ID: "cccccccccccc", State: bot.ApprovalFailed, Line: "/relayd reload lb01", Platform: "slack", User: "U1", Needed: 1,
			Decisions: []bot.Decision{carol}, Lease: bot.Lease{Holder: "opsbot-1/9/d4e5f6", Until: now.Add(-time.Minute)},
			Outcome: &bot.Outcome{State: bot.ApprovalFailed, Status: bot.OutcomeAbandoned, Finished: now,
				Title: "abandoned: replica opsbot-1/9/d4e5f6 stopped while running it (lease expired at 2026-11-25 09:59:00 UTC); the action may have partly run — check the host"}},
		{ID: "dddddddddddd", State: bot.ApprovalDone, Line: "/scan 10.0.0.2", Platform: "slack", User: "U1", Needed: 1,
			Outcome: &bot.Outcome{State: bot.ApprovalDone, Status: "ok", Title: "2 open ports", Finished: now.Add(-10 * time.Minute)}},
	}}
	o := NewOpsbot(ctrl, bot.HostAccess{})
	o.now = func() time.Time { return now }
	list, err := o.Run(context.Background(), bot.Request{Platform: "slack", User: "U2", Args: []string{"approvals"}})
	require.NoError(t, err)
	assert.Equal(t, "Approval requests: 2 running, 1 abandoned, 1 ended in the last hour", list.Title)
	assert.Equal(t, [][]string{
		{"aaaaaaaaaaaa", "/scan 10.0.0.1 1-65535", "slack:U1", "running", "on replica opsbot-0/7/a1b2c3 since 09:58:00 UTC (approved by carol); lease renewed until 10:00:40 UTC"},
		{"bbbbbbbbbbbb", "/apache restart web01", "slack:U1", "running", "on replica opsbot-1/9/d4e5f6 since 09:58:00 UTC (approved by carol); lease lapsed at 09:59:55 UTC: abandoned at the next check unless renewed"},
		{"cccccccccccc", "/relayd reload lb01", "slack:U1", "abandoned", "replica opsbot-1/9/d4e5f6 stopped while running it (lease expired at 2026-11-25 09:59:00 UTC); the action may have partly run — check the host"},
		{"dddddddddddd", "/scan 10.0.0.2", "slack:U1", "done", "09:50:00 UTC: 2 open ports"},
	}, list.Table.Rows)
	assert.Empty(t, list.Actions, "nothing to approve")
}

func TestOpsbot_HostsListsWhatTheAskerMayActOn(t *testing.T) {
	p, err := bot.ParsePolicy([]byte(`
roles:
  web:   {commands: ["apache status", "apache reload"], hosts: [web]}
  lb:    {commands: ["relayd status", "relayd show"], hosts: ["tag:lb"]}
users:
  "shell:alice": [web, lb]
  "shell:nobody": []
hosts:
  web01: {address: 10.0.0.11, user: opsbot, become: sudo}
  web02: {address: 10.0.0.12, user: opsbot}
  lb01:  {address: 10.0.0.2, user: opsbot, become: doas, tags: [lb]}
  db01:  {address: 10.0.0.3, user: opsbot}
groups:
  web: [web01, web02]
`))
	require.NoError(t, err)
	o := NewOpsbot(&fakeControl{}, bot.HostAccess{Inventory: bot.NewInventory(p), Perms: bot.NewPermissions(p)})
	rep, err := o.Run(context.Background(), bot.Request{Platform: "shell", User: "alice", Args: []string{"hosts"}})
	require.NoError(t, err)
	assert.Equal(t, "3 hosts you may act on", rep.Title)
	assert.Equal(t, [][]string{
		{"lb01", "10.0.0.2", "ssh as opsbot + doas", "-", "lb", "relayd status, show"},
		{"web01", "10.0.0.11", "ssh as opsbot + sudo", "web", "-", "apache status, reload"},
		{"web02", "10.0.0.12", "ssh as opsbot", "web", "-", "apache status, reload"},
	}, rep.Table.Rows)
	assert.Equal(t, "1 more hosts are in the inventory; your roles grant nothing there.", rep.Text)

	rep, err = o.Run(context.Background(), bot.Request{Platform: "shell", User: "nobody", Args: []string{"hosts"}})
	require.NoError(t, err)
	assert.Equal(t, "You may act on none of the 4 inventory hosts", rep.Title)

	rep, err = NewOpsbot(&fakeControl{}, bot.HostAccess{}).Run(context.Background(), bot.Request{Args: []string{"hosts"}})
	require.NoError(t, err)
	assert.Contains(t, rep.Title, "No hosts")
}
