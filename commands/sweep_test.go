package commands

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/probe"
)

// Many targets: a subnet, an inventory group or host. The probe engine is
// the recorder: what matters here is which addresses are probed (every
// one the policy allows, never one it does not) and how the answer reads.

const sweepPolicy = `
targets:
  allow: [10.0.0.0/8, "*.example.com"]
  deny:  [10.0.0.64/30]
roles:
  oncall: {commands: [portcheck, scan]}
  webonly: {commands: [portcheck, scan], hosts: [web]}
users:
  "shell:alice": [oncall]
  "shell:wendy": [webonly]
hosts:
  web01: {address: 10.0.1.11}
  web02: {address: 10.0.1.12}
  web03: {address: web03.example.com}
  db01:  {address: 10.0.2.5}
  meta:  {address: 169.254.169.254}
  self:  {via: local}
groups:
  web: [web01, web02, web03]
  mixed: [web01, db01]
  edge: [web01, meta, self]
`

func sweepRouter(t *testing.T, policy string) (*bot.Router, *netRecorder, *recordingResolver) {
	t.Helper()
	p, err := bot.ParsePolicy([]byte(policy))
	require.NoError(t, err)
	res := &recordingResolver{names: map[string][]netip.Addr{"web03.example.com": {netip.MustParseAddr("10.0.1.13")}}}
	targets, err := bot.NewTargets(p.Targets, res, nil)
	require.NoError(t, err)
	perms := bot.NewPermissions(p)
	v := Vantages{Hosts: bot.HostAccess{Inventory: bot.NewInventory(p), Perms: perms}}
	nr := &netRecorder{}
	pc := NewPortcheck(targets, p.Limits.PortcheckPorts).WithAddresses(p.Limits.AddressesPerRequest).WithVantages(v)
	pc.check, pc.scan = nr.check, nr.scan
	sc := NewScan(targets, p.Limits).WithVantages(v)
	sc.scan = nr.scan
	return bot.NewRouter(bot.RouterConfig{Commands: []bot.Command{pc, sc}, Perms: perms}), nr, res
}

// sweepTruth answers 22 open on .1-.40 and .77 of 10.0.0.0/24, 443 open on
// .77 only, and nothing at all from .200 up (no host there); every other
// probe is closed.
func sweepTruth(ap netip.AddrPort, proto probe.Proto) probe.Result {
	last := ap.Addr().As4()[3]
	r := probe.Result{Target: ap, Proto: proto, State: probe.Closed, Reason: probe.Refused}
	switch {
	case last >= 200:
		r.State, r.Reason, r.Tries = probe.Filtered, probe.Timeout, 2
	case ap.Port() == 22 && (last <= 40 || last == 77), ap.Port() == 443 && last == 77:
		r.State, r.Reason = probe.Open, probe.Handshake
	}
	return r
}

