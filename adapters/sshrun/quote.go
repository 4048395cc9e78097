package sshrun

import (
	"fmt"
	"strings"

	"github.com/opsbot/opsbot/bot"
)

// Why quoting is safe here. The SSH protocol carries a command as one
// string, which sshd hands to the remote user's login shell as `$SHELL -c
// STRING` (the runner puts a fixed prelude in front, see watched; no part of
// it comes from a request). RemoteCommand therefore wraps every argv word in single quotes,
// writing each ' inside a word as '\'' (close the quote, an escaped quote,
// reopen). Between single quotes a POSIX shell gives no character a meaning
// — not $, `, \, ;, |, &, *, ?, ~, #, spaces, tabs nor newlines — so each
// word comes out as exactly one word, byte for byte, with no expansion, and
// the words are joined by spaces outside quotes. The only byte that cannot
// be carried is NUL (a C string ends there), so a word holding one is
// refused before anything runs. FuzzQuote checks the round trip through
// /bin/sh.
//
// This holds for POSIX shells (sh, dash, bash, ksh, zsh) as the remote login
// shell; csh, tcsh and fish quote differently and are not supported.

// Quote returns words quoted for a POSIX shell and joined by spaces.
func Quote(words []string) (string, error) {
	var b strings.Builder
	for i, w := range words {
		if strings.IndexByte(w, 0) >= 0 {
			return "", fmt.Errorf("argument %d contains a NUL byte", i)
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('\'')
		b.WriteString(strings.ReplaceAll(w, `'`, `'\''`))
		b.WriteByte('\'')
	}
	return b.String(), nil
}

// RemoteCommand returns the command string for argv with the privilege
// escalation become names ("", "sudo" or "doas"), as bot.BecomeArgv builds
// it, every word quoted.
func RemoteCommand(become string, argv []string) (string, error) {
	words, err := bot.BecomeArgv(become, argv)
	if err != nil {
		return "", err
	}
	return Quote(words)
}
