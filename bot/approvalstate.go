package bot

// The approval state machine as pure functions, applied by each Store
// adapter under its database's lock, and the user-safe messages of its
// conflicts: one definition for SQLite and PostgreSQL alike.

import (
	"fmt"
	"time"
)

// DecideApproval works out what decision d does to request a, as read under the
// lock at now: the state to move to (a.State when only a vote is added),
// and the conflict, if any. A pending request past its expiry moves to
// expired and still returns the conflict: the caller stores the move, then
// reports the error.
//
// Times compare at the microsecond, the precision the store keeps.
func DecideApproval(a Approval, d Decision, now time.Time) (ApprovalState, *Error) {
	if a.State == ApprovalPending && now.Truncate(time.Microsecond).After(a.Expires) {
		a.State = ApprovalExpired
		return ApprovalExpired, ApprovalConflict(a, now)
	}
	if a.State != ApprovalPending {
		return a.State, ApprovalConflict(a, now)
	}
	approvals := 0
	for _, prev := range a.Decisions {
		if prev.Principal == d.Principal {
			return a.State, Errorf(ECONFLICT, "request %s is already approved by you (%s); it needs %s",
				a.ID, clock(prev.At, now), countApprovals(a.Needed))
		}
		if prev.Approve {
			approvals++
		}
	}
	if !d.Approve {
		return ApprovalDenied, nil
	}
	if approvals+1 >= a.Needed {
		return ApprovalRunning, nil
	}
	return ApprovalPending, nil
}

// ApprovalConflict says why a request in a.State allows no decision (or, for
// pending, no Finish), in words for the chat.
func ApprovalConflict(a Approval, now time.Time) *Error {
	switch a.State {
	case ApprovalPending:
		return Errorf(ECONFLICT, "request %s is still pending approval; nothing has run", a.ID)
	case ApprovalRunning:
		on := ""
		if a.Lease.Holder != "" {
			on = " on replica " + a.Lease.Holder
		}
		if d, ok := lastDecision(a, true); ok {
			return Errorf(ECONFLICT, "request %s is already running%s (approved by %s at %s)",
				a.ID, on, who(d), clock(d.At, now))
		}
		return Errorf(ECONFLICT, "request %s is already running%s", a.ID, on)
	case ApprovalDone, ApprovalFailed:
		if a.Outcome != nil && a.Outcome.Status == OutcomeAbandoned {
			return Errorf(ECONFLICT, "request %s was %s", a.ID, abandonedText(a, now))
		}
		if a.Outcome != nil {
			return Errorf(ECONFLICT, "request %s already ran: %s at %s", a.ID, a.State, clock(a.Outcome.Finished, now))
		}
		return Errorf(ECONFLICT, "request %s already ran: %s", a.ID, a.State)
	case ApprovalDenied:
		if d, ok := lastDecision(a, false); ok {
			msg := fmt.Sprintf("request %s was denied by %s at %s", a.ID, who(d), clock(d.At, now))
			if d.Reason != "" {
				msg += ": " + d.Reason
			}
			return Errorf(ECONFLICT, "%s", msg)
		}
		return Errorf(ECONFLICT, "request %s was denied", a.ID)
	case ApprovalExpired:
		return Errorf(ECONFLICT, "request %s expired at %s without enough approvals; nothing ran",
			a.ID, clock(a.Expires, now))
	default:
		return Errorf(ECONFLICT, "request %s is %s", a.ID, a.State)
	}
}

func lastDecision(a Approval, approve bool) (Decision, bool) {
	for i := len(a.Decisions) - 1; i >= 0; i-- {
		if a.Decisions[i].Approve == approve {
			return a.Decisions[i], true
		}
	}
	return Decision{}, false
}

func who(d Decision) string {
	if d.UserName != "" {
		return d.UserName
	}
	return d.Principal
}

func countApprovals(n int) string {
	if n == 1 {
		return "1 approval"
	}
	return fmt.Sprintf("%d approvals", n)
}

// clock formats t for a message read at now: the time of day when it is the
// same day, with the date otherwise.
func clock(t, now time.Time) string {
	t, now = t.UTC(), now.UTC()
	if t.YearDay() == now.YearDay() && t.Year() == now.Year() {
		return t.Format("15:04:05 UTC")
	}
	return t.Format("2006-01-02 15:04:05 UTC")
}

