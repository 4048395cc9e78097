package sshrun

import (
	"errors"
	"fmt"
	"strings"
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

// RemoteCommand returns the command string for argv, prefixed by the
// privilege escalation become names ("", "sudo" or "doas"). Both prefixes
// are non-interactive (-n), so a missing sudoers or doas.conf rule fails at
// once instead of waiting for a password, and end with "--" so that argv[0]
// is never read as an option.
func RemoteCommand(become string, argv []string) (string, error) {
	if len(argv) == 0 || argv[0] == "" {
		return "", errors.New("empty command")
	}
	var prefix []string
	switch become {
	case "":
	case "sudo":
		prefix = []string{"sudo", "-n", "--"}
	case "doas":
		prefix = []string{"doas", "-n", "--"}
	default:
		return "", fmt.Errorf("unknown privilege escalation %q (want sudo, doas or none)", become)
	}
	return Quote(append(prefix, argv...))
}
