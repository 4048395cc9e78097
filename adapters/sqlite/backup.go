package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// Backup writes a consistent copy of the database to path while the store
// stays in use (VACUUM INTO: one read transaction, so writers on other
// connections go on). path must not exist yet. The copy is a complete
// SQLite database: point OPSBOT_DATABASE at it to restore.
func (s *Store) Backup(ctx context.Context, path string) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("backup %s: the file exists; give a new file name", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("backup %s: %w", path, err)
	}
	if _, err := s.db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("backup %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil { // the audit log is not for everyone
		return fmt.Errorf("backup %s: %w", path, err)
	}
	return nil
}