func (n *netRecorder) probedAddrs() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, p := range n.probes {
		ap := netip.MustParseAddrPort(strings.Fields(p)[1])
		if a := ap.Addr().String(); !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

func TestSweep_SubnetGroupsHostsByIdenticalResult(t *testing.T) {
	r, nr, _ := sweepRouter(t, sweepPolicy)
	nr.result = sweepTruth
	reply := r.Handle(context.Background(), bot.Request{Platform: "shell", User: "alice", Line: "/scan 10.0.0.0/24 22,443"})
	require.Equal(t, bot.StatusOK, reply.Status, reply.Title+"\n"+reply.Text)
	assert.Equal(t, 0, reply.Status.ExitCode())
	assert.Equal(t, "10.0.0.0/24 tcp 22,443: 250 hosts, 41 with a port open (42 open ports)", reply.Title)
	require.NotNil(t, reply.Table)
	assert.Equal(t, [][]string{
		{"22 open, 443 open", "1", "10.0.0.77"},
		{"22 open, 443 closed", "40", "10.0.0.1-10.0.0.40"},
		{"22 closed, 443 closed", "154", "10.0.0.41-10.0.0.63, 10.0.0.68-10.0.0.76, 10.0.0.78-10.0.0.199"},
		{"nothing answered (host down or unreachable, or everything dropped)", "55", "10.0.0.200-10.0.0.254"},
	}, reply.Table.Rows, "a row per result, hosts as ranges: 250 hosts in four lines")
	assert.Contains(t, reply.Text, "Not checked (policy): 10.0.0.64-10.0.0.67: is denied by policy (targets.deny: 10.0.0.64/30)")
	assert.Contains(t, reply.Text, "The network and broadcast addresses of 10.0.0.0/24 (10.0.0.0, 10.0.0.255) name no host and were left out.")
	probed := nr.probedAddrs()
	assert.Len(t, probed, 250)
	for _, a := range probed {
		assert.False(t, netip.MustParsePrefix("10.0.0.64/30").Contains(netip.MustParseAddr(a)), "denied address %s probed", a)
		assert.NotContains(t, []string{"10.0.0.0", "10.0.0.255"}, a)
	}

	// /portcheck of a subnet: the same table, and /portcheck's verdict:
	// exit 0 only when every port is open on every host.
	reply = r.Handle(context.Background(), bot.Request{Platform: "shell", User: "alice", Line: "/portcheck 10.0.0.0/27 22"})
	assert.Equal(t, bot.StatusOK, reply.Status, reply.Title)
	assert.Equal(t, [][]string{{"22 open", "30", "10.0.0.1-10.0.0.30"}}, reply.Table.Rows)
	reply = r.Handle(context.Background(), bot.Request{Platform: "shell", User: "alice", Line: "/portcheck 10.0.0.0/26 22,443"})
	assert.Equal(t, 1, reply.Status.ExitCode(), reply.Title)
}

func TestSweep_IPv6SubnetAndHostBits(t *testing.T) {
	r, nr, _ := sweepRouter(t, "targets:\n  allow: [\"fd00::/8\", 10.0.0.0/8]\n")
	reply := r.Handle(context.Background(), bot.Request{Platform: "shell", User: "t", Line: "/scan fd00::10/124 443"})
	assert.Equal(t, bot.StatusOK, reply.Status, reply.Title)
	assert.Contains(t, reply.Title, "fd00::10/124 tcp 443: 16 hosts")
	assert.Len(t, nr.probedAddrs(), 16, "IPv6: every address of the prefix")

	nr.probes = nil
	reply = r.Handle(context.Background(), bot.Request{Platform: "shell", User: "t", Line: "/scan 10.1.2.77/28 443"})
	assert.Contains(t, reply.Text, "10.1.2.77/28 has host bits set: checked the network 10.1.2.64/28.")
	assert.Contains(t, reply.Title, "10.1.2.64/28 tcp 443: 14 hosts")
	assert.Len(t, nr.probedAddrs(), 14)
}

func TestSweep_InventoryGroupAndHost(t *testing.T) {
	r, nr, res := sweepRouter(t, sweepPolicy)
	reply := r.Handle(context.Background(), bot.Request{Platform: "shell", User: "alice", Line: "/portcheck web 443"})
	assert.Equal(t, bot.StatusOK, reply.Status, reply.Title+"\n"+reply.Text)
	assert.Equal(t, "group web tcp 443: 3 hosts, 3 with a port open (3 open ports)", reply.Title)
	assert.Equal(t, [][]string{{"443 open", "3", "web01 (10.0.1.11), web02 (10.0.1.12), web03 (10.0.1.13)"}}, reply.Table.Rows)
	assert.Equal(t, []string{"10.0.1.11", "10.0.1.12", "10.0.1.13"}, nr.probedAddrs())
	assert.Equal(t, []string{"web03.example.com"}, res.lookups, "a member named by DNS is resolved; the group's name is not")

	// One inventory host is one host, at its inventory address.
	nr.probes, res.lookups = nil, nil
	reply = r.Handle(context.Background(), bot.Request{Platform: "shell", User: "alice", Line: "/portcheck db01 5432"})
	assert.Equal(t, "db01 5432/tcp open", reply.Title)
	assert.Equal(t, []string{"Connection to db01 (10.0.2.5) 5432 port [tcp/postgresql] succeeded! (0.4 ms)"}, reply.Lines)
	assert.Equal(t, []string{"10.0.2.5"}, nr.probedAddrs())
	assert.Empty(t, res.lookups, "db01 is never looked up in DNS")

	// Members the policy refuses, or with no address, are said, never probed.
	nr.probes = nil
	reply = r.Handle(context.Background(), bot.Request{Platform: "shell", User: "alice", Line: "/scan edge 22"})
	assert.Equal(t, []string{"10.0.1.11"}, nr.probedAddrs())
	assert.Contains(t, reply.Text, "self: no address in the inventory")
	assert.Contains(t, reply.Text, "169.254.169.254: is a link-local address")
}

func TestSweep_BadInputIsOneLineAndProbesNothing(t *testing.T) {
	for _, tc := range []struct {
		user, line string
		exit       int
		want       string
	}{
		{"alice", "/scan 10.0.0.0/8 22,443", 2, "10.0.0.0/8 is 16777214 addresses: policy allows at most 256 per request (limits.addresses_per_request)"},
		{"alice", "/scan fd00::/64 22", 2, "fd00::/64 is about 2^64 addresses: policy allows at most 256"},
		{"alice", "/portcheck 10.0.0.0/23 443", 2, "10.0.0.0/23 is 510 addresses"},
		{"alice", "/scan 10.0.0.0/33 22", 2, `"10.0.0.0/33" is not a subnet: write a CIDR such as 10.0.0.0/24`},
		{"alice", "/scan 10.0.0.0/24/8 22", 2, "is not a subnet"},
		{"alice", "/scan -6 10.0.0.0/24 22", 2, "-6 asks for IPv6 but 10.0.0.0/24 is an IPv4 subnet"},
		{"alice", "/scan nosuch 22", 2, `no host or group "nosuch" in the inventory: known are hosts db01, meta, self, web01, web02, web03; groups edge, mixed, web; nor does DNS know it (cannot resolve nosuch`},
		{"wendy", "/scan mixed 22", 3, "permission denied: group mixed includes db01"},
		{"wendy", "/portcheck db01 5432", 3, "permission denied"},
		{"alice", "/scan 8.8.8.0/30 53", 3, "nothing of 8.8.8.0/30 may be checked: 8.8.8.1-8.8.8.2: is not in targets.allow"},
		{"alice", "/scan 10.0.0.64/30 22", 3, "nothing of 10.0.0.64/30 may be checked"},
		{"alice", "/scan 224.0.0.0/30 22", 2, "is a multicast or broadcast address"},
		{"alice", "/scan 10.0.0.0/24 22 from web01", 2, "from checks one address, and 10.0.0.0/24 is a subnet"},
		{"alice", "/scan web 22 from db01", 2, "from checks one address, and web is a group of 3 hosts"},
		{"alice", "/portcheck 10.0.0.0/24 22 until open", 2, "until watches one address, and 10.0.0.0/24 is a subnet"},
		{"alice", "/portcheck web 22 until open", 2, "until takes one address, and group web names 3"},
		{"alice", "/scan 10.0.0.0/24 10.0.1.0/24 22", 2, "10.0.1.0/24"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			r, nr, _ := sweepRouter(t, sweepPolicy)
			reply := r.Handle(context.Background(), bot.Request{Platform: "shell", User: tc.user, Line: tc.line})
			assert.Equal(t, tc.exit, reply.Status.ExitCode(), reply.Title)
			assert.Contains(t, reply.Title, tc.want)
			assert.NotContains(t, reply.Title, "\n", "one line")
			assert.Empty(t, nr.probes, "nothing probed")
		})
	}
}

