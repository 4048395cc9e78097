package bot

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSplitWords(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"plain", "/portcheck 10.0.0.1 80", []string{"/portcheck", "10.0.0.1", "80"}},
		{"extra spaces and tabs", "  a \t b  ", []string{"a", "b"}},
		{"double quotes group", `say "hello world"`, []string{"say", "hello world"}},
		{"single quotes group", `say 'a "b" c'`, []string{"say", `a "b" c`}},
		{"typographic quotes from Slack", "deny 1 “not now”", []string{"deny", "1", "not now"}},
		{"typographic single quotes", "x ‘a b’", []string{"x", "a b"}},
		{"backslash escapes a space", `a\ b c`, []string{"a b", "c"}},
		{"empty quotes are a word", `a ""`, []string{"a", ""}},
		{"empty line", "   ", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SplitWords(tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestSplitWords_RejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"invalid UTF-8", "/portcheck \xff\xfe 80", "not valid UTF-8"},
		{"unterminated quote", `a "b`, "unterminated quote"},
		{"control character", "a\x00b", "control character"},
		{"trailing backslash", `a \`, "lone backslash"},
		{"10000 arguments", "/portcheck" + strings.Repeat(" 1", 10000), "too many arguments"},
		{"too long", strings.Repeat("a", MaxLineBytes+1), "bytes long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := SplitWords(tc.in)
			require.Error(t, err)
			assert.Equal(t, EINVALID, ErrorCode(err))
			assert.Contains(t, ErrorMessage(err), tc.want)
		})
	}
}

func TestParseFlags_NetcatStyle(t *testing.T) {
	spec := FlagSpec{Bools: "zvun46", Values: "w"}
	f, err := ParseFlags([]string{"-zuv", "-w", "3", "10.0.0.1", "123"}, spec)
	require.NoError(t, err)
	assert.True(t, f.Has('z') && f.Has('u') && f.Has('v'))
	assert.False(t, f.Has('n'))
	w, ok := f.Value('w')
	assert.True(t, ok)
	assert.Equal(t, "3", w)
	assert.Equal(t, []string{"10.0.0.1", "123"}, f.Args)

	f, err = ParseFlags([]string{"-zvw3", "h", "--", "-x"}, spec)
	require.NoError(t, err)
	w, _ = f.Value('w')
	assert.Equal(t, "3", w)
	assert.Equal(t, []string{"h", "-x"}, f.Args, "-- ends the flags")

	f, err = ParseFlags([]string{"h", "-5"}, spec)
	require.NoError(t, err)
	assert.Equal(t, []string{"h", "-5"}, f.Args, "a negative number is an argument for its own error")
}

func TestParseFlags_Errors(t *testing.T) {
	spec := FlagSpec{Bools: "zv", Values: "w"}
	_, err := ParseFlags([]string{"-zx"}, spec)
	require.Error(t, err)
	assert.Contains(t, ErrorMessage(err), "unknown flag -x")
	assert.Contains(t, ErrorMessage(err), "-z, -v, -w VALUE")
	_, err = ParseFlags([]string{"-w"}, spec)
	assert.Contains(t, ErrorMessage(err), "-w needs a value")
	_, err = ParseFlags([]string{"--timeout"}, spec)
	assert.Contains(t, ErrorMessage(err), "unknown option")
}

func FuzzSplitWords(f *testing.F) {
	for _, s := range []string{"/portcheck -zuv 10.0.0.1 80", `a "b c" 'd'`, "“x y”", `a\ b`, "\xff", "$(id) `id` a;b"} {
		f.Add(s)
	}
	spec := FlagSpec{Bools: "zvun46", Values: "w"}
	f.Fuzz(func(t *testing.T, line string) {
		words, err := SplitWords(line)
		if err != nil {
			if ErrorCode(err) != EINVALID || ErrorMessage(err) == "" {
				t.Fatalf("error without a user message: %v", err)
			}
			return
		}
		if len(words) > MaxWords {
			t.Fatalf("%d words passed the limit", len(words))
		}
		for _, w := range words {
			for _, r := range w {
				if r < 0x20 && r != '\t' && r != '\n' && r != '\r' && r != '\v' && r != '\f' {
					t.Fatalf("control character %U in word %q", r, w)
				}
			}
		}
		if _, err := ParseFlags(words, spec); err != nil && ErrorMessage(err) == "" {
			t.Fatalf("flag error without a user message: %v", err)
		}
	})
}
