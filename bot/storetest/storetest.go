// Package storetest owns the conformance suite of bot.Store: one set of
// tests that every store adapter (adapters/sqlite, adapters/postgres) runs
// against a real database, so the approval state machine, exactly-once
// claiming, the leases of running requests (renewal, and abandonment once
// a lease lapses) and the audit log behave the same whichever database is
// behind the bot.
//
// An adapter's test calls Run with a function that opens a new handle on the
// database of a test; that function asks Database where the database is:
//
//	storetest.Run(t, func(t *testing.T) bot.Store {
//		path := storetest.Database(t, func() string { return filepath.Join(t.TempDir(), "opsbot.db") })
//		s, err := sqlite.Open(t.Context(), path)
//		require.NoError(t, err)
//		t.Cleanup(func() { _ = s.Close() })
//		return s
//	})
//
// Times go through the store with microsecond precision: the suite expects
// every time it reads back to equal what it wrote truncated to the
// microsecond, in UTC.
package storetest

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
)

// The cross-process test re-executes the test binary; these variables tell
// the child which database and request to race on.
const (
	envChildApproval = "OPSBOT_STORETEST_CHILD_APPROVAL"
	envChildDatabase = "OPSBOT_STORETEST_CHILD_DATABASE"
	envChildWorkers  = "OPSBOT_STORETEST_CHILD_WORKERS"
	envChildName     = "OPSBOT_STORETEST_CHILD_NAME"
	childResult      = "storetest-child-result:"
	childReady       = "storetest-child-ready"
)

// Concurrency of the exactly-once tests.
const (
	racers          = 50 // goroutines, each with its own store handle
	childProcesses  = 5
	childGoroutines = 10
)

var (
	databasesMu sync.Mutex
	databases   = map[*testing.T]string{}
)

// Database returns where the database of test t lives: a file path, a URL,
// whatever the adapter's Open takes. The first call for t runs create;
// later calls for the same t return the same answer, so several handles
// can be opened on one database. In a child process started by the suite it
// returns the parent's database and never calls create.
func Database(t *testing.T, create func() string) string {
	t.Helper()
	if loc := os.Getenv(envChildDatabase); loc != "" {
		return loc
	}
	databasesMu.Lock()
	loc, ok := databases[t]
	databasesMu.Unlock()
	if ok {
		return loc
	}
	loc = create()
	databasesMu.Lock()
	databases[t] = loc
	databasesMu.Unlock()
	t.Cleanup(func() {
		databasesMu.Lock()
		delete(databases, t)
		databasesMu.Unlock()
	})
	return loc
}

func location(t *testing.T) string {
	databasesMu.Lock()
	defer databasesMu.Unlock()
	loc, ok := databases[t]
	require.True(t, ok, "the open function given to storetest.Run must call storetest.Database")
	return loc
}

