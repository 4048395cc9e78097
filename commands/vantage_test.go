package commands

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/probe"
)

func TestCutVantage(t *testing.T) {
	for _, tc := range []struct {
		words   string
		rest    string
		vantage string
		err     string
	}{
		{"10.0.0.5 80", "10.0.0.5 80", "", ""},
		{"10.0.0.5 80 from web01", "10.0.0.5 80", "web01", ""},
		{"10.0.0.5 80 FROM web", "10.0.0.5 80", "web", ""},
		{"from 80", "from 80", "", ""}, // a host may be called from
		{"from 80 from web", "from 80", "web", ""},
		{"10.0.0.5 80 from", "", "", "from needs a vantage point"},
		{"10.0.0.5 from web 80", "", "", `from VANTAGE comes last: "80" follows it`},
		{"10.0.0.5 80 from a;b", "", "", `"a;b" is not an inventory host or group name`},
		{"10.0.0.5 80 from ../x", "", "", "not an inventory host or group name"},
	} {
		t.Run(tc.words, func(t *testing.T) {
			rest, v, err := cutVantage(strings.Fields(tc.words), portcheckSynopsis)
			if tc.err != "" {
				require.Error(t, err)
				assert.Equal(t, bot.EINVALID, bot.ErrorCode(err))
				assert.Contains(t, bot.ErrorMessage(err), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.rest, strings.Join(rest, " "))
			assert.Equal(t, tc.vantage, v)
		})
	}
}

func TestParseTargetArgs_FromWithNetcatFlags(t *testing.T) {
	ta, err := parseTargetArgs(strings.Fields("-zuv 10.0.0.5 123 from web -w 2"), portcheckSynopsis)
	require.NoError(t, err)
	assert.Equal(t, "web", ta.vantage)
	assert.Equal(t, probe.UDP, ta.proto)
	assert.Equal(t, []uint16{123}, ta.ports)
	assert.Equal(t, 2*time.Second, ta.timeout)
}

func TestFrom_WithoutVantagesIsAClearConfigError(t *testing.T) {
	r, nr, res := testRouter(t, bot.DefaultPolicy())
	reply := r.Handle(context.Background(), bot.Request{Line: "/portcheck web.test 80 from web01"})
	assert.Equal(t, 2, reply.Status.ExitCode(), reply.Title)
	assert.Contains(t, reply.Title, "checks from other hosts (from web01) are not set up here")
	assert.Empty(t, nr.probes)
	assert.Empty(t, res.lookups, "an unusable vantage costs no DNS lookup")
}

// refusingRunner fails the test if anything reaches it.
type refusingRunner struct{ t *testing.T }

func (r refusingRunner) Run(_ context.Context, h bot.Host, argv []string) (bot.Output, error) {
	r.t.Errorf("runner reached: %s %q", h.Name, argv)
	return bot.Output{ExitCode: -1}, nil
}

// vantageRouter wires /portcheck and /scan with an inventory: "self" is the
// bot's own host (via local), "web01" and "web02" are ssh hosts that no
// runner may reach.
func vantageRouter(t *testing.T) (*bot.Router, *netRecorder, *recordingResolver) {
	t.Helper()
	p, err := bot.ParsePolicy([]byte(`
roles:
  oncall: {commands: [portcheck, scan], hosts: [self, web01]}
users:
  "shell:alice": [oncall]
hosts:
  self:  {via: local}
  web01: {address: 10.0.0.11, user: opsbot}
  web02: {address: 10.0.0.12, user: opsbot}
groups:
  web: [web01, web02]
`))
	require.NoError(t, err)
	res := &recordingResolver{names: map[string][]netip.Addr{"web.test": {netip.MustParseAddr("127.0.0.1")}}}
	targets, err := bot.NewTargets(p.Targets, res, nil)
	require.NoError(t, err)
	perms := bot.NewPermissions(p)
	v := Vantages{Hosts: bot.HostAccess{Inventory: bot.NewInventory(p), Perms: perms}, Runner: refusingRunner{t}}
	nr := &netRecorder{}
	pc := NewPortcheck(targets, p.Limits.PortcheckPorts).WithVantages(v)
	sc := NewScan(targets, p.Limits).WithVantages(v)
	sc.scan = nr.scan
	return bot.NewRouter(bot.RouterConfig{Commands: []bot.Command{pc, sc}, Perms: perms}), nr, res
}

func TestFrom_TheBotsOwnHostUsesTheEngine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	free, err := probeFreePort()
	require.NoError(t, err)

	r, _, res := vantageRouter(t)
	reply := r.Handle(context.Background(), bot.Request{Platform: "shell", User: "alice", Line: "/portcheck web.test " + port + "," + free + " from self"})
	assert.Equal(t, bot.StatusNegative, reply.Status, reply.Title)
	assert.Equal(t, "web.test (127.0.0.1): 1 of 2 ports open from self", reply.Title)
	require.NotNil(t, reply.Table)
	cells := map[string]string{}
	for i, h := range reply.Table.Header[2:] {
		cells[h] = reply.Table.Rows[0][i+2]
	}
	assert.Equal(t, map[string]string{port + "/tcp": "open", free + "/tcp": "closed"}, cells)
	assert.Equal(t, "opsbot (the bot)", reply.Table.Rows[0][1])
	assert.Contains(t, reply.Text, "self: the bot's own probe engine")
	assert.Contains(t, reply.Text, "Checked 127.0.0.1: web.test was resolved on the bot")
	assert.Equal(t, []string{"web.test"}, res.lookups)
}

