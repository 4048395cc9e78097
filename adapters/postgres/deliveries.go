package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// FirstDelivery implements bot.Deliveries. Of replicas inserting one key
// at once, the second waits on the first's row and then inserts nothing.
func (s *Store) FirstDelivery(ctx context.Context, keys []string, now, until time.Time) (bool, error) {
	fresh := true
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		fresh = true
		if _, err := tx.Exec(ctx, `DELETE FROM deliveries WHERE expires < $1`, ts(now)); err != nil {
			return err
		}
		for _, k := range keys {
			if k == "" {
				continue
			}
			tag, err := tx.Exec(ctx, `INSERT INTO deliveries (key, expires) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, k, ts(until))
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				fresh = false
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("postgres first delivery: %w", err)
	}
	return fresh, nil
}
