package bot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/opsbot/opsbot/internal/text"
)

// Subcommander is implemented by commands whose first word selects what
// they do (/apache reload, /opsbot approve): permissions and approvals are
// granted per subcommand ("apache reload").
type Subcommander interface {
	Subcommands() []string
}

// Router is the one path every request takes, from any adapter: parse the
// line, find the command, answer help, check the asker's permission and
// rate limit, hold the action for approval when policy says so, run it, and
// audit whatever happened. It turns every outcome (errors and panics
// included) into a Reply.
type Router struct {
	commands  map[string]Command
	names     []string
	users     *RateLimiter
	log       *slog.Logger
	perms     *Permissions
	store     Store // the audit log
	approvals *ApprovalService
	jobs      *Jobs // nil: no cap on jobs
	obs       Observer
	clock     Clock
	now       func() time.Time // clock.Now

	mu       sync.Mutex
	running  map[string]running // by request ID, for /opsbot cancel
	draining bool               // Drain was called: new requests are refused
}

// ErrShuttingDown is why Drain cancels the requests still running.
var ErrShuttingDown = errors.New("opsbot is shutting down")

// running is a request in progress.
type running struct {
	cancel    context.CancelCauseFunc
	principal string
	line      string
}

// RouterConfig is what the Router uses. Every field but Commands may be
// left out: no Users limiter means no per-user limit, no Perms means
// everyone may run everything, no Store means no audit and no approvals.
type RouterConfig struct {
	Commands []Command
	Users    *RateLimiter
	Log      *slog.Logger
	Perms    *Permissions
	Approval ApprovalPolicy
	Store    Store
	Notifier Notifier
	Observer Observer // metrics; nil observes nothing
	// Clock is the time requests, approvals and leases read, and the
	// tickers leases are renewed with; nil is the system clock.
	Clock Clock
	// Jobs caps the commands running at once, per user and in all; nil
	// is no cap. Routers of one process share one.
	Jobs *Jobs
}

// NewRouter routes to the configured commands.
func NewRouter(cfg RouterConfig) *Router {
	r := &Router{commands: map[string]Command{}, users: cfg.Users, log: cfg.Log, perms: cfg.Perms,
		store: cfg.Store, obs: cfg.Observer, clock: cfg.Clock, jobs: cfg.Jobs, running: map[string]running{}}
	if r.clock == nil {
		r.clock = SystemClock{}
	}
	r.now = r.clock.Now
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.obs == nil {
		r.obs = NopObserver{}
	}
	r.approvals = newApprovalService(r, cfg)
	for _, c := range cfg.Commands {
		r.Add(c)
	}
	return r
}

// Add registers a command. Commands that need the Router itself (/opsbot)
// are added after it is built.
func (r *Router) Add(c Command) {
	if _, dup := r.commands[c.Name()]; !dup {
		r.names = append(r.names, c.Name())
		sort.Strings(r.names)
	}
	r.commands[c.Name()] = c
}

var _ Handler = (*Router)(nil)

// auditInfo is what a request adds to its audit record.
type auditInfo struct {
	kind       string
	key        string
	hosts      []string
	approvalID string
	flight     *flight // recorded as started: the outcome ends its flight
}

