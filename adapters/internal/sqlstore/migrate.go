package sqlstore

import (
	"context"
	"fmt"
	"io/fs"
	"time"
)

// Schema is how a database keeps its migrations.
type Schema struct {
	Files   fs.FS
	Pattern string // "migrations/*.sql"
	// VersionTable creates schema_version if it is missing.
	VersionTable string
	// Lock, if set, runs first in each migration's transaction, so that
	// processes starting together apply each migration once (PostgreSQL:
	// an advisory lock; SQLite's BEGIN IMMEDIATE already serializes them).
	Lock string
}

// Migrate applies each missing migration in its own write transaction and
// refuses a database whose schema is newer than this opsbot knows.
func Migrate(ctx context.Context, s *Store, sc Schema) error {
	ms, err := readMigrations(sc.Files, sc.Pattern)
	if err != nil {
		return err
	}
	for _, m := range ms {
		err := InTx(ctx, s, func(tx Tx) error {
			if sc.Lock != "" {
				if _, err := tx.exec(ctx, sc.Lock); err != nil {
					return err
				}
			}
			if _, err := tx.exec(ctx, sc.VersionTable); err != nil {
				return err
			}
			var n int
			if err := tx.queryRow(ctx, `SELECT count(*) FROM schema_version WHERE version = ?`, m.Version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.tx.ExecContext(ctx, m.SQL); err != nil { // as written: no placeholders
				return err
			}
			_, err := tx.exec(ctx, `INSERT INTO schema_version (version, name, applied) VALUES (?, ?, ?)`,
				m.Version, m.Name, s.t(time.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	var newest int
	if err := s.db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&newest); err != nil {
		return fmt.Errorf("schema version: %w", err)
	}
	if known := ms[len(ms)-1].Version; newest > known {
		return fmt.Errorf("database schema version %d is newer than this opsbot knows (%d): upgrade opsbot", newest, known)
	}
	return nil
}
