package commands

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/internal/text"
)

// Opsbot is /opsbot: the bot itself. Help is answered by the Router; this
// command holds whoami, the approvals list, approve, deny and the audit log.
type Opsbot struct {
	ctrl  bot.Control
	hosts bot.HostAccess
	now   func() time.Time
}

// NewOpsbot acts through the Router's control interface; hosts answers
// /opsbot hosts.
func NewOpsbot(ctrl bot.Control, hosts bot.HostAccess) *Opsbot {
	return &Opsbot{ctrl: ctrl, hosts: hosts, now: time.Now}
}

var (
	_ bot.Command      = (*Opsbot)(nil)
	_ bot.Subcommander = (*Opsbot)(nil)
	_ bot.Changer      = (*Opsbot)(nil)
)

const opsbotSynopsis = "/opsbot help | whoami | hosts | approvals [all] | approve ID | deny ID [reason] | audit [N] | cancel ID"

// Name implements bot.Command.
func (*Opsbot) Name() string { return "opsbot" }

// Changes implements bot.Changer: /opsbot changes nothing itself; a
// decision is recorded with the request, and the action an approval runs
// is recorded as started by the Router before it acts.
func (*Opsbot) Changes(string) bool { return false }

// Summary implements bot.Command.
func (*Opsbot) Summary() string { return "the bot itself: whoami, approvals, approve, deny, audit" }

// Usage implements bot.Command.
func (*Opsbot) Usage() string {
	return opsbotSynopsis + `
  whoami          your roles, what you may run and what you may approve
  hosts           the inventory hosts you may act on, and what you may do there
  approvals [all] requests waiting for a second person, running (on which
                  replica), and ended in the last hour (done, failed,
                  abandoned by a replica that stopped, denied, expired):
                  those you asked for or may approve, from this channel
                  (all: every channel's; for approvers)
  approve ID      approve a request (not your own); the vote that completes
                  the approvals runs the action, once, and shows its result
  deny ID REASON  refuse a request (or withdraw your own); nothing runs
  audit [N]       the last N audit records (default 20; needs "opsbot audit")
  cancel ID       stop a running request (a scan) of yours; chat shows it as
                  the Cancel button
Every other command also answers under /opsbot, for teams that register
only this one slash command: /opsbot portcheck HOST PORT, /opsbot apache
reload web.`
}

// Subcommands makes "opsbot audit" and friends separate permissions.
func (*Opsbot) Subcommands() []string {
	return []string{"help", "whoami", "hosts", "approvals", "approve", "deny", "audit", "cancel"}
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
	case "hosts":
		return o.hostList(req), nil
	case "approvals":
		all := len(args) == 1 && strings.EqualFold(args[0], "all")
		if len(args) > 0 && !all {
			return bot.Reply{}, bot.Errorf(bot.EINVALID, "approvals takes nothing, or all: /opsbot approvals [all]")
		}
		return o.approvals(ctx, req, all)
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

func (o *Opsbot) approvals(ctx context.Context, req bot.Request, all bool) (bot.Reply, error) {
	list, err := o.ctrl.Approvals(ctx, req, all)
	if err != nil {
		return bot.Reply{}, err
	}
	if len(list) == 0 {
		return bot.Reply{Status: bot.StatusInfo, Title: "No approval requests that you asked for or may approve are pending or running, and none ended in the last hour" + map[bool]string{true: ".", false: " here."}[all || req.Platform == "shell"]}, nil
	}
	return approvalsReply(list, o.now()), nil
}

// approvalsReply lists requests pending, running (on which replica, until
// when its lease holds) and recently ended, with an Approve button for
// each pending one.
func approvalsReply(list []bot.Approval, now time.Time) bot.Reply {
	t := &bot.Table{Header: []string{"id", "action", "requested by", "state", "detail"}}
	var actions []bot.Action
	count := map[string]int{}
	for _, a := range list {
		state, detail := approvalState(a, now)
		count[state]++
		t.Rows = append(t.Rows, []string{a.ID, a.Line, a.Platform + ":" + a.User, state, detail})
		if a.State == bot.ApprovalPending && len(actions) < 10 {
			actions = append(actions, bot.Action{Label: "Approve " + a.ID, Command: "/opsbot approve " + a.ID, Style: bot.ActionPrimary})
		}
	}
	var parts []string
	for _, st := range []string{"pending", "running", "abandoned"} {
		if count[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", count[st], st))
		}
	}
	if ended := len(list) - count["pending"] - count["running"] - count["abandoned"]; ended > 0 {
		parts = append(parts, fmt.Sprintf("%d ended in the last hour", ended))
	}
	return bot.Reply{Status: bot.StatusInfo, Title: "Approval requests: " + strings.Join(parts, ", "), Table: t, Actions: actions}
}

// approvalState is a request's state and the detail that goes with it.
func approvalState(a bot.Approval, now time.Time) (string, string) {
	at := func(t time.Time) string { return t.UTC().Format("15:04:05 UTC") }
	switch a.State {
	case bot.ApprovalPending:
		got := 0
		for _, d := range a.Decisions {
			if d.Approve {
				got++
			}
		}
		return "pending", fmt.Sprintf("%d of %d approvals; expires in %s", got, a.Needed, a.Expires.Sub(now).Round(time.Second))
	case bot.ApprovalRunning:
		detail := "on replica " + a.Lease.Holder
		if d, ok := lastApproval(a); ok {
			detail += " since " + at(d.At) + " (approved by " + approverName(d) + ")"
		}
		if !a.Lease.Until.IsZero() {
			if now.After(a.Lease.Until) {
				detail += "; lease lapsed at " + at(a.Lease.Until) + ": abandoned at the next check unless renewed"
			} else {
				detail += "; lease renewed until " + at(a.Lease.Until)
			}
		}
		return "running", detail
	case bot.ApprovalDone, bot.ApprovalFailed:
		if a.Outcome == nil {
			return string(a.State), ""
		}
		if a.Outcome.Status == bot.OutcomeAbandoned {
			return "abandoned", strings.TrimPrefix(a.Outcome.Title, "abandoned: ")
		}
		return string(a.State), at(a.Outcome.Finished) + ": " + text.TruncateRunes(a.Outcome.Title, 80)
	case bot.ApprovalDenied:
		for i := len(a.Decisions) - 1; i >= 0; i-- {
			if d := a.Decisions[i]; !d.Approve {
				detail := "by " + approverName(d) + " at " + at(d.At)
				if d.Reason != "" {
					detail += ": " + text.TruncateRunes(d.Reason, 60)
				}
				return "denied", detail
			}
		}
		return "denied", ""
	case bot.ApprovalExpired:
		return "expired", "at " + at(a.Expires) + "; nothing ran"
	}
	return string(a.State), ""
}

func lastApproval(a bot.Approval) (bot.Decision, bool) {
	for i := len(a.Decisions) - 1; i >= 0; i-- {
		if a.Decisions[i].Approve {
			return a.Decisions[i], true
		}
	}
	return bot.Decision{}, false
}

func approverName(d bot.Decision) string {
	if d.UserName != "" {
		return d.UserName
	}
	return d.Principal
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
		t.Rows = append(t.Rows, []string{r.Time.UTC().Format("01-02 15:04:05"), r.Platform + ":" + r.User, what, text.TruncateRunes(r.Line, 60), r.Result})
	}
	return bot.Reply{Status: bot.StatusInfo, Title: fmt.Sprintf("Last %d audit records", len(recs)), Table: t,
		Text: "The full log, as JSON lines: opsbot audit export [--since TIME]"}, nil
}

