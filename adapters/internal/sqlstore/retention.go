package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/opsbot/opsbot/bot"
)

// PruneAudit implements bot.AuditPruner. It holds the records it reads
// (the write lock, or their rows' locks) until it commits: a handle
// pruning at the same moment waits, then finds them gone, and what it
// exported is exactly what it removes.
func (s *Store) PruneAudit(ctx context.Context, before time.Time, limit int, export func([]bot.AuditRecord) error) (int, error) {
	if limit < 1 {
		return 0, bot.Errorf(bot.EINVALID, "prune limit is %d: want 1 or more", limit)
	}
	var n int
	err := InTx(ctx, s, func(tx Tx) error {
		n = 0
		recs, err := auditRecords(ctx, tx, `SELECT `+auditColumns+` FROM audit WHERE time < ? ORDER BY seq LIMIT ?`+s.d.Lock, s.t(before), limit)
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
		if _, err := tx.exec(ctx, `INSERT INTO audit_prune_permit (before, through_seq) VALUES (?, ?)`, s.t(before), through); err != nil {
			return err
		}
		// Exactly the rows read and held: with READ COMMITTED a range
		// could also take rows committed since. In chunks, for databases
		// that bound the parameters of one statement.
		var del int64
		for chunk := range slices.Chunk(seqs, 500) {
			cond, args := in(s, "seq", chunk)
			res, err := tx.exec(ctx, `DELETE FROM audit WHERE `+cond, args...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			del += n
		}
		if _, err := tx.exec(ctx, `DELETE FROM audit_prune_permit`); err != nil {
			return err
		}
		if int(del) != len(recs) {
			return fmt.Errorf("removed %d records, exported %d", del, len(recs))
		}
		n = len(recs)
		return nil
	})
	if err != nil {
		return 0, s.fail("prune audit", err)
	}
	return n, nil
}
