// Package postgres owns the shared store of a bot run as several replicas:
// approval requests and the audit log in one PostgreSQL database, through
// pgx (pgxpool). It implements bot.Store. Every change of an approval's
// state happens in a transaction that first locks the request's row
// (SELECT ... FOR UPDATE), so any number of replicas may race on one
// request and exactly one of them claims it.
//
// Schema migrations are embedded and applied by Open, each in its own
// transaction under a transaction-scoped advisory lock, so replicas that
// start together apply each one once.
//
// Times are timestamptz, which keeps microseconds: what goes in comes back
// truncated to the microsecond, in UTC.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opsbot/opsbot/bot"
)

// migrationLock is the advisory lock key that serializes migrations of one
// database ("opsbot" in ASCII).
const migrationLock int64 = 0x6f7073626f74

// Store is a bot.Store in a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
}

var _ bot.Store = (*Store)(nil)

// Open connects to the database at url (postgres://...) and applies the
// migrations it lacks.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: %w", cfg.ConnConfig.Host, err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres %s/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	return s, nil
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres ping: %w", err)
	}
	return nil
}

// Close closes the pool, waiting for connections in use; a second call
// does nothing.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrate applies each missing migration in its own transaction, which
// first takes pg_advisory_xact_lock: a replica starting at the same time
// waits, then finds the migration recorded in schema_version and skips it.
// The lock goes with the transaction, even if the connection dies.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := bot.ReadMigrations(migrationFiles, "migrations/*.sql")
	if err != nil {
		return err
	}
	for _, m := range ms {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
				version integer     PRIMARY KEY,
				name    text        NOT NULL,
				applied timestamptz NOT NULL DEFAULT now()
			)`); err != nil {
				return err
			}
			var done bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_version WHERE version = $1)`, m.Version).Scan(&done); err != nil {
				return err
			}
			if done {
				return nil
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_version (version, name) VALUES ($1, $2)`, m.Version, m.Name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	var newest int
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&newest); err != nil {
		return fmt.Errorf("schema version: %w", err)
	}
	if known := ms[len(ms)-1].Version; newest > known {
		return fmt.Errorf("database schema version %d is newer than this opsbot knows (%d): upgrade opsbot", newest, known)
	}
	return nil
}

// ts is how a time is sent: truncated here, as PostgreSQL would round.
func ts(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

// wrap passes a *bot.Error through and adds context to anything else.
func wrap(op string, err error) error {
	var be *bot.Error
	if errors.As(err, &be) {
		return be
	}
	return fmt.Errorf("postgres %s: %w", op, err)
}
