package routertest

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/sqlite"
	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/bot/bottest"
)

// The lease on a running approved action, through the Router: the replica
// running it renews it; when a replica dies mid-action, another reports
// the request abandoned (audited, announced) and never runs it again.

// slowCmd is an approved action that runs until released.
type slowCmd struct {
	started chan struct{}
	release chan struct{}
	once    sync.Once
	runs    atomic.Int32
}

func newSlowCmd() *slowCmd {
	return &slowCmd{started: make(chan struct{}), release: make(chan struct{})}
}

func (*slowCmd) Name() string    { return "deploy" }
func (*slowCmd) Summary() string { return "deploys slowly" }
func (*slowCmd) Usage() string   { return "/deploy HOST" }
func (c *slowCmd) Run(context.Context, bot.Request) (bot.Reply, error) {
	c.runs.Add(1)
	c.once.Do(func() { close(c.started) })
	<-c.release
	return bot.Reply{Status: bot.StatusOK, Title: "deployed"}, nil
}

// notes records what the Router announces.
type notes struct {
	mu  sync.Mutex
	got []bot.Reply
}

func (n *notes) NotifyOutcome(_ context.Context, _ bot.Approval, r bot.Reply) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, r)
}

func (n *notes) all() []bot.Reply {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]bot.Reply(nil), n.got...)
}

// flakyStore is the real store whose lease renewals fail, as when the
// database is out of reach of one replica.
type flakyStore struct {
	bot.Store
	renewals atomic.Int32
}

func (f *flakyStore) RenewLease(context.Context, string, bot.Lease, time.Time) error {
	f.renewals.Add(1)
	return errors.New("connection refused")
}

func leaseRouter(t *testing.T, st bot.Store, cmd bot.Command, replica string, lease time.Duration, clock bot.Clock) (*bot.Router, *notes) {
	t.Helper()
	p, err := bot.ParsePolicy([]byte(strings.Replace(twoApprovers, "%d", "1", 1)))
	require.NoError(t, err)
	n := &notes{}
	r := bot.NewRouter(bot.RouterConfig{Commands: []bot.Command{cmd}, Perms: bot.NewPermissions(p), Approval: p.Approval, Store: st, Notifier: n, Clock: clock})
	r.SetLease(replica, lease)
	r.Add(opsbotLike{r})
	return r, n
}

func openStore(t *testing.T) bot.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "opsbot.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

func kinds(t *testing.T, st bot.Store, id string) []string {
	t.Helper()
	recs, err := st.Audit(context.Background(), bot.AuditQuery{})
	require.NoError(t, err)
	var out []string
	for _, rec := range recs {
		if rec.ApprovalID == id {
			out = append(out, rec.Kind)
		}
	}
	return out
}

func TestLease_RunningActionRenewsItsLease(t *testing.T) {
	st := openStore(t)
	cmd := newSlowCmd()
	clock := bottest.NewClock(time.Now())
	r, n := leaseRouter(t, st, cmd, "replica-a", time.Second, clock) // renewed every 333 ms of the clock's time
	id := pendingID(t, ask(t, r, "alice", "/deploy web01"))
	assert.Equal(t, "replica-a", r.Replica())

	done := make(chan bot.Reply, 1)
	go func() {
		done <- r.Handle(context.Background(), bot.Request{Platform: "chat", User: "carol", Channel: "inc", Line: "/opsbot approve " + id})
	}()
	<-cmd.started
	claimed, err := st.Approval(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, bot.ApprovalRunning, claimed.State)
	assert.Equal(t, "replica-a", claimed.Lease.Holder)

	// Past two and a half leases: renewed meanwhile, so not abandoned.
	// Each Advance hands a tick to the renewer, and the next waits until
	// it has renewed.
	require.Eventually(t, func() bool { return clock.Tickers() == 1 }, 10*time.Second, time.Millisecond, "the renewer runs")
	for range 7 {
		clock.Advance(time.Second / 3)
	}
	clock.Advance(time.Second / 6)
	other, _ := leaseRouter(t, st, newSlowCmd(), "replica-b", time.Second, clock)
	other.ExpireApprovals(context.Background())
	now, err := st.Approval(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, bot.ApprovalRunning, now.State)
	assert.True(t, now.Lease.Until.After(claimed.Lease.Until), "the lease was renewed: %s, first %s", now.Lease.Until, claimed.Lease.Until)

	close(cmd.release)
	reply := <-done
	assert.Equal(t, bot.StatusOK, reply.Status, reply.Title)
	final, err := st.Approval(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, bot.ApprovalDone, final.State)
	assert.Equal(t, []string{"requested", "approve", "started", "execution"}, kinds(t, st, id))
	for _, note := range n.all() {
		assert.NotContains(t, note.Title, "Abandoned")
	}
}

