package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
)

func digest(token string) string {
	d := sha256.Sum256([]byte(token))
	return hex.EncodeToString(d[:])
}

// testCommandTokens: saved tokens are listed per platform by team and
// trigger, a second save of one command replaces it, deleting forgets it,
// and every handle on the database sees the same.
func testCommandTokens(t *testing.T, open func(t *testing.T) bot.Store) {
	a, b := open(t), open(t)
	ctx := t.Context()

	empty, err := a.CommandTokens(ctx, "mattermost")
	require.NoError(t, err)
	assert.Empty(t, empty)

	scan := bot.CommandToken{Platform: "mattermost", ID: "cmdscan", Team: "team1", Trigger: "scan", TokenSHA256: digest("tok-scan"), Updated: t0}
	port := bot.CommandToken{Platform: "mattermost", ID: "cmdport", Team: "team1", Trigger: "portcheck", TokenSHA256: digest("tok-port"), Updated: t0}
	other := bot.CommandToken{Platform: "mattermost", ID: "cmdops", Team: "team0", Trigger: "opsbot", TokenSHA256: digest("tok-ops"), Updated: t0}
	elsewhere := bot.CommandToken{Platform: "otherchat", ID: "cmdscan", Team: "team1", Trigger: "scan", TokenSHA256: digest("x"), Updated: t0}
	for _, c := range []bot.CommandToken{scan, port, other, elsewhere} {
		require.NoError(t, a.SaveCommandToken(ctx, c))
	}
	got, err := b.CommandTokens(ctx, "mattermost")
	require.NoError(t, err)
	n := func(c bot.CommandToken) bot.CommandToken { c.Updated = norm(c.Updated); return c }
	assert.Equal(t, []bot.CommandToken{n(other), n(port), n(scan)}, got, "ordered by team, then trigger; only this platform")

	// A new token (regenerated) and a changed trigger replace the record.
	scan.TokenSHA256, scan.Trigger, scan.Updated = digest("tok-scan-2"), "scan2", t0.Add(time.Hour)
	require.NoError(t, b.SaveCommandToken(ctx, scan))
	got, err = a.CommandTokens(ctx, "mattermost")
	require.NoError(t, err)
	assert.Equal(t, []bot.CommandToken{n(other), n(port), n(scan)}, got)

	require.NoError(t, a.DeleteCommandToken(ctx, "mattermost", "cmdport"))
	require.NoError(t, a.DeleteCommandToken(ctx, "mattermost", "no-such-command"), "deleting an unknown command is not an error")
	got, err = b.CommandTokens(ctx, "mattermost")
	require.NoError(t, err)
	assert.Equal(t, []bot.CommandToken{n(other), n(scan)}, got)
	got, err = b.CommandTokens(ctx, "otherchat")
	require.NoError(t, err)
	assert.Equal(t, []bot.CommandToken{n(elsewhere)}, got, "the other platform's command of the same ID is untouched")
}

func testCommandTokensRejectBadInput(t *testing.T, open func(t *testing.T) bot.Store) {
	s := open(t)
	good := bot.CommandToken{Platform: "mattermost", ID: "c1", Team: "t1", Trigger: "scan", TokenSHA256: digest("x"), Updated: t0}
	for name, mutate := range map[string]func(*bot.CommandToken){
		"no platform":             func(c *bot.CommandToken) { c.Platform = "" },
		"no ID":                   func(c *bot.CommandToken) { c.ID = "" },
		"no team":                 func(c *bot.CommandToken) { c.Team = "" },
		"no trigger":              func(c *bot.CommandToken) { c.Trigger = "" },
		"a token, not its digest": func(c *bot.CommandToken) { c.TokenSHA256 = "plain-token" },
		"not hex":                 func(c *bot.CommandToken) { c.TokenSHA256 = digest("x")[:63] + "z" },
	} {
		t.Run(name, func(t *testing.T) {
			c := good
			mutate(&c)
			requireCode(t, s.SaveCommandToken(t.Context(), c), bot.EINVALID)
		})
	}
	got, err := s.CommandTokens(t.Context(), "mattermost")
	require.NoError(t, err)
	assert.Empty(t, got, "nothing invalid was stored")
}
