package bot

import (
	"context"
	"fmt"
	"time"
)

// Store keeps what must outlive a process and be shared by replicas:
// approval requests and the audit log. adapters/sqlite and adapters/postgres
// implement it; every state change of an approval is a compare-and-set in
// the database, never a mutex in memory, so any number of processes may
// race on one request and exactly one of them runs it.
type Store interface {
	// CreateApproval stores a new pending request.
	CreateApproval(ctx context.Context, a Approval) error
	// Approval returns one request; an unknown ID is an *Error ENOTFOUND.
	Approval(ctx context.Context, id string) (Approval, error)
	// ListApprovals lists every request pending or running, and every other
	// one created at or after since, oldest first: what /opsbot approvals
	// shows.
	ListApprovals(ctx context.Context, since time.Time) ([]Approval, error)
	// Decide records one person's decision on a request, atomically.
	//
	// Approve: the vote is added (one vote per principal); the vote that
	// brings the approvals to Needed also moves the request from pending to
	// running, records lease as the claim (who runs it, and until when
	// unless renewed), and only that call returns claimed=true: its caller,
	// and no one else, executes the action. Deny: pending moves to denied.
	//
	// Errors are *Error: EINVALID for a lease without holder or expiry;
	// ENOTFOUND for an unknown ID; ECONFLICT when the request is not
	// pending (the message names its state, e.g. "already ran"), when this
	// principal has voted already, or when it expired at now (Decide then
	// moves it to expired).
	Decide(ctx context.Context, id string, d Decision, now time.Time, lease Lease) (a Approval, claimed bool, err error)
	// RenewLease extends the claim on a running request to lease.Until
	// (never shortens it). Only the holder may renew, and only while the
	// request is running: a lease that lapsed but was not yet abandoned
	// is still the holder's to renew. Otherwise ECONFLICT: the request was
	// abandoned (see AbandonLapsed) or is held by another replica.
	RenewLease(ctx context.Context, id string, lease Lease, now time.Time) error
	// Finish records the outcome of a claimed request: running moves to
	// done or failed. It is an error (ECONFLICT) if the request is not
	// running, e.g. when it was abandoned because its lease lapsed.
	Finish(ctx context.Context, id string, o Outcome) error
	// ExpirePending moves every pending request whose Expires is before now
	// to expired and returns them, so their prompts can say so.
	ExpirePending(ctx context.Context, now time.Time) ([]Approval, error)
	// AbandonLapsed moves every running request whose lease expired before
	// now to failed, with the outcome AbandonedOutcome describes, and
	// returns them: the replica that claimed it stopped renewing (it died,
	// or lost the database), so nobody will record how it ended. Each is
	// moved once, whichever replicas call this at the same time; none is
	// ever run again.
	AbandonLapsed(ctx context.Context, now time.Time) ([]Approval, error)

	// AppendAudit adds a record and returns its sequence number (increasing,
	// gap-free per store is not required). There is no update and no delete.
	AppendAudit(ctx context.Context, r AuditRecord) (int64, error)
	// Audit returns records in sequence order: those at or after q.Since,
	// and if q.Last > 0 only the last q.Last of them.
	Audit(ctx context.Context, q AuditQuery) ([]AuditRecord, error)

	// BeginAction durably records that an action which changes something
	// is starting, before it acts: started (kind AuditStarted) is appended
	// to the audit log and the action is marked in flight under lease (the
	// replica running it, and until when unless renewed), in one
	// transaction. It returns the record's sequence number. When it fails
	// the action must not run.
	BeginAction(ctx context.Context, started AuditRecord, lease Lease) (int64, error)
	// RenewAction extends the lease of the in-flight action of requestID
	// to lease.Until (never shortens it). Only the holder renews; an action
	// already declared interrupted (see InterruptLapsed) or held by another
	// replica is ECONFLICT.
	RenewAction(ctx context.Context, requestID string, lease Lease) error
	// EndAction appends the outcome record of the in-flight action of
	// outcome.RequestID and ends its flight, in one transaction. The
	// outcome is appended even when the action was declared interrupted
	// meanwhile: the log then holds both.
	EndAction(ctx context.Context, outcome AuditRecord) (int64, error)
	// InterruptLapsed ends the flight of every action whose lease expired
	// before now (its replica died, or lost the database, between start
	// and outcome) and appends for each the record InterruptedRecord makes,
	// in one transaction; it returns those records. Each is recorded once,
	// whichever replicas call this at the same time. platforms, when not
	// empty, limits it to actions asked from those platforms (a process
	// takes only what it can announce).
	InterruptLapsed(ctx context.Context, now time.Time, platforms []string) ([]AuditRecord, error)

	Deliveries
	CommandTokens
	AuditPruner

	// Ping checks the database is reachable (readiness).
	Ping(ctx context.Context) error
	Close() error
}

// Deliveries recognises a chat platform's retries and replays across
// replicas: Slack resends a slash command or a click that was not
// answered in 3 s, possibly to another replica.
type Deliveries interface {
	// FirstDelivery records keys (a trigger ID, a digest of the body) until
	// until, forgetting those recorded before now that have lapsed, and
	// reports whether none of them was recorded already: true means handle
	// it, false means it is a retry or a replay. Of replicas racing on one
	// key, exactly one is told true.
	FirstDelivery(ctx context.Context, keys []string, now, until time.Time) (bool, error)
}

// ECONFLICT is the code for a request in a state that does not allow what
// was asked (already ran, already decided, expired). Exit 1.
const ECONFLICT = "conflict"

// ApprovalState is where a request is in its life.
type ApprovalState string

