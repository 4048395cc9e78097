package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/opsbot/opsbot/bot"
)

// PruneAudit implements bot.AuditPruner. The records it reads are locked
// (FOR UPDATE) until it commits: a replica pruning at the same moment
// waits, then finds them gone.
func (s *Store) PruneAudit(ctx context.Context, before time.Time, limit int, export func([]bot.AuditRecord) error) (int, error) {
	if limit < 1 {
		return 0, bot.Errorf(bot.EINVALID, "prune limit is %d: want 1 or more", limit)
	}
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		n = 0
		rows, err := tx.Query(ctx, `SELECT `+auditColumns+` FROM audit WHERE time < $1 ORDER BY seq LIMIT $2 FOR UPDATE`, ts(before), limit)
		if err != nil {
			return err
		}
		recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (bot.AuditRecord, error) {
			var (
				r        bot.AuditRecord
				dur      int64
				hostJSON []byte
			)
			if err := row.Scan(&r.Seq, &r.Time, &r.Kind, &r.RequestID, &r.Platform, &r.User, &r.UserName, &r.Channel,
				&r.Line, &r.Command, &hostJSON, &r.ApprovalID, &r.Result, &r.Message, &dur, &r.OutputSHA256, &r.Person, &r.SelfAsserted); err != nil {
				return r, err
			}
			hosts, err := decodeList(hostJSON)
			if err != nil {
				return r, fmt.Errorf("record %d hosts: %w", r.Seq, err)
			}
			r.Hosts, r.Time, r.Duration = hosts, r.Time.UTC(), time.Duration(dur)
			return r, nil
		})
		if err != nil || len(recs) == 0 {
			return err
		}
		if err := export(recs); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		seqs := make([]int64, len(recs))
		for i, r := range recs {
			seqs[i] = r.Seq
		}
		through := seqs[len(seqs)-1]
		if _, err := tx.Exec(ctx, `INSERT INTO audit_prune_permit (before, through_seq) VALUES ($1, $2)`, ts(before), through); err != nil {
			return err
		}
		// Exactly the rows read and locked: with READ COMMITTED a range
		// could also take rows committed since.
		tag, err := tx.Exec(ctx, `DELETE FROM audit WHERE seq = ANY($1)`, seqs)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM audit_prune_permit`); err != nil {
			return err
		}
		if int(tag.RowsAffected()) != len(recs) {
			return fmt.Errorf("removed %d records, exported %d", tag.RowsAffected(), len(recs))
		}
		n = len(recs)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("postgres prune audit: %w", err)
	}
	return n, nil
}
