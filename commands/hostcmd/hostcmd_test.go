package hostcmd_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/local"
	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/hostcmd"
	"github.com/opsbot/opsbot/commands/hostcmd/hostcmdtest"
)

var spec = hostcmd.Spec{Command: "svc", Synopsis: "/svc look|poke [HOST|GROUP]",
	Subs:  []hostcmd.Sub{{Name: "look"}, {Name: "poke", Args: "NAME", Changes: true}},
	Needs: "relayd", NeedsHint: "add relayd: {} to it"}

func access(t *testing.T, policy string) bot.HostAccess {
	t.Helper()
	relaydBlock := bot.HostBlock{Key: "relayd", Decode: func(bot.HostSettings) (any, error) { return struct{}{}, nil }}
	p, err := bot.ParsePolicy([]byte(policy), relaydBlock)
	require.NoError(t, err)
	return bot.HostAccess{Inventory: bot.NewInventory(p)} // no permissions: every host
}

var asker = bot.Request{Platform: "shell", User: "alice"}

func parse(hosts bot.HostResolver, words ...string) (hostcmd.Request, error) {
	req := asker
	req.Command, req.Args = "svc", words
	return spec.Parse(hosts, req)
}

func TestSpec_TableSaysSubcommandsAndChanges(t *testing.T) {
	assert.Equal(t, "svc", spec.Name())
	assert.Equal(t, []string{"look", "poke"}, spec.Subcommands())
	assert.False(t, spec.Changes("svc look"))
	assert.True(t, spec.Changes("svc poke"))
	assert.True(t, spec.Changes("svc nosuch"), "what the table does not know is taken to change")
}

func TestSpec_ParseRefusesWhatItDoesNotKnow(t *testing.T) {
	hosts := access(t, "hosts:\n  lb1: {via: local, relayd: {}}\n  lb2: {via: local, relayd: {}}\n  web1: {via: local}\ngroups:\n  all: [lb1, web1]\n")
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{nil, "usage:\n/svc look|poke"},
		{[]string{"kick"}, `unknown subcommand "kick": accepted are look, poke`},
		{[]string{"look", "lb1", "lb2"}, "/svc look takes one host or group, got 2 words; usage:\n/svc look|poke"},
		{[]string{"look"}, "/svc look needs a host or group: you may run it on lb1, lb2"},
		{[]string{"look", "web1"}, "web1: no relayd settings in the inventory, so /svc does not act there; add relayd: {} to it"},
		{[]string{"look", "all"}, "web1: no relayd settings"},
		{[]string{"look", "nosuch"}, `no host or group "nosuch"`},
	} {
		_, err := parse(hosts, tc.words...)
		require.Error(t, err, tc.words)
		assert.Contains(t, bot.ErrorMessage(err), tc.want, tc.words)
	}
	req := asker
	req.Args = []string{"a", "b"}
	_, err := spec.Select(hosts, req, "poke", req.Args)
	assert.Contains(t, bot.ErrorMessage(err), "/svc poke takes NAME, then one host or group: got 2 words after NAME (quote a name with spaces)")

	_, err = parse(nil, "look")
	assert.Equal(t, bot.ECONFIG, bot.ErrorCode(err), "no inventory")

	_, err = parse(access(t, "hosts:\n  web1: {via: local}\n"), "look")
	assert.Contains(t, bot.ErrorMessage(err), "you may run it on no inventory host with relayd settings")
}

func TestSpec_ParseFindsTheOnlyHostAndGroups(t *testing.T) {
	hosts := access(t, "hosts:\n  lb1: {via: local, relayd: {}}\n  lb2: {via: local, relayd: {}}\n  web1: {via: local}\ngroups:\n  lbs: [lb2, lb1]\n")
	r, err := parse(hosts, "LOOK", "lbs")
	require.NoError(t, err)
	assert.Equal(t, "look", r.Sub)
	assert.Equal(t, "svc look", r.Key())
	assert.True(t, r.Group)
	assert.Equal(t, []string{"lb2", "lb1"}, hostcmd.Names(r.Hosts), "a group in the order the file lists it: the first is the canary")
	assert.Equal(t, []string{"lb2", "lb1"}, r.Labels())
	assert.Equal(t, "lb2: ", r.Prefix(r.Hosts[0]), "a group's lines name their host")

	one := access(t, "hosts:\n  lb1: {via: local, relayd: {}}\n  web1: {via: local}\n")
	r, err = parse(one, "poke")
	require.NoError(t, err)
	assert.Equal(t, "lb1", r.Target, "the only host with the settings the command needs")
	assert.False(t, r.Group)
	assert.Empty(t, r.Prefix(r.Hosts[0]))
}

func TestRead_KeepsTheOrderOfTheHosts(t *testing.T) {
	hosts := []bot.Host{{Name: "a"}, {Name: "b"}, {Name: "c"}, {Name: "d"}}
	got := hostcmd.Read(hosts, func(h bot.Host) string { return h.Name + "!" })
	assert.Equal(t, []string{"a!", "b!", "c!", "d!"}, got)
}

// step is a fake change: ok or not, refused or not.
type step struct {
	host        string
	ok, refused bool
}

func (s step) OK() bool    { return s.ok }
func (s step) Acted() bool { return !s.refused }

func hostsNamed(names ...string) []bot.Host {
	out := make([]bot.Host, len(names))
	for i, n := range names {
		out[i] = bot.Host{Name: n}
	}
	return out
}

