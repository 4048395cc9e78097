package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// FirstDelivery implements bot.Deliveries, under the write lock.
func (s *Store) FirstDelivery(ctx context.Context, keys []string, now, until time.Time) (bool, error) {
	fresh := true
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		fresh = true
		if _, err := tx.ExecContext(ctx, `DELETE FROM deliveries WHERE expires < ?`, micros(now)); err != nil {
			return err
		}
		for _, k := range keys {
			if k == "" {
				continue
			}
			res, err := tx.ExecContext(ctx, `INSERT INTO deliveries (key, expires) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, k, micros(until))
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				fresh = false
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("sqlite first delivery: %w", err)
	}
	return fresh, nil
}
