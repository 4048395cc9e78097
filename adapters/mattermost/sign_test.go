package mattermost

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSign_RoundTripAndExpiry(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := action{Line: "/opsbot approve 0123456789ab", Ref: "0123456789ab", Channel: "c1", Expires: now.Add(time.Hour)}
	c := a.context([]byte(testSecret))

	got, err := verify([]byte(testSecret), c, now)
	require.NoError(t, err)
	assert.Equal(t, a.Line, got.Line)

	_, err = verify([]byte(testSecret), c, now.Add(time.Hour))
	assert.ErrorIs(t, err, errExpired)
	_, err = verify([]byte("another secret, another server!!"), c, now)
	assert.ErrorIs(t, err, errForged)
}

func TestSign_FieldsCannotTradeCharacters(t *testing.T) {
	// Without length prefixes "ab"+"c" and "a"+"bc" would sign alike.
	assert.NotEqual(t, canonical("1", "ab", "c"), canonical("1", "a", "bc"))
	assert.NotEqual(t, canonical("1", "a\n1:b"), canonical("1", "a", "b"))

	now := time.Unix(1_800_000_000, 0)
	c := action{Line: "/opsbot approve 0123456789ab", Ref: "x", Channel: "c1", Expires: now.Add(time.Hour)}.context([]byte(testSecret))
	c["line"], c["ref"] = "/opsbot approve 0123456789a", "bx"
	_, err := verify([]byte(testSecret), c, now)
	assert.ErrorIs(t, err, errForged)
}
