// Package postgres owns the shared store of a bot run as several replicas:
// approval requests and the audit log in one PostgreSQL database, through
// pgx's database/sql driver (pgx/v5/stdlib). It implements bot.Store with
// the SQL flow both stores share (adapters/internal/sqlstore). Every change
// of an approval's state happens in a transaction that first locks the
// request's row (SELECT ... FOR UPDATE), so any number of replicas may race
// on one request and exactly one of them claims it.
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
	"database/sql"
	"embed"
	"fmt"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/opsbot/opsbot/adapters/internal/sqlstore"
	"github.com/opsbot/opsbot/bot"
)

// migrationLock is the advisory lock key that serializes migrations of one
// database ("opsbot" in ASCII).
const migrationLock int64 = 0x6f7073626f74

// Store is a bot.Store in a PostgreSQL database.
type Store struct {
	*sqlstore.Store
}

var _ bot.Store = (*Store)(nil)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// schema applies the migrations, each in a transaction that first takes
// pg_advisory_xact_lock: a replica starting at the same time waits, then
// finds the migration recorded in schema_version and skips it. The lock
// goes with the transaction, even if the connection dies.
var schema = sqlstore.Schema{
	Files:   migrationFiles,
	Pattern: "migrations/*.sql",
	VersionTable: `CREATE TABLE IF NOT EXISTS schema_version (
		version integer     PRIMARY KEY,
		name    text        NOT NULL,
		applied timestamptz NOT NULL DEFAULT now()
	)`,
	Lock: fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d)`, migrationLock),
}

// dialect is PostgreSQL for the shared flow: numbered placeholders,
// timestamptz, row locks, arrays; reads on one REPEATABLE READ snapshot.
var dialect = sqlstore.Dialect{
	Name:     "postgres",
	Numbered: true,
	Time:     func(t time.Time) any { return t.Truncate(time.Microsecond) }, // as PostgreSQL would round
	Lock:     " FOR UPDATE",
	Greatest: "greatest",
	Arrays:   true,
	Read:     &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true},
}

// Open connects to the database at url (postgres://...) and applies the
// migrations it lacks.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, fmt.Errorf("postgres: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(max(4, runtime.NumCPU())) // pgxpool's default
	db.SetMaxIdleConns(max(4, runtime.NumCPU()))
	s := &Store{Store: sqlstore.New(db, dialect)}
	if err := sqlstore.Migrate(ctx, s.Store, schema); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("postgres %s/%s: %w", cfg.Host, cfg.Database, err)
	}
	return s, nil
}
