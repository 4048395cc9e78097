package bot

import (
	"errors"
	"fmt"
)

// Error codes. Each maps to one exit code of `opsbot run` and one reply
// status, so scripts and chat see the same verdict.
const (
	EINVALID   = "invalid"    // bad input: usage error, exit 2
	EDENIED    = "denied"     // policy says no: exit 3
	ERATELIMIT = "rate_limit" // too many requests: exit 3
	EBUSY      = "busy"       // the bot is at a limit of jobs or sockets; try again later: exit 3
	ENOTFOUND  = "not_found"  // unknown command, unresolvable host: exit 2
	ECONFIG    = "config"     // configuration error: exit 2
	EFAILED    = "failed"     // the action ran and failed: exit 1
	EINTERNAL  = "internal"   // a bug or an unexpected failure: exit 1
)

// Error carries a message that is safe to show in chat, apart from the
// internal cause, which is only logged.
type Error struct {
	Code    string
	Message string
	Err     error // internal cause; never shown to users
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with a user-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or
// EINTERNAL for any other non-nil error.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return EINTERNAL
}

// ErrorMessage returns the user-safe message of err, or "" when err carries
// none (then only a reference to the log may be shown).
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return ""
}