// Run runs the conformance suite. open returns a new handle on the database
// of the test it is given (see Database) and closes it when that test ends.
func Run(t *testing.T, open func(t *testing.T) bot.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) bot.Store)
	}{
		{"CreateThenApprovalReturnsTheSameValues", testCreateRoundTrip},
		{"EmptyListsReadBackEmpty", testEmptyLists},
		{"CreateWithTakenIDConflicts", testCreateDuplicate},
		{"CreateRejectsBadInput", testCreateInvalid},
		{"UnknownIDIsNotFound", testUnknownID},
		{"OneApprovalNeeded_FirstApproveClaims", testOneNeededClaims},
		{"OneApprovalNeeded_ApproveAfterDoneSaysAlreadyRan", testApproveAfterFinish},
		{"TwoApprovalsNeeded_SecondPersonClaims", testTwoNeeded},
		{"DenyThenApproveConflicts", testDeny},
		{"DecideWithoutTimeUsesNow", testDecisionAtDefaultsToNow},
		{"DecideAfterExpiryConflictsAndExpires", testDecideExpired},
		{"DecideAtTheExpiryInstantIsInTime", testDecideAtExpiry},
		{"ExpirePendingMovesOnlyOverduePending", testExpirePending},
		{"FinishStoresTheOutcome", testFinish},
		{"FinishOnNonRunningConflicts", testFinishNotRunning},
		{"FinishRejectsNonFinalState", testFinishInvalidState},
		{"Lease_ClaimRecordsHolderAndExpiry", testLeaseClaim},
		{"Lease_RenewExtendsOnlyTheHoldersRunningClaim", testLeaseRenew},
		{"Lease_LapsedIsAbandonedOnce", testLeaseLapsed},
		{"Lease_RenewedIsNotAbandoned", testLeaseRenewedNotAbandoned},
		{"Lease_FinishAfterAbandonConflicts", testLeaseFinishAfterAbandon},
		{"Lease_LapsedButNotYetAbandonedHolderMayFinish", testLeaseLapsedHolderFinishes},
		{"Lease_ConcurrentSweepsAbandonOnce", testLeaseConcurrentSweeps},
		{"Lease_RenewRacingASweepIsOneOrTheOther", testLeaseRenewRacesSweep},
		{"ListApprovalsShowsOpenAndRecent", testListApprovals},
		{"Action_StartedIsRecordedThenEnded", testActionStartedThenEnded},
		{"Action_BeginRejectsBadInput", testActionBeginRejectsBadInput},
		{"Action_LapsedIsInterruptedOnce", testActionLapsedIsInterruptedOnce},
		{"Action_RenewedIsNotInterrupted", testActionRenewedIsNotInterrupted},
		{"Action_ConcurrentSweepsInterruptOnce", testActionConcurrentSweepsInterruptOnce},
		{"Deliveries_FirstOnceAcrossHandles", testDeliveriesFirstOnce},
		{"CommandTokens_SavedListedReplacedDeleted", testCommandTokens},
		{"CommandTokens_RejectBadInput", testCommandTokensRejectBadInput},
		{"ExactlyOnce_ConcurrentHandles", testExactlyOnceHandles},
		{"ExactlyOnce_TwoNeededConcurrentHandles", testExactlyOnceTwoNeeded},
		{"ExactlyOnce_AcrossProcesses", testExactlyOnceProcesses},
		{"AuditAppendReturnsIncreasingSeq", testAuditSeq},
		{"AuditRoundTripsEveryField", testAuditRoundTrip},
		{"AuditQuerySinceAndLast", testAuditQuery},
		{"AuditPrune_ExportsThenRemovesOnlyOld", testPruneExportsThenRemovesOnlyOld},
		{"AuditPrune_FailedExportRemovesNothing", testPruneFailedExportRemovesNothing},
		{"AuditPrune_ConcurrentHandlesExportEachOnce", testPruneConcurrentHandlesExportEachOnce},
		{"ReopenedStoreKeepsEverything", testReopen},
		{"PingAndCloseTwice", testPingClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// t0 has nanoseconds on purpose: stores keep microseconds.
var t0 = time.Date(2025, 3, 4, 10, 2, 3, 123456789, time.UTC)

// norm is what a store gives back for a time it was given.
func norm(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }

func newID(t *testing.T) string {
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

func newApproval(t *testing.T, needed int, created time.Time) bot.Approval {
	args := []string{"restart", "web01"}
	hosts := []string{"web01", "10.0.0.12"}
	sum := sha256.Sum256([]byte("apache restart\x00" + strings.Join(args, "\x00") + "\x00" + strings.Join(hosts, "\x00")))
	return bot.Approval{
		ID:        newID(t),
		State:     bot.ApprovalPending,
		Command:   "apache restart",
		Line:      "/apache restart web01",
		Args:      args,
		Hosts:     hosts,
		Digest:    hex.EncodeToString(sum[:]),
		Impact:    "hard restart of Apache on web01: in-flight requests are cut",
		Platform:  "slack",
		User:      "U024BE7LH",
		UserName:  "alice",
		Channel:   "C0INCIDENT",
		RequestID: "req-" + newID(t),
		Needed:    needed,
		Created:   created,
		Expires:   created.Add(15 * time.Minute),
	}
}

// want is a as the store returns it.
func want(a bot.Approval) bot.Approval {
	a.Created = norm(a.Created)
	a.Expires = norm(a.Expires)
	a.Decisions = append([]bot.Decision(nil), a.Decisions...)
	for i := range a.Decisions {
		a.Decisions[i].At = norm(a.Decisions[i].At)
	}
	if a.Outcome != nil {
		o := *a.Outcome
		o.Finished = norm(o.Finished)
		a.Outcome = &o
	}
	a.Lease.Until = norm(a.Lease.Until)
	return a
}

// replicaA and replicaB are the replicas the suite's claims name.
const (
	replicaA = "web-7f3c9/4242/a1b2c3"
	replicaB = "web-1d2e8/977/d4e5f6"
)

// lease is replicaA's claim when it approves at now: a minute long.
func lease(now time.Time) bot.Lease {
	return bot.Lease{Holder: replicaA, Until: now.Add(time.Minute)}
}

func create(t *testing.T, s bot.Store, a bot.Approval) bot.Approval {
	t.Helper()
	require.NoError(t, s.CreateApproval(t.Context(), a))
	return a
}

func approve(who string, at time.Time) bot.Decision {
	return bot.Decision{Principal: "slack:" + who, UserName: who, Approve: true, At: at}
}

func deny(who, reason string, at time.Time) bot.Decision {
	return bot.Decision{Principal: "slack:" + who, UserName: who, Approve: false, Reason: reason, At: at}
}

// requireCode checks err is a *bot.Error with code, and returns its message.
func requireCode(t *testing.T, err error, code string) string {
	t.Helper()
	require.Error(t, err)
	var be *bot.Error
	require.Truef(t, errors.As(err, &be), "want a *bot.Error %s, got %T: %v", code, err, err)
	require.Equalf(t, code, be.Code, "error: %v", err)
	require.NotEmpty(t, be.Message)
	return be.Message
}

func testCreateRoundTrip(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	a := newApproval(t, 2, t0.In(time.FixedZone("CET", 3600)))
	create(t, s, a)

	got, err := s.Approval(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, want(a), got)
	assert.Nil(t, got.Outcome)
	assert.Equal(t, time.UTC, got.Created.Location())

	// A second handle sees the same.
	got2, err := open(t).Approval(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, want(a), got2)
}

func testEmptyLists(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	a := newApproval(t, 1, t0)
	a.Args, a.Hosts = nil, []string{}
	create(t, s, a)
	got, err := s.Approval(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Empty(t, got.Args)
	assert.Empty(t, got.Hosts)
	assert.Empty(t, got.Decisions)
}

func testCreateDuplicate(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	a := create(t, s, newApproval(t, 1, t0))
	b := newApproval(t, 1, t0)
	b.ID = a.ID
	msg := requireCode(t, s.CreateApproval(t.Context(), b), bot.ECONFLICT)
	assert.Contains(t, msg, a.ID)

	got, err := s.Approval(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, want(a), got, "the first request is untouched")
}

func testCreateInvalid(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	noID := newApproval(t, 1, t0)
	noID.ID = ""
	requireCode(t, s.CreateApproval(t.Context(), noID), bot.EINVALID)

	zero := newApproval(t, 0, t0)
	requireCode(t, s.CreateApproval(t.Context(), zero), bot.EINVALID)

	running := newApproval(t, 1, t0)
	running.State = bot.ApprovalRunning
	requireCode(t, s.CreateApproval(t.Context(), running), bot.EINVALID)

	for _, id := range []string{zero.ID, running.ID} {
		_, err := s.Approval(t.Context(), id)
		requireCode(t, err, bot.ENOTFOUND)
	}
}

func testUnknownID(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	ctx := t.Context()
	id := newID(t)

	_, err := s.Approval(ctx, id)
	assert.Equal(t, bot.ENOTFOUND, bot.ErrorCode(err))
	assert.Contains(t, bot.ErrorMessage(err), id)

	_, claimed, err := s.Decide(ctx, id, approve("carol", t0), t0, lease(t0))
	assert.False(t, claimed)
	assert.Equal(t, bot.ENOTFOUND, bot.ErrorCode(err))

	err = s.Finish(ctx, id, bot.Outcome{State: bot.ApprovalDone, Finished: t0})
	assert.Equal(t, bot.ENOTFOUND, bot.ErrorCode(err))
}

func testOneNeededClaims(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	ctx := t.Context()
	a := create(t, s, newApproval(t, 1, t0))

	at := t0.Add(time.Minute)
	got, claimed, err := s.Decide(ctx, a.ID, approve("carol", at), at, lease(at))
	require.NoError(t, err)
	assert.True(t, claimed)
	assert.Equal(t, bot.ApprovalRunning, got.State)
	a.State, a.Lease = bot.ApprovalRunning, lease(at)
	a.Decisions = []bot.Decision{approve("carol", at)}
	assert.Equal(t, want(a), got)

	stored, err := s.Approval(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, want(a), stored)

	// Another approver, another handle: too late.
	later := at.Add(time.Second)
	got, claimed, err = open(t).Decide(ctx, a.ID, approve("dave", later), later, lease(later))
	msg := requireCode(t, err, bot.ECONFLICT)
	assert.False(t, claimed)
	assert.Contains(t, msg, a.ID)
	assert.Contains(t, msg, "already running")
	assert.Contains(t, msg, "10:03:03 UTC", "says when it was approved")
	assert.Equal(t, bot.ApprovalRunning, got.State, "a conflict returns the request as it stands")

	// The same approver clicking twice gets the same answer.
	_, claimed, err = s.Decide(ctx, a.ID, approve("carol", later), later, lease(later))
	assert.Contains(t, requireCode(t, err, bot.ECONFLICT), "already running")
	assert.False(t, claimed)

	stored, err = s.Approval(ctx, a.ID)
	require.NoError(t, err)
	assert.Len(t, stored.Decisions, 1, "a refused vote is not recorded")
}

func testApproveAfterFinish(t *testing.T, open func(*testing.T) bot.Store) {
	for _, state := range []bot.ApprovalState{bot.ApprovalDone, bot.ApprovalFailed} {
		t.Run(string(state), func(t *testing.T) {
			s := open(t)
			ctx := t.Context()
			a := create(t, s, newApproval(t, 1, t0))
			at := t0.Add(time.Minute)
			_, claimed, err := s.Decide(ctx, a.ID, approve("carol", at), at, lease(at))
			require.NoError(t, err)
			require.True(t, claimed)
			require.NoError(t, s.Finish(ctx, a.ID, bot.Outcome{
				State: state, Status: "ok", Title: "Apache restarted on web01",
				Finished: at.Add(2 * time.Second), Duration: 2 * time.Second,
			}))

			later := at.Add(time.Minute)
			got, claimed, err := s.Decide(ctx, a.ID, approve("dave", later), later, lease(later))
			msg := requireCode(t, err, bot.ECONFLICT)
			assert.False(t, claimed)
			assert.Contains(t, msg, "already ran")
			assert.Contains(t, msg, string(state))
			assert.Contains(t, msg, "10:03:05 UTC", "says when it ran")
			assert.Equal(t, state, got.State)
		})
	}
}

func testTwoNeeded(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	ctx := t.Context()
	a := create(t, s, newApproval(t, 2, t0))

	at1 := t0.Add(time.Minute)
	got, claimed, err := s.Decide(ctx, a.ID, approve("carol", at1), at1, lease(at1))
	require.NoError(t, err)
	assert.False(t, claimed, "one of two approvals does not claim")
	assert.Equal(t, bot.ApprovalPending, got.State)
	require.Len(t, got.Decisions, 1)

	// Carol again, from another handle: one vote per person.
	at2 := at1.Add(time.Second)
	_, claimed, err = open(t).Decide(ctx, a.ID, approve("carol", at2), at2, lease(at2))
	assert.Contains(t, requireCode(t, err, bot.ECONFLICT), "already approved by you")
	assert.False(t, claimed)
	// Nor may she deny now.
	_, _, err = s.Decide(ctx, a.ID, deny("carol", "changed my mind", at2), at2, lease(at2))
	assert.Contains(t, requireCode(t, err, bot.ECONFLICT), "already approved by you")

	stored, err := s.Approval(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, bot.ApprovalPending, stored.State)
	assert.Len(t, stored.Decisions, 1)

	at3 := at2.Add(time.Second)
	got, claimed, err = s.Decide(ctx, a.ID, approve("dave", at3), at3, lease(at3))
	require.NoError(t, err)
	assert.True(t, claimed)
	a.State, a.Lease = bot.ApprovalRunning, lease(at3)
	a.Decisions = []bot.Decision{approve("carol", at1), approve("dave", at3)}
	assert.Equal(t, want(a), got)

	stored, err = s.Approval(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, want(a), stored, "decisions in the order they were made")
}

func testDeny(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	ctx := t.Context()
	a := create(t, s, newApproval(t, 2, t0))

	at1 := t0.Add(time.Minute)
	_, _, err := s.Decide(ctx, a.ID, approve("carol", at1), at1, lease(at1))
	require.NoError(t, err)
	at2 := at1.Add(time.Minute)
	got, claimed, err := s.Decide(ctx, a.ID, deny("dave", "not during the sale", at2), at2, lease(at2))
	require.NoError(t, err)
	assert.False(t, claimed)
	assert.Equal(t, bot.ApprovalDenied, got.State)

	stored, err := s.Approval(ctx, a.ID)
	require.NoError(t, err)
	a.State = bot.ApprovalDenied
	a.Decisions = []bot.Decision{approve("carol", at1), deny("dave", "not during the sale", at2)}
	assert.Equal(t, want(a), stored)

	at3 := at2.Add(time.Minute)
	got, claimed, err = s.Decide(ctx, a.ID, approve("erin", at3), at3, lease(at3))
	msg := requireCode(t, err, bot.ECONFLICT)
	assert.False(t, claimed)
	assert.Contains(t, msg, "was denied")
	assert.Contains(t, msg, "dave")
	assert.Contains(t, msg, "not during the sale")
	assert.Equal(t, bot.ApprovalDenied, got.State)

	_, _, err = s.Decide(ctx, a.ID, deny("erin", "", at3), at3, lease(at3))
	assert.Contains(t, requireCode(t, err, bot.ECONFLICT), "was denied")
	stored, err = s.Approval(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, bot.ApprovalDenied, stored.State)
}

func testDecisionAtDefaultsToNow(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	a := create(t, s, newApproval(t, 1, t0))
	now := t0.Add(time.Minute)
	d := approve("carol", time.Time{})
	got, claimed, err := s.Decide(t.Context(), a.ID, d, now, lease(now))
	require.NoError(t, err)
	require.True(t, claimed)
	require.Len(t, got.Decisions, 1)
	assert.Equal(t, norm(now), got.Decisions[0].At)
}

func testDecideExpired(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	ctx := t.Context()
	a := create(t, s, newApproval(t, 1, t0))

	late := a.Expires.Add(time.Microsecond)
	got, claimed, err := open(t).Decide(ctx, a.ID, approve("carol", late), late, lease(late))
	msg := requireCode(t, err, bot.ECONFLICT)
	assert.False(t, claimed)
	assert.Contains(t, msg, "expired")
	assert.Contains(t, msg, "10:17:03 UTC", "says when")
	assert.Equal(t, bot.ApprovalExpired, got.State)

	stored, err := s.Approval(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, bot.ApprovalExpired, stored.State, "the expiry is stored")
	assert.Empty(t, stored.Decisions, "the late vote is not recorded")

	// Denying an expired request is refused the same way.
	_, _, err = s.Decide(ctx, a.ID, deny("dave", "", late), late, lease(late))
	assert.Contains(t, requireCode(t, err, bot.ECONFLICT), "expired")

	gone, err := s.ExpirePending(ctx, late)
	require.NoError(t, err)
	assert.Empty(t, gone, "already expired, not expired again")
}

func testDecideAtExpiry(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	a := create(t, s, newApproval(t, 1, t0))
	_, claimed, err := s.Decide(t.Context(), a.ID, approve("carol", a.Expires), a.Expires, lease(a.Expires))
	require.NoError(t, err)
	assert.True(t, claimed)
}

func testExpirePending(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	ctx := t.Context()
	overdue1 := create(t, s, newApproval(t, 1, t0))
	overdue2 := create(t, s, newApproval(t, 2, t0.Add(-time.Hour)))
	live := create(t, s, newApproval(t, 1, t0.Add(10*time.Minute)))
	claimed := create(t, s, newApproval(t, 1, t0))
	_, ok, err := s.Decide(ctx, claimed.ID, approve("carol", t0), t0, lease(t0))
	require.NoError(t, err)
	require.True(t, ok)
	denied := create(t, s, newApproval(t, 1, t0))
	_, _, err = s.Decide(ctx, denied.ID, deny("carol", "no", t0), t0, lease(t0))
	require.NoError(t, err)
	// Half-approved, then overdue: expires with its decision kept.
	_, _, err = s.Decide(ctx, overdue2.ID, approve("carol", t0.Add(-time.Hour)), t0.Add(-time.Hour), lease(t0.Add(-time.Hour)))
	require.NoError(t, err)

	now := t0.Add(20 * time.Minute) // after overdue*, before live's expiry
	gone, err := s.ExpirePending(ctx, now)
	require.NoError(t, err)
	ids := map[string]bot.Approval{}
	for _, a := range gone {
		ids[a.ID] = a
		assert.Equal(t, bot.ApprovalExpired, a.State)
	}
	assert.Len(t, gone, 2)
	assert.Contains(t, ids, overdue1.ID)
	assert.Contains(t, ids, overdue2.ID)
	assert.Len(t, ids[overdue2.ID].Decisions, 1)
	overdue1.State = bot.ApprovalExpired
	assert.Equal(t, want(overdue1), ids[overdue1.ID])

	for id, st := range map[string]bot.ApprovalState{
		overdue1.ID: bot.ApprovalExpired, overdue2.ID: bot.ApprovalExpired,
		live.ID: bot.ApprovalPending, claimed.ID: bot.ApprovalRunning, denied.ID: bot.ApprovalDenied,
	} {
		a, err := s.Approval(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, st, a.State, id)
	}

	again, err := open(t).ExpirePending(ctx, now)
	require.NoError(t, err)
	assert.Empty(t, again)
}

func testFinish(t *testing.T, open func(*testing.T) bot.Store) {
	for _, state := range []bot.ApprovalState{bot.ApprovalDone, bot.ApprovalFailed} {
		t.Run(string(state), func(t *testing.T) {
			s := open(t)
			ctx := t.Context()
			a := create(t, s, newApproval(t, 1, t0))
			at := t0.Add(time.Minute)
			_, claimed, err := s.Decide(ctx, a.ID, approve("carol", at), at, lease(at))
			require.NoError(t, err)
			require.True(t, claimed)

			o := bot.Outcome{
				State: state, Status: "ok", Title: "Apache restarted on web01",
				OutputSHA256: strings.Repeat("ab", 32),
				Finished:     at.Add(1500 * time.Millisecond), Duration: 1499999999 * time.Nanosecond,
			}
			require.NoError(t, open(t).Finish(ctx, a.ID, o))

			got, err := s.Approval(ctx, a.ID)
			require.NoError(t, err)
			a.State, a.Lease = state, lease(at)
			a.Decisions = []bot.Decision{approve("carol", at)}
			a.Outcome = &o
			assert.Equal(t, want(a), got)

			err = s.Finish(ctx, a.ID, o)
			assert.Contains(t, requireCode(t, err, bot.ECONFLICT), "already ran", "finishing twice")
		})
	}
}

func testFinishNotRunning(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	ctx := t.Context()
	a := create(t, s, newApproval(t, 1, t0))
	o := bot.Outcome{State: bot.ApprovalDone, Status: "ok", Finished: t0}
	msg := requireCode(t, s.Finish(ctx, a.ID, o), bot.ECONFLICT)
	assert.Contains(t, msg, "pending")

	got, err := s.Approval(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, bot.ApprovalPending, got.State)
	assert.Nil(t, got.Outcome)

	d := create(t, s, newApproval(t, 1, t0))
	_, _, err = s.Decide(ctx, d.ID, deny("carol", "", t0), t0, lease(t0))
	require.NoError(t, err)
	assert.Contains(t, requireCode(t, s.Finish(ctx, d.ID, o), bot.ECONFLICT), "was denied")
}

func testFinishInvalidState(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	ctx := t.Context()
	a := create(t, s, newApproval(t, 1, t0))
	_, claimed, err := s.Decide(ctx, a.ID, approve("carol", t0), t0, lease(t0))
	require.NoError(t, err)
	require.True(t, claimed)
	for _, st := range []bot.ApprovalState{"", bot.ApprovalPending, bot.ApprovalRunning, bot.ApprovalDenied, bot.ApprovalExpired} {
		requireCode(t, s.Finish(ctx, a.ID, bot.Outcome{State: st, Finished: t0}), bot.EINVALID)
	}
	got, err := s.Approval(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, bot.ApprovalRunning, got.State)
}

// claim creates a request needing one approval and has replicaA claim it
// at at, on a lease until at+1m.
func claim(t *testing.T, s bot.Store, at time.Time) bot.Approval {
	t.Helper()
	a := create(t, s, newApproval(t, 1, at.Add(-time.Minute)))
	got, claimed, err := s.Decide(t.Context(), a.ID, approve("carol", at), at, lease(at))
	require.NoError(t, err)
	require.True(t, claimed)
	return got
}

func testLeaseClaim(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	ctx := t.Context()
	a := create(t, s, newApproval(t, 2, t0))

	// A lease without holder or expiry is refused before anything is stored.
	at := t0.Add(time.Minute)
	for _, bad := range []bot.Lease{{Until: at.Add(time.Minute)}, {Holder: replicaA}} {
		_, _, err := s.Decide(ctx, a.ID, approve("carol", at), at, bad)
		requireCode(t, err, bot.EINVALID)
	}
	withLease := newApproval(t, 1, t0)
	withLease.Lease = lease(t0)
	requireCode(t, s.CreateApproval(ctx, withLease), bot.EINVALID)

	// A vote that does not claim records no lease.
	got, claimed, err := s.Decide(ctx, a.ID, approve("carol", at), at, lease(at))
	require.NoError(t, err)
	require.False(t, claimed)
	assert.Equal(t, bot.Lease{}, got.Lease)
	stored, err := s.Approval(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, bot.Lease{}, stored.Lease)

	// The claiming vote records its caller's lease, microseconds kept.
	at2 := at.Add(time.Second)
	got, claimed, err = open(t).Decide(ctx, a.ID, approve("dave", at2), at2, lease(at2))
	require.NoError(t, err)
	require.True(t, claimed)
	wantLease := bot.Lease{Holder: replicaA, Until: norm(at2.Add(time.Minute))}
	assert.Equal(t, wantLease, got.Lease)
	stored, err = s.Approval(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, wantLease, stored.Lease)

	// Too late for another replica: the conflict names the one running it.
	at3 := at2.Add(time.Second)
	_, _, err = s.Decide(ctx, a.ID, approve("erin", at3), at3, bot.Lease{Holder: replicaB, Until: at3.Add(time.Minute)})
	msg := requireCode(t, err, bot.ECONFLICT)
	assert.Contains(t, msg, "already running on replica "+replicaA)
}

func testLeaseRenew(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	ctx := t.Context()
	a := claim(t, s, t0)

	// The holder renews: extended, from another handle too.
	renew := t0.Add(20 * time.Second)
	require.NoError(t, open(t).RenewLease(ctx, a.ID, bot.Lease{Holder: replicaA, Until: renew.Add(time.Minute)}, renew))
	got, err := s.Approval(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, norm(renew.Add(time.Minute)), got.Lease.Until)
	assert.Equal(t, bot.ApprovalRunning, got.State)

	// Never shortened.
	require.NoError(t, s.RenewLease(ctx, a.ID, bot.Lease{Holder: replicaA, Until: t0}, renew))
	got, err = s.Approval(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, norm(renew.Add(time.Minute)), got.Lease.Until)

	// Another replica may not renew it.
	err = s.RenewLease(ctx, a.ID, bot.Lease{Holder: replicaB, Until: renew.Add(time.Hour)}, renew)
	msg := requireCode(t, err, bot.ECONFLICT)
	assert.Contains(t, msg, replicaA)
	got, err = s.Approval(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, norm(renew.Add(time.Minute)), got.Lease.Until, "untouched")

	// Nor may anyone renew a request that is not running.
	p := create(t, s, newApproval(t, 1, t0))
	msg = requireCode(t, s.RenewLease(ctx, p.ID, lease(t0), t0), bot.ECONFLICT)
	assert.Contains(t, msg, "pending")
	err = s.RenewLease(ctx, newID(t), lease(t0), t0)
	assert.Equal(t, bot.ENOTFOUND, bot.ErrorCode(err))
	requireCode(t, s.RenewLease(ctx, a.ID, bot.Lease{Holder: replicaA}, t0), bot.EINVALID)

	require.NoError(t, s.Finish(ctx, a.ID, bot.Outcome{State: bot.ApprovalDone, Status: "ok", Finished: renew}))
	msg = requireCode(t, s.RenewLease(ctx, a.ID, lease(renew), renew), bot.ECONFLICT)
	assert.Contains(t, msg, "already ran")
}

func testLeaseLapsed(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	ctx := t.Context()
	lapsing := claim(t, s, t0)                     // lease until 10:03:03.123456
	live := claim(t, s, t0.Add(30*time.Second))    // until 10:03:33
	pending := create(t, s, newApproval(t, 1, t0)) // no lease at all
	done := claim(t, s, t0.Add(-time.Hour))
	require.NoError(t, s.Finish(ctx, done.ID, bot.Outcome{State: bot.ApprovalDone, Status: "ok", Finished: t0.Add(-time.Hour)}))

	// At the instant of expiry the lease still holds.
	gone, err := s.AbandonLapsed(ctx, lapsing.Lease.Until)
	require.NoError(t, err)
	assert.Empty(t, gone)

	now := lapsing.Lease.Until.Add(time.Microsecond)
	gone, err = open(t).AbandonLapsed(ctx, now)
	require.NoError(t, err)
	require.Len(t, gone, 1)
	got := gone[0]
	assert.Equal(t, lapsing.ID, got.ID)
	assert.Equal(t, bot.ApprovalFailed, got.State)
	require.NotNil(t, got.Outcome)
	assert.Equal(t, bot.OutcomeAbandoned, got.Outcome.Status)
	assert.Equal(t, bot.ApprovalFailed, got.Outcome.State)
	assert.Equal(t, norm(now), got.Outcome.Finished)
	assert.Equal(t, "abandoned: replica "+replicaA+" stopped while running it (lease expired at 2025-03-04 10:03:03 UTC); "+
		"the action may have partly run — check the host", got.Outcome.Title)
	assert.Equal(t, lapsing.Lease, got.Lease, "the lease is kept for the record")
	assert.Len(t, got.Decisions, 1)

	stored, err := s.Approval(ctx, lapsing.ID)
	require.NoError(t, err)
	assert.Equal(t, got, stored, "what AbandonLapsed returns is what is stored")

	// Once only.
	again, err := s.AbandonLapsed(ctx, now.Add(time.Second))
	require.NoError(t, err)
	assert.Empty(t, again)

	for id, st := range map[string]bot.ApprovalState{
		live.ID: bot.ApprovalRunning, pending.ID: bot.ApprovalPending, done.ID: bot.ApprovalDone,
	} {
		a, err := s.Approval(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, st, a.State, id)
	}

	// Approving it again says what happened; nothing is claimed.
	_, claimed, err := s.Decide(ctx, lapsing.ID, approve("dave", now), now, bot.Lease{Holder: replicaB, Until: now.Add(time.Minute)})
	msg := requireCode(t, err, bot.ECONFLICT)
	assert.False(t, claimed)
	assert.Contains(t, msg, "request "+lapsing.ID+" was abandoned: replica "+replicaA+" stopped while running it (lease expired at 10:03:03 UTC)")
	assert.Contains(t, msg, "may have partly run")
}

func testLeaseRenewedNotAbandoned(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	ctx := t.Context()
	a := claim(t, s, t0)
	renewedAt := t0.Add(40 * time.Second)
	require.NoError(t, s.RenewLease(ctx, a.ID, bot.Lease{Holder: replicaA, Until: renewedAt.Add(time.Minute)}, renewedAt))

	// Past the first lease, within the renewed one.
	gone, err := open(t).AbandonLapsed(ctx, t0.Add(90*time.Second))
	require.NoError(t, err)
	assert.Empty(t, gone)
	got, err := s.Approval(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, bot.ApprovalRunning, got.State)

	// Past the renewed one too.
	gone, err = s.AbandonLapsed(ctx, renewedAt.Add(time.Minute+time.Second))
	require.NoError(t, err)
	require.Len(t, gone, 1)
	assert.Contains(t, gone[0].Outcome.Title, "lease expired at 2025-03-04 10:03:43 UTC")
}

func testLeaseFinishAfterAbandon(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	ctx := t.Context()
	a := claim(t, s, t0)
	now := a.Lease.Until.Add(time.Second)
	gone, err := s.AbandonLapsed(ctx, now)
	require.NoError(t, err)
	require.Len(t, gone, 1)

	// The replica was only slow, not dead: its late outcome is refused.
	late := bot.Outcome{State: bot.ApprovalDone, Status: "ok", Title: "Apache restarted on web01", Finished: now.Add(time.Second)}
	msg := requireCode(t, open(t).Finish(ctx, a.ID, late), bot.ECONFLICT)
	assert.Contains(t, msg, "was abandoned: replica "+replicaA)
	msg = requireCode(t, s.RenewLease(ctx, a.ID, lease(now), now), bot.ECONFLICT)
	assert.Contains(t, msg, "was abandoned")

	got, err := s.Approval(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, bot.ApprovalFailed, got.State)
	assert.Equal(t, bot.OutcomeAbandoned, got.Outcome.Status, "the abandonment stands")
}

func testLeaseLapsedHolderFinishes(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	ctx := t.Context()
	a := claim(t, s, t0)
	late := a.Lease.Until.Add(10 * time.Second)

	// Lapsed, but nobody swept yet: the holder is evidently alive, and
	// what it says is better than a guess.
	require.NoError(t, s.RenewLease(ctx, a.ID, bot.Lease{Holder: replicaA, Until: late.Add(time.Minute)}, late))
	o := bot.Outcome{State: bot.ApprovalDone, Status: "ok", Title: "done late", Finished: late.Add(time.Second)}
	require.NoError(t, s.Finish(ctx, a.ID, o))
	gone, err := s.AbandonLapsed(ctx, late.Add(time.Hour))
	require.NoError(t, err)
	assert.Empty(t, gone)
	got, err := s.Approval(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, bot.ApprovalDone, got.State)
	assert.Equal(t, "done late", got.Outcome.Title)
}

func testLeaseConcurrentSweeps(t *testing.T, open func(*testing.T) bot.Store) {
	const requests, sweepers = 20, 10
	stores := openMany(t, open, sweepers)
	var ids []string
	for i := range requests {
		ids = append(ids, claim(t, stores[0], t0.Add(time.Duration(i)*time.Second)).ID)
	}
	now := t0.Add(time.Hour)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		count = map[string]int{}
		start = make(chan struct{})
	)
	for _, s := range stores {
		wg.Go(func() {
			<-start
			gone, err := s.AbandonLapsed(context.Background(), now)
			assert.NoError(t, err)
			mu.Lock()
			defer mu.Unlock()
			for _, a := range gone {
				count[a.ID]++
			}
		})
	}
	close(start)
	wg.Wait()
	for _, id := range ids {
		assert.Equal(t, 1, count[id], "request %s abandoned by exactly one sweep", id)
	}
	assert.Len(t, count, requests)
}

func testLeaseRenewRacesSweep(t *testing.T, open func(*testing.T) bot.Store) {
	holder, sweeper := open(t), open(t)
	ctx := t.Context()
	for range 10 {
		a := claim(t, holder, t0)
		now := a.Lease.Until.Add(time.Second) // lapsed: the sweep may take it
		var (
			renewErr error
			gone     []bot.Approval
			sweepErr error
			wg       sync.WaitGroup
		)
		wg.Go(func() {
			renewErr = holder.RenewLease(ctx, a.ID, bot.Lease{Holder: replicaA, Until: now.Add(time.Minute)}, now)
		})
		wg.Go(func() { gone, sweepErr = sweeper.AbandonLapsed(ctx, now) })
		wg.Wait()
		require.NoError(t, sweepErr)
		got, err := holder.Approval(ctx, a.ID)
		require.NoError(t, err)
		if renewErr == nil {
			assert.Empty(t, gone, "renewed first: not abandoned")
			assert.Equal(t, bot.ApprovalRunning, got.State)
			require.NoError(t, holder.Finish(ctx, a.ID, bot.Outcome{State: bot.ApprovalDone, Status: "ok", Finished: now}))
		} else {
			assert.Contains(t, requireCode(t, renewErr, bot.ECONFLICT), "abandoned")
			require.Len(t, gone, 1)
			assert.Equal(t, bot.ApprovalFailed, got.State)
		}
	}
}

func testListApprovals(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	ctx := t.Context()
	since := t0.Add(-time.Hour)
	oldPending := create(t, s, newApproval(t, 1, t0.Add(-4*time.Hour)))
	oldDone := claim(t, s, t0.Add(-3*time.Hour))
	require.NoError(t, s.Finish(ctx, oldDone.ID, bot.Outcome{State: bot.ApprovalDone, Status: "ok", Finished: t0.Add(-3 * time.Hour)}))
	oldRunning := claim(t, s, t0.Add(-2*time.Hour))
	require.NoError(t, s.RenewLease(ctx, oldRunning.ID, bot.Lease{Holder: replicaA, Until: t0.Add(2 * time.Hour)}, t0))
	recentDenied := create(t, s, newApproval(t, 1, t0))
	_, _, err := s.Decide(ctx, recentDenied.ID, deny("carol", "no", t0), t0, lease(t0))
	require.NoError(t, err)
	recentAbandoned := claim(t, s, t0.Add(2*time.Minute))
	_, err = s.AbandonLapsed(ctx, t0.Add(time.Hour))
	require.NoError(t, err)

	list, err := open(t).ListApprovals(ctx, since)
	require.NoError(t, err)
	var got []string
	for _, a := range list {
		got = append(got, a.ID+" "+string(a.State))
	}
	assert.Equal(t, []string{
		oldPending.ID + " pending", // pending or running, whatever its age
		oldRunning.ID + " running",
		recentDenied.ID + " denied", // ended, but created since
		recentAbandoned.ID + " failed",
	}, got, "oldest first; %s, done before since, left out", oldDone.ID)
	abandoned := list[len(list)-1]
	assert.Equal(t, bot.OutcomeAbandoned, abandoned.Outcome.Status)
	assert.Equal(t, replicaA, abandoned.Lease.Holder)
	assert.Len(t, abandoned.Decisions, 1)
}

// race has one goroutine per handle Decide(approve) the request at once,
// with distinct principals, and counts claims and conflicts. Any other
// error fails the test.
func race(t *testing.T, stores []bot.Store, id, who string, now time.Time) (claims, conflicts int) {
	t.Helper()
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		mu    sync.Mutex
		other []error
	)
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			d := approve(fmt.Sprintf("%s%02d", who, i), now)
			_, claimed, err := s.Decide(context.Background(), id, d, now, lease(now))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && claimed:
				claims++
			case err == nil:
				// A vote that did not reach Needed.
			case bot.ErrorCode(err) == bot.ECONFLICT:
				conflicts++
			default:
				other = append(other, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	for _, err := range other {
		t.Errorf("decide: an error other than a conflict: %v", err)
	}
	return claims, conflicts
}

func openMany(t *testing.T, open func(*testing.T) bot.Store, n int) []bot.Store {
	stores := make([]bot.Store, n)
	for i := range stores {
		stores[i] = open(t)
	}
	return stores
}

func testExactlyOnceHandles(t *testing.T, open func(*testing.T) bot.Store) {
	stores := openMany(t, open, racers)
	a := create(t, stores[0], newApproval(t, 1, t0))

	claims, conflicts := race(t, stores, a.ID, "approver", t0.Add(time.Minute))
	assert.Equal(t, 1, claims, "exactly one claim")
	assert.Equal(t, racers-1, conflicts)

	got, err := stores[0].Approval(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, bot.ApprovalRunning, got.State)
	assert.Len(t, got.Decisions, 1)
}

func testExactlyOnceTwoNeeded(t *testing.T, open func(*testing.T) bot.Store) {
	stores := openMany(t, open, racers)
	a := create(t, stores[0], newApproval(t, 2, t0))

	claims, conflicts := race(t, stores, a.ID, "approver", t0.Add(time.Minute))
	assert.Equal(t, 1, claims, "exactly one claim")
	assert.Equal(t, racers-2, conflicts, "one vote below Needed, one claim, the rest too late")

	got, err := stores[0].Approval(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, bot.ApprovalRunning, got.State)
	assert.Len(t, got.Decisions, 2)
}

// testExactlyOnceProcesses runs the race in child processes: the test
// binary itself, run for this one test with the database and request in
// its environment.
func testExactlyOnceProcesses(t *testing.T, open func(*testing.T) bot.Store) {
	if id := os.Getenv(envChildApproval); id != "" {
		runChild(t, open, id)
		return
	}
	s := open(t)
	a := create(t, s, newApproval(t, 1, t0))
	loc := location(t)

	var pattern []string
	for _, part := range strings.Split(t.Name(), "/") {
		pattern = append(pattern, "^"+regexp.QuoteMeta(part)+"$")
	}
	type child struct {
		cmd    *exec.Cmd
		stdin  io.WriteCloser
		lines  chan string
		output *lockedWriter
		done   chan struct{}
	}
	children := make([]*child, childProcesses)
	for i := range children {
		cmd := exec.CommandContext(t.Context(), os.Args[0], //nolint:gosec // this test binary, run again
			"-test.run="+strings.Join(pattern, "/"), "-test.count=1", "-test.timeout=2m")
		cmd.Env = append(os.Environ(),
			envChildApproval+"="+a.ID,
			envChildDatabase+"="+loc,
			envChildWorkers+"="+strconv.Itoa(childGoroutines),
			envChildName+"="+fmt.Sprintf("p%d-", i),
		)
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 16), output: &lockedWriter{}, done: make(chan struct{})}
		cmd.Stderr = c.output
		require.NoError(t, cmd.Start())
		go func() {
			defer close(c.done)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				line := sc.Text()
				if strings.HasPrefix(line, childReady) || strings.HasPrefix(line, childResult) {
					c.lines <- line
				} else {
					_, _ = c.output.Write([]byte(line + "\n"))
				}
			}
		}()
		children[i] = c
	}
	t.Cleanup(func() {
		for _, c := range children {
			if c != nil && c.cmd.ProcessState == nil {
				_ = c.cmd.Process.Kill()
				_ = c.cmd.Wait()
			}
		}
	})

	// Every child opens its handles first; then all go at once.
	deadline := time.After(2 * time.Minute)
	for i, c := range children {
		select {
		case line := <-c.lines:
			require.Equal(t, childReady, line)
		case <-c.done:
			_ = c.cmd.Wait()
			t.Fatalf("child %d exited before it was ready:\n%s", i, c.output)
		case <-deadline:
			t.Fatalf("child %d not ready in time:\n%s", i, c.output)
		}
	}
	for _, c := range children {
		_, err := io.WriteString(c.stdin, "go\n")
		require.NoError(t, err)
	}

	claims, conflicts := 0, 0
	for i, c := range children {
		select {
		case <-c.done:
		case <-deadline:
			t.Fatalf("child %d did not finish in time:\n%s", i, c.output)
		}
		var result string
		select {
		case result = <-c.lines:
		default:
		}
		err := c.cmd.Wait()
		require.NoErrorf(t, err, "child %d:\n%s", i, c.output)
		var cl, co int
		_, err = fmt.Sscanf(result, childResult+" claims=%d conflicts=%d", &cl, &co)
		require.NoErrorf(t, err, "child %d result %q:\n%s", i, result, c.output)
		claims += cl
		conflicts += co
	}
	assert.Equal(t, 1, claims, "exactly one claim across processes")
	assert.Equal(t, childProcesses*childGoroutines-1, conflicts)

	got, err := s.Approval(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, bot.ApprovalRunning, got.State)
	assert.Len(t, got.Decisions, 1)
}

