package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
)

// Actions in flight (bot.Store's BeginAction ... InterruptLapsed). Each is
// one transaction that takes the write lock at BEGIN, outside the audit
// group-commit writer: the started record must be durable before the
// action acts, and a lapsed action must be recorded interrupted once.

func insertAudit(ctx context.Context, tx *sql.Tx, r bot.AuditRecord) (int64, error) {
	hosts, err := encodeList(r.Hosts)
	if err != nil {
		return 0, err
	}
	var seq int64
	err = tx.QueryRowContext(ctx, `INSERT INTO audit (time, kind, request_id, platform, user_id, user_name,
		channel, line, command, hosts, approval_id, result, message, duration_ns, output_sha256, person, self_asserted)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
		micros(r.Time), r.Kind, r.RequestID, r.Platform, r.User, r.UserName,
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
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if seq, err = insertAudit(ctx, tx, started); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO actions (request_id, started_seq, platform, holder, lease_expires)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING`,
			started.RequestID, seq, started.Platform, lease.Holder, micros(lease.Until))
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
		return 0, wrap("begin action "+started.RequestID, err)
	}
	return seq, nil
}

// RenewAction implements bot.Store.
func (s *Store) RenewAction(ctx context.Context, requestID string, lease bot.Lease) error {
	if err := bot.CheckLease(lease); err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE actions SET lease_expires = max(lease_expires, ?)
		WHERE request_id = ? AND holder = ?`, micros(lease.Until), requestID, lease.Holder)
	if err != nil {
		return fmt.Errorf("sqlite renew action %s: %w", requestID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite renew action %s: %w", requestID, err)
	} else if n == 0 {
		return bot.Errorf(bot.ECONFLICT, "action %s is not in flight on replica %s: it was declared interrupted, or ended", requestID, lease.Holder)
	}
	return nil
}

// EndAction implements bot.Store.
func (s *Store) EndAction(ctx context.Context, outcome bot.AuditRecord) (int64, error) {
	var seq int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM actions WHERE request_id = ?`, outcome.RequestID); err != nil {
			return err
		}
		var err error
		seq, err = insertAudit(ctx, tx, outcome)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite end action %s: %w", outcome.RequestID, err)
	}
	return seq, nil
}

// InterruptLapsed implements bot.Store.
func (s *Store) InterruptLapsed(ctx context.Context, now time.Time, platforms []string) ([]bot.AuditRecord, error) {
	var out []bot.AuditRecord
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		query := `DELETE FROM actions WHERE lease_expires < ?`
		args := []any{micros(now)}
		if len(platforms) > 0 {
			query += ` AND platform IN (?` + strings.Repeat(`, ?`, len(platforms)-1) + `)`
			for _, p := range platforms {
				args = append(args, p)
			}
		}
		rows, err := tx.QueryContext(ctx, query+` RETURNING started_seq, holder, lease_expires`, args...)
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
			var until int64
			if err := rows.Scan(&l.seq, &l.lease.Holder, &until); err != nil {
				_ = rows.Close()
				return err
			}
			l.lease.Until = fromMicros(until)
			gone = append(gone, l)
		}
		if err := rows.Close(); err != nil {
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
		return nil, fmt.Errorf("sqlite interrupt lapsed: %w", err)
	}
	return out, nil
}

func auditRecord(ctx context.Context, tx *sql.Tx, seq int64) (bot.AuditRecord, error) {
	var (
		r        bot.AuditRecord
		at, dur  int64
		hostJSON []byte
	)
	if err := tx.QueryRowContext(ctx, `SELECT `+auditColumns+` FROM audit WHERE seq = ?`, seq).Scan(
		&r.Seq, &at, &r.Kind, &r.RequestID, &r.Platform, &r.User, &r.UserName, &r.Channel,
		&r.Line, &r.Command, &hostJSON, &r.ApprovalID, &r.Result, &r.Message, &dur, &r.OutputSHA256, &r.Person, &r.SelfAsserted); err != nil {
		return r, err
	}
	var err error
	r.Hosts, err = decodeList(hostJSON)
	r.Time, r.Duration = fromMicros(at), time.Duration(dur)
	return r, err
}
