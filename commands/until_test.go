package commands

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/probe"
)

// fakeClock moves only when /portcheck until sleeps; onSleep runs before
// each sleep returns (a listener appears, a test cancels).
type fakeClock struct {
	mu      sync.Mutex
	t       time.Time
	sleeps  []time.Duration
	onSleep func(n int)
}

func (f *fakeClock) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	f.sleeps = append(f.sleeps, d)
	f.t = f.t.Add(d)
	n := len(f.sleeps)
	f.mu.Unlock()
	if f.onSleep != nil {
		f.onSleep(n)
	}
	return ctx.Err()
}

type recStream struct {
	mu       sync.Mutex
	progress []bot.Reply
	posts    []bot.Reply
}

func (s *recStream) Progress(r bot.Reply) {
	s.mu.Lock()
	s.progress = append(s.progress, r)
	s.mu.Unlock()
}
func (s *recStream) Post(r bot.Reply) { s.mu.Lock(); s.posts = append(s.posts, r); s.mu.Unlock() }

func untilPortcheck(t *testing.T, clk *fakeClock) *Portcheck {
	t.Helper()
	targets, err := bot.NewTargets(bot.DefaultPolicy().Targets, &recordingResolver{names: map[string][]netip.Addr{}}, nil)
	require.NoError(t, err)
	pc := NewPortcheck(targets, 100)
	pc.now, pc.sleep = clk.now, clk.sleep
	return pc
}

func TestPortcheckUntil_AListenerThatAppearsAfterADelay(t *testing.T) {
	p, err := probeFreePort()
	require.NoError(t, err)
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	clk.onSleep = func(n int) {
		if n == 3 { // after three closed checks (0s, 1s, 3s), the service comes back
			ln, err := net.Listen("tcp", "127.0.0.1:"+p)
			require.NoError(t, err)
			t.Cleanup(func() { _ = ln.Close() })
		}
	}
	pc := untilPortcheck(t, clk)
	st := &recStream{}
	reply, err := pc.Run(context.Background(), bot.Request{Platform: "slack", User: "U0ASKER", UserName: "asker", Args: []string{"127.0.0.1", p, "until", "open", "for", "5m"}, Stream: st})
	require.NoError(t, err)
	assert.Equal(t, bot.StatusOK, reply.Status)
	assert.Equal(t, "127.0.0.1 "+p+"/tcp is open after 7s (4 checks)", reply.Title)
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, clk.sleeps, "backoff doubles")
	require.Len(t, st.progress, 3, "one progress per wait, edited in place by the adapters")
	assert.Contains(t, st.progress[2].Title, "Waiting for 127.0.0.1 "+p+"/tcp to be open: closed, 3 checks, 3s of 5m")
	require.Len(t, st.posts, 1, "closed, then open: one change of state, posted")
	assert.Equal(t, "127.0.0.1 "+p+"/tcp is now open (was closed): open after 7s", st.posts[0].Title)
	assert.Equal(t, &bot.Mention{Platform: "slack", User: "U0ASKER", UserName: "asker"}, st.posts[0].Mention, "the asker is named in the thread")
	assert.Nil(t, reply.Mention, "the final reply edits the progress message: no notification there")
}

func TestPortcheckUntil_TimeIsUp(t *testing.T) {
	p, err := probeFreePort()
	require.NoError(t, err)
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	pc := untilPortcheck(t, clk)
	st := &recStream{}
	reply, err := pc.Run(context.Background(), bot.Request{Platform: "mattermost", User: "uAsker", UserName: "asker", Args: []string{"127.0.0.1", p, "until", "open", "for", "10s"}, Stream: st})
	require.NoError(t, err)
	assert.Equal(t, 1, reply.Status.ExitCode())
	assert.Contains(t, reply.Title, "still closed after 10s (5 checks): not open")
	require.Len(t, st.posts, 1, "the time is up: said in the thread")
	assert.Equal(t, "Time is up: 127.0.0.1 "+p+"/tcp is still closed after 10s, not open", st.posts[0].Title)
	assert.Equal(t, &bot.Mention{Platform: "mattermost", User: "uAsker", UserName: "asker"}, st.posts[0].Mention)
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 3 * time.Second}, clk.sleeps, "the last wait ends at the deadline")
}

