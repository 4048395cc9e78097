package bot

import (
	"context"
	"encoding/hex"
	"time"
)

// CommandTokens keeps the verification tokens of the slash commands opsbot
// registered itself on a chat server (opsbot mattermost register), so that
// every replica verifies a command against the store: no token list in the
// environment, and no restart when a command is added or its token
// changes. The store keeps a token's SHA-256, never the token.
type CommandTokens interface {
	// SaveCommandToken records c, replacing what was recorded for the same
	// Platform and ID. A field missing is an *Error EINVALID.
	SaveCommandToken(ctx context.Context, c CommandToken) error
	// CommandTokens lists what is recorded for platform, ordered by team
	// then trigger.
	CommandTokens(ctx context.Context, platform string) ([]CommandToken, error)
	// DeleteCommandToken forgets a command; an unknown one is not an error.
	DeleteCommandToken(ctx context.Context, platform, id string) error
}

// CommandToken is one registered slash command.
type CommandToken struct {
	Platform    string // "mattermost"
	ID          string // the command's ID on the server
	Team        string // the team's ID
	Trigger     string // without the leading slash
	TokenSHA256 string // hex SHA-256 of the command's token
	Updated     time.Time
}

// CheckCommandToken validates what SaveCommandToken records.
func CheckCommandToken(c CommandToken) error {
	switch {
	case c.Platform == "" || c.ID == "" || c.Team == "" || c.Trigger == "":
		return Errorf(EINVALID, "a command token needs its platform, command ID, team and trigger")
	case len(c.TokenSHA256) != 64:
		return Errorf(EINVALID, "a command token is kept as a hex SHA-256 (64 characters), got %d characters", len(c.TokenSHA256))
	}
	if _, err := hex.DecodeString(c.TokenSHA256); err != nil {
		return Errorf(EINVALID, "a command token's SHA-256 is not hex")
	}
	return nil
}