func TestRollout_CanaryThenBatchesStopAtTheFirstFailure(t *testing.T) {
	var mu sync.Mutex
	var batches [][]string
	var canaries []bool
	ro := hostcmd.Rollout[step]{
		Batch: 2,
		Next: func(_ []step, next []bot.Host, canary bool) {
			mu.Lock()
			defer mu.Unlock()
			batches = append(batches, hostcmd.Names(next))
			canaries = append(canaries, canary)
		},
		Change: func(_ context.Context, i int, h bot.Host) step {
			return step{host: h.Name, ok: h.Name != "w3", refused: h.Name == "w3" && i == 2}
		},
	}
	r := ro.Run(context.Background(), hostsNamed("w1", "w2", "w3", "w4", "w5"))
	assert.Equal(t, [][]string{{"w1"}, {"w2", "w3"}}, batches, "the canary alone, then a batch of two; the failure stops the roll")
	assert.Equal(t, []bool{true, false}, canaries)
	h, res, failed := r.Failed()
	require.True(t, failed)
	assert.Equal(t, "w3", h.Name)
	assert.Equal(t, "w3", res.host)
	assert.Equal(t, []string{"w1", "w2"}, r.Changed(), "w3 was refused before it acted")
	assert.Equal(t, []string{"w4", "w5"}, hostcmd.Names(r.Untouched))
	assert.False(t, r.Complete())

	ro.Batch = 0
	ro.Next = nil
	ro.Change = func(context.Context, int, bot.Host) step { return step{ok: true} }
	r = ro.Run(context.Background(), hostsNamed("w1", "w2", "w3"))
	assert.True(t, r.Complete())
	assert.Len(t, r.Done, 3)
}

func TestRollout_CanceledTouchesNothingMore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ro := hostcmd.Rollout[step]{Change: func(context.Context, int, bot.Host) step {
		cancel()
		return step{ok: true}
	}}
	r := ro.Run(ctx, hostsNamed("a", "b", "c"))
	assert.Len(t, r.Done, 1)
	assert.Equal(t, []string{"b", "c"}, hostcmd.Names(r.Untouched))
	_, _, failed := r.Failed()
	assert.False(t, failed)
	assert.False(t, r.Complete())
}

func TestIO_ErrorsNameTheCommandAndTheHost(t *testing.T) {
	io := hostcmd.IO{Runner: &local.Runner{}, Host: bot.Host{Name: "self", Via: "local"}}
	out, err := io.Run(context.Background(), 5*time.Second, []string{"sh", "-c", "exit 3"})
	require.NoError(t, err, "an exit status is no error")
	assert.Equal(t, 3, out.ExitCode)

	_, err = io.Run(context.Background(), 50*time.Millisecond, []string{"sleep", "5"})
	require.Error(t, err)
	assert.Equal(t, "sleep 5 on self did not finish within 50ms: stopped", bot.ErrorMessage(err))

	failing := hostcmd.IO{Runner: runnerFunc(func() error { return errors.New("connection refused") }), Host: bot.Host{Name: "lb1", Become: "doas"}}
	_, err = failing.Run(context.Background(), time.Second, []string{"/usr/sbin/relayctl", "show", "a b"})
	assert.Equal(t, "doas /usr/sbin/relayctl show 'a b' on lb1: connection refused", bot.ErrorMessage(err))
	assert.Empty(t, failing.Unprivileged().Host.Become)
	assert.Equal(t, "doas", failing.Host.Become, "Unprivileged is a copy")
}

type runnerFunc func() error

func (f runnerFunc) Run(context.Context, bot.Host, []string) (bot.Output, error) {
	return bot.Output{ExitCode: -1}, f()
}

func TestWords(t *testing.T) {
	assert.Equal(t, "1 host", hostcmd.Plural(1, "host"))
	assert.Equal(t, "0 hosts", hostcmd.Plural(0, "host"))
	assert.Equal(t, "-", hostcmd.Dash(""))
	assert.Equal(t, "none", hostcmd.ListOrNone(nil))
	assert.Equal(t, "a, b", hostcmd.ListOrNone([]string{"a", "b"}))
	assert.Equal(t, "safe", hostcmd.ErrText(bot.Errorf(bot.EFAILED, "safe")))
	assert.Equal(t, "plain", hostcmd.ErrText(errors.New("plain")))
}

func TestView_OneHostInFullAGroupTogether(t *testing.T) {
	one := func(s string) bot.Reply { return bot.Reply{Title: "one " + s} }
	group := func(s []string) bot.Reply { return bot.Reply{Title: fmt.Sprintf("group %v", s)} }
	read := func(h bot.Host) string { return h.Name }
	assert.Equal(t, "one a", hostcmd.View(hostcmd.Request{Hosts: hostsNamed("a")}, read, one, group).Title)
	assert.Equal(t, "group [a]", hostcmd.View(hostcmd.Request{Hosts: hostsNamed("a"), Group: true}, read, one, group).Title, "a group of one is a group")
	assert.Equal(t, "group [a b]", hostcmd.View(hostcmd.Request{Hosts: hostsNamed("a", "b"), Group: true}, read, one, group).Title)
}

func TestRecorder_RecordsAndPassesOn(t *testing.T) {
	r := &hostcmdtest.Recorder{Runner: &local.Runner{}}
	out, err := r.Run(context.Background(), bot.Host{Name: "self", Via: "local"}, []string{"echo", "hi"})
	require.NoError(t, err)
	assert.Equal(t, "hi\n", string(out.Stdout))
	assert.Equal(t, [][]string{{"self", "echo", "hi"}}, r.Calls())
	assert.Equal(t, 1, r.Count())
	_, err = (&hostcmdtest.Recorder{Runner: runnerFunc(func() error { return nil })}).DialHost(context.Background(), bot.Host{}, "127.0.0.1:1")
	assert.Error(t, err, "a runner that cannot dial")
}
