package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/probe"
)

// busyRetry is when to try again after the socket budget refused: shares
// come back as scans end, which on most paths takes seconds to a minute.
const busyRetry = "a minute"

// busyError turns the socket budget's refusal into a busy bot's answer
// (and counts it); nil when err is something else.
func busyError(ctx context.Context, err error) error {
	var busy *probe.BusyError
	if !errors.As(err, &busy) {
		return nil
	}
	bot.ObserveBusy(ctx, "sockets")
	return &bot.Error{Code: bot.EBUSY, Err: err, Message: fmt.Sprintf(
		"busy: %d jobs running (scans, checks, listeners) hold the %d sockets opsbot may use for probes, try again in %s",
		busy.Holders, busy.Total, busyRetry)}
}
