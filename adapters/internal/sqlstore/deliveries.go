package sqlstore

import (
	"context"
	"time"
)

// FirstDelivery implements bot.Deliveries. Of handles inserting one key at
// once, the second waits on the first (its row, or the write lock) and
// then inserts nothing.
func (s *Store) FirstDelivery(ctx context.Context, keys []string, now, until time.Time) (bool, error) {
	fresh := true
	err := InTx(ctx, s, func(tx Tx) error {
		fresh = true
		if _, err := tx.exec(ctx, `DELETE FROM deliveries WHERE expires < ?`, s.t(now)); err != nil {
			return err
		}
		for _, k := range keys {
			if k == "" {
				continue
			}
			res, err := tx.exec(ctx, `INSERT INTO deliveries (key, expires) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, k, s.t(until))
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
		return false, s.fail("first delivery", err)
	}
	return fresh, nil
}
