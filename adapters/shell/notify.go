package shell

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/opsbot/opsbot/bot"
)

// Notifier tells the terminal how a request from the terminal ended when
// this process was not the one waiting for it: an action of an earlier
// process that was killed between its start and its outcome, found and
// recorded interrupted as this one starts.
type Notifier struct {
	mu sync.Mutex
	W  io.Writer
}

var _ bot.Notifier = (*Notifier)(nil)

// NotifyOutcome implements bot.Notifier.
func (n *Notifier) NotifyOutcome(_ context.Context, a bot.Approval, outcome bot.Reply) {
	n.mu.Lock()
	defer n.mu.Unlock()
	fmt.Fprintf(n.W, "opsbot: about %s's earlier request %s:\n%s", a.Platform+":"+a.User, a.Line, Render(outcome))
}
