package bot

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeCommand is a hand-written fake with a function field.
type fakeCommand struct {
	name  string
	RunFn func(ctx context.Context, req Request) (Reply, error)
}

func (f *fakeCommand) Name() string    { return f.name }
func (f *fakeCommand) Summary() string { return "does " + f.name }
func (f *fakeCommand) Usage() string   { return "/" + f.name + " ARGS" }
func (f *fakeCommand) Run(ctx context.Context, req Request) (Reply, error) {
	return f.RunFn(ctx, req)
}

func TestRouter_RoutesWordsToTheCommand(t *testing.T) {
	var got Request
	echo := &fakeCommand{name: "echo", RunFn: func(_ context.Context, req Request) (Reply, error) {
		got = req
		return Reply{Status: StatusOK, Title: "ok"}, nil
	}}
	r := NewRouter(RouterConfig{Commands: []Command{echo}})
	reply := r.Handle(context.Background(), Request{Platform: "shell", User: "alice", Line: `/Echo a "b c"`})
	assert.Equal(t, StatusOK, reply.Status)
	assert.Equal(t, "echo", got.Command)
	assert.Equal(t, []string{"a", "b c"}, got.Args)
	assert.NotEmpty(t, got.ID)
	assert.NotNil(t, got.Stream)
}

func TestRouter_HelpAndUsage(t *testing.T) {
	called := false
	cmd := &fakeCommand{name: "scan", RunFn: func(context.Context, Request) (Reply, error) { called = true; return Reply{}, nil }}
	r := NewRouter(RouterConfig{Commands: []Command{cmd}})
	for _, line := range []string{"", "help", "/opsbot help", "/opsbot"} {
		reply := r.Handle(context.Background(), Request{Line: line})
		assert.Equal(t, StatusInfo, reply.Status, line)
		require.NotNil(t, reply.Table, line)
		assert.Equal(t, []string{"/scan", "does scan"}, reply.Table.Rows[0])
	}
	for _, line := range []string{"/scan help", "help scan", "/scan -h"} {
		reply := r.Handle(context.Background(), Request{Line: line})
		assert.Equal(t, StatusInfo, reply.Status, line)
		assert.Equal(t, "/scan ARGS", reply.Text, line)
	}
	assert.False(t, called, "help never runs the command")
}

func TestRouter_ErrorsBecomeReplies(t *testing.T) {
	cmd := &fakeCommand{name: "x", RunFn: func(_ context.Context, req Request) (Reply, error) {
		switch req.Args[0] {
		case "usage":
			return Reply{}, Errorf(EINVALID, "port 0 is out of range")
		case "denied":
			return Reply{}, Errorf(EDENIED, "no")
		case "internal":
			return Reply{}, errors.New("secret database password in this error")
		default:
			panic("boom")
		}
	}}
	r := NewRouter(RouterConfig{Commands: []Command{cmd}})
	h := func(line string) Reply { return r.Handle(context.Background(), Request{ID: "ref42", Line: line}) }

	assert.Equal(t, Reply{Status: StatusUsage, Title: "port 0 is out of range", Code: EINVALID}, h("x usage"))
	assert.Equal(t, 2, h("x usage").Status.ExitCode())
	assert.Equal(t, 3, h("x denied").Status.ExitCode())
	internal := h("x internal")
	assert.Equal(t, "internal error, ref ref42", internal.Title, "internal causes never reach chat")
	assert.Equal(t, "internal error, ref ref42", h("x panic").Title, "a panic does not crash the bot")

	unknown := h("/nope")
	assert.Equal(t, StatusUsage, unknown.Status)
	assert.Contains(t, unknown.Title, `unknown command "/nope"`)
	assert.Contains(t, unknown.Title, "/x")

	bad := h("x \xff")
	assert.Equal(t, StatusUsage, bad.Status)
	assert.Contains(t, bad.Title, "UTF-8")
}

