package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
)

const approvalColumns = `id, state, command, line, args, hosts, digest, impact,
	requester_platform, requester_user, requester_name, requester_channel, request_id,
	needed, created, expires, outcome_status, outcome_title, output_sha256, finished, duration_ns,
	lease_holder, lease_expires`

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// CreateApproval stores a new pending request. Its State, if set, must be
// pending; an ID already taken is an *Error ECONFLICT; decisions in a are
// not stored.
func (s *Store) CreateApproval(ctx context.Context, a bot.Approval) error {
	if err := bot.CheckNewApproval(a); err != nil {
		return err
	}
	args, err := encodeList(a.Args)
	if err != nil {
		return fmt.Errorf("sqlite create approval %s: %w", a.ID, err)
	}
	hosts, err := encodeList(a.Hosts)
	if err != nil {
		return fmt.Errorf("sqlite create approval %s: %w", a.ID, err)
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO approvals (`+approvalColumns+`)
		VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
		ON CONFLICT (id) DO NOTHING`,
		a.ID, a.Command, a.Line, args, hosts, a.Digest, a.Impact,
		a.Platform, a.User, a.UserName, a.Channel, a.RequestID,
		a.Needed, micros(a.Created), micros(a.Expires))
	if err != nil {
		return fmt.Errorf("sqlite create approval %s: %w", a.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite create approval %s: %w", a.ID, err)
	} else if n == 0 {
		return bot.Errorf(bot.ECONFLICT, "approval request %s exists already", a.ID)
	}
	return nil
}

// Approval returns one request.
func (s *Store) Approval(ctx context.Context, id string) (bot.Approval, error) {
	var a bot.Approval
	err := s.inReadTx(ctx, func(tx *sql.Tx) error {
		var err error
		a, err = getApproval(ctx, tx, id)
		return err
	})
	if err != nil {
		return bot.Approval{}, wrap("approval "+id, err)
	}
	return a, nil
}

// ListApprovals lists the requests pending or running, and the others
// created at or after since, oldest first.
func (s *Store) ListApprovals(ctx context.Context, since time.Time) ([]bot.Approval, error) {
	var list []bot.Approval
	err := s.inReadTx(ctx, func(tx *sql.Tx) error {
		var err error
		list, err = listApprovals(ctx, tx, `SELECT `+approvalColumns+` FROM approvals
			WHERE state IN ('pending', 'running') OR created >= ? ORDER BY created, id`, micros(since))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite list approvals: %w", err)
	}
	return list, nil
}

// PendingApprovals lists the requests pending and not expired at now (at
// the instant of expiry a request is still live), oldest first.
func (s *Store) PendingApprovals(ctx context.Context, now time.Time) ([]bot.Approval, error) {
	var list []bot.Approval
	err := s.inReadTx(ctx, func(tx *sql.Tx) error {
		var err error
		list, err = listApprovals(ctx, tx, `SELECT `+approvalColumns+` FROM approvals
			WHERE state = 'pending' AND expires >= ? ORDER BY created, id`, micros(now))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite pending approvals: %w", err)
	}
	return list, nil
}

// Decide records one decision. The transaction starts with BEGIN
// IMMEDIATE, so it holds the database's write lock from its first read:
// every other Decide, in this process or another, waits at BEGIN, and
// reads the state this one committed. The request is read, the decision
// judged (decide), the vote inserted and the state moved pending → running
// with "UPDATE ... WHERE id = ? AND state = 'pending'" — under the lock
// that update changes one row for exactly one caller, which alone gets
// claimed=true (with lease recorded as its claim), and only once the
// commit has succeeded.
//
// On ECONFLICT the request is returned as it stands.
func (s *Store) Decide(ctx context.Context, id string, d bot.Decision, now time.Time, lease bot.Lease) (bot.Approval, bool, error) {
	d, err := bot.CheckDecision(d, now)
	if err != nil {
		return bot.Approval{}, false, err
	}
	if err := bot.CheckLease(lease); err != nil {
		return bot.Approval{}, false, err
	}
	var (
		a        bot.Approval
		next     bot.ApprovalState
		conflict *bot.Error
	)
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if a, err = getApproval(ctx, tx, id); err != nil {
			return err
		}
		next, conflict = bot.DecideApproval(a, d, now)
		if conflict != nil && next == a.State {
			return conflict // nothing to store
		}
		if conflict == nil {
			if _, err := tx.ExecContext(ctx, `INSERT INTO approval_decisions
				(approval_id, principal, user_name, approve, reason, at) VALUES (?, ?, ?, ?, ?, ?)`,
				id, d.Principal, d.UserName, d.Approve, d.Reason, micros(d.At)); err != nil {
				return err
			}
			a.Decisions = append(a.Decisions, bot.Decision{
				Principal: d.Principal, UserName: d.UserName, Approve: d.Approve,
				Reason: d.Reason, At: fromMicros(micros(d.At)),
			})
		}
		if next != a.State {
			var holder, until any // NULL unless this vote claims it
			if next == bot.ApprovalRunning {
				holder, until = lease.Holder, micros(lease.Until)
			}
			res, err := tx.ExecContext(ctx, `UPDATE approvals SET state = ?, lease_holder = ?, lease_expires = ?
				WHERE id = ? AND state = 'pending'`, next, holder, until, id)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n != 1 {
				return fmt.Errorf("request %s left pending under the write lock", id)
			}
			a.State = next
			if next == bot.ApprovalRunning {
				a.Lease = bot.Lease{Holder: lease.Holder, Until: fromMicros(micros(lease.Until))}
			}
		}
		return nil // commit: the vote, or the move to expired with its conflict
	})
	switch {
	case conflict != nil && (err == nil || errors.Is(err, conflict)):
		return a, false, conflict
	case err != nil:
		return bot.Approval{}, false, wrap("decide "+id, err)
	}
	return a, next == bot.ApprovalRunning, nil
}

// Finish records the outcome of a running request.
func (s *Store) Finish(ctx context.Context, id string, o bot.Outcome) error {
	if err := bot.CheckOutcome(o); err != nil {
		return err
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		a, err := getApproval(ctx, tx, id)
		if err != nil {
			return err
		}
		if a.State != bot.ApprovalRunning {
			return bot.ApprovalConflict(a, o.Finished)
		}
		_, err = tx.ExecContext(ctx, `UPDATE approvals
			SET state = ?, outcome_status = ?, outcome_title = ?, output_sha256 = ?, finished = ?, duration_ns = ?
			WHERE id = ? AND state = 'running'`,
			o.State, o.Status, o.Title, o.OutputSHA256, micros(o.Finished), int64(o.Duration), id)
		return err
	})
	if err != nil {
		return wrap("finish "+id, err)
	}
	return nil
}

// RenewLease extends the holder's lease on a running request, under the
// write lock like Decide.
func (s *Store) RenewLease(ctx context.Context, id string, l bot.Lease, now time.Time) error {
	if err := bot.CheckLease(l); err != nil {
		return err
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		a, err := getApproval(ctx, tx, id)
		if err != nil {
			return err
		}
		next, conflict := bot.RenewApproval(a, l, now)
		if conflict != nil {
			return conflict
		}
		_, err = tx.ExecContext(ctx, `UPDATE approvals SET lease_expires = ?
			WHERE id = ? AND state = 'running' AND lease_holder = ?`, micros(next.Until), id, l.Holder)
		return err
	})
	if err != nil {
		return wrap("renew lease "+id, err)
	}
	return nil
}

// AbandonLapsed moves every running request whose lease expired before now
// to failed (abandoned) and returns them, oldest first. It holds the write
// lock throughout, so a renewal either came first (and the lease has not
// lapsed) or finds the request abandoned.
func (s *Store) AbandonLapsed(ctx context.Context, now time.Time) ([]bot.Approval, error) {
	var list []bot.Approval
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		list, err = listApprovals(ctx, tx, `SELECT `+approvalColumns+` FROM approvals
			WHERE state = 'running' AND lease_expires < ? ORDER BY created, id`, micros(now))
		if err != nil {
			return err
		}
		moved := list[:0]
		for _, a := range list {
			if !bot.LeaseLapsed(a, now) { // the query's rule, in the words of the state machine
				continue
			}
			o := bot.AbandonedOutcome(a, now)
			if _, err := tx.ExecContext(ctx, `UPDATE approvals
				SET state = ?, outcome_status = ?, outcome_title = ?, output_sha256 = ?, finished = ?, duration_ns = ?
				WHERE id = ? AND state = 'running'`,
				o.State, o.Status, o.Title, o.OutputSHA256, micros(o.Finished), int64(o.Duration), a.ID); err != nil {
				return err
			}
			a.State, a.Outcome = o.State, &o // under the write lock, so the row was running
			moved = append(moved, a)
		}
		list = moved
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite abandon lapsed: %w", err)
	}
	return list, nil
}

// ExpirePending moves every pending request whose Expires is before now to
// expired and returns them, oldest first.
func (s *Store) ExpirePending(ctx context.Context, now time.Time) ([]bot.Approval, error) {
	var list []bot.Approval
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		list, err = listApprovals(ctx, tx, `UPDATE approvals SET state = 'expired'
			WHERE state = 'pending' AND expires < ? RETURNING `+approvalColumns, micros(now))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite expire pending: %w", err)
	}
	sortOldestFirst(list)
	return list, nil
}

// wrap passes a *bot.Error through and adds context to anything else.
func wrap(op string, err error) error {
	var be *bot.Error
	if errors.As(err, &be) {
		return be
	}
	return fmt.Errorf("sqlite %s: %w", op, err)
}

func getApproval(ctx context.Context, q querier, id string) (bot.Approval, error) {
	a, err := scanApproval(q.QueryRowContext(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return bot.Approval{}, bot.ApprovalNotFound(id)
	}
	if err != nil {
		return bot.Approval{}, err
	}
	if a.Decisions, err = getDecisions(ctx, q, id); err != nil {
		return bot.Approval{}, err
	}
	return a, nil
}

// listApprovals runs a query that returns approval rows, then reads each
// one's decisions.
func listApprovals(ctx context.Context, q querier, query string, args ...any) ([]bot.Approval, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	var list []bot.Approval
	for rows.Next() {
		a, err := scanApproval(rows)
		if err != nil {
			_ = rows.Close()
			return nil, err
		}
		list = append(list, a)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range list {
		if list[i].Decisions, err = getDecisions(ctx, q, list[i].ID); err != nil {
			return nil, err
		}
	}
	return list, nil
}

func getDecisions(ctx context.Context, q querier, id string) ([]bot.Decision, error) {
	rows, err := q.QueryContext(ctx, `SELECT principal, user_name, approve, reason, at
		FROM approval_decisions WHERE approval_id = ? ORDER BY seq`, id)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var ds []bot.Decision
	for rows.Next() {
		var (
			d  bot.Decision
			at int64
		)
		if err := rows.Scan(&d.Principal, &d.UserName, &d.Approve, &d.Reason, &at); err != nil {
			return nil, err
		}
		d.At = fromMicros(at)
		ds = append(ds, d)
	}
	return ds, rows.Err()
}

func scanApproval(row interface{ Scan(dest ...any) error }) (bot.Approval, error) {
	var (
		a                      bot.Approval
		args, hosts            []byte
		created, expires       int64
		status, title, sum     sql.NullString
		finished, durationNano sql.NullInt64
		holder                 sql.NullString
		leaseExpires           sql.NullInt64
	)
	err := row.Scan(&a.ID, &a.State, &a.Command, &a.Line, &args, &hosts, &a.Digest, &a.Impact,
		&a.Platform, &a.User, &a.UserName, &a.Channel, &a.RequestID,
		&a.Needed, &created, &expires, &status, &title, &sum, &finished, &durationNano,
		&holder, &leaseExpires)
	if err != nil {
		return bot.Approval{}, err
	}
	if a.Args, err = decodeList(args); err != nil {
		return bot.Approval{}, fmt.Errorf("approval %s args: %w", a.ID, err)
	}
	if a.Hosts, err = decodeList(hosts); err != nil {
		return bot.Approval{}, fmt.Errorf("approval %s hosts: %w", a.ID, err)
	}
	a.Created, a.Expires = fromMicros(created), fromMicros(expires)
	a.Lease.Holder = holder.String
	if leaseExpires.Valid {
		a.Lease.Until = fromMicros(leaseExpires.Int64)
	}
	if (a.State == bot.ApprovalDone || a.State == bot.ApprovalFailed) && finished.Valid {
		a.Outcome = &bot.Outcome{
			State:        a.State,
			Status:       status.String,
			Title:        title.String,
			OutputSHA256: sum.String,
			Finished:     fromMicros(finished.Int64),
			Duration:     time.Duration(durationNano.Int64),
		}
	}
	return a, nil
}

func sortOldestFirst(list []bot.Approval) {
	slices.SortStableFunc(list, func(x, y bot.Approval) int {
		if c := x.Created.Compare(y.Created); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
}