// OutcomeAbandoned is the Outcome.Status of a request whose replica stopped
// renewing its lease while running it: nobody knows how it ended.
const OutcomeAbandoned = "abandoned"

// CheckLease validates the claim a Decide records if its vote claims.
func CheckLease(l Lease) error {
	switch {
	case l.Holder == "":
		return Errorf(EINVALID, "a claim needs the replica that holds it")
	case len(l.Holder) > 200:
		return Errorf(EINVALID, "a replica name is at most 200 bytes")
	case l.Until.IsZero():
		return Errorf(EINVALID, "a claim needs the time its lease expires")
	}
	return nil
}

// RenewApproval works out the lease after l's holder renews its claim on
// a, as read under the lock at now: extended to l.Until, never shortened.
// Only the holder renews, and only while the request is running; a lease
// that lapsed but was not abandoned yet is still the holder's, since the
// holder is evidently alive.
func RenewApproval(a Approval, l Lease, now time.Time) (Lease, *Error) {
	if a.State != ApprovalRunning {
		return a.Lease, ApprovalConflict(a, now)
	}
	if a.Lease.Holder != l.Holder {
		return a.Lease, Errorf(ECONFLICT, "request %s is running on replica %s, not %s: only the holder renews its lease",
			a.ID, a.Lease.Holder, l.Holder)
	}
	if a.Lease.Until.After(l.Until) {
		l.Until = a.Lease.Until
	}
	return l, nil
}

// LeaseLapsed reports whether a is running on a lease that expired before
// now (at the instant of expiry the lease still holds). Times compare at
// the microsecond, the precision the store keeps.
func LeaseLapsed(a Approval, now time.Time) bool {
	return a.State == ApprovalRunning && !a.Lease.Until.IsZero() &&
		now.Truncate(time.Microsecond).After(a.Lease.Until)
}

// AbandonedOutcome is how a request whose lease lapsed ends: failed, with
// a title that says which replica stopped, when its lease expired, and
// that the action may have partly run. It is never run again: only a
// person who checked the host should ask for it anew.
func AbandonedOutcome(a Approval, now time.Time) Outcome {
	return Outcome{
		State:    ApprovalFailed,
		Status:   OutcomeAbandoned,
		Title:    abandonedText(a, time.Time{}),
		Finished: now.Truncate(time.Microsecond).UTC(),
	}
}

// abandonedText explains an abandoned request; with a zero now the time
// has its date, as stored text read days later should.
func abandonedText(a Approval, now time.Time) string {
	holder := a.Lease.Holder
	if holder == "" {
		holder = "(unknown)"
	}
	at := a.Lease.Until.UTC().Format("2006-01-02 15:04:05 UTC")
	if !now.IsZero() {
		at = clock(a.Lease.Until, now)
	}
	return fmt.Sprintf("abandoned: replica %s stopped while running it (lease expired at %s); the action may have partly run — check the host",
		holder, at)
}

// CheckNewApproval validates a request before it is stored.
func CheckNewApproval(a Approval) error {
	switch {
	case a.ID == "":
		return Errorf(EINVALID, "an approval request needs an ID")
	case a.State != "" && a.State != ApprovalPending:
		return Errorf(EINVALID, "a new approval request must be pending, not %s", a.State)
	case a.Needed < 1:
		return Errorf(EINVALID, "an approval request needs at least one approval")
	case a.Outcome != nil:
		return Errorf(EINVALID, "a new approval request has no outcome")
	case a.Lease.Holder != "" || !a.Lease.Until.IsZero():
		return Errorf(EINVALID, "a new approval request has no lease: it is claimed when approved")
	}
	return nil
}

// CheckDecision validates a decision and fills in its time.
func CheckDecision(d Decision, now time.Time) (Decision, error) {
	if d.Principal == "" {
		return d, Errorf(EINVALID, "a decision needs the principal who made it")
	}
	if d.At.IsZero() {
		d.At = now
	}
	return d, nil
}

// CheckOutcome validates an outcome for Finish.
func CheckOutcome(o Outcome) error {
	if o.State != ApprovalDone && o.State != ApprovalFailed {
		return Errorf(EINVALID, "an outcome must be done or failed, not %q", o.State)
	}
	return nil
}

// ApprovalNotFound is the error for an unknown request ID.
func ApprovalNotFound(id string) *Error {
	return Errorf(ENOTFOUND, "no approval request %s", id)
}