// Handle runs one request to its reply. It never panics, never returns an
// empty reply, and audits every request.
func (r *Router) Handle(ctx context.Context, req Request) (reply Reply) {
	if req.ID == "" {
		req.ID = NewID()
	}
	if req.Time.IsZero() {
		req.Time = r.now()
	}
	capped := NewCappedStream(req.Stream, MaxPosts)
	// While it runs, /opsbot cancel ID stops it: its progress says so.
	req.Stream = cancellable{Stream: capped, id: req.ID}
	start := r.now()
	log := r.log.With("req", req.ID, "user", req.Principal(), "channel", req.Channel)
	info := &auditInfo{kind: AuditRequest}
	ctx, cancel := context.WithCancelCause(WithObserver(ctx, r.obs))
	r.mu.Lock()
	draining := r.draining
	if !draining {
		r.running[req.ID] = running{cancel: cancel, principal: req.Principal(), line: req.Line}
	}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.running, req.ID)
		r.mu.Unlock()
		cancel(nil)
	}()
	defer func() {
		if p := recover(); p != nil {
			log.Error("command panicked", "panic", p, "stack", string(debug.Stack()))
			reply = ErrorReply(fmt.Errorf("panic: %v", p), req.ID)
		}
		took := r.now().Sub(start)
		if info.kind != "" {
			if info.kind == AuditRequest && reply.Status == StatusDenied {
				info.kind = AuditDenied
			}
			r.audit(ctx, req, *info, reply, took)
		}
		log.Info("request", "line", req.Line, "status", reply.Status.String(), "took", took)
		key := info.key
		if key == "" || !r.Knows(strings.SplitN(key, " ", 2)[0]) && key != "help" {
			key = "unknown" // bounded label values: never what a user typed
		}
		r.obs.Request(key, reply.Status, took)
		if reply.Code == ERATELIMIT {
			r.obs.RateLimited()
		}
	}()
	if draining {
		return Reply{Status: StatusFailed, Code: EFAILED, Title: "opsbot is restarting: nothing ran. Try again in a minute."}
	}
	reply, info = r.route(ctx, req, info)
	if note := capped.Note(); note != "" {
		reply.Text = strings.TrimPrefix(joinLines(reply.Text, note), "\n")
	}
	if errors.Is(context.Cause(ctx), ErrShuttingDown) {
		reply.Text = joinLines(reply.Text, "opsbot was shutting down (a restart or a deploy) and stopped this before it finished: what is shown is what it had. Run it again in a minute.")
		if reply.Status == StatusOK || reply.Status == StatusRunning || reply.Status == StatusInfo {
			reply.Status = StatusFailed
		}
	}
	return reply
}

// cancellable marks the progress of a running request with its ID, so
// that adapters show the one Cancel action that stops it.
type cancellable struct {
	Stream
	id string
}

func (c cancellable) Progress(r Reply) {
	if r.Cancel == "" {
		r.Cancel = c.id
	}
	c.Stream.Progress(r)
}

