package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
)

// Actions in flight: the started record before an action acts, its
// lease, its outcome, and the interruption of one whose replica died.

func started(id, platform string, at time.Time) bot.AuditRecord {
	return bot.AuditRecord{Time: at, Kind: bot.AuditStarted, RequestID: id, Platform: platform, User: "alice", UserName: "Alice",
		Channel: "C1", Line: "/apache reload web01", Command: "apache reload", Hosts: []string{"web01 (10.0.0.11)"}, Result: "running", Message: "started"}
}

func kindsOf(t *testing.T, st bot.Store, id string) []string {
	t.Helper()
	recs, err := st.Audit(context.Background(), bot.AuditQuery{})
	require.NoError(t, err)
	var out []string
	for _, r := range recs {
		if r.RequestID == id {
			out = append(out, r.Kind)
		}
	}
	return out
}

func testActionStartedThenEnded(t *testing.T, open func(t *testing.T) bot.Store) {
	st := open(t)
	ctx := context.Background()
	now := time.Now().UTC()
	seq, err := st.BeginAction(ctx, started("req000000001", "slack", now), bot.Lease{Holder: "a", Until: now.Add(time.Minute)})
	require.NoError(t, err)
	assert.Positive(t, seq)
	recs, err := st.Audit(ctx, bot.AuditQuery{})
	require.NoError(t, err)
	require.Len(t, recs, 1, "the started record is in the log before the action acts")
	assert.Equal(t, bot.AuditStarted, recs[0].Kind)
	assert.Equal(t, []string{"web01 (10.0.0.11)"}, recs[0].Hosts)

	_, err = st.BeginAction(ctx, started("req000000001", "slack", now), bot.Lease{Holder: "a", Until: now.Add(time.Minute)})
	assert.Equal(t, bot.ECONFLICT, bot.ErrorCode(err), "one start per request")

	out := started("req000000001", "slack", now)
	out.Kind, out.Result, out.Message = bot.AuditRequest, "ok", "reloaded"
	_, err = st.EndAction(ctx, out)
	require.NoError(t, err)
	assert.Equal(t, []string{"started", "request"}, kindsOf(t, st, "req000000001"), "a refused second start recorded nothing")

	// Ended: a sweep long after the lease finds nothing, and a renewal conflicts.
	lapsed, err := st.InterruptLapsed(ctx, now.Add(time.Hour), nil)
	require.NoError(t, err)
	assert.Empty(t, lapsed)
	assert.Equal(t, bot.ECONFLICT, bot.ErrorCode(st.RenewAction(ctx, "req000000001", bot.Lease{Holder: "a", Until: now.Add(2 * time.Minute)})))
}

func testActionBeginRejectsBadInput(t *testing.T, open func(t *testing.T) bot.Store) {
	st := open(t)
	now := time.Now()
	bad := started("req000000002", "slack", now)
	bad.Kind = bot.AuditRequest
	_, err := st.BeginAction(context.Background(), bad, bot.Lease{Holder: "a", Until: now.Add(time.Minute)})
	assert.Equal(t, bot.EINVALID, bot.ErrorCode(err))
	_, err = st.BeginAction(context.Background(), started("req000000002", "slack", now), bot.Lease{})
	assert.Equal(t, bot.EINVALID, bot.ErrorCode(err))
	recs, err := st.Audit(context.Background(), bot.AuditQuery{})
	require.NoError(t, err)
	assert.Empty(t, recs, "nothing recorded")
}

