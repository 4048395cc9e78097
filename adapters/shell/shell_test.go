package shell

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
)

// handlerFunc adapts a function to bot.Handler.
type handlerFunc func(context.Context, bot.Request) bot.Reply

func (f handlerFunc) Handle(ctx context.Context, r bot.Request) bot.Reply { return f(ctx, r) }

func TestRunLine_ExitCodesFollowTheReply(t *testing.T) {
	for st, code := range map[bot.Status]int{
		bot.StatusOK: 0, bot.StatusInfo: 0, bot.StatusNegative: 1, bot.StatusFailed: 1,
		bot.StatusUsage: 2, bot.StatusDenied: 3, bot.StatusPending: 4,
	} {
		var out bytes.Buffer
		sh := &Shell{Handler: handlerFunc(func(context.Context, bot.Request) bot.Reply {
			return bot.Reply{Status: st, Title: "t"}
		}), User: "alice", Out: &out, Err: &out}
		assert.Equal(t, code, sh.RunLine(context.Background(), "x"), st.String())
	}
}

func TestRunLine_IdentifiesTheTerminalUser(t *testing.T) {
	var got bot.Request
	var out bytes.Buffer
	sh := &Shell{Handler: handlerFunc(func(_ context.Context, r bot.Request) bot.Reply {
		got = r
		r.Stream.Post(bot.Reply{Lines: []string{"event"}})
		return bot.Reply{Title: "done"}
	}), User: "alice", Out: &out, Err: &out}
	sh.RunLine(context.Background(), "/scan 127.0.0.1")
	assert.Equal(t, "shell:alice", got.Principal())
	assert.Equal(t, "/scan 127.0.0.1", got.Line)
	assert.Equal(t, "event\ndone\n", out.String(), "posts appear as they happen, before the reply")
}

func TestRender_PlainText(t *testing.T) {
	got := Render(bot.Reply{
		Title:   "127.0.0.1 tcp 1-1024: 2 open",
		Lines:   []string{"line one"},
		Table:   &bot.Table{Header: []string{"port", "state"}, Rows: [][]string{{"22/tcp", "open"}, {"8080/tcp", "open"}}},
		Fields:  []bot.Field{{Name: "duration", Value: "0.1 s"}, {Name: "rate", Value: "9000 ports/s"}},
		Text:    "note",
		Actions: []bot.Action{{Label: "Approve", Command: "/opsbot approve 7f3c"}},
	})
	assert.Equal(t, "127.0.0.1 tcp 1-1024: 2 open\nline one\nPORT      STATE\n22/tcp    open\n8080/tcp  open\nduration: 0.1 s | rate: 9000 ports/s\nnote\n  [Approve] /opsbot approve 7f3c\n", got)
}

func TestProgress_OnlyWhenAsked(t *testing.T) {
	var out, errw bytes.Buffer
	h := handlerFunc(func(_ context.Context, r bot.Request) bot.Reply {
		r.Stream.Progress(bot.Reply{Title: "Scanning", Text: "10 of 100"})
		return bot.Reply{Title: "done"}
	})
	sh := &Shell{Handler: h, Out: &out, Err: &errw}
	sh.RunLine(context.Background(), "x")
	assert.Empty(t, errw.String(), "scripts see no progress noise")
	sh.ShowProgress = true
	sh.RunLine(context.Background(), "x")
	assert.Contains(t, errw.String(), "Scanning: 10 of 100")
	assert.True(t, strings.HasSuffix(errw.String(), "\r\033[K"), "the progress line is cleared before the reply")
}

func TestLoop_InterruptCancelsTheCommandNotTheShell(t *testing.T) {
	started := make(chan struct{})
	canceled := make(chan struct{})
	h := handlerFunc(func(ctx context.Context, r bot.Request) bot.Reply {
		if r.Line == "slow" {
			close(started)
			<-ctx.Done()
			close(canceled)
			return bot.Reply{Title: "canceled"}
		}
		return bot.Reply{Title: "echo " + r.Line}
	})
	inR, inW, err := os.Pipe()
	require.NoError(t, err)
	var out syncBuffer
	ints := make(chan os.Signal, 1)
	sh := &Shell{Handler: h, User: "bob", Out: &out, Err: &out}
	done := make(chan error)
	go func() { done <- sh.Loop(context.Background(), inR, ints) }()

	_, _ = inW.WriteString("slow\n")
	<-started
	ints <- os.Interrupt
	select {
	case <-canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("interrupt did not cancel the running command")
	}
	_, _ = inW.WriteString("after\nexit\n")
	require.NoError(t, <-done)
	assert.Contains(t, out.String(), "canceled\n")
	assert.Contains(t, out.String(), "echo after\n", "the shell goes on after an interrupt")
}
