package bot

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBecomeArgv(t *testing.T) {
	for _, tc := range []struct {
		become string
		want   []string
	}{
		{"", []string{"apache2ctl", "-k", "graceful"}},
		{"sudo", []string{"sudo", "-n", "--", "apache2ctl", "-k", "graceful"}},
		{"doas", []string{"doas", "-n", "--", "apache2ctl", "-k", "graceful"}},
	} {
		got, err := BecomeArgv(tc.become, []string{"apache2ctl", "-k", "graceful"})
		require.NoError(t, err)
		assert.Equal(t, tc.want, got)
	}
	for _, bad := range []struct {
		become string
		argv   []string
		want   string
	}{
		{"", nil, "empty command"},
		{"", []string{""}, "empty command"},
		{"", []string{"echo", "a\x00b"}, "argument 1 contains a NUL byte"},
		{"su", []string{"id"}, `unknown privilege escalation "su"`},
	} {
		_, err := BecomeArgv(bad.become, bad.argv)
		require.Error(t, err)
		assert.Contains(t, err.Error(), bad.want)
	}
}

func TestLimitedBuffer_KeepsThePrefixAndNeverBlocks(t *testing.T) {
	b := &LimitedBuffer{Limit: 5}
	n, err := b.Write([]byte("abc"))
	assert.Equal(t, 3, n)
	require.NoError(t, err)
	assert.False(t, b.Truncated())
	n, err = b.Write([]byte("defgh"))
	assert.Equal(t, 5, n, "reports the whole write, so the writer goes on")
	require.NoError(t, err)
	assert.Equal(t, "abcde", string(b.Bytes()))
	assert.True(t, b.Truncated())
}
