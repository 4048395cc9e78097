package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/opsbot/opsbot/bot"
)

// SaveCommandToken implements bot.CommandTokens.
func (s *Store) SaveCommandToken(ctx context.Context, c bot.CommandToken) error {
	if err := bot.CheckCommandToken(c); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO command_tokens (platform, id, team, trigger, token_sha256, updated)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (platform, id) DO UPDATE SET team = excluded.team, trigger = excluded.trigger,
			token_sha256 = excluded.token_sha256, updated = excluded.updated`,
		c.Platform, c.ID, c.Team, c.Trigger, c.TokenSHA256, ts(c.Updated))
	if err != nil {
		return fmt.Errorf("postgres save command token: %w", err)
	}
	return nil
}

// CommandTokens implements bot.CommandTokens.
func (s *Store) CommandTokens(ctx context.Context, platform string) ([]bot.CommandToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT platform, id, team, trigger, token_sha256, updated
		FROM command_tokens WHERE platform = $1 ORDER BY team, trigger, id`, platform)
	if err != nil {
		return nil, fmt.Errorf("postgres command tokens: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (bot.CommandToken, error) {
		var c bot.CommandToken
		err := row.Scan(&c.Platform, &c.ID, &c.Team, &c.Trigger, &c.TokenSHA256, &c.Updated)
		c.Updated = c.Updated.UTC()
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres command tokens: %w", err)
	}
	return list, nil
}

// DeleteCommandToken implements bot.CommandTokens.
func (s *Store) DeleteCommandToken(ctx context.Context, platform, id string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM command_tokens WHERE platform = $1 AND id = $2`, platform, id); err != nil {
		return fmt.Errorf("postgres delete command token: %w", err)
	}
	return nil
}
