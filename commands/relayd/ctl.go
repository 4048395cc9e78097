package relayd

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/hostcmd"
)

// Bounds on the programs other than relayctl (whose bound is
// Config.Timeout). `relayd -n` loads certificates and resolves names;
// `rcctl restart` waits up to rc.subr's daemon_timeout (30 s) for the old
// relayd to stop before it starts the new one.
const (
	checkTimeout    = 30 * time.Second
	ifconfigTimeout = 15 * time.Second
	rcctlTimeout    = 90 * time.Second
)

// relayctlArgv is relayctl with full keywords (relayctl accepts
// abbreviations, and an abbreviation that becomes ambiguous in a later
// release would fail). -s is passed only for a socket other than the
// default: relayctl before OpenBSD 6.3 has no -s and refuses it.
func (s settings) relayctlArgv(words ...string) []string {
	argv := []string{s.relayctl}
	if s.socket != DefaultSocket {
		argv = append(argv, "-s", s.socket)
	}
	return append(argv, words...)
}

// checkArgv is relayd -n for the file and macros relayd runs with: a
// reload loads the -f file relayd was started with and keeps its -D
// macros. -f is left out for relayd's own default, so that a doas.conf
// rule written for a bare `relayd -n` keeps matching.
func (s settings) checkArgv(cf confFile) []string {
	argv := []string{s.relayd, "-n"}
	if cf.Path != "" && cf.Path != DefaultConfig {
		argv = append(argv, "-f", cf.Path)
	}
	for _, m := range cf.Macros {
		argv = append(argv, "-D", m)
	}
	return argv
}

func (s settings) flagsArgv() []string { return []string{s.rcctl, "get", "relayd", "flags"} }

func (s settings) demoteArgv() []string {
	return []string{s.ifconfig, "-g", s.carpGroup, "carpdemote", strconv.Itoa(s.demote)}
}

func (s settings) undemoteArgv() []string {
	return []string{s.ifconfig, "-g", s.carpGroup, "-carpdemote", strconv.Itoa(s.demote)}
}

func (s settings) restartArgv() []string { return []string{s.rcctl, "restart", "relayd"} }

// hostIO runs the fixed commands /relayd needs on one host.
type hostIO struct {
	hostcmd.IO
	set     settings
	timeout time.Duration // each relayctl call
}

// relayctl runs relayctl with words and reads how it ended. The error is
// a *bot.Error whose message names the host and says what to do; it wraps
// the parser's *Error when relayctl itself failed, so callers can tell a
// missing daemon from a refused command with errors.As.
func (h hostIO) relayctl(ctx context.Context, words ...string) (bot.Output, Condition, error) {
	out, err := h.Run(ctx, h.timeout, h.set.relayctlArgv(words...))
	if err != nil {
		return out, OtherError, err
	}
	cond, err := Classify(out.Stdout, out.Stderr, out.ExitCode)
	if err != nil {
		return out, cond, h.describe(err, "relayctl "+strings.Join(words, " "))
	}
	return out, cond, nil
}

// describe turns the parser's *Error into a message for the channel that
// names the host.
func (h hostIO) describe(err error, what string) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	name := h.Host.Name
	var msg string
	switch e.Condition {
	case NotRunning:
		msg = fmt.Sprintf("relayd is not running on %s: its control socket %s does not exist", name, e.Socket)
	case ConnectionRefused:
		msg = fmt.Sprintf("relayd is not running on %s: nothing answers on %s (connection refused), a socket left over from a relayd that is gone", name, e.Socket)
	case PermissionDenied:
		msg = fmt.Sprintf("%s: %s", name, e.Error())
	case NeedRoot:
		msg = fmt.Sprintf("relayd -n on %s needs root (%s): set become: doas for %s in the inventory, with a doas.conf rule that lets the bot's user run %s as root without a password (nopass)",
			name, strings.Join(e.Lines, "; "), name, h.set.relayd)
		if h.Host.Become != "" {
			msg = fmt.Sprintf("relayd -n on %s needs root (%s), and runs through %s already: check that its rule runs %s as root", name, strings.Join(e.Lines, "; "), h.Host.Become, h.set.relayd)
		}
	case CommandFailed:
		msg = fmt.Sprintf("%s on %s: %s", what, name, e.Error())
	default:
		msg = fmt.Sprintf("%s on %s: %s", what, name, e.Error())
	}
	return &bot.Error{Code: bot.EFAILED, Message: msg, Err: err}
}

// condition is the relayctl condition behind err, or "" when err is not
// relayctl's own failure (a runner error, a timeout).
func condition(err error) Condition {
	var e *Error
	if errors.As(err, &e) {
		return e.Condition
	}
	return ""
}

// notRunning says err means no relayd answers on the host.
func notRunning(err error) bool {
	c := condition(err)
	return c == NotRunning || c == ConnectionRefused
}

// showOut is one show view read from a host.
type showOut struct {
	Summary Summary
	Output  bot.Output
}

// show runs `relayctl show VIEW` and parses it.
func (h hostIO) show(ctx context.Context, v view) (showOut, error) {
	word := strings.TrimPrefix(v.String(), "show ")
	out, _, err := h.relayctl(ctx, "show", word)
	if err != nil {
		return showOut{Output: out}, err
	}
	return showOut{Summary: parseShow(v, out.Stdout), Output: out}, nil
}

// check runs `relayd -n` on the file relayd runs with (through the host's
// become: relayd needs root even for a config test) and parses its
// verdict.
func (h hostIO) check(ctx context.Context, cf confFile) (CheckResult, error) {
	out, err := h.Run(ctx, checkTimeout, h.set.checkArgv(cf))
	if err != nil {
		return CheckResult{}, err
	}
	r, err := ParseCheck(out.Stderr, out.ExitCode)
	if err != nil {
		return r, h.describe(err, "relayd -n")
	}
	return r, nil
}

// plain runs a program that is not relayctl (ifconfig, rcctl) and fails
// on a non-zero exit, quoting what it printed.
func (h hostIO) plain(ctx context.Context, timeout time.Duration, argv []string) (bot.Output, error) {
	out, err := h.Run(ctx, timeout, argv)
	if err != nil {
		return out, err
	}
	if out.ExitCode != 0 {
		said := strings.Join(append(nonBlank(out.Stderr), nonBlank(out.Stdout)...), "; ")
		if said == "" {
			said = "no message"
		}
		return out, bot.Errorf(bot.EFAILED, "%s exited %d: %s", h.Shown(argv), out.ExitCode, said)
	}
	return out, nil
}
