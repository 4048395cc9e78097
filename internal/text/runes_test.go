package text

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTruncateRunes_CountsCharactersNotBytes(t *testing.T) {
	assert.Equal(t, "héllo", TruncateRunes("héllo", 5), "5 characters, 6 bytes: unchanged")
	assert.Equal(t, "hé…", TruncateRunes("héllo", 3))
	assert.Equal(t, "€€…", TruncateRunes("€€€€", 3))
	assert.Equal(t, "…", TruncateRunes("abc", 0))
	assert.Equal(t, "", TruncateRunes("", 0))
}
