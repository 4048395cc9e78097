package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/opsbot/opsbot/bot"
)

// PruneAudit implements bot.AuditPruner. It holds the write lock from the
// read to the commit, so what it exported is what it removes.
func (s *Store) PruneAudit(ctx context.Context, before time.Time, limit int, export func([]bot.AuditRecord) error) (int, error) {
	if limit < 1 {
		return 0, bot.Errorf(bot.EINVALID, "prune limit is %d: want 1 or more", limit)
	}
	var n int
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		n = 0
		recs, err := oldAudit(ctx, tx, before, limit)
		if err != nil || len(recs) == 0 {
			return err
		}
		if err := export(recs); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		through := recs[len(recs)-1].Seq
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_prune_permit (before, through_seq) VALUES (?, ?)`, micros(before), through); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM audit WHERE time < ? AND seq <= ?`, micros(before), through)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM audit_prune_permit`); err != nil {
			return err
		}
		del, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if int(del) != len(recs) {
			return fmt.Errorf("removed %d records, exported %d", del, len(recs))
		}
		n = len(recs)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite prune audit: %w", err)
	}
	return n, nil
}

func oldAudit(ctx context.Context, tx *sql.Tx, before time.Time, limit int) ([]bot.AuditRecord, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit WHERE time < ? ORDER BY seq LIMIT ?`, micros(before), limit)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var list []bot.AuditRecord
	for rows.Next() {
		var (
			r        bot.AuditRecord
			at, dur  int64
			hostJSON []byte
		)
		if err := rows.Scan(&r.Seq, &at, &r.Kind, &r.RequestID, &r.Platform, &r.User, &r.UserName, &r.Channel,
			&r.Line, &r.Command, &hostJSON, &r.ApprovalID, &r.Result, &r.Message, &dur, &r.OutputSHA256, &r.Person, &r.SelfAsserted); err != nil {
			return nil, err
		}
		if r.Hosts, err = decodeList(hostJSON); err != nil {
			return nil, fmt.Errorf("record %d hosts: %w", r.Seq, err)
		}
		r.Time = fromMicros(at)
		r.Duration = time.Duration(dur)
		list = append(list, r)
	}
	return list, rows.Err()
}