// lockedWriter collects a child's stderr and stray stdout lines, which
// arrive from two goroutines.
type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// runChild is the child side of testExactlyOnceProcesses.
func runChild(t *testing.T, open func(*testing.T) bot.Store, id string) {
	n, err := strconv.Atoi(os.Getenv(envChildWorkers))
	require.NoError(t, err)
	stores := openMany(t, open, n)
	fmt.Println(childReady)
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "go\n", line)
	claims, conflicts := race(t, stores, id, os.Getenv(envChildName), t0.Add(time.Minute))
	fmt.Printf("%s claims=%d conflicts=%d\n", childResult, claims, conflicts)
}

func newRecord(kind string, at time.Time) bot.AuditRecord {
	return bot.AuditRecord{
		Time:         at,
		Kind:         kind,
		RequestID:    "req-1",
		Platform:     "mattermost",
		User:         "carol",
		UserName:     "Carol",
		Person:       "carol",
		SelfAsserted: true,
		Channel:      "town-square",
		Line:         "/apache restart web01",
		Command:      "apache restart",
		Hosts:        []string{"web01", "10.0.0.12"},
		ApprovalID:   "3f2a9c",
		Result:       "ok",
		Message:      "Apache restarted on web01",
		Duration:     1234567891 * time.Nanosecond,
		OutputSHA256: strings.Repeat("0f", 32),
	}
}