// Approval states. pending → running → done|failed; pending → denied;
// pending → expired; running → failed also when the claim's lease lapses
// (the outcome then has Status OutcomeAbandoned).
const (
	ApprovalPending ApprovalState = "pending"
	ApprovalRunning ApprovalState = "running"
	ApprovalDone    ApprovalState = "done"
	ApprovalFailed  ApprovalState = "failed"
	ApprovalDenied  ApprovalState = "denied"
	ApprovalExpired ApprovalState = "expired"
)

// Approval is a request for an action that needs a second person, bound to
// the exact action: the command, its validated arguments and the hosts it
// resolved to. Digest is the SHA-256 of that binding; approving runs that
// and nothing else.
type Approval struct {
	ID        string
	State     ApprovalState
	Command   string   // permission key: "scan", "apache restart"
	Line      string   // the canonical command line that will run
	Args      []string // the words after the command name
	Hosts     []string // resolved hosts or addresses the action is bound to
	Digest    string   // hex SHA-256 of Command, Args and Hosts
	Impact    string   // what approving will do, for the prompt
	Platform  string   // the requester's platform, user and channel
	User      string
	UserName  string
	Channel   string
	RequestID string // the Request that asked
	Needed    int    // approvals needed
	Created   time.Time
	Expires   time.Time
	Decisions []Decision // in the order they were made
	Lease     Lease      // set when claimed (running), kept after
	Outcome   *Outcome   // set by Finish, or by AbandonLapsed
}

// Lease is a replica's claim on a running request: who runs it, and until
// when the claim holds unless the holder renews it. A replica that dies
// mid-action stops renewing; once Until has passed, any replica moves the
// request to failed (abandoned) instead of leaving it running forever.
type Lease struct {
	Holder string    // the replica (Router.Replica) running the action
	Until  time.Time // the claim lapses after this
}

// Decision is one person's approve or deny.
type Decision struct {
	Principal string // "platform:user"
	UserName  string
	Approve   bool
	Reason    string
	At        time.Time
}

// Outcome is how a claimed request ended.
type Outcome struct {
	State        ApprovalState // done or failed
	Status       string        // the reply's Status.String(), or OutcomeAbandoned
	Title        string        // the reply's verdict line
	OutputSHA256 string
	Finished     time.Time
	Duration     time.Duration
}

// AuditRecord is one line of the append-only audit log.
type AuditRecord struct {
	Seq          int64
	Time         time.Time
	Kind         string // AuditRequest, AuditDenied, ...
	RequestID    string
	Platform     string
	User         string
	UserName     string
	Channel      string
	Line         string
	Command      string
	Hosts        []string
	ApprovalID   string
	Result       string // a reply status ("ok", "denied", "pending", ...) or a decision
	Message      string // the verdict or the reason, user-safe text
	Duration     time.Duration
	OutputSHA256 string
	// Person is who the identity belongs to (policy people:), "" when no
	// person claims it.
	Person string
	// SelfAsserted marks an identity nobody verified: the terminal's
	// `opsbot run --as NAME` says who it is, a chat platform proves it.
	SelfAsserted bool
}

// Audit record kinds.
const (
	AuditRequest   = "request"   // a command ran (or was refused as bad input)
	AuditDenied    = "denied"    // permission, policy or rate limit said no
	AuditRequested = "requested" // an approval request was created
	AuditApprove   = "approve"   // a person approved
	AuditDeny      = "deny"      // a person denied
	AuditExpired   = "expired"   // a request expired unapproved
	AuditExecution = "execution" // an approved action ran
	AuditRejected  = "rejected"  // a platform request failed verification, or the config did not load
	AuditAbandoned = "abandoned" // a running action's replica stopped renewing its lease: outcome unknown
	// AuditStarted is written, durably, before an action that changes
	// something acts; its outcome record (request or execution) follows.
	AuditStarted = "started"
	// AuditInterrupted is a started action without an outcome whose
	// replica stopped (killed, out of memory): outcome unknown.
	AuditInterrupted = "interrupted"
)

// InterruptedRecord is the audit record of an action that started and
// never recorded its outcome: the started record's who, where and what,
// result "unknown", and a message that says which replica stopped and
// that the action may have partly run.
func InterruptedRecord(started AuditRecord, l Lease, now time.Time) AuditRecord {
	r := started
	r.Seq = 0
	r.Time = now.UTC().Truncate(time.Microsecond)
	r.Kind = AuditInterrupted
	r.Result = "unknown"
	r.Duration = 0
	r.OutputSHA256 = ""
	holder := l.Holder
	if holder == "" {
		holder = "(unknown)"
	}
	r.Message = fmt.Sprintf("interrupted: replica %s stopped after it started this and before it recorded how it ended (lease expired at %s); outcome unknown — the action may have partly run: check the host",
		holder, l.Until.UTC().Format("2006-01-02 15:04:05 UTC"))
	return r
}

// CheckStarted validates what BeginAction records.
func CheckStarted(r AuditRecord, l Lease) error {
	switch {
	case r.Kind != AuditStarted:
		return Errorf(EINVALID, "an action begins with a %q record, not %q", AuditStarted, r.Kind)
	case r.RequestID == "":
		return Errorf(EINVALID, "a started action needs its request ID")
	}
	return CheckLease(l)
}

// AuditQuery selects audit records.
type AuditQuery struct {
	Since time.Time
	Last  int
}

// Auditor appends audit records; every Store is one. Adapters use it for
// what never reaches the Router (a request whose signature is wrong).
type Auditor interface {
	AppendAudit(ctx context.Context, r AuditRecord) (int64, error)
}
