package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/opsbot/opsbot/bot"
)

// Actions in flight (bot.Store's BeginAction ... InterruptLapsed). A
// lapsed action is deleted with DELETE ... RETURNING: of replicas racing
// on it, the one whose DELETE removes the row records it interrupted; the
// others, blocked on the row lock, find it gone and skip it.

func insertAudit(ctx context.Context, tx querier, r bot.AuditRecord) (int64, error) {
	hosts, err := encodeList(r.Hosts)
	if err != nil {
		return 0, err
	}
	var seq int64
	err = tx.QueryRow(ctx, `INSERT INTO audit (time, kind, request_id, platform, user_id, user_name,
		channel, line, command, hosts, approval_id, result, message, duration_ns, output_sha256, person, self_asserted)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING seq`,
		ts(r.Time), r.Kind, r.RequestID, r.Platform, r.User, r.UserName,
		r.Channel, r.Line, r.Command, hosts, r.ApprovalID, r.Result, r.Message, int64(r.Duration), r.OutputSHA256, r.Person, r.SelfAsserted,
	).Scan(&seq)
	return seq, err
}

// BeginAction implements bot.Store.
func (s *Store) BeginAction(ctx context.Context, started bot.AuditRecord, lease bot.Lease) (int64, error) {
	if err := bot.CheckStarted(started, lease); err != nil {
		return 0, err
	}
	var seq int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if seq, err = insertAudit(ctx, tx, started); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO actions (request_id, started_seq, platform, holder, lease_expires)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (request_id) DO NOTHING`,
			started.RequestID, seq, started.Platform, lease.Holder, ts(lease.Until))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return bot.Errorf(bot.ECONFLICT, "request %s has started already", started.RequestID)
		}
		return nil
	})
	if err != nil {
		return 0, wrap("begin action "+started.RequestID, err)
	}
	return seq, nil
}

// RenewAction implements bot.Store.
func (s *Store) RenewAction(ctx context.Context, requestID string, lease bot.Lease) error {
	if err := bot.CheckLease(lease); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE actions SET lease_expires = greatest(lease_expires, $1)
		WHERE request_id = $2 AND holder = $3`, ts(lease.Until), requestID, lease.Holder)
	if err != nil {
		return fmt.Errorf("postgres renew action %s: %w", requestID, err)
	}
	if tag.RowsAffected() == 0 {
		return bot.Errorf(bot.ECONFLICT, "action %s is not in flight on replica %s: it was declared interrupted, or ended", requestID, lease.Holder)
	}
	return nil
}

// EndAction implements bot.Store.
func (s *Store) EndAction(ctx context.Context, outcome bot.AuditRecord) (int64, error) {
	var seq int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM actions WHERE request_id = $1`, outcome.RequestID); err != nil {
			return err
		}
		var err error
		seq, err = insertAudit(ctx, tx, outcome)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres end action %s: %w", outcome.RequestID, err)
	}
	return seq, nil
}

// InterruptLapsed implements bot.Store.
func (s *Store) InterruptLapsed(ctx context.Context, now time.Time, platforms []string) ([]bot.AuditRecord, error) {
	var out []bot.AuditRecord
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		out = out[:0]
		query := `DELETE FROM actions WHERE lease_expires < $1`
		args := []any{ts(now)}
		if len(platforms) > 0 {
			query += ` AND platform = ANY($2)`
			args = append(args, platforms)
		}
		rows, err := tx.Query(ctx, query+` RETURNING started_seq, holder, lease_expires`, args...)
		if err != nil {
			return err
		}
		type lapsed struct {
			seq   int64
			lease bot.Lease
		}
		gone, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (lapsed, error) {
			var l lapsed
			err := row.Scan(&l.seq, &l.lease.Holder, &l.lease.Until)
			l.lease.Until = l.lease.Until.UTC()
			return l, err
		})
		if err != nil {
			return err
		}
		for _, l := range gone {
			started, err := auditRecord(ctx, tx, l.seq)
			if err != nil {
				return err
			}
			rec := bot.InterruptedRecord(started, l.lease, now)
			if rec.Seq, err = insertAudit(ctx, tx, rec); err != nil {
				return err
			}
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres interrupt lapsed: %w", err)
	}
	return out, nil
}

func auditRecord(ctx context.Context, tx pgx.Tx, seq int64) (bot.AuditRecord, error) {
	var (
		r        bot.AuditRecord
		dur      int64
		hostJSON []byte
	)
	if err := tx.QueryRow(ctx, `SELECT `+auditColumns+` FROM audit WHERE seq = $1`, seq).Scan(
		&r.Seq, &r.Time, &r.Kind, &r.RequestID, &r.Platform, &r.User, &r.UserName, &r.Channel,
		&r.Line, &r.Command, &hostJSON, &r.ApprovalID, &r.Result, &r.Message, &dur, &r.OutputSHA256, &r.Person, &r.SelfAsserted); err != nil {
		return r, err
	}
	var err error
	r.Hosts, err = decodeList(hostJSON)
	r.Time, r.Duration = r.Time.UTC(), time.Duration(dur)
	return r, err
}