func wantRecord(r bot.AuditRecord, seq int64) bot.AuditRecord {
	r.Seq = seq
	r.Time = norm(r.Time)
	return r
}

func testAuditSeq(t *testing.T, open func(*testing.T) bot.Store) {
	s, other := open(t), open(t)
	var last int64
	for i := range 6 {
		st := s
		if i%2 == 1 {
			st = other
		}
		seq, err := st.AppendAudit(t.Context(), newRecord(bot.AuditRequest, t0))
		require.NoError(t, err)
		assert.Greater(t, seq, last)
		last = seq
	}
}

func testAuditRoundTrip(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	full := newRecord(bot.AuditExecution, t0.In(time.FixedZone("EST", -5*3600)))
	full.Seq = 999999 // ignored: the store numbers records
	sparse := bot.AuditRecord{Time: t0.Add(time.Second), Kind: bot.AuditRejected, Result: "rejected", Message: "bad signature"}

	seq1, err := s.AppendAudit(t.Context(), full)
	require.NoError(t, err)
	seq2, err := s.AppendAudit(t.Context(), sparse)
	require.NoError(t, err)

	got, err := open(t).Audit(t.Context(), bot.AuditQuery{})
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, wantRecord(full, seq1), got[0])
	assert.Equal(t, seq2, got[1].Seq)
	assert.Empty(t, got[1].Hosts)
	got[1].Hosts = nil
	assert.Equal(t, wantRecord(sparse, seq2), got[1])
}

