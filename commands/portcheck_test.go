package commands

import (
	"context"
	"errors"
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

// recordingResolver fails the test on any lookup it was not told about, so
// bad input provably never reaches DNS.
type recordingResolver struct {
	mu      sync.Mutex
	names   map[string][]netip.Addr
	lookups []string
}

func (r *recordingResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lookups = append(r.lookups, host)
	if a, ok := r.names[host]; ok {
		return a, nil
	}
	return nil, &notFound{}
}

type notFound struct{}

func (*notFound) Error() string { return "no such host" }

// netRecorder stands in for the probe engine in parsing tests and records
// whether anything would have gone on the network.
type netRecorder struct {
	mu     sync.Mutex
	probes []string
	result func(netip.AddrPort, probe.Proto) probe.Result
}

func (n *netRecorder) check(_ context.Context, ap netip.AddrPort, proto probe.Proto, _ probe.Options) probe.Result {
	n.mu.Lock()
	n.probes = append(n.probes, proto.String()+" "+ap.String())
	n.mu.Unlock()
	if n.result != nil {
		return n.result(ap, proto)
	}
	return probe.Result{Target: ap, Proto: proto, State: probe.Open, Reason: probe.Handshake, RTT: 400 * time.Microsecond}
}

// scan records each port as check does: a multi-port /portcheck goes
// through the scan engine, and either way every probe must be accounted.
func (n *netRecorder) scan(ctx context.Context, spec probe.ScanSpec, _ func(probe.Progress)) (probe.ScanResult, error) {
	var res probe.ScanResult
	for _, p := range spec.Ports {
		res.Results = append(res.Results, n.check(ctx, netip.AddrPortFrom(spec.Target, p), spec.Proto, probe.Options{}))
	}
	return res, nil
}

func (n *netRecorder) listen(_ context.Context, spec probe.ListenSpec, _ func(probe.ListenEvent)) (probe.ListenSummary, error) {
	n.mu.Lock()
	n.probes = append(n.probes, "listen "+spec.Addr.String())
	n.mu.Unlock()
	return probe.ListenSummary{}, nil
}

// testRouter wires the three commands as main does, with the network and
// DNS replaced by recorders.
func testRouter(t *testing.T, policy *bot.Policy) (*bot.Router, *netRecorder, *recordingResolver) {
	t.Helper()
	res := &recordingResolver{names: map[string][]netip.Addr{
		"web.test":  {netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00::5")},
		"meta.test": {netip.MustParseAddr("169.254.169.254")},
	}}
	targets, err := bot.NewTargets(policy.Targets, res, nil)
	require.NoError(t, err)
	nr := &netRecorder{}
	pc := NewPortcheck(targets, policy.Limits.PortcheckPorts)
	pc.check = nr.check
	pc.scan = nr.scan
	sc := NewScan(targets, policy.Limits)
	sc.scan = nr.scan
	li := NewListen(policy.Limits.ListenFor.D)
	li.listen = nr.listen
	return bot.NewRouter(bot.RouterConfig{Commands: []bot.Command{pc, sc, li}}), nr, res
}

func TestBadInput_ClearErrorNothingOnTheNetwork(t *testing.T) {
	p := bot.DefaultPolicy()
	p.Limits.ScanPorts = 1000
	for _, tc := range []struct {
		line string
		exit int
		want string
	}{
		{"/portcheck 127.0.0.1 0", 2, "port 0 is out of range: ports are 1 to 65535"},
		{"/portcheck 127.0.0.1 65536", 2, "port 65536 is out of range"},
		{"/scan 127.0.0.1 1-99999", 2, "port 99999 is out of range"},
		{"/scan 127.0.0.1 80-20", 2, "range 80-20 runs backwards: write 20-80"},
		{"/portcheck '' 80", 2, "empty host"},
		{"/portcheck", 2, "no host given: usage /portcheck HOST"},
		{"/portcheck 127.0.0.1", 2, "no port given"},
		{"/portcheck 'a b' 80", 2, `invalid host "a b"`},
		{"/portcheck a;b 80", 2, `invalid host "a;b"`},
		{"/portcheck $(id) 80", 2, `invalid host "$(id)"`},
		{"/portcheck `id` 80", 2, "invalid host \"`id`\""},
		{"/portcheck 'web.test|sh' 80", 2, "invalid host"},
		{"/portcheck 169.254.169.254 80", 3, "169.254.169.254 is a link-local address"},
		{"/portcheck meta.test 80", 3, "169.254.169.254"},
		{"/portcheck 8.8.8.8 53", 3, "not in targets.allow"},
		{"/scan 127.0.0.1 1-2000", 2, "1-2000 is 2000 ports: policy allows at most 1000 per scan (limits.scan_ports)"},
		{"/portcheck 127.0.0.1 80 sctp", 2, `protocol "sctp" is not supported: accepted are tcp and udp`},
		{"/portcheck 127.0.0.1 80 smtpx", 2, `"smtpx" is not a port or a known tcp service name`},
		{"/portcheck 127.0.0.1 80 timeout -3s", 2, "timeout -3s is out of range: accepted 10ms to 1m0s"},
		{"/portcheck 127.0.0.1 80 timeout 10h", 2, "timeout 10h is out of range"},
		{"/portcheck -w 99999 127.0.0.1 80", 2, "timeout 99999 is out of range"},
		{"/portcheck 127.0.0.1 80 timeout soon", 2, `timeout "soon" is not a duration`},
		{"/portcheck -zx 127.0.0.1 80", 2, "unknown flag -x"},
		{"/portcheck 127.0.0.1 80 -u tcp", 2, "-u asks for UDP but the command also says tcp"},
		{"/portcheck -n web.test 80", 2, "-n means no name lookups"},
		{"/portcheck 127.0.0.1 1-200", 2, "200 ports: /portcheck takes at most 100"},
		{"/portcheck 127.0.0.1 80" + strings.Repeat(" 80", 10000), 2, "too many arguments (10003): at most 64 words"},
		{"/portcheck 127.0.0.1 \xff\xfe", 2, "not valid UTF-8"},
		{"/listen 0", 2, "port 0 is out of range"},
		{"/listen 3873 for 2h", 2, "for 2h0m0s is longer than policy allows: at most 10m0s (limits.listen_for)"},
		{"/listen 3873 for -5s", 2, "duration -5s is out of range"},
		{"/listen", 2, "give exactly one port"},
		{"/scan 127.0.0.1 top5000", 2, "accepted are top1 to top1000"},
	} {
		t.Run(tc.line[:min(len(tc.line), 50)], func(t *testing.T) {
			r, nr, res := testRouter(t, p)
			reply := r.Handle(context.Background(), bot.Request{Platform: "shell", User: "t", Line: tc.line})
			assert.Equal(t, tc.exit, reply.Status.ExitCode(), reply.Title)
			assert.Contains(t, reply.Title, tc.want)
			assert.NotContains(t, reply.Title, "\n", "one-line error")
			assert.Empty(t, nr.probes, "nothing sent on the network")
			for _, l := range res.lookups {
				assert.Equal(t, "meta.test", l, "only a well-formed name is ever looked up")
			}
		})
	}
}

func TestPortcheck_ArgumentForms(t *testing.T) {
	for _, tc := range []struct {
		line  string
		probe []string
	}{
		{"/portcheck 127.0.0.1 80", []string{"tcp 127.0.0.1:80"}},
		{"/portcheck -zv 127.0.0.1 80", []string{"tcp 127.0.0.1:80"}},
		{"/portcheck -zuv 127.0.0.1 123", []string{"udp 127.0.0.1:123"}},
		{"/portcheck -zu -w 3 127.0.0.1 123", []string{"udp 127.0.0.1:123"}},
		{"/portcheck 127.0.0.1 ntp udp", []string{"udp 127.0.0.1:123"}},
		{"/portcheck 127.0.0.1 https timeout 1s", []string{"tcp 127.0.0.1:443"}},
		{"/portcheck [::1] 22,80", []string{"tcp [::1]:22", "tcp [::1]:80"}},
		{"/portcheck 127.0.0.1 81-83 81", []string{"tcp 127.0.0.1:81", "tcp 127.0.0.1:82", "tcp 127.0.0.1:83"}},
		{"/portcheck web.test 80", []string{"tcp 10.0.0.5:80", "tcp [fd00::5]:80"}},
		{"/portcheck -6 web.test 80", []string{"tcp [fd00::5]:80"}},
	} {
		t.Run(tc.line, func(t *testing.T) {
			r, nr, _ := testRouter(t, bot.DefaultPolicy())
			reply := r.Handle(context.Background(), bot.Request{Line: tc.line})
			assert.Equal(t, bot.StatusOK, reply.Status, reply.Title)
			assert.ElementsMatch(t, tc.probe, nr.probes)
		})
	}
}

func TestPortcheckReply_NetcatWordsAndTheTruth(t *testing.T) {
	ap := func(p uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("192.168.0.10"), p) }
	results := map[uint16]probe.Result{
		80:  {Target: ap(80), Proto: probe.TCP, State: probe.Open, Reason: probe.Handshake, RTT: 400 * time.Microsecond},
		81:  {Target: ap(81), Proto: probe.TCP, State: probe.Filtered, Reason: probe.Timeout},
		82:  {Target: ap(82), Proto: probe.TCP, State: probe.Closed, Reason: probe.Refused, RTT: time.Millisecond},
		123: {Target: ap(123), Proto: probe.UDP, State: probe.Open, Reason: probe.Reply, Service: "NTP", RTT: 1100 * time.Microsecond},
		125: {Target: ap(125), Proto: probe.UDP, State: probe.OpenFiltered, Reason: probe.Silence, Tries: 3},
		126: {Target: ap(126), Proto: probe.UDP, State: probe.Filtered, Reason: probe.AdminProhibited, ICMPFrom: netip.MustParseAddr("192.168.0.1")},
	}
	tg := bot.Target{Host: "192.168.0.10", Addrs: []netip.Addr{netip.MustParseAddr("192.168.0.10")}}
	line := func(p uint16) string {
		r := portcheckReply(tg, []uint16{p}, [][]probe.Result{{results[p]}}, 3*time.Second)
		return strings.Join(r.Lines, "\n")
	}
	assert.Equal(t, "Connection to 192.168.0.10 80 port [tcp/http] succeeded! (0.4 ms)", line(80))
	assert.Equal(t, "192.168.0.10 81 port [tcp/*] filtered: no answer in 3s (a firewall drops it)", line(81))
	assert.Contains(t, line(82), "192.168.0.10 82 port [tcp/*] closed: connection refused")
	assert.Equal(t, "192.168.0.10 123 port [udp/ntp] open: NTP reply received (1.1 ms)", line(123))
	assert.Equal(t, "192.168.0.10 125 port [udp/*] open|filtered: no reply and no ICMP error after 3 tries.\n"+
		"  UDP is connectionless: a firewall that drops packets looks the same as an open port.", line(125))
	assert.Equal(t, "192.168.0.10 126 port [udp/*] filtered: ICMP administratively prohibited from 192.168.0.1 (a router or firewall on the path) (a firewall rejects it)", line(126))

	silent := portcheckReply(tg, []uint16{125}, [][]probe.Result{{results[125]}}, 3*time.Second)
	assert.Equal(t, bot.StatusNegative, silent.Status, "silence is never success")
	assert.NotContains(t, strings.Join(silent.Lines, " "), "succeeded")
	assert.Contains(t, silent.Text, "netcat -zu reports such a port as \"succeeded\"")
}

func TestPortcheckReply_NameSaysWhichAddressAnswered(t *testing.T) {
	v4, v6 := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00::5")
	tg := bot.Target{Host: "web.test", Name: "web.test", Addrs: []netip.Addr{v4, v6}}
	r := portcheckReply(tg, []uint16{443}, [][]probe.Result{{
		{Target: netip.AddrPortFrom(v4, 443), Proto: probe.TCP, State: probe.Open, Reason: probe.Handshake, RTT: 2 * time.Millisecond},
		{Target: netip.AddrPortFrom(v6, 443), Proto: probe.TCP, State: probe.Filtered, Reason: probe.Timeout},
	}}, time.Second)
	assert.Equal(t, []string{
		"Connection to web.test (10.0.0.5) 443 port [tcp/https] succeeded! (2.0 ms)",
		"web.test (fd00::5) 443 port [tcp/https] filtered: no answer in 1s (a firewall drops it)",
	}, r.Lines)
	assert.Equal(t, bot.StatusOK, r.Status, "the port answers on one of the name's addresses")
	assert.Equal(t, "web.test: 1 of 1 ports open", r.Title)
}

func TestPortRanges(t *testing.T) {
	assert.Equal(t, "22, 80-82, 443", portRanges([]uint16{22, 80, 81, 82, 443}))
	assert.Equal(t, "", portRanges(nil))
}

func FuzzCommandArgs(f *testing.F) {
	for _, s := range []string{"127.0.0.1 80", "-zuv -w 3 10.0.0.1 123", "h 1-99999", "h 80-20", "[::1] top100 udp", "h 80 timeout 3s", "h https,ntp,0", "h 80 from web01", "-zu h 53 from"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, err := bot.SplitWords(line)
		if err != nil {
			return
		}
		ta, err := parseTargetArgs(words, portcheckSynopsis)
		if err != nil {
			if bot.ErrorCode(err) != bot.EINVALID || bot.ErrorMessage(err) == "" {
				t.Fatalf("bad input must give a user error, got %v", err)
			}
			return
		}
		if _, err := netip.ParsePrefix(ta.host); err != nil && isSubnet(ta.host) {
			t.Fatalf("accepted subnet %q that is no CIDR", ta.host)
		} else if _, _, err := bot.ParseHost(ta.host); err != nil && !isSubnet(ta.host) {
			t.Fatalf("accepted host %q that ParseHost rejects", ta.host)
		}
		if ta.vantage != "" && bot.CheckHostName(ta.vantage) != nil {
			t.Fatalf("accepted vantage %q that CheckHostName rejects", ta.vantage)
		}
		for i, p := range ta.ports {
			if p == 0 || (i > 0 && ta.ports[i-1] >= p) {
				t.Fatalf("ports not valid, unique and sorted: %v", ta.ports)
			}
		}
		if ta.timeout != 0 && (ta.timeout < minTimeout || ta.timeout > maxTimeout) {
			t.Fatalf("timeout %s out of bounds", ta.timeout)
		}
	})
}

