package commands

import (
	"context"

	"github.com/opsbot/opsbot/commands/internal/portwords"
)

// busyError turns the socket budget's refusal into a busy bot's answer
// (and counts it); nil when err is something else.
func busyError(ctx context.Context, err error) error { return portwords.Busy(ctx, err) }
