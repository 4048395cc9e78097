package sshrun_test

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/sshrun"
)

func TestQuote_WordsComeBackLiterally(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		argv []string
	}{
		{"plain", []string{"apache2ctl", "-S"}},
		{"spaces and empty words", []string{"a b", "", "  ", "\t\n"}},
		{"single and double quotes", []string{`it's`, `"x"`, `'`, `''`, `'\''`}},
		{"substitutions", []string{"$(id)", "`id`", "${HOME}", "$HOME", "$$"}},
		{"separators and globs", []string{";", "&&", "|", "&", "*", "?", "[a]", "~", "#x", "> /tmp/x", "<", "!"}},
		{"backslashes", []string{`\`, `\\`, `a\'b`, `\n`}},
		{"bytes beyond ASCII", []string{"héllo", "\xff\xfe", "\x01\x7f"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.argv, viaShell(t, tt.argv))
		})
	}
}

func TestQuote_RefusesNUL(t *testing.T) {
	t.Parallel()
	_, err := sshrun.Quote([]string{"ok", "a\x00b"})
	require.ErrorContains(t, err, "argument 1 contains a NUL byte")
}

func TestRemoteCommand_PrefixesBecomeAsWords(t *testing.T) {
	t.Parallel()
	tests := []struct {
		become, want, wantErr string
	}{
		{"", `'apache2ctl' '-k' 'graceful'`, ""},
		{"sudo", `'sudo' '-n' '--' 'apache2ctl' '-k' 'graceful'`, ""},
		{"doas", `'doas' '-n' '--' 'apache2ctl' '-k' 'graceful'`, ""},
		{"su", "", `unknown privilege escalation "su"`},
	}
	for _, tt := range tests {
		t.Run("become "+tt.become, func(t *testing.T) {
			t.Parallel()
			got, err := sshrun.RemoteCommand(tt.become, []string{"apache2ctl", "-k", "graceful"})
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	_, err := sshrun.RemoteCommand("", nil)
	require.ErrorContains(t, err, "empty command")
}

// FuzzQuote: whatever the words, /bin/sh -c "printf '%s\0' QUOTED" prints
// exactly those words back.
func FuzzQuote(f *testing.F) {
	f.Add("a b", `it's`, "$(id); `id` | x & y > z")
	f.Add("", "'", `\'"`)
	f.Add("\n", "*", "~root")
	f.Add("a\x00b", "x", "y")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		argv := []string{a, b, c}
		if len(a)+len(b)+len(c) > 1024 {
			t.Skip("bounded inputs")
		}
		if strings.ContainsRune(a+b+c, 0) {
			_, err := sshrun.Quote(argv)
			require.Error(t, err)
			return
		}
		require.Equal(t, argv, viaShell(t, argv))
	})
}

// viaShell runs printf through /bin/sh with argv quoted by Quote and returns
// the words printf received.
func viaShell(t *testing.T, argv []string) []string {
	t.Helper()
	quoted, err := sshrun.Quote(argv)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", `printf '%s\0' `+quoted)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "sh -c %q: %s", quoted, stderr.String())
	got := strings.Split(stdout.String(), "\x00")
	require.Equal(t, "", got[len(got)-1], "output ends with NUL")
	return got[:len(got)-1]
}
