package shell

import (
	"fmt"
	"strings"

	"github.com/opsbot/opsbot/bot"
)

// Render turns a reply into plain text for a terminal: the title, the
// result lines, an aligned table, the fields, the explanation, and each
// action as the command that would run, since a terminal has no buttons.
func Render(r bot.Reply) string {
	var b strings.Builder
	if r.Title != "" {
		b.WriteString(r.Title)
		b.WriteByte('\n')
	}
	for _, l := range r.Lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if r.Table != nil {
		writeTable(&b, r.Table)
	}
	if len(r.Fields) > 0 {
		parts := make([]string, len(r.Fields))
		for i, f := range r.Fields {
			parts[i] = f.Name + ": " + f.Value
		}
		b.WriteString(strings.Join(parts, " | "))
		b.WriteByte('\n')
	}
	if r.Text != "" {
		b.WriteString(r.Text)
		b.WriteByte('\n')
	}
	for _, a := range r.Actions {
		fmt.Fprintf(&b, "  [%s] %s\n", a.Label, a.Command)
	}
	return b.String()
}

func writeTable(b *strings.Builder, t *bot.Table) {
	for _, l := range t.Aligned() {
		b.WriteString(l)
		b.WriteByte('\n')
	}
}
