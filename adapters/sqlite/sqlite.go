// Package sqlite owns the single-host store of the bot: approval requests and
// the audit log in one SQLite file, through modernc.org/sqlite (pure Go, no
// cgo). It implements bot.Store with the SQL flow both stores share
// (adapters/internal/sqlstore), and keeps what only SQLite needs: the file,
// its connection settings, a group-commit audit writer, and backups.
// Several processes may share the file: every write transaction takes
// SQLite's write lock at BEGIN (BEGIN IMMEDIATE), so writers queue behind
// each other instead of failing halfway, and each approval state change is
// decided under that lock.
//
// Times are stored as integer microseconds since the Unix epoch: what goes in
// comes back truncated to the microsecond, in UTC.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	// The "sqlite" database/sql driver.
	_ "modernc.org/sqlite"

	"github.com/opsbot/opsbot/adapters/internal/sqlstore"
	"github.com/opsbot/opsbot/bot"
)

// busyTimeout is how long a writer waits for another to finish: long
// enough for a queue of bot processes, short enough to notice a stuck one.
const busyTimeout = 10 * time.Second

// Store is a bot.Store in a SQLite file.
type Store struct {
	*sqlstore.Store
	db        *sql.DB
	closeOnce sync.Once
	closeErr  error

	// Audit records are written in batches by one goroutine (group
	// commit): a burst of concurrent requests costs one fsync, not one
	// each.
	auditQ chan *auditWrite
	stop   chan struct{}
	writer sync.WaitGroup
}

var _ bot.Store = (*Store)(nil)

// DefaultPath is where the database lives when no path is configured:
// $XDG_STATE_HOME/opsbot/opsbot.db, else ~/.local/state/opsbot/opsbot.db.
// With neither $HOME nor a home directory in the user database it is
// opsbot.db in the working directory.
func DefaultPath() string {
	// The XDG spec says to ignore a relative path.
	if dir := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "opsbot", "opsbot.db")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		if u, uerr := user.Current(); uerr == nil {
			home = u.HomeDir
		}
	}
	if home == "" {
		return "opsbot.db"
	}
	return filepath.Join(home, ".local", "state", "opsbot", "opsbot.db")
}

// Open opens the database at path, creating its directory (0700) and the
// file (0600) if need be, and applies the migrations it lacks.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	// The driver reads options after the first '?'.
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("sqlite %s: a database path may not contain '?'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	// Create the file ourselves so it is private: SQLite would use 0644, and
	// gives the -wal and -shm files the database file's mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) //nolint:gosec // the operator's configured database
	if err != nil {
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}

	// Every connection: wait for locks rather than fail; enforce foreign
	// keys; WAL so readers do not block the writer; synchronous=FULL
	// because a committed claim lost to a power cut could run an action
	// twice; and BEGIN IMMEDIATE for every read-write transaction.
	dsn := path + "?" + strings.Join([]string{
		"_busy_timeout=" + strconv.FormatInt(busyTimeout.Milliseconds(), 10),
		"_foreign_keys=1",
		"_journal_mode=WAL",
		"_synchronous=FULL",
		"_txlock=immediate",
	}, "&")
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	// One connection: SQLite has one writer at a time anyway, and in-process
	// writers then queue in Go (microseconds) instead of sleeping in
	// SQLite's busy handler (whose back-off put a 50-way burst of audit
	// writes at a 900 ms p99). Other processes still wait on busy_timeout.
	db.SetMaxOpenConns(1)
	d := dialect
	d.Explain = readOnly(path)
	s := &Store{Store: sqlstore.New(db, d), db: db, auditQ: make(chan *auditWrite), stop: make(chan struct{})}
	// Processes opening a new file together can find it locked while one
	// of them switches it to WAL, before busy_timeout applies: try again.
	for attempt := 1; ; attempt++ {
		err := sqlstore.Migrate(ctx, s.Store, schema)
		if err == nil {
			break
		}
		if attempt == 5 || !locked(err) || ctx.Err() != nil {
			_ = db.Close()
			return nil, fmt.Errorf("sqlite %s: %w", path, err)
		}
		time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
	}
	s.writer.Go(s.auditWriter)
	return s, nil
}

// Close closes the database; later calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.writer.Wait()
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// schema applies the migrations; BEGIN IMMEDIATE holds the write lock from
// the start, so processes opening the same file at once apply each
// migration once, one after the other.
var schema = sqlstore.Schema{
	Files:   migrationFiles,
	Pattern: "migrations/*.sql",
	VersionTable: `CREATE TABLE IF NOT EXISTS schema_version (
		version INTEGER PRIMARY KEY,
		name    TEXT    NOT NULL,
		applied INTEGER NOT NULL
	) STRICT`,
}

// dialect is SQLite for the shared flow: ? placeholders, times as integer
// microseconds, no row locks (a write transaction holds the database),
// no arrays.
var dialect = sqlstore.Dialect{
	Name:     "sqlite",
	Time:     func(t time.Time) any { return t.UnixMicro() },
	Greatest: "max",
	Read:     &sql.TxOptions{ReadOnly: true}, // a deferred BEGIN: one snapshot, no write lock
}

// readOnly explains a failed write when the database's file system has
// turned read-only (a disk error remounted it so while the bot runs):
// SQLite says only "disk I/O error", and neither access(2) nor statfs(2)
// see ext4's emergency read-only state. Creating a file beside the
// database does; the database file itself is not opened, since closing a
// second descriptor of it would drop SQLite's locks.
func readOnly(path string) func(error) error {
	dir := filepath.Dir(path)
	return func(err error) error {
		if errors.Is(err, syscall.EROFS) {
			return err
		}
		f, cerr := os.CreateTemp(dir, ".opsbot-write-check-*")
		if cerr == nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
			return err
		}
		if errors.Is(cerr, syscall.EROFS) {
			return fmt.Errorf("%w (the file system of %s is read-only: %w)", err, dir, syscall.EROFS)
		}
		return err
	}
}

// locked reports SQLite's "database is locked" (SQLITE_BUSY).
func locked(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "database is locked") || strings.Contains(msg, "SQLITE_BUSY")
}