func TestPortcheckUntil_ClosedAndAChangeOfStateIsPosted(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	pc := untilPortcheck(t, clk)
	states := []probe.State{probe.Open, probe.Filtered, probe.Closed}
	n := 0
	pc.check = func(_ context.Context, ap netip.AddrPort, proto probe.Proto, _ probe.Options) probe.Result {
		s := states[min(n, len(states)-1)]
		n++
		reason := probe.Handshake
		switch s {
		case probe.Filtered:
			reason = probe.Timeout
		case probe.Closed:
			reason = probe.Refused
		}
		return probe.Result{Target: ap, Proto: proto, State: s, Reason: reason}
	}
	st := &recStream{}
	reply, err := pc.Run(context.Background(), bot.Request{Args: []string{"10.0.0.5", "443", "until", "open"}, Stream: st})
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.5 443/tcp is already open", reply.Title, "until open of an open port")

	n = 0
	reply, err = pc.Run(context.Background(), bot.Request{Args: []string{"10.0.0.5", "443", "until", "closed"}, Stream: st})
	require.NoError(t, err)
	assert.Equal(t, bot.StatusOK, reply.Status, "filtered is not open, so it counts as closed")
	assert.Contains(t, reply.Title, "443/tcp is filtered after 1s (2 checks)")

	states = []probe.State{probe.Closed, probe.Filtered, probe.Open}
	n = 0
	st = &recStream{}
	reply, err = pc.Run(context.Background(), bot.Request{Args: []string{"10.0.0.5", "443", "until", "open"}, Stream: st})
	require.NoError(t, err)
	assert.Equal(t, bot.StatusOK, reply.Status)
	require.Len(t, st.posts, 2, "each change of state is posted, the last one reaching the state")
	assert.Equal(t, "10.0.0.5 443/tcp is now filtered (was closed)", st.posts[0].Title)
	assert.Equal(t, "10.0.0.5 443/tcp is now open (was filtered): open after 3s", st.posts[1].Title)
	assert.Equal(t, bot.StatusOK, st.posts[1].Status)
	for _, p := range st.posts {
		assert.NotNil(t, p.Mention, "a change of state names the asker")
	}
}

func TestPortcheckUntil_CancelStopsTheWait(t *testing.T) {
	p, err := probeFreePort()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	clk.onSleep = func(n int) {
		if n == 2 {
			cancel()
		}
	}
	pc := untilPortcheck(t, clk)
	reply, err := pc.Run(ctx, bot.Request{Args: []string{"127.0.0.1", p, "until", "open"}})
	require.NoError(t, err)
	assert.Equal(t, 1, reply.Status.ExitCode())
	assert.Contains(t, reply.Title, "stopped waiting after 3s (2 checks), last closed")
}

// A waiting /portcheck is a running command of its asker's: past
// limits.jobs_per_user the next is refused as busy.
func TestPortcheckUntil_CountsAgainstTheJobCap(t *testing.T) {
	p, err := probeFreePort()
	require.NoError(t, err)
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	clk.onSleep = func(int) {
		once.Do(func() { close(started) })
		<-release
	}
	pc := untilPortcheck(t, clk)
	r := bot.NewRouter(bot.RouterConfig{Commands: []bot.Command{pc}, Jobs: bot.NewJobs(1, 10)})
	done := make(chan bot.Reply, 1)
	go func() {
		done <- r.Handle(context.Background(), bot.Request{Platform: "shell", User: "t", Line: "/portcheck 127.0.0.1 " + p + " until open for 2s"})
	}()
	<-started
	busy := r.Handle(context.Background(), bot.Request{Platform: "shell", User: "t", Line: "/portcheck 127.0.0.1 " + p})
	assert.Equal(t, bot.StatusDenied, busy.Status, busy.Title)
	assert.Contains(t, busy.Title, "busy")
	close(release)
	reply := <-done
	assert.Contains(t, reply.Title, "still closed after 2s")
}

func TestPortcheckUntil_BadInput(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"/portcheck 127.0.0.1 80 until open for 100d", `for "100d" is not a duration`},
		{"/portcheck 127.0.0.1 80 until open for 48h", "for 48h is out of range: accepted 1s to 24h0m0s"},
		{"/portcheck 127.0.0.1 80 until open for", "for needs a duration, like for 10m"},
		{"/portcheck 127.0.0.1 80 until maybe", `until "maybe": accepted are until open and until closed`},
		{"/portcheck 127.0.0.1 80 until", "until needs a state"},
		{"/portcheck 127.0.0.1 80,443 until open", "until waits for one port, not 2"},
		{"/portcheck 127.0.0.1 until open", "no port given"},
		{"/portcheck 8.8.8.8 53 until open", "not in targets.allow"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			r, nr, _ := testRouter(t, bot.DefaultPolicy())
			reply := r.Handle(context.Background(), bot.Request{Platform: "shell", User: "t", Line: tc.line})
			assert.Contains(t, reply.Title, tc.want)
			assert.NotEqual(t, 0, reply.Status.ExitCode())
			assert.NotContains(t, reply.Title, "\n")
			assert.Empty(t, nr.probes)
		})
	}
}