// A scan of several ports that stops on a local error keeps what it
// decided, and the ports it did not decide are checked one by one: a
// local error is never shown as a port's state.
func TestPortcheck_ScanStoppedByALocalErrorChecksTheRest(t *testing.T) {
	p := bot.DefaultPolicy()
	targets, err := bot.NewTargets(p.Targets, &recordingResolver{names: map[string][]netip.Addr{}}, nil)
	require.NoError(t, err)
	nr := &netRecorder{}
	pc := NewPortcheck(targets, p.Limits.PortcheckPorts)
	pc.check = nr.check
	r := bot.NewRouter(bot.RouterConfig{Commands: []bot.Command{pc}})
	pc.scan = func(_ context.Context, spec probe.ScanSpec, _ func(probe.Progress)) (probe.ScanResult, error) {
		first := netip.AddrPortFrom(spec.Target, spec.Ports[0])
		return probe.ScanResult{Results: []probe.Result{{Target: first, Proto: spec.Proto, State: probe.Closed, Reason: probe.Refused}}},
			errors.New("socket: too many open files")
	}
	reply := r.Handle(context.Background(), bot.Request{Line: "/portcheck 127.0.0.1 81,82"})
	assert.Equal(t, []string{"tcp 127.0.0.1:82"}, nr.probes, "only the undecided port is checked again")
	text := strings.Join(reply.Lines, "\n") + reply.Text
	assert.Contains(t, text, "127.0.0.1 81 port [tcp/*] closed")
	assert.Contains(t, text, "Connection to 127.0.0.1 82 port [tcp/*] succeeded!")
}
