package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/opsbot/opsbot/bot"
)

// SaveCommandToken implements bot.CommandTokens.
func (s *Store) SaveCommandToken(ctx context.Context, c bot.CommandToken) error {
	if err := bot.CheckCommandToken(c); err != nil {
		return err
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO command_tokens (platform, id, team, trigger, token_sha256, updated)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (platform, id) DO UPDATE SET team = excluded.team, trigger = excluded.trigger,
				token_sha256 = excluded.token_sha256, updated = excluded.updated`,
			c.Platform, c.ID, c.Team, c.Trigger, c.TokenSHA256, micros(c.Updated))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite save command token: %w", err)
	}
	return nil
}

// CommandTokens implements bot.CommandTokens.
func (s *Store) CommandTokens(ctx context.Context, platform string) ([]bot.CommandToken, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT platform, id, team, trigger, token_sha256, updated
		FROM command_tokens WHERE platform = ? ORDER BY team, trigger, id`, platform)
	if err != nil {
		return nil, fmt.Errorf("sqlite command tokens: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var list []bot.CommandToken
	for rows.Next() {
		var (
			c       bot.CommandToken
			updated int64
		)
		if err := rows.Scan(&c.Platform, &c.ID, &c.Team, &c.Trigger, &c.TokenSHA256, &updated); err != nil {
			return nil, fmt.Errorf("sqlite command tokens: %w", err)
		}
		c.Updated = fromMicros(updated)
		list = append(list, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite command tokens: %w", err)
	}
	return list, nil
}

// DeleteCommandToken implements bot.CommandTokens.
func (s *Store) DeleteCommandToken(ctx context.Context, platform, id string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM command_tokens WHERE platform = ? AND id = ?`, platform, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite delete command token: %w", err)
	}
	return nil
}
