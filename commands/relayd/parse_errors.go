package relayd

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Condition is how a run of relayctl or `relayd -n` ended, read from what
// it printed and its exit status.
type Condition string

// Conditions. The first three are successes; Classify returns an *Error for
// the others.
const (
	Done              Condition = "done"               // exit 0 and no reply line: show views, reload, load
	Succeeded         Condition = "succeeded"          // "command succeeded": poll, enable, disable
	LogSent           Condition = "log_sent"           // "logging request sent.": log verbose, log brief
	CommandFailed     Condition = "command_failed"     // "command failed": no such name or id, or a host that has a parent
	NotRunning        Condition = "not_running"        // the control socket does not exist
	ConnectionRefused Condition = "connection_refused" // the socket exists but nobody listens: a stale socket
	PermissionDenied  Condition = "permission_denied"  // the socket is not ours to open
	UsageError        Condition = "usage"              // relayctl did not accept the command line
	NeedRoot          Condition = "need_root"          // relayd -n run without root
	OtherError        Condition = "error"              // anything else; Error.Lines says what
)

// Error is a failed relayctl or relayd run. Its message is written for the
// person in the channel, and says what to do where there is something to
// do; Lines keeps the tool's own words for the log or a code block.
type Error struct {
	Tool      string    `json:"tool"` // "relayctl" or "relayd -n"
	Condition Condition `json:"condition"`
	Socket    string    `json:"socket,omitempty"` // the control socket a connect error named
	ExitCode  int       `json:"exit_code"`
	Lines     []string  `json:"lines,omitempty"` // what the tool printed that told us
}

func (e *Error) Error() string {
	switch e.Condition {
	case NotRunning:
		return fmt.Sprintf("relayd is not running: its control socket %s does not exist", e.Socket)
	case ConnectionRefused:
		return fmt.Sprintf("relayd is not answering on %s (connection refused): the socket is left over from a relayd that is gone", e.Socket)
	case PermissionDenied:
		// control.c creates the socket mode 0660, owned by root; its group
		// comes from the directory, so it is not ours to name.
		return fmt.Sprintf("permission denied on %s: the socket is mode 0660, owned by root and by the group of its directory (ls -l shows it); run relayctl as root (become: doas) or as a member of that group", e.Socket)
	case CommandFailed:
		return "relayd answered command failed: no object with that name or id, or a host that takes its state from a parent"
	case UsageError:
		return "relayctl did not accept the command: " + e.first()
	case NeedRoot:
		return "relayd -n needs root to test the configuration: run it through doas (become: doas)"
	}
	var what string
	switch {
	case e.ExitCode < 0:
		what = e.Tool + " did not finish (timed out or killed)"
	case e.ExitCode == 0: // only relayd -n: success has a sentence of its own
		what = e.Tool + " exited 0 without saying configuration OK"
	default:
		what = fmt.Sprintf("%s failed with exit status %d", e.Tool, e.ExitCode)
	}
	if len(e.Lines) == 0 {
		return what + " and printed nothing"
	}
	return what + ": " + strings.Join(e.Lines, "; ")
}

func (e *Error) first() string {
	if len(e.Lines) == 0 {
		return "no message"
	}
	return e.Lines[0]
}

// usageRE matches what relayctl's argument parser prints (parser.c) and
// its usage line.
var usageRE = regexp.MustCompile(`^(?:usage: \S+ \[-s socket\]|valid commands/args:$|superfluous argument: |missing argument:$|ambiguous argument: |unknown argument: )`)

// Classify reads how a relayctl run ended. The condition is always set;
// the error is an *Error when the run failed. A zero exit is a success
// whatever stderr holds: relayctl exits 1 on every failure it knows.
func Classify(stdout, stderr []byte, exitCode int) (Condition, error) {
	if exitCode == 0 {
		switch lastLine(stdout) {
		case "command succeeded":
			return Succeeded, nil
		case "logging request sent.":
			return LogSent, nil
		}
		return Done, nil
	}
	errLines := nonBlank(stderr)
	e := &Error{Tool: "relayctl", Condition: OtherError, ExitCode: exitCode, Lines: errLines}
	for _, l := range errLines {
		if cond, socket, ok := connectError(l); ok {
			e.Condition, e.Socket, e.Lines = cond, socket, []string{l}
			return cond, e
		}
	}
	for _, l := range errLines {
		if usageRE.MatchString(l) {
			e.Condition = UsageError
			return UsageError, e
		}
	}
	if lastLine(stdout) == "command failed" {
		e.Condition, e.Lines = CommandFailed, append([]string{"command failed"}, errLines...)
		return CommandFailed, e
	}
	return OtherError, e
}

