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
func (f *fakeControl) PendingApprovals(context.Context) ([]bot.Approval, error) {
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
		pending: []bot.Approval{{ID: "0123456789ab", Line: "/scan 10.0.0.1 1-65535", Platform: "shell", User: "alice", Needed: 2,
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
	assert.Equal(t, [][]string{{"0123456789ab", "/scan 10.0.0.1 1-65535", "shell:alice", "1 of 2", "14m0s"}}, list.Table.Rows)
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
