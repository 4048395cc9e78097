package vantage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/internal/portwords"
	"github.com/opsbot/opsbot/commands/probe"
)

func TestParseDetectAndChoose(t *testing.T) {
	out := "os\tLinux\n" +
		"tool\topsbot\t/usr/local/bin/opsbot\topsbot-probe 1\n" +
		"tool\tnc\t/usr/bin/nc\tOpenBSD netcat (Debian patchlevel 1.219-1)\n" +
		"tool\tbash\t/usr/bin/bash\t\n" +
		"tool\ttimeout\t/usr/bin/timeout\t\n" +
		"tool\tnc\trelative/nc\tx\n" + // not a path: ignored
		"garbage line\n"
	f := parseDetect(out)
	assert.Equal(t, found{os: "Linux", opsbot: "/usr/local/bin/opsbot", opsbotVersion: "opsbot-probe 1",
		nc: "/usr/bin/nc", ncBanner: "OpenBSD netcat (Debian patchlevel 1.219-1)", bash: "/usr/bin/bash", timeout: "/usr/bin/timeout"}, f)

	tool, notes := f.choose(probe.UDP)
	assert.Equal(t, toolOpsbot, tool)
	assert.Empty(t, notes)

	old := f
	old.opsbotVersion = ""
	tool, notes = old.choose(probe.TCP)
	assert.Equal(t, toolNC, tool)
	assert.Contains(t, notes[0], `does not speak "opsbot-probe 1"`)

	other := found{nc: "/bin/nc", ncBanner: "GNU netcat 0.7.1", bash: "/bin/bash", timeout: "/usr/bin/timeout"}
	tool, notes = other.choose(probe.TCP)
	assert.Equal(t, toolBash, tool)
	assert.Contains(t, notes[0], "is not OpenBSD netcat")
	tool, _ = other.choose(probe.UDP)
	assert.Equal(t, toolKind(0), tool, "bash cannot check UDP")

	openbsd := found{os: "OpenBSD", nc: "/usr/bin/nc", ncBanner: "usage: nc [-46cDdFhklNnrStUuvz]"}
	tool, _ = openbsd.choose(probe.UDP)
	assert.Equal(t, toolNC, tool, "OpenBSD's own nc")

	noTimeout := found{bash: "/bin/bash"}
	tool, notes = noTimeout.choose(probe.TCP)
	assert.Equal(t, toolKind(0), tool)
	assert.Contains(t, notes[0], "timeout(1) is not")
}

// Words measured from OpenBSD netcat 1.219 and bash 5.2 (see NOTES.md).
func TestClassifyNetcatAndBash(t *testing.T) {
	for _, tc := range []struct {
		proto probe.Proto
		exit  int
		words string
		state probe.State
	}{
		{probe.TCP, 0, "Connection to 10.0.0.5 80 port [tcp/http] succeeded!", probe.Open},
		{probe.TCP, 1, "nc: connect to 10.0.0.5 port 81 (tcp) failed: Connection refused", probe.Closed},
		{probe.TCP, 1, "nc: connect to 10.0.0.5 port 81 (tcp) timed out: Operation now in progress", probe.Filtered},
		{probe.TCP, 1, "nc: connect to 10.0.0.5 port 81 (tcp) failed: No route to host", probe.Filtered},
		{probe.TCP, 1, "nc: getaddrinfo for host \"x\" port 1: Name or service not known", 0},
		{probe.UDP, 0, "Connection to 10.0.0.5 125 port [udp/*] succeeded!", probe.OpenFiltered},
		{probe.UDP, 1, "", probe.Closed},
		{probe.UDP, 2, "", 0},
	} {
		c := cell{exit: tc.exit, words: tc.words}
		classifyNC(&c, tc.proto)
		assert.Equal(t, tc.state, c.res.State, "nc %s exit %d %q", tc.proto, tc.exit, tc.words)
		assert.NotEqual(t, probe.Open, func() probe.State {
			if tc.proto == probe.UDP {
				return c.res.State
			}
			return 0
		}(), "nc never makes a UDP port open")
	}
	for _, tc := range []struct {
		exit  int
		words string
		state probe.State
	}{
		{0, "", probe.Open},
		{124, "", probe.Filtered},
		{1, "bash: connect: Connection refused bash: line 1: /dev/tcp/10.0.0.5/81: Connection refused", probe.Closed},
		{1, "bash: connect: No route to host", probe.Filtered},
		{1, "bash: /dev/tcp/x/1: Name or service not known", 0},
	} {
		c := cell{exit: tc.exit, words: tc.words}
		classifyBash(&c)
		assert.Equal(t, tc.state, c.res.State, "bash exit %d %q", tc.exit, tc.words)
	}
}