// The limit is the policy's: a smaller one refuses a /24 and names itself.
func TestSweep_AddressLimitIsThePolicys(t *testing.T) {
	r, nr, _ := sweepRouter(t, "targets:\n  allow: [10.0.0.0/8]\nlimits:\n  addresses_per_request: 16\n")
	reply := r.Handle(context.Background(), bot.Request{Platform: "shell", User: "t", Line: "/scan 10.0.0.0/24 22"})
	assert.Equal(t, "10.0.0.0/24 is 254 addresses: policy allows at most 16 per request (limits.addresses_per_request); split it into smaller subnets", reply.Title)
	assert.Empty(t, nr.probes)
	reply = r.Handle(context.Background(), bot.Request{Platform: "shell", User: "t", Line: "/scan 10.0.0.0/28 22"})
	assert.Equal(t, bot.StatusOK, reply.Status, reply.Title)
}

// An approval binds the address list: the approved run probes the bound
// addresses, each checked again, and refuses a list that is not the
// subnet's or the group's.
func TestSweep_ApprovedRunProbesTheBoundList(t *testing.T) {
	p, err := bot.ParsePolicy([]byte(sweepPolicy))
	require.NoError(t, err)
	res := &recordingResolver{names: map[string][]netip.Addr{"web03.example.com": {netip.MustParseAddr("10.0.1.13")}}}
	targets, err := bot.NewTargets(p.Targets, res, nil)
	require.NoError(t, err)
	v := Vantages{Hosts: bot.HostAccess{Inventory: bot.NewInventory(p), Perms: bot.NewPermissions(p)}}
	nr := &netRecorder{}
	sc := NewScan(targets, p.Limits).WithVantages(v)
	sc.scan = nr.scan
	req := bot.Request{Platform: "shell", User: "alice", Command: "scan", Args: []string{"web", "22"}, Stream: bot.NopStream{}}
	prep, err := sc.Prepare(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, []string{"10.0.1.11", "10.0.1.12", "10.0.1.13"}, prep.Hosts)
	assert.Contains(t, prep.Impact, "on each of 3 addresses of group web")

	res.lookups = nil
	res.names["web03.example.com"] = []netip.Addr{netip.MustParseAddr("10.0.9.9")} // DNS moved since
	req.Bound = prep.Hosts
	again, err := sc.Prepare(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, prep.Hosts, again.Hosts, "the approved run binds to the same list")
	reply, err := sc.Run(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, []string{"10.0.1.11", "10.0.1.12", "10.0.1.13"}, nr.probedAddrs())
	assert.Empty(t, res.lookups, "nothing resolved again")
	assert.Contains(t, reply.Title, "3 hosts")

	for _, tc := range []struct {
		args  []string
		bound []string
		want  string
	}{
		{[]string{"10.0.0.0/28", "22"}, []string{"10.0.0.1", "10.0.1.1"}, "bound to 10.0.1.1, outside it"},
		{[]string{"mixed", "22"}, []string{"10.0.1.11", "10.0.3.3"}, "10.0.3.3 is no longer an address of mixed"},
		{[]string{"10.0.0.64/29", "22"}, []string{"10.0.0.65"}, "the approved address 10.0.0.65 may no longer be checked"},
		{[]string{"10.0.0.0/28", "22"}, []string{"10.0.0.1; rm"}, "which is not an address"},
	} {
		nr.probes = nil
		req := bot.Request{Platform: "shell", User: "alice", Command: "scan", Args: tc.args, Bound: tc.bound, Stream: bot.NopStream{}}
		_, err := sc.Run(context.Background(), req)
		require.Error(t, err, fmt.Sprint(tc.args))
		assert.Contains(t, bot.ErrorMessage(err), tc.want)
		assert.Empty(t, nr.probes)
	}
}

