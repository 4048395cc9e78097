package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/opsbot/opsbot/bot"
)

const auditColumns = `seq, time, kind, request_id, platform, user_id, user_name, channel,
	line, command, hosts, approval_id, result, message, duration_ns, output_sha256, person, self_asserted`

// AppendAudit adds a record; r.Seq is ignored. Triggers refuse any UPDATE
// or DELETE on the table, whoever sends it. The record is committed (and
// synced) before it returns, together with whatever other records were
// waiting at the same moment.
func (s *Store) AppendAudit(ctx context.Context, r bot.AuditRecord) (int64, error) {
	hosts, err := encodeList(r.Hosts)
	if err != nil {
		return 0, fmt.Errorf("sqlite append audit: %w", err)
	}
	w := &auditWrite{r: r, hosts: hosts, done: make(chan auditDone, 1)}
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
	r     bot.AuditRecord
	hosts string
	done  chan auditDone
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
		err := s.inTx(context.Background(), func(tx *sql.Tx) error {
			for i, w := range batch {
				var err error
				if seqs[i], err = insertAudit(context.Background(), tx, w.r); err != nil {
					return err
				}
			}
			return nil
		})
		for i, w := range batch {
			if err != nil {
				w.done <- auditDone{err: fmt.Errorf("sqlite append audit: %w", err)}
				continue
			}
			w.done <- auditDone{seq: seqs[i]}
		}
	}
}

// Audit returns records in sequence order: those whose Time is at or after
// q.Since, and with q.Last > 0 only the last q.Last of them.
func (s *Store) Audit(ctx context.Context, q bot.AuditQuery) ([]bot.AuditRecord, error) {
	since := int64(math.MinInt64)
	if !q.Since.IsZero() {
		since = micros(q.Since)
	}
	query := `SELECT ` + auditColumns + ` FROM audit WHERE time >= ? ORDER BY seq`
	args := []any{since}
	if q.Last > 0 {
		query = `SELECT ` + auditColumns + ` FROM (
			SELECT ` + auditColumns + ` FROM audit WHERE time >= ? ORDER BY seq DESC LIMIT ?
		) ORDER BY seq`
		args = append(args, q.Last)
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite audit: %w", err)
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
			return nil, fmt.Errorf("sqlite audit: %w", err)
		}
		if r.Hosts, err = decodeList(hostJSON); err != nil {
			return nil, fmt.Errorf("sqlite audit record %d hosts: %w", r.Seq, err)
		}
		r.Time = fromMicros(at)
		r.Duration = time.Duration(dur)
		list = append(list, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite audit: %w", err)
	}
	return list, nil
}
