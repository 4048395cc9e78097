package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/opsbot/opsbot/bot"
)

const auditColumns = `seq, time, kind, request_id, platform, user_id, user_name, channel,
	line, command, hosts, approval_id, result, message, duration_ns, output_sha256, person, self_asserted`

// InsertAudit appends r in tx and returns its sequence number. Triggers
// refuse any UPDATE or DELETE on the table, whoever sends it (retention
// excepted: see PruneAudit).
func InsertAudit(ctx context.Context, tx Tx, r bot.AuditRecord) (int64, error) {
	hosts, err := encodeList(r.Hosts)
	if err != nil {
		return 0, err
	}
	var seq int64
	err = tx.queryRow(ctx, `INSERT INTO audit (time, kind, request_id, platform, user_id, user_name,
		channel, line, command, hosts, approval_id, result, message, duration_ns, output_sha256, person, self_asserted)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
		tx.s.t(r.Time), r.Kind, r.RequestID, r.Platform, r.User, r.UserName,
		r.Channel, r.Line, r.Command, hosts, r.ApprovalID, r.Result, r.Message, int64(r.Duration), r.OutputSHA256, r.Person, r.SelfAsserted,
	).Scan(&seq)
	return seq, err
}

// AppendAudit adds a record in its own transaction; r.Seq is ignored.
// Sequence numbers increase in the order records are inserted, which
// with several writers is not always the order they commit. (SQLite
// replaces this with a group-commit writer.)
func (s *Store) AppendAudit(ctx context.Context, r bot.AuditRecord) (int64, error) {
	var seq int64
	err := InTx(ctx, s, func(tx Tx) error {
		var err error
		seq, err = InsertAudit(ctx, tx, r)
		return err
	})
	if err != nil {
		return 0, s.fail("append audit", err)
	}
	return seq, nil
}

// Audit returns records in sequence order: those whose Time is at or after
// q.Since, and with q.Last > 0 only the last q.Last of them.
func (s *Store) Audit(ctx context.Context, q bot.AuditQuery) ([]bot.AuditRecord, error) {
	where, args := "", []any{}
	if !q.Since.IsZero() {
		where, args = ` WHERE time >= ?`, append(args, s.t(q.Since))
	}
	query := `SELECT ` + auditColumns + ` FROM audit` + where + ` ORDER BY seq`
	if q.Last > 0 {
		args = append(args, q.Last)
		query = `SELECT * FROM (SELECT ` + auditColumns + ` FROM audit` + where + ` ORDER BY seq DESC LIMIT ?) last ORDER BY seq`
	}
	var list []bot.AuditRecord
	err := s.inReadTx(ctx, func(tx Tx) error {
		var err error
		list, err = auditRecords(ctx, tx, query, args...)
		return err
	})
	if err != nil {
		return nil, s.fail("audit", err)
	}
	return list, nil
}

// auditRecords runs a query that returns audit rows (auditColumns).
func auditRecords(ctx context.Context, tx Tx, query string, args ...any) ([]bot.AuditRecord, error) {
	rows, err := tx.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var list []bot.AuditRecord
	for rows.Next() {
		r, err := scanAudit(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, r)
	}
	return list, rows.Err()
}

func scanAudit(row interface{ Scan(dest ...any) error }) (bot.AuditRecord, error) {
	var (
		r        bot.AuditRecord
		dur      int64
		hostJSON []byte
	)
	if err := row.Scan(&r.Seq, timeInto(&r.Time), &r.Kind, &r.RequestID, &r.Platform, &r.User, &r.UserName, &r.Channel,
		&r.Line, &r.Command, &hostJSON, &r.ApprovalID, &r.Result, &r.Message, &dur, &r.OutputSHA256, &r.Person, &r.SelfAsserted); err != nil {
		return r, err
	}
	hosts, err := decodeList(hostJSON)
	if err != nil {
		return r, fmt.Errorf("record %d hosts: %w", r.Seq, err)
	}
	r.Hosts, r.Duration = hosts, time.Duration(dur)
	return r, nil
}