// hostKeys are the per-host permissions /opsbot hosts reports, by command.
var hostKeys = []struct{ command, subs string }{
	{"apache", "status configtest modules vhosts reload restart"},
	{"relayd", "status show poll check host table redirect reload restart"},
}

// runs guesses whether a host runs the service a command manages: one
// with settings for only the other service does not.
func runs(h bot.Host, command string) bool {
	switch command {
	case "apache":
		return h.HasSettings("apache") || !h.HasSettings("relayd")
	case "relayd":
		return h.HasSettings("relayd") || !h.HasSettings("apache")
	}
	return true
}

// hostList is /opsbot hosts: every inventory host the asker may do
// something on, with what.
func (o *Opsbot) hostList(req bot.Request) bot.Reply {
	inv := o.hosts.Inventory
	if inv.Empty() {
		return bot.Reply{Status: bot.StatusInfo, Title: "No hosts: the policy defines no inventory",
			Text: "Hosts for /apache and /relayd are listed under hosts: (and groups:) in the policy file; see deploy/policy.example.yaml."}
	}
	may := map[string][]string{} // host -> "apache status, reload"
	for _, hk := range hostKeys {
		allowed := map[string][]string{}
		all := strings.Fields(hk.subs)
		for _, sub := range all {
			for _, h := range o.hosts.Allowed(req, hk.command+" "+sub) {
				if runs(h, hk.command) {
					allowed[h.Name] = append(allowed[h.Name], sub)
				}
			}
		}
		for h, subs := range allowed {
			if len(subs) == len(all) {
				may[h] = append(may[h], hk.command+" (all)")
			} else {
				may[h] = append(may[h], hk.command+" "+strings.Join(subs, ", "))
			}
		}
	}
	t := &bot.Table{Header: []string{"host", "address", "via", "groups", "tags", "you may"}}
	hidden := 0
	for _, h := range inv.Hosts() {
		if len(may[h.Name]) == 0 {
			hidden++
			continue
		}
		addr, via := h.Address, h.Via
		if addr == "" {
			addr = "(this host)"
		}
		if via == "ssh" && h.User != "" {
			via = "ssh as " + h.User
		}
		if h.Become != "" {
			via += " + " + h.Become
		}
		t.Rows = append(t.Rows, []string{h.Name, addr, via, dash(strings.Join(inv.Groups(h.Name), ",")), dash(strings.Join(h.Tags, ",")), strings.Join(may[h.Name], "; ")})
	}
	if len(t.Rows) == 0 {
		return bot.Reply{Status: bot.StatusInfo, Title: fmt.Sprintf("You may act on none of the %d inventory hosts", hidden),
			Text: "Your roles grant no /apache or /relayd command on them: see /opsbot whoami, and ask an admin for a role."}
	}
	r := bot.Reply{Status: bot.StatusInfo, Title: fmt.Sprintf("%d hosts you may act on", len(t.Rows)), Table: t}
	if hidden > 0 {
		r.Text = fmt.Sprintf("%d more hosts are in the inventory; your roles grant nothing there.", hidden)
	}
	return r
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
