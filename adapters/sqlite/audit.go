package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

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

// FirstDelivery implements bot.Deliveries. A chat delivery is recorded
// before it is handled (so that a second replica runs a duplicate never),
// which made every Slack command wait for a synced write of its own:
// under 50 at once, a queue of fsyncs (p99 87 ms). It is committed with
// whatever audit records and deliveries are waiting at the same moment.
func (s *Store) FirstDelivery(ctx context.Context, keys []string, now, until time.Time) (bool, error) {
	w := &auditWrite{delivery: &deliveryWrite{keys: keys, now: now, until: until}, done: make(chan auditDone, 1)}
	select {
	case s.auditQ <- w:
	case <-s.stop:
		return false, errors.New("sqlite first delivery: the store is closed")
	case <-ctx.Done():
		return false, fmt.Errorf("sqlite first delivery: %w", ctx.Err())
	}
	d := <-w.done
	return d.fresh, d.err
}

// auditWrite is one queued write, an audit record or a delivery's keys,
// and where its result goes.
type auditWrite struct {
	r        bot.AuditRecord
	delivery *deliveryWrite // nil for an audit record
	done     chan auditDone
}

// deliveryWrite is a FirstDelivery call.
type deliveryWrite struct {
	keys       []string
	now, until time.Time
}

type auditDone struct {
	seq   int64
	fresh bool // a delivery: none of its keys was recorded before
	err   error
}

// auditBatch bounds one transaction.
const auditBatch = 256

// auditWriter commits queued writes (audit records, deliveries) in batches,
// one synced transaction each, until the store closes.
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
		res := make([]auditDone, len(batch))
		err := sqlstore.InTx(context.Background(), s.Store, func(tx sqlstore.Tx) error {
			for i, w := range batch {
				var err error
				if d := w.delivery; d != nil {
					res[i].fresh, err = sqlstore.FirstDeliveryIn(context.Background(), s.Store, tx, d.keys, d.now, d.until)
				} else {
					res[i].seq, err = sqlstore.InsertAudit(context.Background(), tx, w.r)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		for i, w := range batch {
			if err != nil {
				op := "append audit"
				if w.delivery != nil {
					op = "first delivery"
				}
				w.done <- auditDone{err: sqlstore.Fail(s.Store, op, err)}
				continue
			}
			w.done <- res[i]
		}
	}
}
