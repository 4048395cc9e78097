package commands

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
)

// Opsbot is /opsbot: the bot itself. Help is answered by the Router; this
// command holds whoami, the approvals list, approve, deny and the audit log.
type Opsbot struct {
	ctrl bot.Control
	now  func() time.Time
}

// NewOpsbot acts through the Router's control interface.
func NewOpsbot(ctrl bot.Control) *Opsbot {
	return &Opsbot{ctrl: ctrl, now: time.Now}
}

var (
	_ bot.Command      = (*Opsbot)(nil)
	_ bot.Subcommander = (*Opsbot)(nil)
)

const opsbotSynopsis = "/opsbot help | whoami | approvals | approve ID | deny ID [reason] | audit [N] | cancel ID"

// Name implements bot.Command.
func (*Opsbot) Name() string { return "opsbot" }

// Summary implements bot.Command.
func (*Opsbot) Summary() string { return "the bot itself: whoami, approvals, approve, deny, audit" }

// Usage implements bot.Command.
func (*Opsbot) Usage() string {
	return opsbotSynopsis + `
  whoami          your roles, what you may run and what you may approve
  approvals       requests waiting for a second person
  approve ID      approve a request (not your own); the vote that completes
                  the approvals runs the action, once, and shows its result
  deny ID REASON  refuse a request (or withdraw your own); nothing runs
  audit [N]       the last N audit records (default 20; needs "opsbot audit")
  cancel ID       stop a running request (a scan) of yours; chat shows it as
                  the Cancel button`
}

// Subcommands makes "opsbot audit" and friends separate permissions.
func (*Opsbot) Subcommands() []string {
	return []string{"help", "whoami", "approvals", "approve", "deny", "audit", "cancel"}
}

// Run dispatches on the subcommand.
func (o *Opsbot) Run(ctx context.Context, req bot.Request) (bot.Reply, error) {
	if len(req.Args) == 0 {
		return bot.Reply{}, bot.Errorf(bot.EINVALID, "usage: %s", opsbotSynopsis)
	}
	sub, args := strings.ToLower(req.Args[0]), req.Args[1:]
	switch sub {
	case "whoami":
		return o.whoami(req), nil
	case "approvals":
		return o.approvals(ctx)
	case "approve", "deny":
		if len(args) == 0 {
			return bot.Reply{}, bot.Errorf(bot.EINVALID, "%s needs the approval ID: /opsbot %s ID", sub, sub)
		}
		if sub == "approve" && len(args) > 1 {
			return bot.Reply{}, bot.Errorf(bot.EINVALID, "approve takes only the approval ID")
		}
		return o.ctrl.Decide(ctx, req, strings.ToLower(args[0]), sub == "approve", strings.Join(args[1:], " "))
	case "cancel":
		if len(args) != 1 {
			return bot.Reply{}, bot.Errorf(bot.EINVALID, "cancel needs the request ID: /opsbot cancel ID")
		}
		return o.ctrl.Cancel(ctx, req, strings.ToLower(args[0]))
	case "audit":
		n := 20
		if len(args) > 0 {
			v, err := strconv.Atoi(args[0])
			if err != nil || v < 1 || v > 1000 {
				return bot.Reply{}, bot.Errorf(bot.EINVALID, "audit %s: give a number of records from 1 to 1000", args[0])
			}
			n = v
		}
		return o.audit(ctx, n)
	}
	return bot.Reply{}, bot.Errorf(bot.EINVALID, "unknown subcommand %q: usage %s", sub, opsbotSynopsis)
}

func (o *Opsbot) whoami(req bot.Request) bot.Reply {
	roles, run, approve := o.ctrl.Who(req)
	name := req.Principal()
	if req.UserName != "" && req.UserName != req.User {
		name += " (" + req.UserName + ")"
	}
	none := func(s []string) string {
		if len(s) == 0 {
			return "nothing"
		}
		return strings.Join(s, ", ")
	}
	return bot.Reply{Status: bot.StatusInfo, Title: "You are " + name, Fields: []bot.Field{
		{Name: "roles", Value: none(roles)},
		{Name: "may run", Value: none(run)},
		{Name: "may approve", Value: none(approve)},
		{Name: "channel", Value: req.Channel},
	}}
}

func (o *Opsbot) approvals(ctx context.Context) (bot.Reply, error) {
	list, err := o.ctrl.PendingApprovals(ctx)
	if err != nil {
		return bot.Reply{}, err
	}
	if len(list) == 0 {
		return bot.Reply{Status: bot.StatusInfo, Title: "No approval requests are pending."}, nil
	}
	return approvalsReply(list, o.now()), nil
}

func approvalsReply(list []bot.Approval, now time.Time) bot.Reply {
	t := &bot.Table{Header: []string{"id", "action", "requested by", "approvals", "expires in"}}
	var actions []bot.Action
	for _, a := range list {
		got := 0
		for _, d := range a.Decisions {
			if d.Approve {
				got++
			}
		}
		t.Rows = append(t.Rows, []string{a.ID, a.Line, a.Platform + ":" + a.User, fmt.Sprintf("%d of %d", got, a.Needed), a.Expires.Sub(now).Round(time.Second).String()})
		if len(actions) < 10 {
			actions = append(actions, bot.Action{Label: "Approve " + a.ID, Command: "/opsbot approve " + a.ID, Style: bot.ActionPrimary})
		}
	}
	return bot.Reply{Status: bot.StatusInfo, Title: fmt.Sprintf("%d approval requests pending", len(list)), Table: t, Actions: actions}
}

func (o *Opsbot) audit(ctx context.Context, n int) (bot.Reply, error) {
	recs, err := o.ctrl.AuditLog(ctx, n)
	if err != nil {
		return bot.Reply{}, err
	}
	t := &bot.Table{Header: []string{"time", "who", "what", "line", "result"}}
	for _, r := range recs {
		what := r.Kind
		if r.ApprovalID != "" {
			what += " " + r.ApprovalID
		}
		t.Rows = append(t.Rows, []string{r.Time.UTC().Format("01-02 15:04:05"), r.Platform + ":" + r.User, what, truncateRunes(r.Line, 60), r.Result})
	}
	return bot.Reply{Status: bot.StatusInfo, Title: fmt.Sprintf("Last %d audit records", len(recs)), Table: t,
		Text: "The full log, as JSON lines: opsbot audit export [--since TIME]"}, nil
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