func TestLease_DeadReplicasActionIsAbandonedAuditedAndAnnounced(t *testing.T) {
	st := openStore(t)
	cmd := newSlowCmd()
	clock := bottest.NewClock(time.Now())
	r, n := leaseRouter(t, st, cmd, "replica-b", time.Minute, clock)
	id := pendingID(t, ask(t, r, "alice", "/deploy web01"))

	// Another replica claims it and dies at once: its lease is never renewed.
	now := clock.Now()
	_, claimed, err := st.Decide(context.Background(), id, bot.Decision{Principal: "chat:carol", UserName: "carol", Approve: true, At: now}, now,
		bot.Lease{Holder: "replica-dead/4242/abcdef", Until: now.Add(100 * time.Millisecond)})
	require.NoError(t, err)
	require.True(t, claimed)
	clock.Advance(200 * time.Millisecond)

	list, err := r.Approvals(context.Background(), bot.Request{Platform: "chat", User: "erin", Channel: "inc"}, false)
	require.NoError(t, err)
	require.Len(t, list, 1)
	a := list[0]
	assert.Equal(t, bot.ApprovalFailed, a.State)
	require.NotNil(t, a.Outcome)
	assert.Equal(t, bot.OutcomeAbandoned, a.Outcome.Status)

	got := n.all()
	require.Len(t, got, 1, "announced once")
	assert.Equal(t, bot.StatusFailed, got[0].Status)
	assert.Equal(t, "Abandoned "+id+": /deploy web01", got[0].Title)
	assert.Contains(t, got[0].Text, "Replica replica-dead/4242/abcdef stopped while running it (lease expired at ")
	assert.Contains(t, got[0].Text, "The action may have partly run — check the host.")
	assert.Contains(t, got[0].Text, "It will not be run again by itself")
	assert.Contains(t, got[0].Fields, bot.Field{Name: "replica", Value: "replica-dead/4242/abcdef"})

	recs, err := st.Audit(context.Background(), bot.AuditQuery{})
	require.NoError(t, err)
	last := recs[len(recs)-1]
	assert.Equal(t, bot.AuditAbandoned, last.Kind)
	assert.Equal(t, id, last.ApprovalID)
	assert.Equal(t, "alice", last.User, "on the requester's record, like an expiry")
	assert.Equal(t, "failed", last.Result)
	assert.Contains(t, last.Message, "abandoned: replica replica-dead/4242/abcdef stopped while running it (lease expired at ")
	assert.Contains(t, last.Message, "the action may have partly run — check the host")

	// Swept once: a second sweep, from any replica, announces nothing more.
	r.ExpireApprovals(context.Background())
	assert.Len(t, n.all(), 1)

	// Approving again says what happened, and runs nothing.
	again := ask(t, r, "erin", "/opsbot approve "+id)
	assert.Equal(t, 1, again.Status.ExitCode())
	assert.Contains(t, again.Title, "request "+id+" was abandoned: replica replica-dead/4242/abcdef stopped")
	assert.Zero(t, cmd.runs.Load())
	assert.Equal(t, []string{"requested", "abandoned", "approve"}, kinds(t, st, id))
}

func TestLease_OutcomeAfterAbandonmentIsStillAudited(t *testing.T) {
	// A replica that cannot renew (its database connection is down) is
	// declared dead by another; when its action ends after all, the
	// outcome cannot replace the abandonment, but it is audited and shown.
	st := openStore(t)
	flaky := &flakyStore{Store: st}
	cmd := newSlowCmd()
	clock := bottest.NewClock(time.Now())
	r, _ := leaseRouter(t, flaky, cmd, "replica-a", 300*time.Millisecond, clock)
	id := pendingID(t, ask(t, r, "alice", "/deploy web01"))
	done := make(chan bot.Reply, 1)
	go func() {
		done <- r.Handle(context.Background(), bot.Request{Platform: "chat", User: "carol", Channel: "inc", Line: "/opsbot approve " + id})
	}()
	<-cmd.started
	require.Eventually(t, func() bool { return clock.Tickers() == 1 }, 10*time.Second, time.Millisecond, "the renewer runs")
	renewed := flaky.renewals.Load() // the renewal at the start
	clock.Advance(100 * time.Millisecond)
	clock.Advance(100 * time.Millisecond)
	clock.Advance(101 * time.Millisecond) // the lease has lapsed: renewals failed meanwhile
	clock.Advance(100 * time.Millisecond)

	other, n := leaseRouter(t, st, newSlowCmd(), "replica-b", time.Minute, clock)
	other.ExpireApprovals(context.Background())
	require.Len(t, n.all(), 1, "the other replica abandons it once the lease lapsed")
	assert.Greater(t, flaky.renewals.Load(), renewed, "renewals were tried")

	close(cmd.release)
	reply := <-done
	assert.Equal(t, bot.StatusOK, reply.Status)
	assert.Contains(t, reply.Text, "this result came after the request had been declared abandoned")
	a, err := st.Approval(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, bot.OutcomeAbandoned, a.Outcome.Status, "the abandonment stands")
	assert.Equal(t, []string{"requested", "approve", "started", "abandoned", "execution"}, kinds(t, st, id))
	assert.Equal(t, int32(1), cmd.runs.Load())
}

// sweptStore is the real store as seen by a replica whose claim another
// replica declared abandoned between the claim and the action's start
// (Decide waited longer than the lease for its lock).
type sweptStore struct{ bot.Store }

func (sweptStore) RenewLease(_ context.Context, id string, _ bot.Lease, _ time.Time) error {
	return bot.Errorf(bot.ECONFLICT, "request %s was abandoned: replica replica-a stopped while running it", id)
}

func TestLease_ClaimLostBeforeTheStartRunsNothing(t *testing.T) {
	cmd := newSlowCmd()
	close(cmd.release)
	r, _ := leaseRouter(t, sweptStore{openStore(t)}, cmd, "replica-a", time.Minute, bottest.NewClock(time.Now()))
	id := pendingID(t, ask(t, r, "alice", "/deploy web01"))
	out := ask(t, r, "carol", "/opsbot approve "+id)
	assert.Equal(t, 1, out.Status.ExitCode(), out.Title)
	assert.Contains(t, out.Title, "it had not started here, so nothing ran")
	assert.Zero(t, cmd.runs.Load())
}