// Drain is the Router's part of a graceful shutdown: it refuses new
// requests, waits until the running ones finish or ctx ends, then cancels
// those left with ErrShuttingDown (their replies say so) and waits up to
// grace for them to return. It reports how many it had to cancel.
func (r *Router) Drain(ctx context.Context, grace time.Duration) (canceled int) {
	r.mu.Lock()
	r.draining = true
	r.mu.Unlock()
	left := func() map[string]running {
		r.mu.Lock()
		defer r.mu.Unlock()
		out := make(map[string]running, len(r.running))
		for id, run := range r.running {
			out[id] = run
		}
		return out
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for len(left()) > 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	runs := left()
	for id, run := range runs {
		r.log.Warn("shutting down: canceling a running request", "req", id, "user", run.principal, "line", run.line)
		run.cancel(ErrShuttingDown)
	}
	deadline := time.Now().Add(grace)
	for len(left()) > 0 && time.Now().Before(deadline) {
		<-tick.C
	}
	return len(runs)
}

func (r *Router) route(ctx context.Context, req Request, info *auditInfo) (Reply, *auditInfo) {
	words, err := SplitWords(req.Line)
	if err != nil {
		return ErrorReply(err, req.ID), info
	}
	if len(words) == 0 {
		return r.help(req), info
	}
	name := strings.ToLower(strings.TrimPrefix(words[0], "/"))
	req.Command, req.Args = name, words[1:]
	info.key = name

	if name == "help" || (name == "opsbot" && (len(req.Args) == 0 || req.Args[0] == "help")) {
		if len(req.Args) > 0 && name == "help" {
			return r.usage(req, strings.TrimPrefix(req.Args[0], "/")), info
		}
		return r.help(req), info
	}
	cmd, ok := r.commands[name]
	if !ok {
		return ErrorReply(Errorf(ENOTFOUND, "unknown command %q: the commands are %s (try help)", text.Truncate(words[0], 40), r.list(req)), req.ID), info
	}
	if len(req.Args) == 1 && (req.Args[0] == "help" || req.Args[0] == "-h" || req.Args[0] == "--help") {
		return r.usage(req, name), info
	}
	key := permissionKey(cmd, req.Args)
	info.key = key
	if r.perms != nil {
		if err := r.perms.Allowed(WhoOf(req), key); err != nil {
			return ErrorReply(err, req.ID), info
		}
	}
	if r.users != nil {
		if wait, ok := r.users.Allow(req.Principal()); !ok {
			return ErrorReply(Errorf(ERATELIMIT, "rate limit: too many commands from you; retry in %s", roundUp(wait)), req.ID), info
		}
	}
	if r.approvals.needsApproval(key) {
		reply, ainfo, err := r.approvals.requestApproval(ctx, req, key, cmd)
		ainfo.key = key
		if err != nil {
			if ainfo.kind == "" {
				ainfo.kind = AuditRequest
			}
			return ErrorReply(err, req.ID), ainfo
		}
		return reply, ainfo
	}
	done, what, err := r.jobs.start(req.Principal(), key, r.now())
	if err != nil {
		ObserveBusy(ctx, what)
		return ErrorReply(err, req.ID), info
	}
	defer func() { done(r.now()) }()
	if r.store != nil && changes(cmd, key) {
		f, err := r.approvals.startAction(ctx, req, key, nil)
		if err != nil {
			return ErrorReply(err, req.ID), info
		}
		info.flight = f
	}
	reply, err := cmd.Run(ctx, req)
	if err != nil {
		if ErrorCode(err) == EINTERNAL {
			r.log.Error("command failed", "req", req.ID, "err", err)
		}
		return ErrorReply(err, req.ID), info
	}
	return reply, info
}

// permissionKey is "command" or "command subcommand".
func permissionKey(cmd Command, args []string) string {
	if s, ok := cmd.(Subcommander); ok && len(args) > 0 {
		sub := strings.ToLower(args[0])
		for _, known := range s.Subcommands() {
			if sub == known {
				return cmd.Name() + " " + sub
			}
		}
	}
	return cmd.Name()
}

// audit appends one record. A failure to write is logged with the whole
// record, so that it is not lost from the logs either.
func (r *Router) audit(ctx context.Context, req Request, info auditInfo, reply Reply, took time.Duration) {
	if info.kind != "" {
		r.observeApproval(info.kind, reply.Status)
	}
	if r.store == nil || info.kind == "" {
		return
	}
	rec := AuditRecord{
		Time: r.now().UTC(), Kind: info.kind, RequestID: req.ID,
		Platform: req.Platform, User: req.User, UserName: req.UserName, Channel: req.Channel,
		Line: req.Line, Command: info.key, Hosts: info.hosts, ApprovalID: info.approvalID,
		Result: reply.Status.String(), Message: reply.Title, Duration: took, OutputSHA256: ReplyDigest(reply),
		Person: r.perms.Person(WhoOf(req)), SelfAsserted: req.SelfAsserted,
	}
	// The record is written even when the request's context has ended
	// (a canceled scan is still audited).
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if info.flight != nil {
		if lost := info.flight.stop(); lost {
			rec.Message = joinLines(rec.Message, "(recorded after another replica had declared it interrupted)")
		}
		if _, err := r.store.EndAction(actx, rec); err != nil {
			// Its flight stays open: once the lease lapses, a sweep
			// records it interrupted (outcome unknown), as it now is to
			// the log's readers.
			r.obs.AuditFailed(rec.Kind)
			r.log.Error("audit write failed: the outcome of a started action is not in the audit log", "err", err, "record", fmt.Sprintf("%+v", rec))
		}
		return
	}
	if _, err := r.store.AppendAudit(actx, rec); err != nil {
		r.obs.AuditFailed(rec.Kind)
		r.log.Error("audit write failed", "err", err, "record", fmt.Sprintf("%+v", rec))
	}
}

// visible lists the commands the asker may run at least part of.
func (r *Router) visible(req Request) []string {
	var out []string
	for _, n := range r.names {
		if r.mayRunAny(req, n) {
			out = append(out, n)
		}
	}
	return out
}

func (r *Router) mayRunAny(req Request, name string) bool {
	if r.perms == nil || name == "opsbot" {
		return true
	}
	who := WhoOf(req)
	if r.perms.Allowed(who, name) == nil {
		return true
	}
	if s, ok := r.commands[name].(Subcommander); ok {
		for _, sub := range s.Subcommands() {
			if r.perms.Allowed(who, name+" "+sub) == nil {
				return true
			}
		}
	}
	return false
}

func (r *Router) list(req Request) string {
	vis := r.visible(req)
	out := make([]string, len(vis))
	for i, n := range vis {
		out[i] = "/" + n
	}
	return strings.Join(out, ", ")
}

func (r *Router) help(req Request) Reply {
	t := &Table{Header: []string{"command", "what it does"}}
	for _, n := range r.visible(req) {
		t.Rows = append(t.Rows, []string{"/" + n, r.commands[n].Summary()})
	}
	return Reply{Status: StatusInfo, Title: "opsbot commands you may run", Table: t,
		Text: "Type a command followed by help for its usage, e.g. /portcheck help."}
}

func (r *Router) usage(req Request, name string) Reply {
	cmd, ok := r.commands[strings.ToLower(name)]
	if !ok || !r.mayRunAny(req, cmd.Name()) {
		return ErrorReply(Errorf(ENOTFOUND, "unknown command %q: the commands you may run are %s", text.Truncate(name, 40), r.list(req)), "")
	}
	return Reply{Status: StatusInfo, Title: "/" + cmd.Name() + ": " + cmd.Summary(), Text: cmd.Usage()}
}

// Who returns what the asker may run and approve, for /opsbot whoami.
func (r *Router) Who(req Request) (roles, run, approve []string) {
	if r.perms == nil {
		return nil, []string{"*"}, nil
	}
	w := WhoOf(req)
	run, approve = r.perms.Grants(w)
	return r.perms.Roles(w), run, approve
}

// Knows reports whether name (without its slash) is a command here, so an
// adapter can refuse a misrouted slash command before it becomes a request.
func (r *Router) Knows(name string) bool {
	_, ok := r.commands[name]
	return ok
}

// Cancel stops a running request of this process: the asker's own, or
// anyone's for a holder of the "opsbot cancel" grant. The command sees its
// context canceled and answers with what it has so far.
func (r *Router) Cancel(_ context.Context, req Request, id string) (Reply, error) {
	if err := CheckApprovalID(id); err != nil {
		return Reply{}, Errorf(EINVALID, "%q is not a request ID: IDs are 12 hexadecimal characters", text.Truncate(id, 40))
	}
	r.mu.Lock()
	run, ok := r.running[id]
	r.mu.Unlock()
	if !ok {
		return Reply{}, Errorf(ENOTFOUND, "request %s is not running here (it finished, or runs on another replica)", id)
	}
	if run.principal != req.Principal() {
		if r.perms == nil {
			return Reply{}, Errorf(EDENIED, "request %s belongs to %s: only they may cancel it", id, run.principal)
		}
		if err := r.perms.grants(WhoOf(req), "opsbot cancel"); err != nil {
			return Reply{}, Errorf(EDENIED, "request %s belongs to %s: cancelling someone else's request needs the \"opsbot cancel\" grant", id, run.principal)
		}
	}
	run.cancel(context.Canceled)
	return Reply{Status: StatusOK, Title: "Canceled " + id + ": " + run.line}, nil
}

// AuditLog returns the last n audit records.
func (r *Router) AuditLog(ctx context.Context, n int) ([]AuditRecord, error) {
	if r.store == nil {
		return nil, Errorf(ECONFIG, "no store is configured, so there is no audit log")
	}
	return r.store.Audit(ctx, AuditQuery{Last: n})
}

// NewID returns a random ID of 12 hex digits, quotable from a chat message.
func NewID() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// observeApproval tells the Observer about the approval steps the audit
// records: every step of an approval's life is audited, so this is the
// one place that sees them all.
func (r *Router) observeApproval(kind string, st Status) {
	switch kind {
	case AuditRequest, AuditDenied, AuditRejected:
	case AuditApprove, AuditDeny:
		switch {
		case st == StatusDenied || st == StatusUsage || st == StatusFailed:
			r.obs.Approval("refused") // not the approver's to give, or too late
		case kind == AuditApprove:
			r.obs.Approval("approved")
		default:
			r.obs.Approval("denied")
		}
	case AuditExecution:
		if st == StatusOK || st == StatusNegative || st == StatusInfo {
			r.obs.Approval("done")
		} else {
			r.obs.Approval("failed")
		}
	default: // requested, expired, and any later kinds
		r.obs.Approval(kind)
	}
}
