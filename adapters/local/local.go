// Package local owns running a fixed argv on the bot's own machine: it
// implements bot.Runner with os/exec, never through a shell. It bounds what
// a command may print, runs each command in its own process group so that a
// timeout or a cancel kills everything the command started, and prefixes
// sudo or doas (non-interactive) when the host asks for privilege
// escalation.
package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"time"

	"github.com/opsbot/opsbot/bot"
)

const (
	// DefaultMaxOutput bounds stdout and stderr, each, when Runner.MaxOutput is 0.
	DefaultMaxOutput = 1 << 20
	// DefaultTimeout bounds a command when neither the host nor the runner
	// sets one: a runner must never hang.
	DefaultTimeout = time.Minute
	// waitDelay bounds how long Run waits for the output pipes to close
	// after the command has exited or been killed: a descendant that left
	// the process group (setsid) may keep them open.
	waitDelay = 2 * time.Second
)

// Runner runs commands locally. The zero value is ready to use.
type Runner struct {
	MaxOutput      int           // bytes kept of stdout and of stderr, each; 0 = DefaultMaxOutput
	DefaultTimeout time.Duration // for hosts without a Timeout; 0 = DefaultTimeout
}

var _ bot.Runner = (*Runner)(nil)

// Run runs argv (argv[0] looked up on PATH), prefixed by sudo or doas as
// host.Become says. A non-zero exit is not an error; a timeout or a cancel
// is, and kills the command's whole process group (ExitCode -1).
func (r *Runner) Run(ctx context.Context, host bot.Host, argv []string) (bot.Output, error) {
	if host.Via != "" && host.Via != "local" {
		return bot.Output{ExitCode: -1}, fmt.Errorf("local %s: host is reached via %q, not local", host.Name, host.Via)
	}
	words, err := bot.BecomeArgv(host.Become, argv)
	if err != nil {
		return bot.Output{ExitCode: -1}, fmt.Errorf("local %s: %w", host.Name, err)
	}
	timeout := host.Timeout
	if timeout <= 0 {
		timeout = r.DefaultTimeout
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	limit := r.MaxOutput
	if limit <= 0 {
		limit = DefaultMaxOutput
	}

	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errTimedOut{timeout})
	defer cancel()

	stdout, stderr := &bot.LimitedBuffer{Limit: limit}, &bot.LimitedBuffer{Limit: limit}
	cmd := exec.CommandContext(ctx, words[0], words[1:]...) //nolint:gosec // argv by design: no shell parses it
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Stdin = nil // /dev/null: nothing may wait for a prompt
	cmd.WaitDelay = waitDelay
	inOwnProcessGroup(cmd)

	start := time.Now()
	err = cmd.Run()
	out := bot.Output{
		Stdout:    stdout.Bytes(),
		Stderr:    stderr.Bytes(),
		ExitCode:  -1,
		Truncated: stdout.Truncated() || stderr.Truncated(),
		Duration:  time.Since(start),
	}
	if cmd.ProcessState != nil {
		out.ExitCode = cmd.ProcessState.ExitCode() // -1 when killed by a signal
	}
	if ctx.Err() != nil {
		out.ExitCode = -1
		if cause := context.Cause(ctx); errors.As(cause, new(errTimedOut)) {
			return out, fmt.Errorf("local %s: %s: %w", host.Name, words[0], cause)
		}
		return out, fmt.Errorf("local %s: %s: canceled: %w", host.Name, words[0], context.Cause(ctx))
	}
	if err != nil {
		var exitErr *exec.ExitError
		switch {
		case errors.As(err, &exitErr):
			// The command ran and ended badly (exit status or signal):
			// Output says how, and that is not an error.
		case errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil:
			// The command exited but something it left behind kept its
			// output open; what was read is all there is.
		default:
			return out, fmt.Errorf("local %s: %w", host.Name, err)
		}
	}
	return out, nil
}

// errTimedOut is the cause of a context that ran out of time.
type errTimedOut struct{ after time.Duration }

func (e errTimedOut) Error() string { return fmt.Sprintf("timed out after %s", e.after) }

func (e errTimedOut) Is(target error) bool { return target == context.DeadlineExceeded }

var _ bot.HostDialer = (*Runner)(nil)

// DialHost connects to address from this host: the bot's own host is the
// local host.
func (r *Runner) DialHost(ctx context.Context, host bot.Host, address string) (net.Conn, error) {
	if host.Via != "" && host.Via != "local" {
		return nil, fmt.Errorf("local %s: host is reached via %q, not local", host.Name, host.Via)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", address)
}
