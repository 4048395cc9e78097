package bot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/opsbot/opsbot/internal/text"
)

// DefaultLease is how long a replica's claim on an approved action holds
// without renewal. The replica running the action renews it every third of
// that, so a claim survives two missed renewals (a database hiccup); a
// replica that died is noticed a lease later, by the next expiry sweep of
// any replica.
const DefaultLease = time.Minute

// RecentApprovals is how far back /opsbot approvals shows requests that
// ended (done, failed, abandoned, denied, expired), beside those pending
// or running.
const RecentApprovals = time.Hour

// NewReplicaID names this process for the leases it takes: host name
// (a pod's name under Kubernetes), process ID, and a random suffix, so a
// restarted process on the same host is told apart from the one that died.
func NewReplicaID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "opsbot"
	}
	return fmt.Sprintf("%s/%d/%s", text.Truncate(host, 64), os.Getpid(), NewID()[:6])
}

// SetLease names this process in the claims it takes on approved actions
// and sets how long such a claim holds without renewal (d <= 0 keeps the
// current duration; an empty replica keeps the current name). Call it
// before the Router handles requests.
func (s *ApprovalService) SetLease(replica string, d time.Duration) {
	if replica != "" {
		s.replica = replica
	}
	if d > 0 {
		s.lease = d
	}
}

// SweepPlatforms limits the interrupted actions this process records and
// announces to those asked from platforms it can tell (the terminal: only
// "shell"); nil, the default, takes them all.
func (s *ApprovalService) SweepPlatforms(platforms []string) { s.sweepPlatforms = platforms }

// Replica is the name this process's claims carry.
func (s *ApprovalService) Replica() string { return s.replica }

// Preparer is implemented by commands whose actions can wait for approval:
// Prepare validates every argument and resolves the hosts without acting,
// so the request can be bound to exactly what will run.
type Preparer interface {
	Prepare(ctx context.Context, req Request) (Prepared, error)
}

// Prepared is an action validated but not yet run.
type Prepared struct {
	Hosts  []string // resolved hosts or addresses the action touches
	Impact string   // what running it will do, for the approval prompt
}

// Notifier tells the requester and the channel how an approval request
// ended. Chat adapters implement it; the terminal has no one to tell.
type Notifier interface {
	NotifyOutcome(ctx context.Context, a Approval, outcome Reply)
}

// Notifiers sends each outcome to the adapter of the requester's platform.
type Notifiers map[string]Notifier

// NotifyOutcome implements Notifier.
func (n Notifiers) NotifyOutcome(ctx context.Context, a Approval, outcome Reply) {
	if to, ok := n[a.Platform]; ok && to != nil {
		to.NotifyOutcome(ctx, a, outcome)
	}
}

// approvalID is what NewID makes: 12 lower-case hex digits.
var approvalID = regexp.MustCompile(`^[0-9a-f]{12}$`)

// CheckApprovalID validates an ID as typed.
func CheckApprovalID(id string) error {
	if !approvalID.MatchString(id) {
		return Errorf(EINVALID, "%q is not an approval ID: IDs are 12 hexadecimal characters, as printed after \"approval ID:\"", text.Truncate(id, 40))
	}
	return nil
}

