// Package relayd owns /relayd, opsbot's view of OpenBSD relayd. This part
// reads relayd's own words: the output of relayctl's show views, sessions
// and monitor, of `relayd -n`, and the ways relayctl fails, each into typed
// values. It runs nothing and formats no replies, so that the command code
// never matches text itself and every format fact lives in one place
// (shared/fixtures/relayd/FORMATS.md is the source for all of them).
//
// The parsers never fail: a line they do not understand is kept as a Line
// with a reason, because a status digest that quietly shows less than
// relayctl printed is worse than one that says "2 lines not understood".
package relayd

import (
	"fmt"
	"strings"
)

// Type is the kind of object in the Type column of a show view.
type Type string

// Object types, as relayctl prints them.
const (
	TypeRedirect Type = "redirect"
	TypeTable    Type = "table"
	TypeHost     Type = "host"
	TypeRelay    Type = "relay"
	TypeRouter   Type = "router"
)

// State is a status without its remark: "active (2 hosts)" is active.
type State string

// States relayctl prints. Which ones an object can have depends on its type:
// redirects are active, down or disabled; tables active, empty or disabled;
// hosts up, down, unknown (no check completed yet) or disabled; relays and
// routers active or disabled.
const (
	StateActive   State = "active"
	StateDisabled State = "disabled"
	StateDown     State = "down"
	StateEmpty    State = "empty"
	StateUp       State = "up"
	StateUnknown  State = "unknown"
)

// Ref names one object. Ids are unique per type only (redirect 1, table 1
// and host 1 are three objects), so a reference always carries both.
type Ref struct {
	Type Type   `json:"type"`
	ID   uint32 `json:"id"`
	Name string `json:"name"`
}

func (r Ref) String() string {
	return fmt.Sprintf("%s %s (id %d)", r.Type, r.Name, r.ID)
}

// Line is one output line kept as printed: a line a parser did not
// understand (Reason says why), or a message of `relayd -n` without a
// FILE:LINE position.
type Line struct {
	N      int    `json:"n"` // 1-based line number in the output
	Text   string `json:"text"`
	Reason string `json:"reason,omitempty"`
}

// splitLines numbers the lines of out from 1. A last line without its
// newline (output cut short by a timeout or a size bound) still counts.
func splitLines(out []byte) []string {
	s := strings.TrimSuffix(string(out), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// rtrim drops trailing blanks: relayctl pads columns with spaces, and a
// runner or a terminal may leave a CR or trailing spaces behind. The left
// side is kept because a leading TAB is what marks a detail line.
func rtrim(s string) string {
	return strings.TrimRight(s, " \t\r")
}

// blank lines carry nothing; relayctl prints none, so they are skipped
// rather than reported.
func blank(s string) bool {
	return strings.TrimSpace(s) == ""
}
