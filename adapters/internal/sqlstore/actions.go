package sqlstore

import (
	"context"
	"time"

	"github.com/opsbot/opsbot/bot"
)

// Actions in flight (bot.Store's BeginAction ... InterruptLapsed). Each is
// one write transaction, outside any audit batching: the started record
// must be durable before the action acts. A lapsed action is deleted with
// DELETE ... RETURNING: of handles racing on it, the one whose DELETE
// removes the row records it interrupted; the others, waiting on the lock,
// find it gone and skip it.

// BeginAction implements bot.Store.
func (s *Store) BeginAction(ctx context.Context, started bot.AuditRecord, lease bot.Lease) (int64, error) {
	if err := bot.CheckStarted(started, lease); err != nil {
		return 0, err
	}
	var seq int64
	err := InTx(ctx, s, func(tx Tx) error {
		var err error
		if seq, err = InsertAudit(ctx, tx, started); err != nil {
			return err
		}
		res, err := tx.exec(ctx, `INSERT INTO actions (request_id, started_seq, platform, holder, lease_expires)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING`,
			started.RequestID, seq, started.Platform, lease.Holder, s.t(lease.Until))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return bot.Errorf(bot.ECONFLICT, "request %s has started already", started.RequestID)
		}
		return nil
	})
	if err != nil {
		return 0, s.wrap("begin action "+started.RequestID, err)
	}
	return seq, nil
}

// RenewAction implements bot.Store.
func (s *Store) RenewAction(ctx context.Context, requestID string, lease bot.Lease) error {
	if err := bot.CheckLease(lease); err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE actions SET lease_expires = `+s.d.Greatest+`(lease_expires, ?)
		WHERE request_id = ? AND holder = ?`), s.t(lease.Until), requestID, lease.Holder)
	if err != nil {
		return s.fail("renew action "+requestID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return s.fail("renew action "+requestID, err)
	} else if n == 0 {
		return bot.Errorf(bot.ECONFLICT, "action %s is not in flight on replica %s: it was declared interrupted, or ended", requestID, lease.Holder)
	}
	return nil
}

// EndAction implements bot.Store.
func (s *Store) EndAction(ctx context.Context, outcome bot.AuditRecord) (int64, error) {
	var seq int64
	err := InTx(ctx, s, func(tx Tx) error {
		if _, err := tx.exec(ctx, `DELETE FROM actions WHERE request_id = ?`, outcome.RequestID); err != nil {
			return err
		}
		var err error
		seq, err = InsertAudit(ctx, tx, outcome)
		return err
	})
	if err != nil {
		return 0, s.fail("end action "+outcome.RequestID, err)
	}
	return seq, nil
}

// InterruptLapsed implements bot.Store.
func (s *Store) InterruptLapsed(ctx context.Context, now time.Time, platforms []string) ([]bot.AuditRecord, error) {
	var out []bot.AuditRecord
	err := InTx(ctx, s, func(tx Tx) error {
		out = out[:0]
		query := `DELETE FROM actions WHERE lease_expires < ?`
		args := []any{s.t(now)}
		if len(platforms) > 0 {
			cond, more := in(s, "platform", platforms)
			query += ` AND ` + cond
			args = append(args, more...)
		}
		rows, err := tx.query(ctx, query+` RETURNING started_seq, holder, lease_expires`, args...)
		if err != nil {
			return err
		}
		type lapsed struct {
			seq   int64
			lease bot.Lease
		}
		var gone []lapsed
		for rows.Next() {
			var l lapsed
			if err := rows.Scan(&l.seq, &l.lease.Holder, timeInto(&l.lease.Until)); err != nil {
				_ = rows.Close()
				return err
			}
			gone = append(gone, l)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		for _, l := range gone {
			started, err := scanAudit(tx.queryRow(ctx, `SELECT `+auditColumns+` FROM audit WHERE seq = ?`, l.seq))
			if err != nil {
				return err
			}
			rec := bot.InterruptedRecord(started, l.lease, now)
			if rec.Seq, err = InsertAudit(ctx, tx, rec); err != nil {
				return err
			}
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, s.fail("interrupt lapsed", err)
	}
	return out, nil
}
