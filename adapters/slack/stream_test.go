package slack

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands"
)

func TestStream_ProgressIsOneMessageEditedAtABoundedRateWithCancel(t *testing.T) {
	const updates = 40
	h := &fakeHandler{HandleFn: func(_ context.Context, req bot.Request) bot.Reply {
		for i := 1; i <= updates; i++ {
			// Cancel is what the Router sets on a running request's progress.
			req.Stream.Progress(bot.Reply{Status: bot.StatusRunning, Title: "Scanning 10.0.0.1", Text: fmt.Sprintf("%d of %d ports", i*25, updates*25), Cancel: req.ID})
			time.Sleep(10 * time.Millisecond)
		}
		return bot.Reply{Status: bot.StatusOK, Title: "10.0.0.1: 2 open", Lines: []string{"22 open ssh", "80 open http"}}
	}}
	ta := newTestAdapter(t, h, nil)
	ta.editInterval = 100 * time.Millisecond
	ta.inlineWait = 100 * time.Millisecond
	_, body := ta.post(t, "/slack/commands", ta.slashBody("/scan", "10.0.0.1 1-1000", "U1", "trig-progress"), nil)
	assert.Contains(t, body, "Working on")
	id := h.requests()[0].ID

	require.Eventually(t, func() bool {
		u := ta.slack.got("chat.update")
		return len(u) > 0 && strings.Contains(u[len(u)-1].Form.Get("text"), "2 open")
	}, waitFor, tick, "final reply in the progress message")

	posts := ta.slack.got("chat.postMessage")
	require.Len(t, posts, 1, "one progress message")
	assert.Equal(t, "C2147483705", posts[0].Form.Get("channel"))
	ts := "1700000001.000100"
	edits := ta.slack.got("chat.update")
	for _, e := range edits {
		assert.Equal(t, ts, e.Form.Get("ts"), "edited in place")
	}
	// 40 updates over ~400 ms at most one edit per 100 ms: far fewer edits.
	assert.Less(t, len(edits), updates/3)
	all := append(posts, edits...)
	for i := 1; i < len(all); i++ {
		gap := all[i].At.Sub(all[i-1].At)
		assert.GreaterOrEqual(t, gap, 90*time.Millisecond, "edit %d came %s after the previous", i, gap)
	}
	// The progress carries a Cancel button for this request.
	assert.Contains(t, posts[0].Form.Get("blocks"), `"value":"/opsbot cancel `+id+`"`)
	// The last progress is shown before the final reply.
	require.GreaterOrEqual(t, len(edits), 2)
	assert.Contains(t, edits[len(edits)-2].Form.Get("blocks"), fmt.Sprintf("%d of %d ports", updates*25, updates*25))
	final := edits[len(edits)-1].Form.Get("blocks")
	assert.NotContains(t, final, "/opsbot cancel", "no Cancel once finished")
	time.Sleep(50 * time.Millisecond)
	assert.Empty(t, ta.hook.got(), "the result went into the progress message")
}

func TestStream_PostsGoToAThreadUnderTheFirstMessage(t *testing.T) {
	h := &fakeHandler{HandleFn: func(_ context.Context, req bot.Request) bot.Reply {
		for i := range 3 {
			req.Stream.Post(bot.Reply{Status: bot.StatusInfo, Title: fmt.Sprintf("connection %d from 10.0.0.9", i)})
		}
		return bot.Reply{Status: bot.StatusOK, Title: "listener closed: 3 connections"}
	}}
	ta := newTestAdapter(t, h, nil)
	_, body := ta.post(t, "/slack/commands", ta.slashBody("/listen", "3873", "U1", "trig-listen"), nil)
	assert.Contains(t, body, "listener closed")
	posts := ta.slack.got("chat.postMessage")
	require.Len(t, posts, 3)
	assert.Empty(t, posts[0].Form.Get("thread_ts"))
	root := "1700000001.000100"
	for _, p := range posts[1:] {
		assert.Equal(t, root, p.Form.Get("thread_ts"))
	}
	for i, p := range posts {
		assert.Contains(t, p.Form.Get("text"), fmt.Sprintf("connection %d", i), "in order")
	}
}

func TestStream_CancelClickOnProgressCancelsAndLeavesTheMessage(t *testing.T) {
	router := bot.NewRouter(bot.RouterConfig{})
	started := make(chan struct{})
	router.Add(&waitCmd{started: started})
	router.Add(commands.NewOpsbot(router, bot.HostAccess{}))
	ta := newTestAdapter(t, router, nil)
	ta.inlineWait = 50 * time.Millisecond
	_, body := ta.post(t, "/slack/commands", ta.slashBody("/wait", "", "U1", "trig-wait"), nil)
	require.Contains(t, body, "Working on")
	<-started
	require.Eventually(t, func() bool { return len(ta.slack.got("chat.postMessage")) == 1 }, waitFor, tick, "progress")
	progress := ta.slack.got("chat.postMessage")[0]
	blocks := progress.Form.Get("blocks")
	i := strings.Index(blocks, "/opsbot cancel ")
	require.Positive(t, i)
	value := blocks[i : i+len("/opsbot cancel ")+12]

	status, _ := ta.post(t, "/slack/interactions", ta.clickBody(t, "U1", value, "Cancel", "trig-cancel", "1700000001.000100"), nil)
	require.Equal(t, http.StatusOK, status)
	require.Eventually(t, func() bool {
		u := ta.slack.got("chat.update")
		return len(u) > 0 && strings.Contains(u[len(u)-1].Form.Get("text"), "canceled")
	}, waitFor, tick, "the command saw its context end and its reply replaced the progress")
	require.Eventually(t, func() bool { return len(ta.hook.got()) >= 1 }, waitFor, tick, "answer to the clicker")
	var clicker map[string]any
	for _, p := range ta.hook.got() {
		if strings.Contains(fmt.Sprint(p["text"]), "Canceled") {
			clicker = p
		}
	}
	require.NotNil(t, clicker, "the clicker hears the cancel succeeded: %v", ta.hook.got())
	assert.Equal(t, "ephemeral", clicker["response_type"])
	assert.Equal(t, false, clicker["replace_original"], "the progress message is the stream's")
}