func testAuditQuery(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	ctx := t.Context()
	// Times out of order on purpose: the log is in sequence order.
	offsets := []time.Duration{0, 2, 1, 3, 5, 4}
	var seqs []int64
	for i, off := range offsets {
		r := newRecord(bot.AuditRequest, t0.Add(off*time.Minute))
		r.Message = fmt.Sprint("record ", i)
		seq, err := s.AppendAudit(ctx, r)
		require.NoError(t, err)
		seqs = append(seqs, seq)
	}
	messages := func(rs []bot.AuditRecord) []string {
		var m []string
		for i, r := range rs {
			if i > 0 {
				assert.Greater(t, r.Seq, rs[i-1].Seq, "sequence order")
			}
			m = append(m, r.Message)
		}
		return m
	}

	all, err := s.Audit(ctx, bot.AuditQuery{})
	require.NoError(t, err)
	assert.Equal(t, []string{"record 0", "record 1", "record 2", "record 3", "record 4", "record 5"}, messages(all))
	assert.Equal(t, seqs[5], all[5].Seq)

	since, err := s.Audit(ctx, bot.AuditQuery{Since: t0.Add(2 * time.Minute)})
	require.NoError(t, err)
	assert.Equal(t, []string{"record 1", "record 3", "record 4", "record 5"}, messages(since), "at or after Since")

	last, err := s.Audit(ctx, bot.AuditQuery{Last: 2})
	require.NoError(t, err)
	assert.Equal(t, []string{"record 4", "record 5"}, messages(last))

	lastSince, err := s.Audit(ctx, bot.AuditQuery{Since: t0.Add(2 * time.Minute), Last: 3})
	require.NoError(t, err)
	assert.Equal(t, []string{"record 3", "record 4", "record 5"}, messages(lastSince))

	more, err := s.Audit(ctx, bot.AuditQuery{Last: 100})
	require.NoError(t, err)
	assert.Len(t, more, 6)

	none, err := s.Audit(ctx, bot.AuditQuery{Since: t0.Add(time.Hour)})
	require.NoError(t, err)
	assert.Empty(t, none)

	// Microseconds count: Since one microsecond after a record excludes it.
	r := newRecord(bot.AuditRequest, t0.Add(time.Hour))
	_, err = s.AppendAudit(ctx, r)
	require.NoError(t, err)
	edge, err := s.Audit(ctx, bot.AuditQuery{Since: norm(r.Time)})
	require.NoError(t, err)
	assert.Len(t, edge, 1)
	edge, err = s.Audit(ctx, bot.AuditQuery{Since: norm(r.Time).Add(time.Microsecond)})
	require.NoError(t, err)
	assert.Empty(t, edge)
}

