package sqlstore

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

// CreateApproval stores a new pending request. Its State, if set, must be
// pending; an ID already taken is an *Error ECONFLICT; decisions in a are
// not stored.
func (s *Store) CreateApproval(ctx context.Context, a bot.Approval) error {
	if err := bot.CheckNewApproval(a); err != nil {
		return err
	}
	args, err := encodeList(a.Args)
	if err != nil {
		return s.fail("create approval "+a.ID, err)
	}
	hosts, err := encodeList(a.Hosts)
	if err != nil {
		return s.fail("create approval "+a.ID, err)
	}
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO approvals (`+approvalColumns+`)
		VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
		ON CONFLICT (id) DO NOTHING`),
		a.ID, a.Command, a.Line, args, hosts, a.Digest, a.Impact,
		a.Platform, a.User, a.UserName, a.Channel, a.RequestID,
		a.Needed, s.t(a.Created), s.t(a.Expires))
	if err != nil {
		return s.fail("create approval "+a.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return s.fail("create approval "+a.ID, err)
	} else if n == 0 {
		return bot.Errorf(bot.ECONFLICT, "approval request %s exists already", a.ID)
	}
	return nil
}

// Approval returns one request.
func (s *Store) Approval(ctx context.Context, id string) (bot.Approval, error) {
	var a bot.Approval
	err := s.inReadTx(ctx, func(tx Tx) error {
		var err error
		a, err = getApproval(ctx, tx, id, false)
		return err
	})
	if err != nil {
		return bot.Approval{}, s.wrap("approval "+id, err)
	}
	return a, nil
}

// ListApprovals lists the requests pending or running, and the others
// created at or after since, oldest first.
func (s *Store) ListApprovals(ctx context.Context, since time.Time) ([]bot.Approval, error) {
	var list []bot.Approval
	err := s.inReadTx(ctx, func(tx Tx) error {
		var err error
		list, err = listApprovals(ctx, tx, `SELECT `+approvalColumns+` FROM approvals
			WHERE state IN ('pending', 'running') OR created >= ? ORDER BY created, id`, s.t(since))
		return err
	})
	if err != nil {
		return nil, s.fail("list approvals", err)
	}
	return list, nil
}

// Decide records one decision. Its transaction holds the request
// exclusively from its first read (see the package comment): every other
// Decide or Finish on it, from any handle or process, waits, then reads
// the state this one committed. The request is read, the decision judged
// (bot.DecideApproval), the vote inserted and the state moved pending →
// running with "UPDATE ... WHERE id = ? AND state = 'pending'": under the
// lock that update changes one row for exactly one caller, which alone
// gets claimed=true (with lease recorded as its claim), and only once the
// commit has succeeded. UNIQUE (approval_id, principal) backs up the
// one-vote rule.
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
	err = InTx(ctx, s, func(tx Tx) error {
		var err error
		if a, err = getApproval(ctx, tx, id, true); err != nil {
			return err
		}
		next, conflict = bot.DecideApproval(a, d, now)
		if conflict != nil && next == a.State {
			return conflict // nothing to store
		}
		if conflict == nil {
			if _, err := tx.exec(ctx, `INSERT INTO approval_decisions
				(approval_id, principal, user_name, approve, reason, at) VALUES (?, ?, ?, ?, ?, ?)`,
				id, d.Principal, d.UserName, d.Approve, d.Reason, s.t(d.At)); err != nil {
				return err
			}
			a.Decisions = append(a.Decisions, bot.Decision{
				Principal: d.Principal, UserName: d.UserName, Approve: d.Approve,
				Reason: d.Reason, At: norm(d.At),
			})
		}
		if next != a.State {
			var holder, until any // NULL unless this vote claims it
			if next == bot.ApprovalRunning {
				holder, until = lease.Holder, s.t(lease.Until)
			}
			res, err := tx.exec(ctx, `UPDATE approvals SET state = ?, lease_holder = ?, lease_expires = ?
				WHERE id = ? AND state = 'pending'`, next, holder, until, id)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n != 1 {
				return fmt.Errorf("request %s left pending under the lock", id)
			}
			a.State = next
			if next == bot.ApprovalRunning {
				a.Lease = bot.Lease{Holder: lease.Holder, Until: norm(lease.Until)}
			}
		}
		return nil // commit: the vote, or the move to expired with its conflict
	})
	switch {
	case conflict != nil && (err == nil || errors.Is(err, conflict)):
		return a, false, conflict
	case err != nil:
		return bot.Approval{}, false, s.wrap("decide "+id, err)
	}
	return a, next == bot.ApprovalRunning, nil
}

// Finish records the outcome of a running request, under the same lock
// as Decide.
func (s *Store) Finish(ctx context.Context, id string, o bot.Outcome) error {
	if err := bot.CheckOutcome(o); err != nil {
		return err
	}
	err := InTx(ctx, s, func(tx Tx) error {
		a, err := getApproval(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if a.State != bot.ApprovalRunning {
			return bot.ApprovalConflict(a, o.Finished)
		}
		_, err = tx.exec(ctx, `UPDATE approvals
			SET state = ?, outcome_status = ?, outcome_title = ?, output_sha256 = ?, finished = ?, duration_ns = ?
			WHERE id = ? AND state = 'running'`,
			o.State, o.Status, o.Title, o.OutputSHA256, s.t(o.Finished), int64(o.Duration), id)
		return err
	})
	if err != nil {
		return s.wrap("finish "+id, err)
	}
	return nil
}

// RenewLease extends the holder's lease on a running request, under the
// same lock as Decide and AbandonLapsed.
func (s *Store) RenewLease(ctx context.Context, id string, l bot.Lease, now time.Time) error {
	if err := bot.CheckLease(l); err != nil {
		return err
	}
	err := InTx(ctx, s, func(tx Tx) error {
		a, err := getApproval(ctx, tx, id, true)
		if err != nil {
			return err
		}
		next, conflict := bot.RenewApproval(a, l, now)
		if conflict != nil {
			return conflict
		}
		_, err = tx.exec(ctx, `UPDATE approvals SET lease_expires = ?
			WHERE id = ? AND state = 'running' AND lease_holder = ?`, s.t(next.Until), id, l.Holder)
		return err
	})
	if err != nil {
		return s.wrap("renew lease "+id, err)
	}
	return nil
}

// AbandonLapsed moves every running request whose lease expired before now
// to failed (abandoned) and returns them, oldest first. It holds what it
// selects (the write lock, or the rows' locks): a handle sweeping at the
// same time waits, then re-reads them as no longer running and skips
// them; a renewal that came first moved the lease past now, so the row no
// longer matches.
func (s *Store) AbandonLapsed(ctx context.Context, now time.Time) ([]bot.Approval, error) {
	var list []bot.Approval
	err := InTx(ctx, s, func(tx Tx) error {
		var err error
		list, err = listApprovals(ctx, tx, `SELECT `+approvalColumns+` FROM approvals
			WHERE state = 'running' AND lease_expires < ? ORDER BY created, id`+s.d.Lock, s.t(now))
		if err != nil {
			return err
		}
		moved := list[:0]
		for _, a := range list {
			if !bot.LeaseLapsed(a, now) { // the query's rule, in the words of the state machine
				continue
			}
			o := bot.AbandonedOutcome(a, now)
			res, err := tx.exec(ctx, `UPDATE approvals
				SET state = ?, outcome_status = ?, outcome_title = ?, output_sha256 = ?, finished = ?, duration_ns = ?
				WHERE id = ? AND state = 'running'`,
				o.State, o.Status, o.Title, o.OutputSHA256, s.t(o.Finished), int64(o.Duration), a.ID)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 1 { // else finished or abandoned meanwhile
				a.State, a.Outcome = o.State, &o
				moved = append(moved, a)
			}
		}
		list = moved
		return nil
	})
	if err != nil {
		return nil, s.fail("abandon lapsed", err)
	}
	return list, nil
}

// ExpirePending moves every pending request whose Expires is before now to
// expired and returns them, oldest first. The UPDATE holds each row it
// moves, so a concurrent Decide either sees it expired or claimed it first.
func (s *Store) ExpirePending(ctx context.Context, now time.Time) ([]bot.Approval, error) {
	var list []bot.Approval
	err := InTx(ctx, s, func(tx Tx) error {
		var err error
		list, err = listApprovals(ctx, tx, `UPDATE approvals SET state = 'expired'
			WHERE state = 'pending' AND expires < ? RETURNING `+approvalColumns, s.t(now))
		return err
	})
	if err != nil {
		return nil, s.fail("expire pending", err)
	}
	slices.SortStableFunc(list, func(x, y bot.Approval) int {
		if c := x.Created.Compare(y.Created); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return list, nil
}

// getApproval reads one request with its decisions; lock holds its row
// until the transaction ends (the dialect's Lock).
func getApproval(ctx context.Context, tx Tx, id string, lock bool) (bot.Approval, error) {
	query := `SELECT ` + approvalColumns + ` FROM approvals WHERE id = ?`
	if lock {
		query += tx.s.d.Lock
	}
	a, err := scanApproval(tx.queryRow(ctx, query, id))
	if errors.Is(err, sql.ErrNoRows) {
		return bot.Approval{}, bot.ApprovalNotFound(id)
	}
	if err != nil {
		return bot.Approval{}, err
	}
	if a.Decisions, err = getDecisions(ctx, tx, id); err != nil {
		return bot.Approval{}, err
	}
	return a, nil
}

// listApprovals runs a query that returns approval rows, then reads each
// one's decisions.
func listApprovals(ctx context.Context, tx Tx, query string, args ...any) ([]bot.Approval, error) {
	rows, err := tx.query(ctx, query, args...)
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
		if list[i].Decisions, err = getDecisions(ctx, tx, list[i].ID); err != nil {
			return nil, err
		}
	}
	return list, nil
}

func getDecisions(ctx context.Context, tx Tx, id string) ([]bot.Decision, error) {
	rows, err := tx.query(ctx, `SELECT principal, user_name, approve, reason, at
		FROM approval_decisions WHERE approval_id = ? ORDER BY seq`, id)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var ds []bot.Decision
	for rows.Next() {
		var d bot.Decision
		if err := rows.Scan(&d.Principal, &d.UserName, &d.Approve, &d.Reason, timeInto(&d.At)); err != nil {
			return nil, err
		}
		ds = append(ds, d)
	}
	return ds, rows.Err()
}

func scanApproval(row interface{ Scan(dest ...any) error }) (bot.Approval, error) {
	var (
		a                      bot.Approval
		args, hosts            []byte
		status, title, sum     sql.NullString
		finished               time.Time
		durationNano           sql.NullInt64
		holder                 sql.NullString
		leaseExpires           time.Time
		finishedAt, leaseUntil = timeInto(&finished), timeInto(&leaseExpires)
	)
	err := row.Scan(&a.ID, &a.State, &a.Command, &a.Line, &args, &hosts, &a.Digest, &a.Impact,
		&a.Platform, &a.User, &a.UserName, &a.Channel, &a.RequestID,
		&a.Needed, timeInto(&a.Created), timeInto(&a.Expires), &status, &title, &sum, finishedAt, &durationNano,
		&holder, leaseUntil)
	if err != nil {
		return bot.Approval{}, err
	}
	if a.Args, err = decodeList(args); err != nil {
		return bot.Approval{}, fmt.Errorf("approval %s args: %w", a.ID, err)
	}
	if a.Hosts, err = decodeList(hosts); err != nil {
		return bot.Approval{}, fmt.Errorf("approval %s hosts: %w", a.ID, err)
	}
	a.Lease.Holder = holder.String
	if leaseUntil.valid {
		a.Lease.Until = leaseExpires
	}
	if (a.State == bot.ApprovalDone || a.State == bot.ApprovalFailed) && finishedAt.valid {
		a.Outcome = &bot.Outcome{
			State:        a.State,
			Status:       status.String,
			Title:        title.String,
			OutputSHA256: sum.String,
			Finished:     finished,
			Duration:     time.Duration(durationNano.Int64),
		}
	}
	return a, nil
}
