package bot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"strings"
	"time"
)

// Router is the one path every request takes, from any adapter: parse the
// line, find the command, answer help, apply the user's rate limit, run the
// command, and turn whatever comes back (errors and panics included) into a
// Reply.
type Router struct {
	commands map[string]Command
	names    []string
	users    *RateLimiter
	log      *slog.Logger
	now      func() time.Time
}

// NewRouter routes to cmds. users limits commands per user (nil: no limit).
func NewRouter(cmds []Command, users *RateLimiter, log *slog.Logger) *Router {
	r := &Router{commands: map[string]Command{}, users: users, log: log, now: time.Now}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	for _, c := range cmds {
		r.commands[c.Name()] = c
		r.names = append(r.names, c.Name())
	}
	sort.Strings(r.names)
	return r
}

var _ Handler = (*Router)(nil)

// Handle runs one request to its reply. It never panics and never returns
// an empty reply.
func (r *Router) Handle(ctx context.Context, req Request) (reply Reply) {
	if req.ID == "" {
		req.ID = NewID()
	}
	if req.Time.IsZero() {
		req.Time = r.now()
	}
	if req.Stream == nil {
		req.Stream = NopStream{}
	}
	start := r.now()
	log := r.log.With("req", req.ID, "user", req.Principal(), "channel", req.Channel)
	defer func() {
		if p := recover(); p != nil {
			log.Error("command panicked", "panic", p, "stack", string(debug.Stack()))
			reply = ErrorReply(fmt.Errorf("panic: %v", p), req.ID)
		}
		log.Info("request", "line", req.Line, "status", reply.Status.String(), "took", r.now().Sub(start))
	}()

	words, err := SplitWords(req.Line)
	if err != nil {
		return ErrorReply(err, req.ID)
	}
	if len(words) == 0 {
		return r.help()
	}
	name := strings.ToLower(strings.TrimPrefix(words[0], "/"))
	req.Command, req.Args = name, words[1:]

	if name == "help" || (name == "opsbot" && (len(req.Args) == 0 || req.Args[0] == "help")) {
		if len(req.Args) > 0 && name == "help" {
			return r.usage(strings.TrimPrefix(req.Args[0], "/"))
		}
		return r.help()
	}
	cmd, ok := r.commands[name]
	if !ok {
		return ErrorReply(Errorf(ENOTFOUND, "unknown command %q: the commands are %s (try help)", words[0], r.list()), req.ID)
	}
	if len(req.Args) == 1 && (req.Args[0] == "help" || req.Args[0] == "-h" || req.Args[0] == "--help") {
		return r.usage(name)
	}
	if r.users != nil {
		if wait, ok := r.users.Allow(req.Principal()); !ok {
			return ErrorReply(Errorf(ERATELIMIT, "rate limit: too many commands from you; retry in %s", roundUp(wait)), req.ID)
		}
	}
	reply, err = cmd.Run(ctx, req)
	if err != nil {
		if ErrorCode(err) == EINTERNAL {
			log.Error("command failed", "err", err)
		}
		return ErrorReply(err, req.ID)
	}
	return reply
}

func (r *Router) list() string {
	out := make([]string, len(r.names))
	for i, n := range r.names {
		out[i] = "/" + n
	}
	return strings.Join(out, ", ")
}

func (r *Router) help() Reply {
	t := &Table{Header: []string{"command", "what it does"}}
	for _, n := range r.names {
		t.Rows = append(t.Rows, []string{"/" + n, r.commands[n].Summary()})
	}
	return Reply{Status: StatusInfo, Title: "opsbot commands", Table: t,
		Text: "Type a command followed by help for its usage, e.g. /portcheck help."}
}

func (r *Router) usage(name string) Reply {
	cmd, ok := r.commands[strings.ToLower(name)]
	if !ok {
		return ErrorReply(Errorf(ENOTFOUND, "unknown command %q: the commands are %s", name, r.list()), "")
	}
	return Reply{Status: StatusInfo, Title: "/" + cmd.Name() + ": " + cmd.Summary(), Text: cmd.Usage()}
}

// NewID returns a short random request ID, quotable from a chat message.
func NewID() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}
