package sqlstore

import (
	"context"

	"github.com/opsbot/opsbot/bot"
)

// SaveCommandToken implements bot.CommandTokens.
func (s *Store) SaveCommandToken(ctx context.Context, c bot.CommandToken) error {
	if err := bot.CheckCommandToken(c); err != nil {
		return err
	}
	err := InTx(ctx, s, func(tx Tx) error {
		_, err := tx.exec(ctx, `INSERT INTO command_tokens (platform, id, team, trigger, token_sha256, updated)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (platform, id) DO UPDATE SET team = excluded.team, trigger = excluded.trigger,
				token_sha256 = excluded.token_sha256, updated = excluded.updated`,
			c.Platform, c.ID, c.Team, c.Trigger, c.TokenSHA256, s.t(c.Updated))
		return err
	})
	if err != nil {
		return s.fail("save command token", err)
	}
	return nil
}

// CommandTokens implements bot.CommandTokens.
func (s *Store) CommandTokens(ctx context.Context, platform string) ([]bot.CommandToken, error) {
	var list []bot.CommandToken
	err := s.inReadTx(ctx, func(tx Tx) error {
		rows, err := tx.query(ctx, `SELECT platform, id, team, trigger, token_sha256, updated
			FROM command_tokens WHERE platform = ? ORDER BY team, trigger, id`, platform)
		if err != nil {
			return err
		}
		defer func() { _ = rows.Close() }()
		for rows.Next() {
			var c bot.CommandToken
			if err := rows.Scan(&c.Platform, &c.ID, &c.Team, &c.Trigger, &c.TokenSHA256, timeInto(&c.Updated)); err != nil {
				return err
			}
			list = append(list, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, s.fail("command tokens", err)
	}
	return list, nil
}

// DeleteCommandToken implements bot.CommandTokens.
func (s *Store) DeleteCommandToken(ctx context.Context, platform, id string) error {
	err := InTx(ctx, s, func(tx Tx) error {
		_, err := tx.exec(ctx, `DELETE FROM command_tokens WHERE platform = ? AND id = ?`, platform, id)
		return err
	})
	if err != nil {
		return s.fail("delete command token", err)
	}
	return nil
}
