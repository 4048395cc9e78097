package sqlstore

import (
	"context"
	"time"
)

// FirstDelivery implements bot.Deliveries. Of handles inserting one key at
// once, the second waits on the first (its row, or the write lock) and
// then inserts nothing.
func (s *Store) FirstDelivery(ctx context.Context, keys []string, now, until time.Time) (bool, error) {
	var fresh bool
	err := InTx(ctx, s, func(tx Tx) error {
		var err error
		fresh, err = FirstDeliveryIn(ctx, s, tx, keys, now, until)
		return err
	})
	if err != nil {
		return false, s.fail("first delivery", err)
	}
	return fresh, nil
}

// FirstDeliveryIn is FirstDelivery inside tx, for a store that commits
// several writes together: it drops the expired keys, records keys, and
// reports whether none of them was recorded before.
func FirstDeliveryIn(ctx context.Context, s *Store, tx Tx, keys []string, now, until time.Time) (bool, error) {
	if _, err := tx.exec(ctx, `DELETE FROM deliveries WHERE expires < ?`, s.t(now)); err != nil {
		return false, err
	}
	fresh := true
	for _, k := range keys {
		if k == "" {
			continue
		}
		res, err := tx.exec(ctx, `INSERT INTO deliveries (key, expires) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, k, s.t(until))
		if err != nil {
			return false, err
		}
		if n, err := res.RowsAffected(); err != nil {
			return false, err
		} else if n == 0 {
			fresh = false
		}
	}
	return fresh, nil
}