func TestRouter_UserRateLimit(t *testing.T) {
	runs := 0
	cmd := &fakeCommand{name: "x", RunFn: func(context.Context, Request) (Reply, error) { runs++; return Reply{}, nil }}
	lim := NewRateLimiter(3)
	now := time.Unix(0, 0)
	lim.now = func() time.Time { return now }
	r := NewRouter(RouterConfig{Commands: []Command{cmd}, Users: lim})
	for i := 0; i < 3; i++ {
		assert.Equal(t, StatusOK, r.Handle(context.Background(), Request{Platform: "slack", User: "U1", Line: "x"}).Status)
	}
	limited := r.Handle(context.Background(), Request{Platform: "slack", User: "U1", Line: "x"})
	assert.Equal(t, StatusDenied, limited.Status)
	assert.Contains(t, limited.Title, "retry in 20s")
	assert.Equal(t, StatusOK, r.Handle(context.Background(), Request{Platform: "slack", User: "U2", Line: "x"}).Status, "others are not limited")
	assert.Equal(t, 4, runs)
}

func TestRouter_CancelStopsTheAskersRunningRequest(t *testing.T) {
	started := make(chan struct{})
	slow := &fakeCommand{name: "scan", RunFn: func(ctx context.Context, _ Request) (Reply, error) {
		close(started)
		<-ctx.Done()
		return Reply{Status: StatusNegative, Title: "canceled"}, nil
	}}
	r := NewRouter(RouterConfig{Commands: []Command{slow}})
	done := make(chan Reply)
	go func() {
		done <- r.Handle(context.Background(), Request{ID: "0123456789ab", Platform: "slack", User: "U1", Line: "/scan x"})
	}()
	<-started
	_, err := r.Cancel(context.Background(), Request{Platform: "slack", User: "U2"}, "0123456789ab")
	assert.Equal(t, EDENIED, ErrorCode(err), "not someone else's")
	_, err = r.Cancel(context.Background(), Request{Platform: "slack", User: "U1"}, "ffffffffffff")
	assert.Equal(t, ENOTFOUND, ErrorCode(err))
	reply, err := r.Cancel(context.Background(), Request{Platform: "slack", User: "U1"}, "0123456789ab")
	require.NoError(t, err)
	assert.Equal(t, "Canceled 0123456789ab: /scan x", reply.Title)
	select {
	case got := <-done:
		assert.Equal(t, "canceled", got.Title)
	case <-time.After(5 * time.Second):
		t.Fatal("cancel did not reach the command")
	}
}

func TestRouter_DrainLetsQuickOnesFinishAndCancelsTheRestSayingWhy(t *testing.T) {
	started := make(chan struct{}, 2)
	quick := &fakeCommand{name: "quick", RunFn: func(_ context.Context, _ Request) (Reply, error) {
		started <- struct{}{}
		time.Sleep(50 * time.Millisecond)
		return Reply{Status: StatusOK, Title: "quick done"}, nil
	}}
	slow := &fakeCommand{name: "slow", RunFn: func(ctx context.Context, _ Request) (Reply, error) {
		started <- struct{}{}
		<-ctx.Done()
		return Reply{Status: StatusOK, Title: "slow: 10 of 1000 ports done"}, nil
	}}
	r := NewRouter(RouterConfig{Commands: []Command{quick, slow}})
	replies := make(chan Reply, 2)
	for _, line := range []string{"/quick", "/slow"} {
		go func() {
			replies <- r.Handle(context.Background(), Request{Platform: "shell", User: "alice", Line: line})
		}()
	}
	<-started
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	canceled := r.Drain(ctx, 2*time.Second)
	assert.Equal(t, 1, canceled, "the quick one finished within the grace period")
	got := map[string]Reply{}
	for range 2 {
		rep := <-replies
		got[rep.Title] = rep
	}
	assert.Equal(t, StatusOK, got["quick done"].Status)
	slowRep := got["slow: 10 of 1000 ports done"]
	assert.Equal(t, StatusFailed, slowRep.Status, "a cut command is not a success")
	assert.Contains(t, slowRep.Text, "opsbot was shutting down")

	after := r.Handle(context.Background(), Request{Platform: "shell", User: "alice", Line: "/quick"})
	assert.Equal(t, StatusFailed, after.Status)
	assert.Contains(t, after.Title, "opsbot is restarting: nothing ran")
}