func TestParsePortLines(t *testing.T) {
	out := "port\t80\t0\tConnection to 10.0.0.5 80 port [tcp/http] succeeded!\n" +
		"port\t81\t1\tnc: connect to 10.0.0.5 port 81 (tcp) failed: Connection refused\n" +
		"port\t81\t0\tsecond line for 81 is ignored\n" +
		"port\t99\t0\tnot asked for\n" +
		"port\tx\t0\tbad\n" +
		"junk\n"
	got := parsePortLines(out, []uint16{80, 81, 82})
	assert.Equal(t, map[uint16]portLineOut{
		80: {0, "Connection to 10.0.0.5 80 port [tcp/http] succeeded!"},
		81: {1, "nc: connect to 10.0.0.5 port 81 (tcp) failed: Connection refused"},
	}, got)
}

func FuzzPortLines(f *testing.F) {
	f.Add("port\t80\t0\tConnection to 10.0.0.5 80 port [tcp/http] succeeded!\nport\t81\t1\t\n")
	f.Add("port\t65535\t124\t\x00\xff")
	f.Fuzz(func(t *testing.T, out string) {
		asked := []uint16{80, 81, 65535}
		for p, l := range parsePortLines(out, asked) {
			if p != 80 && p != 81 && p != 65535 {
				t.Fatalf("port %d was not asked for", p)
			}
			if printable(l.words, 300) != l.words {
				t.Fatalf("words not cleaned: %q", l.words)
			}
			for _, proto := range []probe.Proto{probe.TCP, probe.UDP} {
				c := cell{exit: l.exit, words: l.words}
				classifyNC(&c, proto)
				if proto == probe.UDP && c.res.State == probe.Open {
					t.Fatalf("nc made a UDP port open from %q", l.words)
				}
			}
		}
	})
}

func TestWirePorts_RoundTripAndFitsAnArgument(t *testing.T) {
	var all []uint16
	for p := 1; p <= 65535; p += 2 { // no ranges: the worst case
		all = append(all, uint16(p))
	}
	words := wirePorts(all)
	set := map[uint16]bool{}
	for _, w := range words {
		assert.LessOrEqual(t, len(w), 4000)
		require.NoError(t, parseWirePorts(w, set))
	}
	assert.Equal(t, all, portwords.Sorted(set))
	assert.Equal(t, []string{"22,80-82,443"}, wirePorts([]uint16{22, 80, 81, 82, 443}))
	assert.Error(t, parseWirePorts("http", map[uint16]bool{}))
	assert.Error(t, parseWirePorts("90-80", map[uint16]bool{}))
	assert.Error(t, parseWirePorts("0", map[uint16]bool{}))
}

