package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/opsbot/opsbot/adapters/internal/sqlstore"
	"github.com/opsbot/opsbot/bot"
)

// AppendAudit adds a record; r.Seq is ignored. Triggers refuse any UPDATE
// or DELETE on the table, whoever sends it. The record is committed (and
// synced) before it returns, together with whatever other records were
// waiting at the same moment.
func (s *Store) AppendAudit(ctx context.Context, r bot.AuditRecord) (int64, error) {
	w := &auditWrite{r: r, done: make(chan auditDone, 1)}
	select {
	case s.auditQ <- w:
	case <-s.stop:
		return 0, errors.New("sqlite append audit: the store is closed")
	case <-ctx.Done():
		return 0, fmt.Errorf("sqlite append audit: %w", ctx.Err())
	}
	// Once queued, the record is written whatever ctx does; wait for it.
	d := <-w.done
	return d.seq, d.err
}

// auditWrite is one queued record and where its result goes.
type auditWrite struct {
	r    bot.AuditRecord
	done chan auditDone
}

type auditDone struct {
	seq int64
	err error
}

// auditBatch bounds one transaction.
const auditBatch = 256

// auditWriter commits queued records in batches until the store closes.
func (s *Store) auditWriter() {
	for {
		var first *auditWrite
		select {
		case first = <-s.auditQ:
		case <-s.stop:
			return
		}
		batch := []*auditWrite{first}
	more:
		for len(batch) < auditBatch {
			select {
			case w := <-s.auditQ:
				batch = append(batch, w)
			default:
				break more
			}
		}
		seqs := make([]int64, len(batch))
		err := sqlstore.InTx(context.Background(), s.Store, func(tx sqlstore.Tx) error {
			for i, w := range batch {
				var err error
				if seqs[i], err = sqlstore.InsertAudit(context.Background(), tx, w.r); err != nil {
					return err
				}
			}
			return nil
		})
		for i, w := range batch {
			if err != nil {
				w.done <- auditDone{err: sqlstore.Fail(s.Store, "append audit", err)}
				continue
			}
			w.done <- auditDone{seq: seqs[i]}
		}
	}
}
