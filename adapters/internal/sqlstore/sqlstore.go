// Package sqlstore is the one SQL flow behind opsbot's stores: approvals
// and their leases, actions in flight, the audit log and its retention,
// Slack deliveries and Mattermost command tokens, written once over
// database/sql. adapters/sqlite and adapters/postgres open their database,
// describe it in a Dialect, and embed a *Store; what differs between the
// two (placeholders, time columns, row locks, arrays, errors) is the
// Dialect, not a second copy of the flow.
//
// The concurrency rule is the same on both: every change of an
// approval's state reads the request in a write transaction that holds it
// exclusively — SQLite's write lock, taken at BEGIN (BEGIN IMMEDIATE), or
// PostgreSQL's row lock (SELECT ... FOR UPDATE, the Dialect's Lock) — so
// any number of handles racing on one request see each other's commits
// and exactly one of them claims it.
//
// Times come back truncated to the microsecond, in UTC.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
)

// Dialect is what differs between the SQL databases a Store runs on.
type Dialect struct {
	// Name starts the store's error messages: "sqlite", "postgres".
	Name string
	// Numbered placeholders ($1, $2, ...) instead of ?. Queries here are
	// written with ?.
	Numbered bool
	// Time is how a time is sent: SQLite keeps integer microseconds,
	// PostgreSQL a timestamptz. Times read back either way (see scanTime).
	Time func(time.Time) any
	// Lock ends a SELECT whose rows the transaction will change: " FOR
	// UPDATE" where rows lock (PostgreSQL); "" where a write transaction
	// holds the whole database from BEGIN (SQLite).
	Lock string
	// Greatest is the SQL function for the larger of two values.
	Greatest string
	// Arrays: a list is sent as one array parameter (col = ANY(?));
	// otherwise as one placeholder per element (col IN (?, ?, ...)).
	Arrays bool
	// Read are the options of a read-only transaction (one snapshot).
	Read *sql.TxOptions
	// Explain, if set, adds to an error what the database driver could
	// not say (SQLite: that its file system turned read-only, as
	// syscall.EROFS), so that bot can tell the asker why in a few words.
	Explain func(error) error
}

// Store is the flow over one database. Its methods implement bot.Store
// (with bot.Deliveries, bot.CommandTokens and bot.AuditPruner).
type Store struct {
	db *sql.DB
	d  Dialect
}

var (
	_ bot.Store       = (*Store)(nil)
	_ bot.AuditPruner = (*Store)(nil)
)

// New is the flow over db, which the caller opened and migrated.
func New(db *sql.DB, d Dialect) *Store { return &Store{db: db, d: d} }

// DB is the database the store runs on.
func DB(s *Store) *sql.DB { return s.db }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("%s ping: %w", s.d.Name, err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// q rewrites a query written with ? placeholders for the dialect.
func (s *Store) q(query string) string {
	if !s.d.Numbered || !strings.ContainsRune(query, '?') {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// t is how a time is sent.
func (s *Store) t(t time.Time) any { return s.d.Time(t) }

// in is "col IN (...)" for vals, with its arguments.
func in[T any](s *Store, col string, vals []T) (string, []any) {
	if s.d.Arrays {
		return col + " = ANY(?)", []any{vals}
	}
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	return col + " IN (?" + strings.Repeat(", ?", max(len(vals)-1, 0)) + ")", args
}

// Tx is a transaction that writes queries with ? for the dialect.
type Tx struct {
	s  *Store
	tx *sql.Tx
}

func (t Tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.s.q(query), args...)
}

func (t Tx) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.s.q(query), args...)
}

func (t Tx) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.s.q(query), args...)
}

// InTx runs fn in a write transaction and commits if fn returns nil.
// SQLite takes its write lock at BEGIN (the DSN's _txlock=immediate).
func InTx(ctx context.Context, s *Store, fn func(Tx) error) error {
	t, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(Tx{s, t}); err != nil {
		_ = t.Rollback()
		return err
	}
	return t.Commit()
}

// inReadTx runs fn in a read-only transaction: one consistent snapshot.
func (s *Store) inReadTx(ctx context.Context, fn func(Tx) error) error {
	t, err := s.db.BeginTx(ctx, s.d.Read)
	if err != nil {
		return err
	}
	defer func() { _ = t.Rollback() }()
	return fn(Tx{s, t})
}

// wrap passes a *bot.Error through and adds context to anything else.
func (s *Store) wrap(op string, err error) error {
	var be *bot.Error
	if errors.As(err, &be) {
		return be
	}
	return s.fail(op, err)
}

// Fail adds context to err as the store's own errors have it: the
// dialect's name, the operation, and what the dialect explains.
func Fail(s *Store, op string, err error) error { return s.fail(op, err) }

// fail adds context to err.
func (s *Store) fail(op string, err error) error {
	if s.d.Explain != nil {
		err = s.d.Explain(err)
	}
	return fmt.Errorf("%s %s: %w", s.d.Name, op, err)
}

// scanTime reads a time column stored either way: integer microseconds
// (SQLite) or a timestamp (PostgreSQL). NULL leaves it zero and valid
// false.
type scanTime struct {
	t     *time.Time
	valid bool
}

func timeInto(t *time.Time) *scanTime { return &scanTime{t: t} }

func (s *scanTime) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		s.valid = false
		return nil
	case int64:
		*s.t = time.UnixMicro(x).UTC()
	case time.Time:
		*s.t = x.UTC()
	default:
		return fmt.Errorf("a time stored as %T", v)
	}
	s.valid = true
	return nil
}

// norm is what the database gives back for a time it was given.
func norm(t time.Time) time.Time { return time.UnixMicro(t.UnixMicro()).UTC() }

// encodeList stores a list as a JSON array; nil and empty both read back
// as nil.
func encodeList(l []string) (string, error) {
	if len(l) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(l)
	return string(b), err
}

func decodeList(b []byte) ([]string, error) {
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, err
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}
