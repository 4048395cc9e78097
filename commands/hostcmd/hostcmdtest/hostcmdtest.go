// Package hostcmdtest holds what the tests of the host commands share.
package hostcmdtest

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/opsbot/opsbot/bot"
)

// Recorder is a runner that records every argv, the host's name first,
// before it passes it on to Runner (and dials from the host with Runner,
// when Runner can).
type Recorder struct {
	Runner bot.Runner

	mu    sync.Mutex
	calls [][]string
}

var (
	_ bot.Runner     = (*Recorder)(nil)
	_ bot.HostDialer = (*Recorder)(nil)
)

// Run implements bot.Runner.
func (r *Recorder) Run(ctx context.Context, h bot.Host, argv []string) (bot.Output, error) {
	r.mu.Lock()
	r.calls = append(r.calls, append([]string{h.Name}, argv...))
	r.mu.Unlock()
	return r.Runner.Run(ctx, h, argv)
}

// DialHost implements bot.HostDialer when Runner does.
func (r *Recorder) DialHost(ctx context.Context, h bot.Host, address string) (net.Conn, error) {
	d, ok := r.Runner.(bot.HostDialer)
	if !ok {
		return nil, errors.New("the runner cannot open connections from the host")
	}
	return d.DialHost(ctx, h, address)
}

// Calls are the argv recorded so far, each with the host's name first.
func (r *Recorder) Calls() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]string(nil), r.calls...)
}

// Count is how many argv reached the runner.
func (r *Recorder) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}
