// Package text holds string helpers shared by the core, the commands and
// the adapters, which may import nothing of each other.
package text

import "unicode/utf8"

// Truncate shortens s to at most n bytes followed by "...", for quoting
// user input or tool output in a one-line message. It cuts on a rune
// boundary, so a multi-byte character is dropped whole, never split into
// invalid UTF-8 (which Slack and Mattermost reject or show as U+FFFD).
// A string of at most n bytes is returned unchanged.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n < 0 {
		n = 0
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
