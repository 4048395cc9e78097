package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/opsbot/opsbot/bot"
)

const approvalColumns = `id, state, command, line, args, hosts, digest, impact,
	requester_platform, requester_user, requester_name, requester_channel, request_id,
	needed, created, expires, outcome_status, outcome_title, output_sha256, finished, duration_ns,
	lease_holder, lease_expires`

// querier is what pgxpool.Pool and pgx.Tx share.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
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
		return fmt.Errorf("postgres create approval %s: %w", a.ID, err)
	}
	hosts, err := encodeList(a.Hosts)
	if err != nil {
		return fmt.Errorf("postgres create approval %s: %w", a.ID, err)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO approvals (`+approvalColumns+`)
		VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
		ON CONFLICT (id) DO NOTHING`,
		a.ID, a.Command, a.Line, args, hosts, a.Digest, a.Impact,
		a.Platform, a.User, a.UserName, a.Channel, a.RequestID,
		a.Needed, ts(a.Created), ts(a.Expires))
	if err != nil {
		return fmt.Errorf("postgres create approval %s: %w", a.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return bot.Errorf(bot.ECONFLICT, "approval request %s exists already", a.ID)
	}
	return nil
}

// readTx runs fn on one snapshot (REPEATABLE READ, read only).
func (s *Store) readTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

// Approval returns one request.
func (s *Store) Approval(ctx context.Context, id string) (bot.Approval, error) {
	var a bot.Approval
	err := s.readTx(ctx, func(tx pgx.Tx) error {
		var err error
		a, err = getApproval(ctx, tx, id, false)
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
	err := s.readTx(ctx, func(tx pgx.Tx) error {
		var err error
		list, err = listApprovals(ctx, tx, `SELECT `+approvalColumns+` FROM approvals
			WHERE state IN ('pending', 'running') OR created >= $1 ORDER BY created, id`, ts(since))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres list approvals: %w", err)
	}
	return list, nil
}

// PendingApprovals lists the requests pending and not expired at now (at
// the instant of expiry a request is still live), oldest first.
func (s *Store) PendingApprovals(ctx context.Context, now time.Time) ([]bot.Approval, error) {
	var list []bot.Approval
	err := s.readTx(ctx, func(tx pgx.Tx) error {
		var err error
		list, err = listApprovals(ctx, tx, `SELECT `+approvalColumns+` FROM approvals
			WHERE state = 'pending' AND expires >= $1 ORDER BY created, id`, ts(now))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres pending approvals: %w", err)
	}
	return list, nil
}

// Decide records one decision. The transaction (READ COMMITTED) starts
// with "SELECT ... FROM approvals WHERE id = $1 FOR UPDATE": every other
// Decide or Finish on this request, from any replica, waits on that row
// lock, and then reads the state this one committed. The decision is
// judged (decide), the vote inserted and the state moved pending → running
// with "UPDATE ... WHERE id = $1 AND state = 'pending'" — under the row
// lock that update changes one row for exactly one caller, which alone gets
// claimed=true (with lease recorded as its claim), and only once the
// commit has succeeded.
// UNIQUE (approval_id, principal) backs up the one-vote rule.
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
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if a, err = getApproval(ctx, tx, id, true); err != nil {
			return err
		}
		next, conflict = bot.DecideApproval(a, d, now)
		if conflict != nil && next == a.State {
			return conflict // nothing to store
		}
		if conflict == nil {
			if _, err := tx.Exec(ctx, `INSERT INTO approval_decisions
				(approval_id, principal, user_name, approve, reason, at) VALUES ($1, $2, $3, $4, $5, $6)`,
				id, d.Principal, d.UserName, d.Approve, d.Reason, ts(d.At)); err != nil {
				return err
			}
			a.Decisions = append(a.Decisions, bot.Decision{
				Principal: d.Principal, UserName: d.UserName, Approve: d.Approve,
				Reason: d.Reason, At: ts(d.At).UTC(),
			})
		}
		if next != a.State {
			var (
				holder *string // NULL unless this vote claims it
				until  *time.Time
			)
			if next == bot.ApprovalRunning {
				u := ts(lease.Until)
				holder, until = &lease.Holder, &u
			}
			tag, err := tx.Exec(ctx, `UPDATE approvals SET state = $1, lease_holder = $2, lease_expires = $3
				WHERE id = $4 AND state = 'pending'`, next, holder, until, id)
			if err != nil {
				return err
			}
			if tag.RowsAffected() != 1 {
				return fmt.Errorf("request %s left pending under the row lock", id)
			}
			a.State = next
			if next == bot.ApprovalRunning {
				a.Lease = bot.Lease{Holder: lease.Holder, Until: ts(lease.Until).UTC()}
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

// Finish records the outcome of a running request, under the same row lock
// as Decide.
func (s *Store) Finish(ctx context.Context, id string, o bot.Outcome) error {
	if err := bot.CheckOutcome(o); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		a, err := getApproval(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if a.State != bot.ApprovalRunning {
			return bot.ApprovalConflict(a, o.Finished)
		}
		_, err = tx.Exec(ctx, `UPDATE approvals
			SET state = $1, outcome_status = $2, outcome_title = $3, output_sha256 = $4, finished = $5, duration_ns = $6
			WHERE id = $7 AND state = 'running'`,
			o.State, o.Status, o.Title, o.OutputSHA256, ts(o.Finished), int64(o.Duration), id)
		return err
	})
	if err != nil {
		return wrap("finish "+id, err)
	}
	return nil
}

// RenewLease extends the holder's lease on a running request, under the
// same row lock as Decide and AbandonLapsed.
func (s *Store) RenewLease(ctx context.Context, id string, l bot.Lease, now time.Time) error {
	if err := bot.CheckLease(l); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		a, err := getApproval(ctx, tx, id, true)
		if err != nil {
			return err
		}
		next, conflict := bot.RenewApproval(a, l, now)
		if conflict != nil {
			return conflict
		}
		_, err = tx.Exec(ctx, `UPDATE approvals SET lease_expires = $1
			WHERE id = $2 AND state = 'running' AND lease_holder = $3`, ts(next.Until), id, l.Holder)
		return err
	})
	if err != nil {
		return wrap("renew lease "+id, err)
	}
	return nil
}

// AbandonLapsed moves every running request whose lease expired before now
// to failed (abandoned) and returns them, oldest first. It locks the rows
// it selects (FOR UPDATE): a replica sweeping at the same time waits, then
// re-reads them as no longer running and skips them; a renewal that got
// the lock first moved the lease past now, so the row no longer matches.
func (s *Store) AbandonLapsed(ctx context.Context, now time.Time) ([]bot.Approval, error) {
	var list []bot.Approval
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		list, err = listApprovals(ctx, tx, `SELECT `+approvalColumns+` FROM approvals
			WHERE state = 'running' AND lease_expires < $1 ORDER BY created, id FOR UPDATE`, ts(now))
		if err != nil {
			return err
		}
		moved := list[:0]
		for _, a := range list {
			if !bot.LeaseLapsed(a, now) { // the query's rule, in the words of the state machine
				continue
			}
			o := bot.AbandonedOutcome(a, now)
			tag, err := tx.Exec(ctx, `UPDATE approvals
				SET state = $1, outcome_status = $2, outcome_title = $3, output_sha256 = $4, finished = $5, duration_ns = $6
				WHERE id = $7 AND state = 'running'`,
				o.State, o.Status, o.Title, o.OutputSHA256, ts(o.Finished), int64(o.Duration), a.ID)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 1 { // else finished or abandoned meanwhile
				a.State, a.Outcome = o.State, &o
				moved = append(moved, a)
			}
		}
		list = moved
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres abandon lapsed: %w", err)
	}
	return list, nil
}

// ExpirePending moves every pending request whose Expires is before now to
// expired and returns them, oldest first. The UPDATE locks each row it
// moves, so a concurrent Decide either sees it expired or claimed it first.
func (s *Store) ExpirePending(ctx context.Context, now time.Time) ([]bot.Approval, error) {
	var list []bot.Approval
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		list, err = listApprovals(ctx, tx, `UPDATE approvals SET state = 'expired'
			WHERE state = 'pending' AND expires < $1 RETURNING `+approvalColumns, ts(now))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres expire pending: %w", err)
	}
	slices.SortStableFunc(list, func(x, y bot.Approval) int {
		if c := x.Created.Compare(y.Created); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return list, nil
}

func getApproval(ctx context.Context, q querier, id string, lock bool) (bot.Approval, error) {
	query := `SELECT ` + approvalColumns + ` FROM approvals WHERE id = $1`
	if lock {
		query += ` FOR UPDATE`
	}
	a, err := scanApproval(q.QueryRow(ctx, query, id))
	if errors.Is(err, pgx.ErrNoRows) {
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
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (bot.Approval, error) { return scanApproval(row) })
	if err != nil {
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
	rows, err := q.Query(ctx, `SELECT principal, user_name, approve, reason, at
		FROM approval_decisions WHERE approval_id = $1 ORDER BY seq`, id)
	if err != nil {
		return nil, err
	}
	ds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (bot.Decision, error) {
		var d bot.Decision
		err := row.Scan(&d.Principal, &d.UserName, &d.Approve, &d.Reason, &d.At)
		d.At = d.At.UTC()
		return d, err
	})
	if len(ds) == 0 {
		ds = nil
	}
	return ds, err
}

func scanApproval(row pgx.Row) (bot.Approval, error) {
	var (
		a                  bot.Approval
		args, hosts        []byte
		status, title, sum *string
		finished           *time.Time
		durationNano       *int64
		holder             *string
		leaseExpires       *time.Time
	)
	err := row.Scan(&a.ID, &a.State, &a.Command, &a.Line, &args, &hosts, &a.Digest, &a.Impact,
		&a.Platform, &a.User, &a.UserName, &a.Channel, &a.RequestID,
		&a.Needed, &a.Created, &a.Expires, &status, &title, &sum, &finished, &durationNano,
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
	a.Created, a.Expires = a.Created.UTC(), a.Expires.UTC()
	a.Lease.Holder = deref(holder)
	if leaseExpires != nil {
		a.Lease.Until = leaseExpires.UTC()
	}
	if (a.State == bot.ApprovalDone || a.State == bot.ApprovalFailed) && finished != nil {
		a.Outcome = &bot.Outcome{
			State:        a.State,
			Status:       deref(status),
			Title:        deref(title),
			OutputSHA256: deref(sum),
			Finished:     finished.UTC(),
			Duration:     time.Duration(deref(durationNano)),
		}
	}
	return a, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
