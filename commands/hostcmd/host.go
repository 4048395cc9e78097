package hostcmd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
)

// IO runs a command's fixed argv on one inventory host. Every argv is
// built from the inventory's settings and validated words: nothing typed
// in chat reaches a shell. A command's own host type embeds it.
type IO struct {
	Runner bot.Runner
	Host   bot.Host
}

// Unprivileged is h without the host's sudo or doas: for what needs no
// privilege (reading a pid file, rcctl get), one less sudoers line.
func (h IO) Unprivileged() IO {
	h.Host.Become = ""
	return h
}

// Run runs argv bounded by timeout. A non-zero exit is no error (the
// Output says it); an error means the command could not run or did not
// finish, and its message names the command and the host.
func (h IO) Run(ctx context.Context, timeout time.Duration, argv []string) (bot.Output, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := h.Runner.Run(ctx, h.Host, argv)
	if err == nil {
		return out, nil
	}
	if bot.ErrorMessage(err) != "" {
		return out, err
	}
	what := h.Shown(argv)
	if errors.Is(err, context.DeadlineExceeded) {
		return out, &bot.Error{Code: bot.EFAILED, Message: fmt.Sprintf("%s on %s did not finish within %s: stopped", what, h.Host.Name, bound(timeout, h.Host.Timeout)), Err: err}
	}
	return out, &bot.Error{Code: bot.EFAILED, Message: fmt.Sprintf("%s on %s: %v", what, h.Host.Name, err), Err: err}
}

// bound is the shorter of our timeout and the host's.
func bound(ours, host time.Duration) time.Duration {
	if host > 0 && host < ours {
		return host
	}
	return ours
}

// Shown is how a person would type argv on the host: with the privilege
// escalation in front (without the non-interactive flags), for recovery
// instructions, step lists and errors.
func (h IO) Shown(argv []string) string {
	words := argv
	if h.Host.Become != "" {
		words = append([]string{h.Host.Become}, argv...)
	}
	out := make([]string, len(words))
	for i, w := range words {
		if w == "" || strings.ContainsAny(w, " \t'\"\\$`;&|<>()*?[]#~") {
			w = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
		out[i] = w
	}
	return strings.Join(out, " ")
}