// Within a subnet, once a few hosts answered, a try waits what their round
// trips allow (at least 100 ms) rather than the default for an unknown
// path; a timeout asked for, or an inventory group, is never shortened.
func TestSweep_SubnetSharesTheRoundTripOnceHostsAnswered(t *testing.T) {
	var got []time.Duration
	scan := func(_ context.Context, spec probe.ScanSpec, _ func(probe.Progress)) (probe.ScanResult, error) {
		got = append(got, spec.Timeout) // one host at a time: no race
		res := probe.ScanResult{Net: probe.NetReport{Answered: 2, RTT: 3 * time.Millisecond}}
		if spec.Target.As4()[3] >= 8 {
			res.Net = probe.NetReport{} // down
		}
		for _, p := range spec.Ports {
			st, why := probe.Closed, probe.Refused
			if res.Net.Answered == 0 {
				st, why = probe.Filtered, probe.Timeout
			}
			res.Results = append(res.Results, probe.Result{Target: netip.AddrPortFrom(spec.Target, p), Proto: probe.TCP, State: st, Reason: why})
		}
		return res, nil
	}
	var targets []sweepTarget
	for i := 1; i <= 9; i++ {
		targets = append(targets, sweepTarget{addr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})})
	}
	spec := sweepSpec{targets: targets, proto: probe.TCP, ports: []uint16{22, 443}, concurrency: 2, shareRTT: true}
	results, took := sweep(context.Background(), scan, spec, nil)
	d := time.Duration(0)
	assert.Equal(t, []time.Duration{d, d, d, d, 100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}, got,
		"the default until four hosts answered; then 8 x 3 ms, raised to the 100 ms floor")
	reply := sweepReply("10.0.0.0/28 tcp 22,443", targetSet{prefix: netip.MustParsePrefix("10.0.0.0/28")}, spec, results, took, false)
	assert.Contains(t, reply.Text, "2 hosts answered nothing; a first try to them waited 100 ms")

	for _, tc := range []struct {
		name string
		spec sweepSpec
	}{
		{"a timeout asked for", sweepSpec{targets: targets, proto: probe.TCP, ports: []uint16{22}, concurrency: 1, timeout: time.Second}},
		{"a group", sweepSpec{targets: targets, proto: probe.TCP, ports: []uint16{22}, concurrency: 1, timeout: 0}},
	} {
		got = nil
		sweep(context.Background(), scan, tc.spec, nil)
		for _, g := range got {
			assert.Equal(t, tc.spec.timeout, g, tc.name)
		}
	}
}