func TestFrom_RefusedBeforeAnyRunnerOrLookup(t *testing.T) {
	for _, tc := range []struct {
		line string
		exit int
		want string
	}{
		{"/portcheck web.test 80 from web", 3, "group web includes web02"},
		{"/portcheck web.test 80 from web02", 3, "but not on web02"},
		{"/scan web.test 80 from nosuch", 2, `no host or group "nosuch"`},
		{"/portcheck web.test 80 from", 2, "from needs a vantage point"},
		{"/portcheck web.test 80 from 'a;b'", 2, "not an inventory host or group name"},
		{"/portcheck 8.8.8.8 53 from web01", 3, "not in targets.allow"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			r, nr, res := vantageRouter(t)
			reply := r.Handle(context.Background(), bot.Request{Platform: "shell", User: "alice", Line: tc.line})
			assert.Equal(t, tc.exit, reply.Status.ExitCode(), reply.Title)
			assert.Contains(t, reply.Title, tc.want)
			assert.Empty(t, nr.probes)
			assert.Empty(t, res.lookups)
		})
	}
}

func TestFrom_PrepareBindsTheVantageHostsAndTheAddress(t *testing.T) {
	p, err := bot.ParsePolicy([]byte("hosts:\n  self: {via: local}\n  web01: {address: 10.0.0.11, user: opsbot}\ngroups:\n  both: [self, web01]\n"))
	require.NoError(t, err)
	res := &recordingResolver{names: map[string][]netip.Addr{"web.test": {netip.MustParseAddr("10.0.0.5")}}}
	targets, err := bot.NewTargets(p.Targets, res, nil)
	require.NoError(t, err)
	v := Vantages{Hosts: bot.HostAccess{Inventory: bot.NewInventory(p)}, Runner: refusingRunner{t}}
	pc := NewPortcheck(targets, 100).WithVantages(v)
	prep, err := pc.Prepare(context.Background(), bot.Request{Args: strings.Fields("web.test 80,443 from both")})
	require.NoError(t, err)
	assert.Equal(t, []string{"10.0.0.5", "self", "web01 (10.0.0.11)"}, prep.Hosts)
	assert.Equal(t, "Checks 2 tcp port(s) of 10.0.0.5 from both (self, web01).", prep.Impact)

	sc := NewScan(targets, p.Limits).WithVantages(v)
	prep, err = sc.Prepare(context.Background(), bot.Request{Args: strings.Fields("web.test top10 udp from web01")})
	require.NoError(t, err)
	assert.Equal(t, "Probes 10 udp ports of 10.0.0.5 from web01.", prep.Impact)
}

// jumpClock reads t0 once, then t0+d ever after: a run that starts and
// ends on it took d, however many times it reads the clock.
func jumpClock(d time.Duration) func() time.Time {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var mu sync.Mutex
	read := false
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		if !read {
			read = true
			return t0
		}
		return t0.Add(d)
	}
}

func TestFrom_DurationIsOnTheCommandsClock(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	p, err := bot.ParsePolicy([]byte("hosts:\n  self: {via: local}\n"))
	require.NoError(t, err)
	res := &recordingResolver{names: map[string][]netip.Addr{"web.test": {netip.MustParseAddr("127.0.0.1")}}}
	targets, err := bot.NewTargets(p.Targets, res, nil)
	require.NoError(t, err)
	v := Vantages{Hosts: bot.HostAccess{Inventory: bot.NewInventory(p)}, Runner: refusingRunner{t}}

	pc := NewPortcheck(targets, 100).WithVantages(v)
	pc.now = jumpClock(90 * time.Second)
	reply, err := pc.Run(context.Background(), bot.Request{Args: strings.Fields("web.test " + port + " from self")})
	require.NoError(t, err)
	assert.Equal(t, []bot.Field{{Name: "duration", Value: bot.Human(90 * time.Second)}}, reply.Fields)

	sc := NewScan(targets, p.Limits).WithVantages(v)
	sc.now = jumpClock(2 * time.Hour)
	sc.scan = (&netRecorder{}).scan
	reply, err = sc.Run(context.Background(), bot.Request{Args: strings.Fields("web.test " + port + " from self"), Stream: &recordingStream{}})
	require.NoError(t, err)
	assert.Equal(t, []bot.Field{{Name: "duration", Value: bot.Human(2 * time.Hour)}}, reply.Fields)
}
