package hostcmd

import (
	"fmt"
	"strings"

	"github.com/opsbot/opsbot/bot"
)

// The small words every host command's replies use.

// Plural is "1 host", "2 hosts".
func Plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// Dash stands for an empty table cell.
func Dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ListOrNone is "web1, web2", or "none".
func ListOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// ErrText is what a reply shows of err: its message safe to show, else
// the error itself (a command's own errors say what went wrong without
// secrets).
func ErrText(err error) string {
	if m := bot.ErrorMessage(err); m != "" {
		return m
	}
	return err.Error()
}

// Names are the hosts' names.
func Names(hs []bot.Host) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Name
	}
	return out
}