// connectError reads relayctl's err(1, "connect: %s", sockname): the
// errno text is the last part, so a socket path with ": " in it survives.
func connectError(line string) (Condition, string, bool) {
	_, rest, ok := strings.Cut(line, ": connect: ")
	if !ok || strings.ContainsAny(line[:len(line)-len(rest)-len(": connect: ")], " \t") {
		return "", "", false
	}
	for _, c := range []struct {
		errno string
		cond  Condition
	}{
		{": No such file or directory", NotRunning},
		{": Connection refused", ConnectionRefused},
		{": Permission denied", PermissionDenied},
	} {
		if socket, ok := strings.CutSuffix(rest, c.errno); ok && socket != "" {
			return c.cond, socket, true
		}
	}
	return "", "", false
}

func nonBlank(out []byte) []string {
	var lines []string
	for _, l := range splitLines(out) {
		if l = rtrim(l); !blank(l) {
			lines = append(lines, l)
		}
	}
	return lines
}

func lastLine(out []byte) string {
	lines := nonBlank(out)
	if len(lines) == 0 {
		return ""
	}
	return strings.TrimSpace(lines[len(lines)-1])
}

// CheckResult is what `relayd -n` said about the configuration.
type CheckResult struct {
	OK       bool          `json:"ok"`                 // "configuration OK" and exit 0
	Errors   []ConfigError `json:"errors,omitempty"`   // FILE:LINE: message, one per line
	Messages []Line        `json:"messages,omitempty"` // lines without a position: "no actions, nothing to do", warnings
}

// ConfigError is one positioned diagnostic of the configuration parser.
// File is the path as relayd opened it: the -f file or an included one.
type ConfigError struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Message string `json:"message"`
}

func (c ConfigError) String() string {
	return fmt.Sprintf("%s:%d: %s", c.File, c.Line, c.Message)
}

var (
	configErrorRE = regexp.MustCompile(`^(.+?):(\d+): (.*)$`)
	// relayd checks for root after reading the main file, so a file only
	// root may read fails first, in pushfile().
	needRootRE = regexp.MustCompile(`^(?:\S+: need root privileges|pushfile: .+: Permission denied)$`)
)

// ParseCheck reads `relayd -n`: its stderr (stdout stays empty) and exit
// status. A broken configuration is a result, not an error: err is an
// *Error only when relayd could not give a verdict, NeedRoot when it was
// not run as root, OtherError when it exited 0 without saying
// "configuration OK" or failed without a word.
func ParseCheck(stderr []byte, exitCode int) (CheckResult, error) {
	var r CheckResult
	sawOK, needRoot := false, false
	for i, raw := range splitLines(stderr) {
		line := rtrim(raw)
		if blank(line) {
			continue
		}
		if line == "configuration OK" && !sawOK {
			sawOK = true
			continue
		}
		if m := configErrorRE.FindStringSubmatch(line); m != nil {
			if n, err := strconv.Atoi(m[2]); err == nil {
				r.Errors = append(r.Errors, ConfigError{File: m[1], Line: n, Message: m[3]})
				continue
			}
		}
		needRoot = needRoot || needRootRE.MatchString(line)
		r.Messages = append(r.Messages, Line{N: i + 1, Text: raw})
	}
	r.OK = exitCode == 0 && sawOK && len(r.Errors) == 0
	var lines []string
	for _, m := range r.Messages {
		lines = append(lines, rtrim(m.Text))
	}
	switch {
	case needRoot && !r.OK:
		return r, &Error{Tool: "relayd -n", Condition: NeedRoot, ExitCode: exitCode, Lines: lines}
	case exitCode == 0 && !r.OK, exitCode != 0 && len(r.Errors) == 0 && len(r.Messages) == 0:
		return r, &Error{Tool: "relayd -n", Condition: OtherError, ExitCode: exitCode, Lines: lines}
	}
	return r, nil
}
