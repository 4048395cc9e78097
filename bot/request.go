package bot

import "time"

// Request is one command as a user typed it, on any platform.
type Request struct {
	ID       string // unique per request; shown as "ref" in internal errors
	Platform string // "shell", "slack", "mattermost"
	User     string // the platform's user ID ("alice" in the terminal)
	UserName string // display name, for messages
	Channel  string // the platform's channel ID
	// ChannelName is the channel's name as the platform sends it ("ops",
	// no "#"), "" where it sends none: roles' channels: may name either.
	ChannelName string
	Line        string // the command line as typed, e.g. "/portcheck 10.0.0.1 80"
	Time        time.Time
	// SelfAsserted marks an identity nobody verified: `opsbot run --as
	// NAME` says who it is, where a chat platform proves it. The audit
	// records it so.
	SelfAsserted bool

	// Command and Args are filled by the Router from Line: the command name
	// without its slash, and the words after it.
	Command string
	Args    []string

	// Bound is set only when the Router runs an approved action: the hosts
	// and addresses the approval was bound to (Approval.Hosts). A command
	// that resolves names takes its targets from Bound and never resolves
	// them again, so the run reaches exactly what was approved.
	Bound []string

	// Stream receives messages while the command runs. Never nil once the
	// Router has the request.
	Stream Stream
}

// Principal is how policy names a user: "platform:user".
func (r Request) Principal() string { return r.Platform + ":" + r.User }

// Stream is how a running command talks before its final Reply.
type Stream interface {
	// Progress replaces the command's progress message: chat adapters edit
	// one message in place (at a bounded rate), the terminal redraws a line.
	Progress(Reply)
	// Post adds a message to the request's thread (a /listen connection).
	Post(Reply)
}

// NopStream drops everything.
type NopStream struct{}

// Progress drops the update.
func (NopStream) Progress(Reply) {}

// Post drops the message.
func (NopStream) Post(Reply) {}
