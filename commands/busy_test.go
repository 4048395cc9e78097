package commands

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/probe"
)

// busyCounter is an Observer that counts busy refusals, as the metrics
// adapter does.
type busyCounter struct {
	bot.NopObserver
	mu   sync.Mutex
	what []string
}

func (b *busyCounter) Busy(what string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.what = append(b.what, what)
}

func refusingScan(_ context.Context, _ probe.ScanSpec, _ func(probe.Progress)) (probe.ScanResult, error) {
	return probe.ScanResult{}, &probe.BusyError{Holders: 7, Held: 500, Total: 512, Want: 16, Waited: 10 * time.Second}
}

// When the socket budget has no share for a scan, /scan and a /portcheck
// of several ports answer busy (exit 3), say when to try again, count it,
// and probe nothing one by one instead.
func TestBusySockets_ScanAndPortcheckAnswerBusy(t *testing.T) {
	p := bot.DefaultPolicy()
	targets, err := bot.NewTargets(p.Targets, nil, nil)
	require.NoError(t, err)
	sc := NewScan(targets, p.Limits)
	sc.scan = refusingScan
	pc := NewPortcheck(targets, p.Limits.PortcheckPorts)
	pc.scan = refusingScan
	checked := 0
	pc.check = func(_ context.Context, ap netip.AddrPort, proto probe.Proto, _ probe.Options) probe.Result {
		checked++
		return probe.Result{Target: ap, Proto: proto, State: probe.Open, Reason: probe.Handshake}
	}
	obs := &busyCounter{}
	r := bot.NewRouter(bot.RouterConfig{Commands: []bot.Command{sc, pc}, Observer: obs})
	for _, line := range []string{"/scan 127.0.0.1 1-1000", "/portcheck 127.0.0.1 80,443"} {
		reply := r.Handle(context.Background(), bot.Request{Platform: "shell", User: "alice", Line: line})
		assert.Equal(t, bot.EBUSY, reply.Code, line)
		assert.Equal(t, 3, reply.Status.ExitCode(), line)
		assert.True(t, strings.HasPrefix(reply.Title, "busy: 7 jobs running"), "%s: %s", line, reply.Title)
		assert.Contains(t, reply.Title, "try again in ", line)
	}
	assert.Zero(t, checked, "a busy bot does not fall back to checking port by port")
	assert.Equal(t, []string{"sockets", "sockets"}, obs.what)
}