func testReopen(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	ctx := t.Context()
	pending := create(t, s, newApproval(t, 2, t0))
	_, _, err := s.Decide(ctx, pending.ID, approve("carol", t0), t0, lease(t0))
	require.NoError(t, err)
	pending.Decisions = []bot.Decision{approve("carol", t0)}
	seq, err := s.AppendAudit(ctx, newRecord(bot.AuditRequested, t0))
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s = open(t)
	got, err := s.Approval(ctx, pending.ID)
	require.NoError(t, err)
	assert.Equal(t, want(pending), got)
	log, err := s.Audit(ctx, bot.AuditQuery{})
	require.NoError(t, err)
	assert.Equal(t, []bot.AuditRecord{wantRecord(newRecord(bot.AuditRequested, t0), seq)}, log)

	// And it goes on from there.
	_, claimed, err := s.Decide(ctx, pending.ID, approve("dave", t0), t0, lease(t0))
	require.NoError(t, err)
	assert.True(t, claimed)
}

func testPingClose(t *testing.T, open func(*testing.T) bot.Store) {
	s := open(t)
	require.NoError(t, s.Ping(t.Context()))
	require.NoError(t, s.Close())
	assert.NotPanics(t, func() { _ = s.Close() })
	assert.Error(t, s.Ping(t.Context()), "a closed store is not ready")
}