// bindingDigest is the SHA-256 that binds an approval to its action.
func bindingDigest(command string, args, hosts []string) string {
	b, _ := json.Marshal(struct {
		Command string   `json:"command"`
		Args    []string `json:"args"`
		Hosts   []string `json:"hosts"`
	}{command, args, hosts})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ReplyDigest is the SHA-256 of a reply's content, for the audit log.
func ReplyDigest(r Reply) string {
	r.Actions = nil // buttons are not output
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// needsApproval reports whether policy names key in approval.required.
func (s *ApprovalService) needsApproval(key string) bool {
	for _, req := range s.approval.Required {
		if grantMatches(req, key) {
			return true
		}
	}
	return false
}

// requestApproval stores a pending request bound to the prepared action and
// returns the prompt.
func (s *ApprovalService) requestApproval(ctx context.Context, req Request, key string, cmd Command) (Reply, *auditInfo, error) {
	info := &auditInfo{kind: AuditRequested}
	if s.store == nil {
		return Reply{}, info, Errorf(ECONFIG, "%q needs approval, but no store is configured to keep the request", key)
	}
	var prep Prepared
	if p, ok := cmd.(Preparer); ok {
		var err error
		if prep, err = p.Prepare(ctx, req); err != nil {
			info.kind = ""
			return Reply{}, info, err
		}
	}
	now := s.now()
	a := Approval{
		ID:        NewID(),
		State:     ApprovalPending,
		Command:   key,
		Line:      "/" + req.Command + joinArgs(req.Args),
		Args:      req.Args,
		Hosts:     prep.Hosts,
		Digest:    bindingDigest(req.Command, req.Args, prep.Hosts),
		Impact:    prep.Impact,
		Platform:  req.Platform,
		User:      req.User,
		UserName:  req.UserName,
		Channel:   req.Channel,
		RequestID: req.ID,
		Needed:    s.approval.Approvals,
		Created:   now,
		Expires:   now.Add(s.approval.TTL.D),
	}
	if err := s.store.CreateApproval(ctx, a); err != nil {
		return Reply{}, info, fmt.Errorf("store approval: %w", err)
	}
	info.approvalID, info.hosts = a.ID, a.Hosts
	return approvalPrompt(a, s.approverRoles(key), s.label(WhoOf(req))), info, nil
}

func joinArgs(args []string) string {
	var b strings.Builder
	for _, a := range args {
		b.WriteByte(' ')
		if a == "" || strings.ContainsAny(a, " \t\"'\\") {
			fmt.Fprintf(&b, "%q", a)
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}

func (s *ApprovalService) approverRoles(key string) []string {
	if s.perms == nil {
		return nil
	}
	var out []string
	for name, role := range s.perms.roles {
		for _, g := range role.Approve {
			if grantMatches(g, key) {
				out = append(out, name)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// label names a person for prompts and outcomes: "carol (slack:U0CAROL01)"
// when policy people: knows them, else the identity ("slack:carol" with
// the display name where there is one).
func (s *ApprovalService) label(w Who) string {
	id := w.Platform + ":" + w.User
	if w.UserName != "" && w.UserName != w.User {
		id = w.Platform + ":" + w.UserName
	}
	if person := s.perms.Person(w); person != "" {
		return person + " (" + w.Platform + ":" + w.User + ")"
	}
	return id
}

// voter is what a decision counts under: the person, so that one person
// with several identities counts once, else the identity.
func (s *ApprovalService) voter(w Who) string {
	if person := s.perms.Person(w); person != "" {
		return "person:" + person
	}
	return w.Principal()
}

// samePerson reports whether a and b are one person.
func (s *ApprovalService) samePerson(a, b Who) bool {
	if s.perms == nil {
		return a.Platform == b.Platform && a.User == b.User
	}
	return s.perms.SamePerson(a, b)
}

// requester is who asked for a.
func requester(a Approval) Who {
	return Who{Platform: a.Platform, User: a.User, UserName: a.UserName, Channel: a.Channel}
}

// boundList writes what an approval is bound to, consecutive addresses
// as one range ("10.0.0.1-10.0.0.254 (254 addresses)"), so that a subnet
// reads in one line rather than past what a chat field holds.
func boundList(hosts []string) string {
	var parts []string
	for i := 0; i < len(hosts); {
		a, err := netip.ParseAddr(hosts[i])
		j := i
		if err == nil {
			for j+1 < len(hosts) {
				b, err := netip.ParseAddr(hosts[j+1])
				if err != nil || b != a.Next() {
					break
				}
				a, j = b, j+1
			}
		}
		switch n := j - i + 1; n {
		case 1:
			parts = append(parts, hosts[i])
		case 2:
			parts = append(parts, hosts[i], hosts[j])
		default:
			parts = append(parts, fmt.Sprintf("%s-%s (%d addresses)", hosts[i], hosts[j], n))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// approvalPrompt is the reply that asks for a second person.
func approvalPrompt(a Approval, approvers []string, requestedBy string) Reply {
	fields := []Field{
		{Name: "requested by", Value: requestedBy},
		{Name: "expires", Value: a.Expires.UTC().Format("15:04:05 MST") + " (in " + a.Expires.Sub(a.Created).Round(time.Second).String() + ")"},
		{Name: "approvals needed", Value: fmt.Sprint(a.Needed)},
	}
	if len(a.Hosts) > 0 {
		fields = append(fields, Field{Name: "bound to", Value: boundList(a.Hosts)})
	}
	text := []string{}
	if a.Impact != "" {
		text = append(text, a.Impact)
	}
	if len(approvers) > 0 {
		text = append(text, "May approve: roles "+strings.Join(approvers, ", ")+" (not the requester).")
	}
	text = append(text, "Approving runs exactly this action, once.")
	return Reply{
		Status: StatusPending,
		Title:  "Approval needed: " + a.Line,
		Lines:  []string{"approval ID: " + a.ID},
		Fields: fields,
		Text:   strings.Join(text, "\n"),
		Actions: []Action{
			{Label: "Approve", Command: "/opsbot approve " + a.ID, Style: ActionPrimary},
			{Label: "Deny", Command: "/opsbot deny " + a.ID, Style: ActionDanger},
		},
	}
}

// Decide is /opsbot approve and /opsbot deny: it checks the ID, the
// decider's approver role and that they are not the requester, records the
// decision in the store, and, for the one call whose vote completes the
// approvals, runs the action.
func (s *ApprovalService) Decide(ctx context.Context, req Request, id string, approve bool, reason string) (reply Reply, err error) {
	if err := CheckApprovalID(id); err != nil {
		return Reply{}, err
	}
	if s.store == nil {
		return Reply{}, Errorf(ENOTFOUND, "approval %s: no store is configured, so there are no approval requests", id)
	}
	// Every decision on a well-formed ID is audited with it, refusals too.
	var a Approval
	kind := AuditDeny
	if approve {
		kind = AuditApprove
	}
	defer func() {
		rep := reply
		if err != nil {
			rep = ErrorReply(err, req.ID)
		}
		if rep.Status == StatusOK && kind == AuditApprove {
			rep = Reply{Status: StatusOK, Title: "approved"}
		}
		s.audit(ctx, req, auditInfo{kind: kind, key: a.Command, hosts: a.Hosts, approvalID: id}, rep, 0)
	}()
	a, err = s.store.Approval(ctx, id)
	if err != nil {
		if ErrorCode(err) == ENOTFOUND {
			return Reply{}, Errorf(ENOTFOUND, "no approval request %s: check the ID in the prompt, or list pending ones with /opsbot approvals", id)
		}
		return Reply{}, err
	}
	who := WhoOf(req)
	asker := requester(a)
	own := s.samePerson(who, asker)
	if approve && own && !s.approval.SelfApprove {
		if who.Principal() != asker.Principal() {
			return Reply{}, Errorf(EDENIED, "you requested %s yourself, as %s (policy people: says %s and %s are both %s): another person must approve it (approval.self_approve is off)",
				id, asker.Principal(), asker.Principal(), who.Principal(), s.perms.Person(who))
		}
		return Reply{}, Errorf(EDENIED, "you requested %s yourself: another person must approve it (approval.self_approve is off)", id)
	}
	if s.perms != nil && (!own || approve) { // withdrawing one's own request needs no approver role
		if err := s.perms.MayApproveOn(who, a.Command, a.Hosts); err != nil {
			return Reply{}, err
		}
	}
	d := Decision{Principal: s.voter(who), UserName: s.label(who), Approve: approve, Reason: reason, At: s.now()}
	a, claimed, err := s.store.Decide(ctx, id, d, d.At, Lease{Holder: s.replica, Until: d.At.Add(s.lease)})
	if err != nil {
		return Reply{}, err
	}
	if !approve {
		verdict, verb := VerdictDenied, "Denied"
		if own {
			verdict, verb = VerdictCancelled, "Cancelled"
		}
		reply := Reply{Status: StatusNegative, Title: fmt.Sprintf("%s %s: %s", verb, id, a.Line), Text: verb + " by " + s.label(who) + reasonText(reason) + ". Nothing ran.",
			Decides: decidedBy(a, verdict, s.label(who), req), Supersedes: a.ID}
		s.notify(ctx, a, reply)
		return reply, nil
	}
	if !claimed {
		got := 0
		for _, d := range a.Decisions {
			if d.Approve {
				got++
			}
		}
		return Reply{Status: StatusPending, Title: fmt.Sprintf("Approval %d of %d recorded for %s: %s", got, a.Needed, id, a.Line),
			Lines: []string{"approval ID: " + id}}, nil
	}
	// The decision is audited before the execution it causes.
	s.audit(ctx, req, auditInfo{kind: kind, key: a.Command, hosts: a.Hosts, approvalID: id}, Reply{Status: StatusOK, Title: "approved; running"}, 0)
	kind = "" // already written
	return s.execute(ctx, req, a), nil
}

// decidedBy is the Decided of a reply to req, which ended a.
func decidedBy(a Approval, v Verdict, by string, req Request) *Decided {
	return &Decided{Approval: a.ID, Verdict: v, By: by, Request: req.ID, Platform: req.Platform, Channel: req.Channel}
}

func reasonText(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + reason
}

// execute runs a claimed approval: the stored action, checked again against
// its binding, as the requester, with the output reaching the approver.
// While it runs, the claim's lease is renewed, so that the other replicas
// know this one is alive.
func (s *ApprovalService) execute(ctx context.Context, approver Request, a Approval) Reply {
	start := s.now()
	stopRenewing, lostEarly := s.keepLease(ctx, a.ID)
	name, _, _ := strings.Cut(a.Command, " ")
	req := Request{
		ID: NewID(), Platform: a.Platform, User: a.User, UserName: a.UserName, Channel: a.Channel,
		Line: a.Line, Time: start, Command: name, Args: a.Args, Stream: approver.Stream,
		Bound: append([]string(nil), a.Hosts...), // the approved targets: nothing is resolved again
	}
	reply := func() (reply Reply) {
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("approved command panicked", "approval", a.ID, "panic", p)
				reply = ErrorReply(fmt.Errorf("panic: %v", p), req.ID)
			}
		}()
		if lostEarly != nil {
			return ErrorReply(Errorf(ECONFLICT, "%s; it had not started here, so nothing ran", ErrorMessage(lostEarly)), req.ID)
		}
		cmd, ok := s.command(name)
		if !ok {
			return ErrorReply(Errorf(ENOTFOUND, "the approved command /%s no longer exists", name), req.ID)
		}
		if s.perms != nil {
			if err := s.perms.Allowed(WhoOf(req), a.Command); err != nil {
				return ErrorReply(Errorf(EDENIED, "the requester may no longer run %q: %s", a.Command, ErrorMessage(err)), req.ID)
			}
		}
		if p, ok := cmd.(Preparer); ok {
			prep, err := p.Prepare(ctx, req)
			if err != nil {
				return ErrorReply(err, req.ID)
			}
			if bindingDigest(name, a.Args, prep.Hosts) != a.Digest {
				return ErrorReply(Errorf(EFAILED, "the action changed since it was approved (it now resolves to %s, approved for %s): nothing ran; request it again",
					strings.Join(prep.Hosts, ", "), strings.Join(a.Hosts, ", ")), req.ID)
			}
		}
		if changes(cmd, a.Command) {
			if err := s.startApproved(ctx, req, a); err != nil {
				return ErrorReply(err, req.ID)
			}
		}
		out, err := cmd.Run(ctx, req)
		if err != nil {
			if ErrorCode(err) == EINTERNAL {
				s.log.Error("approved command failed", "approval", a.ID, "err", err)
			}
			return ErrorReply(err, req.ID)
		}
		return out
	}()
	lost := stopRenewing()
	took := s.now().Sub(start)
	state := ApprovalDone
	if reply.Status == StatusFailed || reply.Status == StatusUsage || reply.Status == StatusDenied {
		state = ApprovalFailed
	}
	o := Outcome{State: state, Status: reply.Status.String(), Title: reply.Title, OutputSHA256: ReplyDigest(reply), Finished: s.now(), Duration: took}
	// The outcome is recorded even when the request's context has ended.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	late := ""
	// A claim lost before the start ran nothing: the request stays
	// abandoned, with nothing to add.
	if lostEarly == nil {
		if err := s.store.Finish(fctx, a.ID, o); err != nil {
			s.log.Error("recording approval outcome", "approval", a.ID, "err", err)
			if lost || ErrorCode(err) == ECONFLICT {
				// Another replica saw the lease lapse (this one could not
				// renew it in time) and declared the request abandoned. The
				// audit record below still says how it really ended.
				late = "Note: this result came after the request had been declared abandoned (this replica could not renew its lease in time); the audit log records this outcome."
			}
		}
	}
	s.audit(ctx, req, auditInfo{kind: AuditExecution, key: a.Command, hosts: a.Hosts, approvalID: a.ID}, reply, took)
	reply.Text = joinLines("Approved by "+s.label(WhoOf(approver))+"; requested by "+s.label(requester(a))+" (approval "+a.ID+").", reply.Text)
	if late != "" {
		reply.Text = joinLines(reply.Text, late)
	}
	reply.Decides, reply.Supersedes = decidedBy(a, VerdictApproved, s.label(WhoOf(approver)), approver), a.ID
	s.notify(ctx, a, reply)
	return reply
}

func joinLines(a, b string) string {
	if b == "" {
		return a
	}
	return a + "\n" + b
}

func (s *ApprovalService) notify(ctx context.Context, a Approval, reply Reply) {
	if s.notifier != nil {
		s.notifier.NotifyOutcome(ctx, a, reply)
	}
}

// keepLease renews this replica's claim on a running request at once,
// since the claim's expiry was computed before Decide waited for its lock,
// and then every third of the lease until the returned stop is called.
// stop waits for the renewer to end and reports whether the claim was lost
// (the request was declared abandoned meanwhile). A claim lost before the
// action starts is the returned error (ECONFLICT): the action must not
// start. One lost later does not stop the action: cutting a half-done
// restart short could leave things worse than letting it finish, and its
// outcome is audited either way.
func (s *ApprovalService) keepLease(ctx context.Context, id string) (stop func() (lost bool), err error) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	every := max(s.lease/3, time.Millisecond)
	renew := func() error {
		now := s.now()
		rctx, rcancel := context.WithTimeout(ctx, every)
		defer rcancel()
		return s.store.RenewLease(rctx, id, Lease{Holder: s.replica, Until: now.Add(s.lease)}, now)
	}
	if err := renew(); ErrorCode(err) == ECONFLICT {
		cancel()
		return func() bool { return true }, err
	} else if err != nil {
		s.log.Warn("renewing the lease of an approved action", "approval", id, "replica", s.replica, "err", err)
	}
	done := make(chan struct{})
	var gone atomic.Bool
	go func() {
		defer close(done)
		t := s.clock.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C():
			}
			err := renew()
			switch {
			case err == nil:
			case ctx.Err() != nil:
				return
			case ErrorCode(err) == ECONFLICT:
				s.log.Error("lost the lease of a running approved action: it was declared abandoned; the action goes on and its outcome will be audited",
					"approval", id, "replica", s.replica, "err", err)
				gone.Store(true)
				return
			default:
				s.log.Warn("renewing the lease of a running approved action", "approval", id, "replica", s.replica, "err", err)
			}
		}
	}()
	return func() bool {
		cancel()
		<-done
		return gone.Load()
	}, nil
}

// Approvals lists what /opsbot approvals shows the asker: requests
// pending or running, and those that ended in the last RecentApprovals,
// oldest first, of those only what the asker requested (as any of their
// identities) or may approve (role and hosts), and in a chat channel only
// that channel's unless all is asked, which only an approver may ask.
// First it expires (and audits) pending requests whose time is up and
// running ones whose replica stopped renewing its lease.
func (s *ApprovalService) Approvals(ctx context.Context, req Request, all bool) ([]Approval, error) {
	who := WhoOf(req)
	if all && s.perms != nil && !s.perms.MayApproveAny(who) {
		return nil, Errorf(EDENIED, "/opsbot approvals all is for approvers: %s holds no approver role; /opsbot approvals lists your own requests here", who.Principal())
	}
	if s.store == nil {
		return nil, nil
	}
	s.ExpireApprovals(ctx)
	list, err := s.store.ListApprovals(ctx, s.now().Add(-RecentApprovals))
	if err != nil {
		return nil, err
	}
	out := list[:0]
	for _, a := range list {
		if !all && req.Platform != "shell" && (a.Platform != req.Platform || a.Channel != req.Channel) {
			continue // another channel's
		}
		if s.samePerson(who, requester(a)) || s.perms == nil || s.perms.MayApproveOn(who, a.Command, a.Hosts) == nil {
			out = append(out, a)
		}
	}
	return out, nil
}

// ExpireApprovals moves pending requests past their time to expired, and
// running ones whose lease lapsed (their replica stopped) to failed as
// abandoned; it audits and announces each. Every replica calls it on a
// ticker; the store moves each request once, so each is announced once.
func (s *ApprovalService) ExpireApprovals(ctx context.Context) {
	if s.store == nil {
		return
	}
	expired, err := s.store.ExpirePending(ctx, s.now())
	if err != nil {
		s.log.Error("expiring approvals", "err", err)
	}
	for _, a := range expired {
		req := Request{ID: a.RequestID, Platform: a.Platform, User: a.User, UserName: a.UserName, Channel: a.Channel, Line: a.Line}
		reply := Reply{Status: StatusNegative, Title: fmt.Sprintf("Expired %s: %s", a.ID, a.Line), Text: "Nobody approved it in time. Nothing ran."}
		s.audit(ctx, req, auditInfo{kind: AuditExpired, key: a.Command, hosts: a.Hosts, approvalID: a.ID}, reply, 0)
		reply.Decides, reply.Supersedes = &Decided{Approval: a.ID, Verdict: VerdictExpired}, a.ID
		s.notify(ctx, a, reply)
	}
	s.interruptLapsed(ctx)
	abandoned, err := s.store.AbandonLapsed(ctx, s.now())
	if err != nil {
		s.log.Error("abandoning approvals whose lease lapsed", "err", err)
	}
	for _, a := range abandoned {
		s.log.Warn("approved action abandoned: its replica stopped renewing the lease", "approval", a.ID,
			"line", a.Line, "holder", a.Lease.Holder, "lease_expired", a.Lease.Until, "by", s.replica)
		req := Request{ID: a.RequestID, Platform: a.Platform, User: a.User, UserName: a.UserName, Channel: a.Channel, Line: a.Line}
		title := AbandonedOutcome(a, s.now()).Title
		if a.Outcome != nil {
			title = a.Outcome.Title
		}
		s.audit(ctx, req, auditInfo{kind: AuditAbandoned, key: a.Command, hosts: a.Hosts, approvalID: a.ID},
			Reply{Status: StatusFailed, Title: title}, 0)
		s.notify(ctx, a, abandonedReply(a, s.now()))
	}
}

// abandonedReply tells the channel that an approved action's replica
// stopped while running it.
func abandonedReply(a Approval, now time.Time) Reply {
	fields := []Field{{Name: "replica", Value: a.Lease.Holder}, {Name: "lease expired", Value: clock(a.Lease.Until, now)}}
	if d, ok := lastDecision(a, true); ok {
		fields = append(fields, Field{Name: "approved by", Value: who(d) + " at " + clock(d.At, now)})
	}
	if len(a.Hosts) > 0 {
		fields = append(fields, Field{Name: "hosts", Value: strings.Join(a.Hosts, ", ")})
	}
	return Reply{
		Status: StatusFailed,
		Title:  fmt.Sprintf("Abandoned %s: %s", a.ID, a.Line),
		Fields: fields,
		Text: fmt.Sprintf("Replica %s stopped while running it (lease expired at %s). The action may have partly run — check the host. "+
			"It will not be run again by itself: request it anew once you know its state.", a.Lease.Holder, clock(a.Lease.Until, now)),
	}
}
