package bot

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Status is the verdict of a Reply. Adapters colour by it; `opsbot run`
// turns it into its exit code.
type Status uint8

// The statuses, each with its exit code (ExitCode).
const (
	StatusOK       Status = iota // success: port open, action done
	StatusNegative               // the answer is no: port closed or filtered, nothing found
	StatusInfo                   // help and listings: not a verdict
	StatusRunning                // a progress update of a command still running
	StatusUsage                  // bad input or configuration
	StatusDenied                 // policy or a rate limit refused it
	StatusPending                // waiting for approval
	StatusFailed                 // the action failed, or an internal error
)

var statusNames = [...]string{"ok", "negative", "info", "running", "usage", "denied", "pending", "failed"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "unknown"
}

// ExitCode is the exit code of `opsbot run` for a reply of this status
// (DESIGN.md §4).
func (s Status) ExitCode() int {
	switch s {
	case StatusOK, StatusInfo:
		return 0
	case StatusUsage:
		return 2
	case StatusDenied:
		return 3
	case StatusPending:
		return 4
	default:
		return 1
	}
}

// Reply is what a command says, independent of any chat platform. Adapters
// render it: Block Kit, Mattermost attachments, plain text.
type Reply struct {
	Status Status
	Title  string   // the verdict in one line
	Lines  []string // result lines, shown monospaced (nc-style port lines)
	Text   string   // explanation in prose, may span lines
	Fields []Field  // key facts: duration, counts
	Table  *Table
	// Actions are buttons whose payload is an ordinary command line, so a
	// click comes back as a Request and adapters know nothing of what it does.
	Actions []Action
	// Code is the error code (EINVALID, ENOTFOUND, ...) of a reply made from
	// an error, so adapters can decide on it instead of on the wording.
	Code string `json:",omitempty"`

	// What the reply means for the messages already in a channel. Adapters
	// decide on these fields, never on the wording (see Decided).

	// Decides is set when this reply ends an approval request: approved
	// (and run), denied, cancelled by its requester, or expired.
	Decides *Decided `json:",omitempty"`
	// Supersedes is the ID of the approval whose prompt this reply
	// replaces: an adapter that answers a click on that prompt puts this
	// reply in its place, its buttons gone.
	Supersedes string `json:",omitempty"`
	// Cancel is the ID of the running request this reply shows the
	// progress of: adapters add the one Cancel action (CancelAction) that
	// stops it.
	Cancel string `json:",omitempty"`
	// Mention is the person this reply is news for (a wait that ended, a
	// state that changed while they were away): chat adapters name them
	// in their platform's syntax (Slack <@U123>, Mattermost @username), so
	// that the platform notifies them. Platforms notify for a new message,
	// not an edit, so commands set it on thread posts (Stream.Post). An
	// adapter names a person only of its own platform; the terminal
	// ignores it.
	Mention *Mention `json:",omitempty"`
}

// Mention is a person to notify, as their platform knows them.
type Mention struct {
	Platform string // "slack", "mattermost", "shell"
	User     string // the platform's user ID
	UserName string // the platform's user name, for platforms that mention by name
}

// MentionOf is the asker of req, to be notified.
func MentionOf(req Request) *Mention {
	return &Mention{Platform: req.Platform, User: req.User, UserName: req.UserName}
}

// Verdict is how an approval request ended.
type Verdict uint8

// The verdicts a Decided carries.
const (
	VerdictApproved  Verdict = iota + 1 // approved by enough people; the action ran
	VerdictDenied                       // refused by an approver; nothing ran
	VerdictCancelled                    // withdrawn by its requester; nothing ran
	VerdictExpired                      // nobody decided in time; nothing ran
)

var verdictNames = [...]string{"", "approved", "denied", "cancelled", "expired"}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) && v > 0 {
		return verdictNames[v]
	}
	return "unknown"
}

