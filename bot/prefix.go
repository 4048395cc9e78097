package bot

import (
	"context"
	"strings"
	"unicode"
)

// Prefixed lets every command be typed under /opsbot (`/opsbot portcheck
// HOST PORT`), for teams that register one slash command rather than six.
// It rewrites such a line to the command's own (`/portcheck HOST PORT`)
// before the Router sees it, so permissions, approvals and the audit are
// those of the command itself. /opsbot's own subcommands (approve, hosts,
// ...) keep their meaning. The embedded Router still answers Knows and the
// rest.
type Prefixed struct {
	*Router
}

var _ Handler = Prefixed{}

// Handle implements Handler.
func (p Prefixed) Handle(ctx context.Context, req Request) Reply {
	req.Line = p.Unprefix(req.Line)
	return p.Router.Handle(ctx, req)
}

// Unprefix turns "/opsbot CMD ARGS" into "/CMD ARGS" when CMD is another
// command of the Router and not one of /opsbot's subcommands; any other
// line is returned as it is.
func (p Prefixed) Unprefix(line string) string {
	first, rest := cutWord(line)
	if strings.ToLower(strings.TrimPrefix(first, "/")) != "opsbot" {
		return line
	}
	name, _ := cutWord(rest)
	name = strings.ToLower(strings.TrimPrefix(name, "/"))
	if name == "" || name == "opsbot" || !p.Knows(name) {
		return line
	}
	if s, ok := p.commands["opsbot"].(Subcommander); ok {
		for _, sub := range s.Subcommands() {
			if sub == name {
				return line
			}
		}
	}
	return "/" + strings.TrimPrefix(strings.TrimSpace(rest), "/")
}

// cutWord splits s at the first white space after its first word.
func cutWord(s string) (word, rest string) {
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	if i := strings.IndexFunc(s, unicode.IsSpace); i >= 0 {
		return s[:i], s[i:]
	}
	return s, ""
}

// Commands lists the Router's commands in name order: what the chat
// platforms must register (the Slack manifest, Mattermost's slash
// commands).
func (r *Router) Commands() []Command {
	out := make([]Command, 0, len(r.names))
	for _, n := range r.names {
		out = append(out, r.commands[n])
	}
	return out
}
