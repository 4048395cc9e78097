package commands

// Checks from vantage hosts against real ones: two vantage network
// namespaces, each with Debian's sshd (several, one per tool set: a copy
// of opsbot, netcat, bash alone), reached by the real SSH runner from the
// bot's side; a target namespace whose firewall lets vantage 1 in and
// drops vantage 2 (package vantagetest). Needs root, iproute2, nftables,
// openssh-server and netcat-openbsd: without them the tests skip, or fail
// when CI=true.

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/sshrun"
	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/vantage"
	"github.com/opsbot/opsbot/commands/vantage/vantagetest"
)

// TestMain: run as "opsbot probe ..." (a vantage host's copy of opsbot is
// this test binary under that name, see vantagetest), it is the real
// `opsbot probe`, the same function cmd/opsbot calls.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "opsbot" && len(os.Args) > 1 && os.Args[1] == "probe" {
		os.Exit(vantage.ProbeMain(context.Background(), os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// countingRunner counts the commands that reach a real runner.
type countingRunner struct {
	bot.Runner
	n atomic.Int64
}

func (c *countingRunner) Run(ctx context.Context, h bot.Host, argv []string) (bot.Output, error) {
	c.n.Add(1)
	return c.Runner.Run(ctx, h, argv)
}

type vantageLab struct {
	lab    *vantagetest.Lab
	router *bot.Router
	runner *countingRunner
}

// newVantageLab builds the lab with six vantage hosts: op1/op2 (opsbot),
// nc1/nc2 (netcat), sh1/sh2 (bash), 1 let in and 2 dropped by the target.
func newVantageLab(t *testing.T) *vantageLab {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	lab := vantagetest.New(t, self)
	var hosts strings.Builder
	hosts.WriteString("hosts:\n")
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range []struct {
		name  string
		v     int
		port  int
		tools vantagetest.Tools
	}{
		{"op1", 1, 22, vantagetest.Opsbot}, {"op2", 2, 22, vantagetest.Opsbot},
		{"nc1", 1, 23, vantagetest.Netcat}, {"nc2", 2, 23, vantagetest.Netcat},
		{"sh1", 1, 24, vantagetest.Bash}, {"sh2", 2, 24, vantagetest.Bash},
	} {
		wg.Go(func() {
			srv := lab.SSHD(t, s.v, s.port, s.tools)
			mu.Lock()
			hosts.WriteString(vantagetest.HostYAML(s.name, srv))
			mu.Unlock()
		})
	}
	wg.Wait()
	policy := `
roles:
  oncall:  {commands: [portcheck, scan]}
  limited: {commands: [portcheck], hosts: [op1]}
users:
  "shell:alice": [oncall]
  "shell:lim":   [limited]
` + hosts.String() + vantagetest.Groups(map[string][]string{
		"opsbot": {"op1", "op2"}, "netcat": {"nc1", "nc2"}, "bash": {"sh1", "sh2"}, "mixed": {"op1", "nc2", "sh2"},
	})
	p, err := bot.ParsePolicy([]byte(policy))
	require.NoError(t, err, policy)

	ssh, err := sshrun.New(sshrun.Config{KeyFile: lab.Key, KnownHosts: lab.KnownHosts, DialContext: lab.Bed.DialContext, DialTimeout: 10 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ssh.Close() })
	runner := &countingRunner{Runner: bot.Runners{"ssh": ssh}}

	res := &recordingResolver{names: map[string][]netip.Addr{"target.test": {lab.Addr()}}}
	targets, err := bot.NewTargets(p.Targets, res, nil)
	require.NoError(t, err)
	perms := bot.NewPermissions(p)
	v := Vantages{Hosts: bot.HostAccess{Inventory: bot.NewInventory(p), Perms: perms}, Runner: runner}
	router := bot.NewRouter(bot.RouterConfig{
		Commands: []bot.Command{NewPortcheck(targets, p.Limits.PortcheckPorts).WithVantages(v), NewScan(targets, p.Limits).WithVantages(v)},
		Perms:    perms,
	})
	return &vantageLab{lab: lab, router: router, runner: runner}
}

func (l *vantageLab) run(t *testing.T, user, line string) bot.Reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	reply := l.router.Handle(ctx, bot.Request{Platform: "shell", User: user, Line: line})
	t.Logf("%s (%s):\n%s", line, time.Since(start).Round(time.Millisecond), renderReply(reply))
	return reply
}

// renderReply is the reply as the terminal shows it, near enough.
func renderReply(r bot.Reply) string {
	var b strings.Builder
	b.WriteString(r.Title + "\n")
	for _, l := range r.Lines {
		b.WriteString(l + "\n")
	}
	if r.Table != nil {
		for _, l := range r.Table.Aligned() {
			b.WriteString(l + "\n")
		}
	}
	if r.Text != "" {
		b.WriteString(r.Text + "\n")
	}
	for _, f := range r.Fields {
		b.WriteString(f.Name + ": " + f.Value + "\n")
	}
	return b.String()
}

// rows gives the table as host -> cells (after the vantage column).
func rows(t *testing.T, r bot.Reply) map[string][]string {
	t.Helper()
	require.NotNil(t, r.Table, r.Title)
	out := map[string][]string{}
	for _, row := range r.Table.Rows {
		out[row[0]] = row[1:]
	}
	return out
}

func TestVantage_TCPMatrixShowsTheFirewallWithEveryTool(t *testing.T) {
	l := newVantageLab(t)
	target := l.lab.Addr().String()
	for _, tc := range []struct {
		group, one, two, tool string
		note                  string
	}{
		{"opsbot", "op1", "op2", "opsbot", "the same evidence as a check from the bot"},
		{"netcat", "nc1", "nc2", "nc", "it cannot tell a RST from an ICMP port unreachable"},
		{"bash", "sh1", "sh2", "bash", "bash /dev/tcp under timeout"},
	} {
		t.Run(tc.group, func(t *testing.T) {
			r := l.run(t, "alice", fmt.Sprintf("/portcheck %s %d,%d timeout 1s from %s", target, vantagetest.TCPOpen, vantagetest.TCPClosed, tc.group))
			assert.Equal(t, bot.StatusNegative, r.Status)
			assert.Equal(t, []string{"vantage", "tool", "80/tcp", "81/tcp"}, r.Table.Header)
			assert.Equal(t, map[string][]string{
				tc.one: {tc.tool, "open", "closed"},
				tc.two: {tc.tool, "filtered", "filtered"},
			}, rows(t, r))
			assert.Equal(t, target+" 80/tcp open from "+tc.one+", filtered from "+tc.two+"; 81/tcp closed from "+tc.one+", filtered from "+tc.two, r.Title)
			assert.Contains(t, r.Text, tc.two+": ")
			assert.Contains(t, r.Text, tc.note)
			assert.Contains(t, r.Text, "Checked "+target+" from "+tc.group+" ("+tc.one+", "+tc.two+").")
			// opsbot on a vantage checks several ports with the scan
			// engine, which says how many tries went unanswered; nc and
			// bash wait the timeout once.
			silence := "filtered: no answer in 1"
			if tc.tool == "opsbot" {
				silence = "filtered: no answer to "
			}
			assert.Contains(t, strings.Join(r.Lines, "\n"), "from "+tc.two+": "+target+" 80 port [tcp/http] "+silence)
		})
	}
	t.Run("a_name_is_resolved_on_the_bot", func(t *testing.T) {
		r := l.run(t, "alice", fmt.Sprintf("/portcheck target.test %d from op1", vantagetest.TCPOpen))
		assert.Equal(t, bot.StatusOK, r.Status)
		assert.Equal(t, "target.test ("+target+") 80/tcp open from op1", r.Title)
		assert.Contains(t, r.Text, "Checked "+target+": target.test was resolved on the bot and checked against its policy; the vantage hosts were given the address, never the name.")
		assert.Contains(t, r.Lines[0], "from op1: Connection to target.test ("+target+") 80 port [tcp/http] succeeded! (")
	})
	t.Run("mixed_tools_in_one_group", func(t *testing.T) {
		r := l.run(t, "alice", fmt.Sprintf("/portcheck %s %d timeout 1s from mixed", target, vantagetest.TCPOpen))
		assert.Equal(t, map[string][]string{
			"op1": {"opsbot", "open"}, "nc2": {"nc", "filtered"}, "sh2": {"bash", "filtered"},
		}, rows(t, r))
		assert.Equal(t, target+" 80/tcp open from op1, filtered from nc2, sh2", r.Title)
	})
}

func TestVantage_UDPMatrixNeverCallsNetcatsSucceededOpen(t *testing.T) {
	l := newVantageLab(t)
	target := l.lab.Addr().String()
	ports := fmt.Sprintf("%d,%d,%d", vantagetest.UDPOpen, vantagetest.UDPClosed, vantagetest.UDPAdmin)

	r := l.run(t, "alice", "/portcheck -zu -w 0.5 "+target+" "+ports+" from opsbot")
	assert.Equal(t, map[string][]string{
		"op1": {"opsbot", "open", "closed", "closed"},
		"op2": {"opsbot", "open|filtered", "open|filtered", "filtered"},
	}, rows(t, r))
	assert.Contains(t, r.Title, "5000/udp open from op1, open|filtered from op2; 5001/udp closed from op1, open|filtered from op2; 1 more port differs")
	lines := strings.Join(r.Lines, "\n")
	assert.Contains(t, lines, "from op1: "+target+" 5000 port [udp/*] open: reply received, 4 bytes")
	assert.Contains(t, lines, "from op1: "+target+" 5001 port [udp/*] closed: ICMP port unreachable from the host itself (nothing listens)")
	assert.Contains(t, lines, "from op2: "+target+" 5002 port [udp/*] filtered: ICMP administratively prohibited from the host itself")

	r = l.run(t, "alice", "/portcheck -zu -w 1 "+target+" "+ports+" from netcat")
	assert.Equal(t, map[string][]string{
		"nc1": {"nc", "open|filtered", "closed", "closed"},
		"nc2": {"nc", "open|filtered", "open|filtered", "open|filtered"},
	}, rows(t, r), "nc -zu says succeeded for the responder, the dropped ports and the prohibited one: never open")
	assert.Contains(t, r.Text, "it never reads a reply, and says \"succeeded\" for an open port, for one a firewall drops and for one it rejects as prohibited")
	assert.NotRegexp(t, regexp.MustCompile(`(?m)\] open:`), strings.Join(r.Lines, "\n"))
	assert.Equal(t, target+" 5001/udp closed from nc1, open|filtered from nc2; 5002/udp closed from nc1, open|filtered from nc2", r.Title)

	r = l.run(t, "alice", "/portcheck -zu "+target+" "+ports+" from bash")
	assert.Equal(t, bot.StatusFailed, r.Status)
	assert.Contains(t, r.Text, "sh1, sh2: not checked: no tool there can check UDP: that takes opsbot or OpenBSD netcat (nc) on the PATH; bash cannot check UDP.")
}

func TestVantage_ScanFromVantages(t *testing.T) {
	l := newVantageLab(t)
	target := l.lab.Addr().String()

	st := &recordingStream{}
	r := l.router.Handle(context.Background(), bot.Request{Platform: "shell", User: "alice", Line: "/scan " + target + " 75-85 from opsbot", Stream: st})
	t.Logf("%s", renderReply(r))
	require.Len(t, st.progress, 3, "one before, one as each vantage host finishes")
	assert.Equal(t, "Scanning "+target+" tcp 75-85 from opsbot", st.progress[0].Title)
	assert.Regexp(t, `^2 of 2 vantage hosts done, `, st.progress[2].Text)
	assert.Equal(t, bot.StatusOK, r.Status)
	assert.Equal(t, "Scan of "+target+" tcp 75-85 from opsbot: 80/tcp open from op1, filtered from op2; 81/tcp closed from op1, filtered from op2", r.Title)
	assert.Equal(t, map[string][]string{
		"op1": {"opsbot", "open", "closed", "1 open, 10 closed"},
		"op2": {"opsbot", "filtered", "filtered", "9 closed, 2 filtered"},
	}, rows(t, r))

	r = l.run(t, "alice", "/scan "+target+" 78-82 timeout 1s from netcat")
	assert.Equal(t, map[string][]string{
		"nc1": {"nc", "open", "closed", "1 open, 4 closed"},
		"nc2": {"nc", "filtered", "filtered", "3 closed, 2 filtered"},
	}, rows(t, r))

	before := l.runner.n.Load()
	r = l.run(t, "alice", "/scan "+target+" 1-1000 from mixed")
	assert.Equal(t, "1 open, 999 closed", rows(t, r)["op1"][len(rows(t, r)["op1"])-1], "opsbot takes the policy's limits")
	assert.Equal(t, "not checked", rows(t, r)["nc2"][len(rows(t, r)["nc2"])-1])
	assert.Contains(t, r.Text, "nc2: not checked: nc2 has no opsbot, and nc checks one port at a time, waiting up to 2.1s on each: 1000 ports could take 35m0s, more than the 45s a check from nc2 may take. Ask for at most 21 ports")
	assert.Contains(t, r.Text, "sh2: not checked: sh2 has no opsbot, and bash /dev/tcp checks one port at a time")
	assert.Equal(t, int64(4), l.runner.n.Load()-before, "detection on each host, then a probe on op1 only")
}

func TestVantage_BadInputAndForbiddenVantagesReachNoRunner(t *testing.T) {
	l := newVantageLab(t)
	target := l.lab.Addr().String()
	for _, tc := range []struct {
		user, line string
		exit       int
		want       string
	}{
		{"alice", "/portcheck " + target + " 80 from", 2, "from needs a vantage point"},
		{"alice", "/portcheck " + target + " 80 from 'a;b'", 2, `"a;b" is not an inventory host or group name`},
		{"alice", "/portcheck " + target + " 80 from '$(id)'", 2, "not an inventory host or group name"},
		{"alice", "/portcheck " + target + " 80 from op1 udp", 2, "from VANTAGE comes last"},
		{"alice", "/scan " + target + " 80 from nosuch", 2, `no host or group "nosuch" in the inventory`},
		{"alice", "/portcheck 169.254.169.254 80 from op1", 3, "169.254.169.254 is a link-local address"},
		{"lim", "/portcheck " + target + " 80 from opsbot", 3, "group opsbot includes op2, where your roles do not grant \"portcheck\""},
		{"lim", "/portcheck " + target + " 80 from nc1", 3, "but not on nc1"},
		{"lim", "/scan " + target + " 80 from op1", 3, "permission denied"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			before := l.runner.n.Load()
			r := l.run(t, tc.user, tc.line)
			assert.Equal(t, tc.exit, r.Status.ExitCode(), r.Title)
			assert.Contains(t, r.Title, tc.want)
			assert.Equal(t, before, l.runner.n.Load(), "no command ran on any host")
		})
	}
	r := l.run(t, "lim", "/portcheck "+target+" 80 from op1")
	assert.Equal(t, bot.StatusOK, r.Status, "the host the role names")
}