// Decided says that a reply ends an approval request, how, and who ended
// it. By and Request are empty when time ended it (an expiry).
type Decided struct {
	Approval string  // the approval ID
	Verdict  Verdict // how it ended
	By       string  // the person who decided, as prompts and the audit name them
	// Request, Platform and Channel say where the deciding request came
	// from (a click, a typed /opsbot approve), so that an adapter can tell
	// the result already shows in the requester's channel.
	Request  string
	Platform string
	Channel  string
}

// CancelAction is the one Cancel button of a running request: every
// adapter shows it the same way for a reply whose Cancel is set. Its style
// is the default: stopping is never the disruptive choice, and a danger
// button would ask "Cancel?" with a "Cancel" to back out.
func CancelAction(requestID string) Action {
	return Action{Label: "Cancel", Command: "/opsbot cancel " + requestID}
}

// WithActions is r.Actions, with the Cancel action when r may be cancelled.
func (r Reply) WithActions() []Action {
	if r.Cancel == "" {
		return r.Actions
	}
	return append(r.Actions[:len(r.Actions):len(r.Actions)], CancelAction(r.Cancel))
}

// Field is one key fact.
type Field struct {
	Name, Value string
}

// Table is a small table; adapters keep columns aligned.
type Table struct {
	Header []string
	Rows   [][]string
}

// Aligned renders the table as monospace lines: the header in upper case,
// columns padded to their widest cell plus two spaces. The terminal and
// chat code blocks show it as is.
func (t *Table) Aligned() []string {
	widths := make([]int, len(t.Header))
	measure := func(row []string) {
		for i, c := range row {
			if i < len(widths) {
				widths[i] = max(widths[i], utf8.RuneCountInString(c))
			}
		}
	}
	measure(t.Header)
	for _, row := range t.Rows {
		measure(row)
	}
	line := func(row []string) string {
		var b strings.Builder
		for i, c := range row {
			if i >= len(widths) {
				break
			}
			b.WriteString(c)
			if i < len(row)-1 && i < len(widths)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2))
			}
		}
		return b.String()
	}
	upper := make([]string, len(t.Header))
	for i, h := range t.Header {
		upper[i] = strings.ToUpper(h)
	}
	out := []string{line(upper)}
	for _, row := range t.Rows {
		out = append(out, line(row))
	}
	return out
}

// ActionStyle hints how a button looks.
type ActionStyle uint8

// Button styles: default, primary (the expected choice), danger (disruptive).
const (
	ActionDefault ActionStyle = iota
	ActionPrimary
	ActionDanger
)

// Action is a button. Command is the line that runs when it is pressed.
type Action struct {
	Label   string
	Command string
	Style   ActionStyle
}

// ErrorReply turns an error into a reply; ref is the request ID shown for
// internal errors so that a user can quote it and an operator can grep the
// logs for it.
func ErrorReply(err error, ref string) Reply {
	msg := ErrorMessage(err)
	st := StatusFailed
	switch ErrorCode(err) {
	case EINVALID, ENOTFOUND, ECONFIG:
		st = StatusUsage
	case EDENIED, ERATELIMIT, EBUSY:
		st = StatusDenied
	case ECONFLICT:
		st = StatusNegative
	case EINTERNAL:
		msg = "internal error, ref " + ref
	}
	return Reply{Status: st, Title: msg, Code: ErrorCode(err)}
}

// Human formats a duration the way people read latencies: 0.4 ms, 12 ms,
// 1.25 s. Every reply that shows a duration uses it.
func Human(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 0, 64) + " ms"
	default:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s"
	}
}

// Plain is the whole reply as plain text: the title, the result lines, the
// table aligned, the fields and the explanation. Adapters attach it as a
// file when a reply is longer than the messages they may post.
func (r Reply) Plain() string {
	var b strings.Builder
	if r.Title != "" {
		b.WriteString(r.Title + "\n")
	}
	for _, f := range r.Fields {
		b.WriteString(f.Name + ": " + f.Value + "\n")
	}
	for _, l := range r.Lines {
		b.WriteString(l + "\n")
	}
	if r.Table != nil {
		for _, l := range r.Table.Aligned() {
			b.WriteString(l + "\n")
		}
	}
	if r.Text != "" {
		b.WriteString(r.Text + "\n")
	}
	return b.String()
}
