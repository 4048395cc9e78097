// Package bot is opsbot's core: the Request a chat platform or the terminal
// hands in, the platform-neutral Reply a command hands back, the Router that
// checks input, policy and rate limits between them, and the policy itself.
// It imports no chat platform and no transport: adapters and commands import
// bot, never the other way round.
package bot

import "context"

// Command is one chat command (/portcheck, /scan, ...). Run parses the
// request's arguments with a fresh parser, validates every field, acts and
// returns a Reply. Errors of type *Error are shown to the user as they are;
// any other error is logged and shown as "internal error, ref ...".
type Command interface {
	Name() string
	// Summary is the one line shown in the command list.
	Summary() string
	// Usage is the full help: synopsis, arguments, examples, and what the
	// command can and cannot tell.
	Usage() string
	Run(ctx context.Context, req Request) (Reply, error)
}

// Handler turns a Request into a Reply. The Router is the one every adapter
// uses, so chat and terminal go through the same checks.
type Handler interface {
	Handle(ctx context.Context, req Request) Reply
}

// Control is what /opsbot asks of the Router: decisions on approval
// requests, the list of requests pending, running and recently ended, the
// asker's permissions and the audit log.
type Control interface {
	Decide(ctx context.Context, req Request, id string, approve bool, reason string) (Reply, error)
	// Approvals lists the requests the asker may see (see Router.Approvals).
	Approvals(ctx context.Context, req Request, all bool) ([]Approval, error)
	Who(req Request) (roles, run, approve []string)
	AuditLog(ctx context.Context, n int) ([]AuditRecord, error)
	Cancel(ctx context.Context, req Request, id string) (Reply, error)
}

var _ Control = (*Router)(nil)