func TestDecodeReport_OnlyAnswersToTheQuestion(t *testing.T) {
	addr := netip.MustParseAddr("10.0.0.5")
	rep := func(mut func(*probeReport)) []byte {
		r := probeReport{Format: probeFormat, Address: "10.0.0.5", Proto: "udp", Mode: "check", Results: []probeResult{
			{Port: 53, State: "open", Reason: "reply", RTTus: 1100, Tries: 1, Service: "DNS", Bytes: 40},
			{Port: 54, State: "filtered", Reason: "admin-prohibited", ICMPFrom: "10.0.0.1"},
		}}
		if mut != nil {
			mut(&r)
		}
		b, err := json.Marshal(r)
		require.NoError(t, err)
		return b
	}
	_, got, err := decodeReport(rep(nil), addr, probe.UDP, []uint16{53, 54, 55})
	require.NoError(t, err)
	assert.Equal(t, []probe.Result{
		{Target: netip.MustParseAddrPort("10.0.0.5:53"), Proto: probe.UDP, State: probe.Open, Reason: probe.Reply, RTT: 1100 * time.Microsecond, Tries: 1, Service: "DNS", Bytes: 40},
		{Target: netip.MustParseAddrPort("10.0.0.5:54"), Proto: probe.UDP, State: probe.Filtered, Reason: probe.AdminProhibited, ICMPFrom: netip.MustParseAddr("10.0.0.1")},
	}, got)

	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"format":  {rep(func(r *probeReport) { r.Format = "opsbot-probe/2" }), "this bot reads"},
		"address": {rep(func(r *probeReport) { r.Address = "10.0.0.6" }), "not udp 10.0.0.5"},
		"proto":   {rep(func(r *probeReport) { r.Proto = "tcp" }), "not udp 10.0.0.5"},
		"port":    {rep(func(r *probeReport) { r.Results[0].Port = 99 }), "port 99, which was not asked for"},
		"twice":   {rep(func(r *probeReport) { r.Results[1].Port = 53 }), "comes twice"},
		"state":   {rep(func(r *probeReport) { r.Results[0].State = "succeeded" }), `unknown state "succeeded"`},
		"reason":  {rep(func(r *probeReport) { r.Results[0].Reason = "magic" }), `unknown reason "magic"`},
		"icmp":    {rep(func(r *probeReport) { r.Results[1].ICMPFrom = "router" }), "not an address"},
		"json":    {[]byte("Connection to 10.0.0.5 53 port [udp/domain] succeeded!"), "not JSON"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := decodeReport(tc.data, addr, probe.UDP, []uint16{53, 54})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func FuzzDecodeReport(f *testing.F) {
	f.Add(`{"format":"opsbot-probe/1","address":"10.0.0.5","proto":"tcp","results":[{"port":80,"state":"open","reason":"handshake"}]}`)
	f.Fuzz(func(t *testing.T, data string) {
		addr := netip.MustParseAddr("10.0.0.5")
		_, got, err := decodeReport([]byte(data), addr, probe.TCP, []uint16{80, 443})
		if err != nil {
			return
		}
		for _, r := range got {
			if r.Target.Addr() != addr || (r.Target.Port() != 80 && r.Target.Port() != 443) || r.State == 0 || r.Reason == 0 {
				t.Fatalf("accepted a result that answers another question: %+v", r)
			}
		}
	})
}

func TestProbeMain(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	free := strconv.Itoa(closed.Addr().(*net.TCPAddr).Port)
	require.NoError(t, closed.Close()) // nothing listens there now

	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := ProbeMain(context.Background(), args, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	code, out, _ := run("--protocol")
	assert.Equal(t, 0, code)
	assert.Equal(t, probeProtocol+"\n", out)

	for _, mode := range [][]string{{}, {"--scan"}} {
		args := append(append([]string{"--json", "-w", "1s"}, mode...), "--", "127.0.0.1", strconv.Itoa(int(port))+","+free)
		code, out, errOut := run(args...)
		require.Equal(t, 0, code, errOut)
		freePort, _ := strconv.Atoi(free)
		_, got, err := decodeReport([]byte(out), netip.MustParseAddr("127.0.0.1"), probe.TCP, []uint16{port, uint16(freePort)})
		require.NoError(t, err, out)
		states := map[uint16]probe.State{}
		for _, r := range got {
			states[r.Target.Port()] = r.State
		}
		assert.Equal(t, map[uint16]probe.State{port: probe.Open, uint16(freePort): probe.Closed}, states, mode)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"127.0.0.1", "80"}, "give --json"},
		{[]string{"--json", "localhost", "80"}, `"localhost" is not an IP address: the calling bot resolves names`},
		{[]string{"--json", "127.0.0.1"}, "give an address and at least one port"},
		{[]string{"--json", "127.0.0.1", "http"}, "not a port number"},
		{[]string{"--json", "-w", "2h", "127.0.0.1", "80"}, "out of range"},
		{[]string{"--json", "--max-time", "2h", "127.0.0.1", "80"}, "--max-time 2h0m0s: accepted"},
	} {
		code, out, errOut := run(tc.args...)
		assert.Equal(t, 2, code, tc.args)
		assert.Empty(t, out)
		assert.Contains(t, errOut, tc.want)
	}
}

func TestVantageReply_MatrixTitleShowsTheDifference(t *testing.T) {
	addr := netip.MustParseAddr("10.0.0.5")
	res := func(p uint16, st probe.State, rs probe.Reason) cell {
		return cell{res: probe.Result{Target: netip.AddrPortFrom(addr, p), Proto: probe.TCP, State: st, Reason: rs}}
	}
	plan := Plan{Word: "web", Group: true, Addr: addr, Target: bot.Target{Host: "10.0.0.5", Addrs: []netip.Addr{addr}},
		Hosts: []bot.Host{{Name: "web01"}, {Name: "web02"}, {Name: "web03"}}}
	job := Job{Addr: addr, Proto: probe.TCP, Ports: []uint16{80, 443}, Timeout: time.Second}
	opsbot := found{opsbot: "/usr/local/bin/opsbot", opsbotVersion: probeProtocol}
	rows := []Row{
		{host: plan.Hosts[0], tool: toolOpsbot, found: opsbot, cells: []cell{res(80, probe.Open, probe.Handshake), res(443, probe.Open, probe.Handshake)}},
		{host: plan.Hosts[1], tool: toolOpsbot, found: opsbot, cells: []cell{res(80, probe.Filtered, probe.Timeout), res(443, probe.Open, probe.Handshake)}},
		{host: plan.Hosts[2], problem: "finding the tools failed: connect 10.0.0.13:22: connection refused"},
	}
	r := PortcheckReply(plan, job, rows, time.Second, stateLine)
	assert.Equal(t, "10.0.0.5 80/tcp open from web01, filtered from web02; not checked from web03", r.Title)
	assert.Equal(t, bot.StatusNegative, r.Status)
	assert.Equal(t, &bot.Table{Header: []string{"vantage", "tool", "80/tcp", "443/tcp"}, Rows: [][]string{
		{"web01", "opsbot", "open", "open"},
		{"web02", "opsbot", "filtered", "open"},
		{"web03", "-", "-", "-"},
	}}, r.Table)
	assert.Contains(t, r.Text, "  web01, web02: opsbot probe (/usr/local/bin/opsbot)")
	assert.Contains(t, r.Text, "  web03: not checked: finding the tools failed: connect 10.0.0.13:22: connection refused.")

	rows[1].cells[0] = res(80, probe.Open, probe.Handshake)
	rows = rows[:2]
	plan.Hosts = plan.Hosts[:2]
	r = PortcheckReply(plan, job, rows, time.Second, stateLine)
	assert.Equal(t, "10.0.0.5: 2 of 2 ports open from all 2 hosts of web", r.Title)
	assert.Equal(t, bot.StatusOK, r.Status)
}

// A vantage's "unconfirmed" crosses the wire: a port its scan could not be
// sure of must not read as a plain filtered on the bot.
func TestDecodeReport_DoubtfulSurvivesTheWire(t *testing.T) {
	addr := netip.MustParseAddr("10.0.0.5")
	r := probe.Result{Target: netip.AddrPortFrom(addr, 81), Proto: probe.TCP, State: probe.Filtered, Reason: probe.Timeout, Tries: 9, Doubtful: true}
	b, err := json.Marshal(probeReport{Format: probeFormat, Address: "10.0.0.5", Proto: "tcp", Mode: "scan", Results: []probeResult{toWire(r)}})
	require.NoError(t, err)
	assert.Contains(t, string(b), `"doubtful":true`)
	_, got, err := decodeReport(b, addr, probe.TCP, []uint16{81})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.True(t, got[0].Doubtful)
	assert.Equal(t, probe.Filtered, got[0].State)
}

// stateLine stands in for /portcheck's line (package commands owns its
// words and tests them).
func stateLine(name string, r probe.Result, _ time.Duration) string {
	return fmt.Sprintf("%s %s %s", name, r.Target, r.State)
}