func testActionLapsedIsInterruptedOnce(t *testing.T, open func(t *testing.T) bot.Store) {
	st := open(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	until := now.Add(time.Second)
	_, err := st.BeginAction(ctx, started("req000000003", "slack", now), bot.Lease{Holder: "replica-dead", Until: until})
	require.NoError(t, err)
	_, err = st.BeginAction(ctx, started("req000000004", "shell", now), bot.Lease{Holder: "replica-dead", Until: until})
	require.NoError(t, err)

	none, err := st.InterruptLapsed(ctx, until, nil)
	require.NoError(t, err)
	assert.Empty(t, none, "at the instant of expiry the lease still holds")

	onlyShell, err := st.InterruptLapsed(ctx, until.Add(time.Microsecond), []string{"shell", "mattermost"})
	require.NoError(t, err)
	require.Len(t, onlyShell, 1, "a process takes only the platforms it can announce")
	assert.Equal(t, "req000000004", onlyShell[0].RequestID)

	got, err := st.InterruptLapsed(ctx, until.Add(time.Microsecond), nil)
	require.NoError(t, err)
	require.Len(t, got, 1)
	r := got[0]
	assert.Equal(t, bot.AuditInterrupted, r.Kind)
	assert.Equal(t, "unknown", r.Result)
	assert.Equal(t, "req000000003", r.RequestID)
	assert.Equal(t, "C1", r.Channel)
	assert.Equal(t, "alice", r.User)
	assert.Equal(t, "/apache reload web01", r.Line)
	assert.Equal(t, []string{"web01 (10.0.0.11)"}, r.Hosts)
	assert.Positive(t, r.Seq)
	assert.Contains(t, r.Message, "interrupted: replica replica-dead stopped after it started this and before it recorded how it ended")
	assert.Contains(t, r.Message, "outcome unknown")

	again, err := st.InterruptLapsed(ctx, until.Add(time.Hour), nil)
	require.NoError(t, err)
	assert.Empty(t, again, "recorded once")
	assert.Equal(t, []string{"started", "interrupted"}, kindsOf(t, st, "req000000003"))
	assert.Equal(t, bot.ECONFLICT, bot.ErrorCode(st.RenewAction(ctx, "req000000003", bot.Lease{Holder: "replica-dead", Until: until.Add(time.Hour)})),
		"the holder learns it was declared interrupted")

	// An outcome that comes after all is still recorded.
	late := started("req000000003", "slack", now)
	late.Kind, late.Result = bot.AuditRequest, "ok"
	_, err = st.EndAction(ctx, late)
	require.NoError(t, err)
	assert.Equal(t, []string{"started", "interrupted", "request"}, kindsOf(t, st, "req000000003"))
}

func testActionRenewedIsNotInterrupted(t *testing.T, open func(t *testing.T) bot.Store) {
	st := open(t)
	ctx := context.Background()
	now := time.Now().UTC()
	_, err := st.BeginAction(ctx, started("req000000005", "slack", now), bot.Lease{Holder: "a", Until: now.Add(time.Second)})
	require.NoError(t, err)
	assert.Equal(t, bot.ECONFLICT, bot.ErrorCode(st.RenewAction(ctx, "req000000005", bot.Lease{Holder: "b", Until: now.Add(time.Hour)})), "only the holder renews")
	require.NoError(t, st.RenewAction(ctx, "req000000005", bot.Lease{Holder: "a", Until: now.Add(time.Minute)}))
	require.NoError(t, st.RenewAction(ctx, "req000000005", bot.Lease{Holder: "a", Until: now.Add(time.Second)}), "never shortened")
	got, err := st.InterruptLapsed(ctx, now.Add(30*time.Second), nil)
	require.NoError(t, err)
	assert.Empty(t, got)
	got, err = st.InterruptLapsed(ctx, now.Add(2*time.Minute), nil)
	require.NoError(t, err)
	assert.Len(t, got, 1)
}

func testActionConcurrentSweepsInterruptOnce(t *testing.T, open func(t *testing.T) bot.Store) {
	setup := open(t)
	ctx := context.Background()
	now := time.Now().UTC()
	for _, id := range []string{"req00000000a", "req00000000b", "req00000000c"} {
		_, err := setup.BeginAction(ctx, started(id, "slack", now), bot.Lease{Holder: "dead", Until: now})
		require.NoError(t, err)
	}
	const sweepers = 10
	stores := make([]bot.Store, sweepers)
	for i := range stores {
		stores[i] = open(t)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total = map[string]int{}
	)
	for _, st := range stores {
		wg.Go(func() {
			got, err := st.InterruptLapsed(ctx, now.Add(time.Second), nil)
			assert.NoError(t, err)
			mu.Lock()
			defer mu.Unlock()
			for _, r := range got {
				total[r.RequestID]++
			}
		})
	}
	wg.Wait()
	assert.Equal(t, map[string]int{"req00000000a": 1, "req00000000b": 1, "req00000000c": 1}, total, "each interrupted once, by one sweeper")
	for _, id := range []string{"req00000000a", "req00000000b", "req00000000c"} {
		assert.Equal(t, []string{"started", "interrupted"}, kindsOf(t, setup, id))
	}
}

func testDeliveriesFirstOnce(t *testing.T, open func(t *testing.T) bot.Store) {
	ctx := context.Background()
	now := time.Now().UTC()
	const racers = 10
	stores := make([]bot.Store, racers)
	for i := range stores {
		stores[i] = open(t)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first int
	)
	for _, st := range stores {
		wg.Go(func() {
			ok, err := st.FirstDelivery(ctx, []string{"trigger:T1", "", "click:sha256:ab"}, now, now.Add(10*time.Minute))
			assert.NoError(t, err)
			if ok {
				mu.Lock()
				first++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 1, first, "one replica handles it; the others see a retry")

	st := stores[0]
	ok, err := st.FirstDelivery(ctx, []string{"trigger:T2", "click:sha256:ab"}, now, now.Add(10*time.Minute))
	require.NoError(t, err)
	assert.False(t, ok, "a replay with a new trigger but the same body is a replay")
	ok, err = st.FirstDelivery(ctx, []string{"trigger:T2"}, now, now.Add(10*time.Minute))
	require.NoError(t, err)
	assert.False(t, ok, "every key was recorded, even of a duplicate")
	ok, err = st.FirstDelivery(ctx, []string{"trigger:T1"}, now.Add(11*time.Minute), now.Add(21*time.Minute))
	require.NoError(t, err)
	assert.True(t, ok, "lapsed keys are forgotten")
}