// waitCmd reports progress and waits for its context to end.
type waitCmd struct{ started chan struct{} }

func (*waitCmd) Name() string    { return "wait" }
func (*waitCmd) Summary() string { return "waits" }
func (*waitCmd) Usage() string   { return "/wait" }
func (w *waitCmd) Run(ctx context.Context, req bot.Request) (bot.Reply, error) {
	req.Stream.Progress(bot.Reply{Status: bot.StatusRunning, Title: "waiting"})
	close(w.started)
	select {
	case <-ctx.Done():
		return bot.Reply{Status: bot.StatusNegative, Title: "wait canceled"}, nil
	case <-time.After(10 * time.Second):
		return bot.Reply{Status: bot.StatusOK, Title: "waited"}, nil
	}
}

func TestStream_PostsInAChannelWithoutTheBotAreNotLostSilently(t *testing.T) {
	h := &fakeHandler{HandleFn: func(_ context.Context, req bot.Request) bot.Reply {
		for i := range 5 {
			req.Stream.Post(bot.Reply{Status: bot.StatusInfo, Title: fmt.Sprintf("connection %d", i)})
		}
		return bot.Reply{Status: bot.StatusOK, Title: "listener closed: 5 connections"}
	}}
	ta := newTestAdapter(t, h, nil)
	ta.maxAttempts = 1
	ta.slack.rateLimit("chat.postMessage", 1000) // every post refused (429, no retries left)
	_, body := ta.post(t, "/slack/commands", ta.slashBody("/listen", "3873", "U1", "trig-private"), nil)
	got := ta.hook.got()
	require.Len(t, got, maxHookPosts, "the first posts go through response_url")
	assert.Contains(t, got[0]["text"], "connection 0")
	assert.Contains(t, body, "listener closed")
	assert.Contains(t, body, "2 message(s) from this command could not be posted here", "the rest is counted, not lost silently")
}

// A reply that names its asker (bot.Reply.Mention: /portcheck ... until
// saw the state change) notifies them: <@U...> in a new thread message,
// where Slack notifies, not only in an edit, where it does not. A person
// of another platform, or a malformed ID, is never written as a mention.
func TestStream_MentionNotifiesTheAskerInTheThread(t *testing.T) {
	h := &fakeHandler{HandleFn: func(_ context.Context, req bot.Request) bot.Reply {
		req.Stream.Progress(bot.Reply{Status: bot.StatusRunning, Title: "Waiting for db01 5432/tcp to be open: closed"})
		time.Sleep(80 * time.Millisecond)
		req.Stream.Post(bot.Reply{Status: bot.StatusOK, Title: "db01 5432/tcp is now open (was closed)", Mention: bot.MentionOf(req)})
		req.Stream.Post(bot.Reply{Status: bot.StatusInfo, Title: "elsewhere", Mention: &bot.Mention{Platform: "mattermost", User: "U0OTHER", UserName: "other"}})
		req.Stream.Post(bot.Reply{Status: bot.StatusInfo, Title: "forged", Mention: &bot.Mention{Platform: "slack", User: "U1> <!channel"}})
		return bot.Reply{Status: bot.StatusOK, Title: "db01 5432/tcp is open after 7s (4 checks)"}
	}}
	ta := newTestAdapter(t, h, nil)
	ta.inlineWait = 20 * time.Millisecond
	ta.post(t, "/slack/commands", ta.slashBody("/portcheck", "db01 5432 until open", "U0ASKER", "trig-mention"), nil)
	require.Eventually(t, func() bool {
		u := ta.slack.got("chat.update")
		return len(u) > 0 && strings.Contains(u[len(u)-1].Form.Get("text"), "after 7s")
	}, waitFor, tick, "final reply in the progress message")
	assert.Equal(t, []string{"U0ASKER"}, ta.slack.mentioned(), "the asker, once, by the change-of-state post")
	posts := ta.slack.got("chat.postMessage")
	require.Len(t, posts, 4, "the progress message and three thread posts")
	assert.True(t, strings.HasPrefix(posts[1].Form.Get("text"), "<@U0ASKER> db01 5432/tcp is now open"), posts[1].Form.Get("text"))
	assert.Equal(t, posts[0].TS, posts[1].Form.Get("thread_ts"), "in the thread of the progress message")
	for _, p := range posts[2:] {
		assert.NotContains(t, p.Form.Get("text")+p.Form.Get("blocks"), "<@")
		assert.NotContains(t, p.Form.Get("text")+p.Form.Get("blocks"), "<!channel")
	}
}
