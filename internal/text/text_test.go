package text

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

func TestTruncate_ShortIsUnchanged(t *testing.T) {
	assert.Equal(t, "abc", Truncate("abc", 3))
	assert.Equal(t, "", Truncate("", 0))
	assert.Equal(t, "é", Truncate("é", 2))
}

func TestTruncate_ASCIIKeepsNBytes(t *testing.T) {
	assert.Equal(t, "abcd...", Truncate("abcdefgh", 4))
	assert.Equal(t, "...", Truncate("abc", 0))
}

// A multi-byte character across the cut is dropped whole: "é" is 2 bytes,
// "€" 3, "😀" 4; a cut at every byte offset gives valid UTF-8, a prefix of
// the input, at most n bytes before the "...".
func TestTruncate_NeverSplitsAMultiByteCharacter(t *testing.T) {
	assert.Equal(t, "a...", Truncate("aé", 2), "the cut falls inside é")
	assert.Equal(t, "ab...", Truncate("ab€x", 4), "the cut falls inside €")
	s := "xé€😀y😀€éz"
	for n := 0; n < len(s); n++ {
		got := Truncate(s, n)
		assert.True(t, utf8.ValidString(got), "n=%d: %q", n, got)
		head := strings.TrimSuffix(got, "...")
		assert.True(t, strings.HasPrefix(s, head), "n=%d: %q", n, got)
		assert.LessOrEqual(t, len(head), n, "n=%d", n)
		assert.Greater(t, len(head), n-4, "n=%d: at most one character (4 bytes) dropped", n)
	}
}

func TestTruncate_NegativeIsEmpty(t *testing.T) {
	assert.Equal(t, "...", Truncate("abc", -1))
}
