package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/opsbot/opsbot/bot"
)

const auditColumns = `seq, time, kind, request_id, platform, user_id, user_name, channel,
	line, command, hosts, approval_id, result, message, duration_ns, output_sha256, person, self_asserted`

// AppendAudit adds a record; r.Seq is ignored. Triggers refuse any UPDATE,
// DELETE or TRUNCATE on the table, whoever sends it.
//
// Sequence numbers come from an identity column: increasing in the order
// replicas insert, not always in the order they commit.
func (s *Store) AppendAudit(ctx context.Context, r bot.AuditRecord) (int64, error) {
	seq, err := insertAudit(ctx, s.pool, r)
	if err != nil {
		return 0, fmt.Errorf("postgres append audit: %w", err)
	}
	return seq, nil
}

// Audit returns records in sequence order: those whose Time is at or after
// q.Since, and with q.Last > 0 only the last q.Last of them.
func (s *Store) Audit(ctx context.Context, q bot.AuditQuery) ([]bot.AuditRecord, error) {
	where, args := "", []any{}
	if !q.Since.IsZero() {
		where, args = ` WHERE time >= $1`, append(args, ts(q.Since))
	}
	query := `SELECT ` + auditColumns + ` FROM audit` + where + ` ORDER BY seq`
	if q.Last > 0 {
		args = append(args, q.Last)
		query = `SELECT * FROM (SELECT ` + auditColumns + ` FROM audit` + where +
			fmt.Sprintf(` ORDER BY seq DESC LIMIT $%d`, len(args)) + `) last ORDER BY seq`
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres audit: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (bot.AuditRecord, error) {
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
	if err != nil {
		return nil, fmt.Errorf("postgres audit: %w", err)
	}
	return list, nil
}
