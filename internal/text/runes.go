package text

// TruncateRunes shortens s to at most n characters, the last of them "…",
// for text whose width is what matters (a tool's banner, a service name
// from another host) rather than its bytes. A string of at most n
// characters is returned unchanged; n below 1 gives "…".
func TruncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n < 1 {
		return "…"
	}
	return string(r[:n-1]) + "…"
}
