package relayd

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/local"
	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/hostcmd/hostcmdtest"
	"github.com/opsbot/opsbot/commands/relayd/relaydtest"
)

// The stand-ins live in relaydtest, which cmd/opsbot's end-to-end tests
// share; these names keep the tests short.
type (
	bed    = relaydtest.Bed
	answer = relaydtest.Answer
)

var (
	newBed = relaydtest.New
	prints = relaydtest.Prints
	fail   = relaydtest.Fails
	silent = relaydtest.Silent
)

// fakeClock advances 10 ms on every reading, so that reported timings are
// the same on every run.
func fakeClock() func() time.Time {
	var ticks atomic.Int64
	base := time.Date(2025, 11, 25, 10, 0, 0, 0, time.UTC)
	return func() time.Time { return base.Add(time.Duration(ticks.Add(1)) * 10 * time.Millisecond) }
}

// setup is /relayd over an inventory given as YAML, with the local runner
// (and others) under a counting runner, short bounds and a fake clock.
type setup struct {
	cmd    *Command
	runner *hostcmdtest.Recorder
}

func newSetup(t *testing.T, policy string, runners bot.Runners, edit func(*Config)) *setup {
	t.Helper()
	p, err := bot.ParsePolicy([]byte(policy), Settings())
	require.NoError(t, err, policy)
	if runners == nil {
		runners = bot.Runners{}
	}
	if runners["local"] == nil {
		runners["local"] = &local.Runner{}
	}
	s := &setup{runner: &hostcmdtest.Recorder{Runner: runners}}
	cfg := Config{Hosts: bot.HostAccess{Inventory: bot.NewInventory(p)}, Runner: s.runner, Wait: 3 * time.Second, Timeout: 5 * time.Second}
	if edit != nil {
		edit(&cfg)
	}
	s.cmd = New(cfg)
	s.cmd.now = fakeClock()
	return s
}

// oneHost is a setup with one local relayd host lb1 on b.
func oneHost(t *testing.T, b *bed, edit func(*Config)) *setup {
	t.Helper()
	return newSetup(t, "hosts:\n  lb1: {via: local, relayd: "+b.Spec("")+"}\n", nil, edit)
}

// progress records what a command streams.
type progress struct {
	mu      sync.Mutex
	replies []bot.Reply
}

func (p *progress) Progress(r bot.Reply) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.replies = append(p.replies, r)
}

func (p *progress) Post(bot.Reply) {}

func (p *progress) titles() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, r := range p.replies {
		out = append(out, r.Title)
	}
	return out
}

func (s *setup) request(t *testing.T, line string, stream bot.Stream) bot.Request {
	t.Helper()
	words, err := bot.SplitWords(line)
	require.NoError(t, err)
	if stream == nil {
		stream = bot.NopStream{}
	}
	return bot.Request{Platform: "shell", User: "alice", Line: line, Command: "relayd", Args: words[1:], Stream: stream}
}

func (s *setup) run(t *testing.T, line string, stream bot.Stream) bot.Reply {
	t.Helper()
	rep, err := s.cmd.Run(context.Background(), s.request(t, line, stream))
	if err != nil {
		return bot.ErrorReply(err, "test")
	}
	return rep
}

func (s *setup) prepare(t *testing.T, line string) bot.Prepared {
	t.Helper()
	p, err := s.cmd.Prepare(context.Background(), s.request(t, line, nil))
	require.NoError(t, err)
	return p
}
