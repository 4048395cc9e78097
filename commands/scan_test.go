package commands

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/probe"
)

func udpResult(a netip.Addr, port uint16, st probe.State, rs probe.Reason, witnessed bool) probe.Result {
	return probe.Result{Target: netip.AddrPortFrom(a, port), Proto: probe.UDP, State: st, Reason: rs, Witnessed: witnessed}
}

func TestScanReply_UDPSaysWhatItCouldNotConfirm(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.7")
	res := probe.ScanResult{
		Duration:    42 * time.Second,
		RateLimited: true,
		Results: []probe.Result{
			{Target: netip.AddrPortFrom(a, 53), Proto: probe.UDP, State: probe.Open, Reason: probe.Reply, Service: "DNS", RTT: time.Millisecond},
			udpResult(a, 54, probe.Closed, probe.PortUnreachable, false),
			udpResult(a, 55, probe.OpenFiltered, probe.Silence, true),
			udpResult(a, 56, probe.OpenFiltered, probe.Silence, true),
			udpResult(a, 99, probe.OpenFiltered, probe.Silence, false),
		},
	}
	tg := bot.Target{Host: "10.0.0.7", Addrs: []netip.Addr{a}}
	ta := targetArgs{proto: probe.UDP, spec: "53-56,99", ports: []uint16{53, 54, 55, 56, 99}}
	r := scanReply("10.0.0.7 udp 53-56,99", tg, a, ta, res)

	assert.Equal(t, bot.StatusOK, r.Status)
	assert.Equal(t, "10.0.0.7 udp 53-56,99: 1 open", r.Title)
	require.NotNil(t, r.Table)
	assert.Equal(t, [][]string{{"53/udp", "open", "DNS", "DNS reply, 1.0 ms"}}, r.Table.Rows)
	assert.Equal(t, bot.Field{Name: "ports", Value: "1 open, 1 closed, 3 open|filtered"}, r.Fields[0])
	assert.Contains(t, r.Text, "these are not closed: open or dropped by a firewall): 55-56")
	assert.Contains(t, r.Text, "unconfirmed (silent, and the host's ICMP rate limit or a firewall kept opsbot from telling closed from open|filtered): 99")
	assert.Contains(t, r.Text, "rate-limits ICMP errors")
}

func TestScanReply_CanceledIsNotSuccess(t *testing.T) {
	a := netip.MustParseAddr("127.0.0.1")
	res := probe.ScanResult{Canceled: true, Duration: time.Second, Results: []probe.Result{
		{Target: netip.AddrPortFrom(a, 22), Proto: probe.TCP, State: probe.Open, Reason: probe.Handshake},
	}}
	ta := targetArgs{proto: probe.TCP, spec: "1-65535", ports: make([]uint16, 65535)}
	r := scanReply("127.0.0.1 tcp 1-65535", bot.Target{Addrs: []netip.Addr{a}}, a, ta, res)
	assert.Equal(t, bot.StatusNegative, r.Status)
	assert.Equal(t, "Scan of 127.0.0.1 tcp 1-65535 canceled after 1 of 65535 ports: 1 open so far", r.Title)
}

func TestScan_ProgressReachesTheStream(t *testing.T) {
	targets, err := bot.NewTargets(bot.TargetRules{Allow: bot.DefaultAllow}, nil, nil)
	require.NoError(t, err)
	s := NewScan(targets, bot.DefaultPolicy().Limits)
	var gotSpec probe.ScanSpec
	s.scan = func(_ context.Context, spec probe.ScanSpec, progress func(probe.Progress)) (probe.ScanResult, error) {
		gotSpec = spec
		progress(probe.Progress{Done: 50, Total: 100, Open: 1, Elapsed: 200 * time.Millisecond})
		return probe.ScanResult{}, nil
	}
	st := &recordingStream{}
	_, err = s.Run(context.Background(), bot.Request{Args: []string{"127.0.0.1"}, Stream: st})
	require.NoError(t, err)
	assert.Len(t, gotSpec.Ports, 100, "top100 by default")
	assert.Equal(t, bot.DefaultScanConcurrency, gotSpec.Concurrency, "concurrency comes from policy")
	require.Len(t, st.progress, 1)
	assert.Equal(t, "Scanning 127.0.0.1 tcp top100", st.progress[0].Title)
	assert.Equal(t, "50 of 100 ports (50%), 1 open so far, 200 ms", st.progress[0].Text)
}

type recordingStream struct {
	progress, posts []bot.Reply
}

func (r *recordingStream) Progress(p bot.Reply) { r.progress = append(r.progress, p) }
func (r *recordingStream) Post(p bot.Reply)     { r.posts = append(r.posts, p) }

func TestListen_ReportsEachConnectionAndCloses(t *testing.T) {
	l := NewListen(time.Minute)
	ln, err := probeFreePort()
	require.NoError(t, err)
	st := &recordingStream{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan bot.Reply)
	go func() {
		r, err := l.Run(ctx, bot.Request{Args: []string{ln, "for", "2s"}, Stream: st})
		assert.NoError(t, err)
		done <- r
	}()
	require.Eventually(t, func() bool { return dialSend("127.0.0.1:"+ln, "hello") == nil }, 2*time.Second, 20*time.Millisecond)
	r := <-done
	assert.Equal(t, bot.StatusOK, r.Status)
	assert.Contains(t, r.Title, "Listener on tcp port "+ln+" closed after 2s: 1 connection, 5 bytes")
	var lines []string
	for _, p := range st.posts {
		lines = append(lines, p.Title+strings.Join(p.Lines, ""))
	}
	all := strings.Join(lines, "\n")
	assert.Contains(t, all, "Listening on tcp port "+ln)
	assert.Regexp(t, `connection from 127\.0\.0\.1:\d+, 5 bytes: hello`, all)
}

func TestScanReply_SaysWhatTheNetworkDid(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.9")
	tcp := func(p uint16, st probe.State, rs probe.Reason, doubtful bool) probe.Result {
		return probe.Result{Target: netip.AddrPortFrom(a, p), Proto: probe.TCP, State: st, Reason: rs, Tries: 3, Doubtful: doubtful}
	}
	ta := targetArgs{proto: probe.TCP, spec: "80-84", ports: []uint16{80, 81, 82, 83, 84}}
	for _, tc := range []struct {
		name   string
		net    probe.NetReport
		want   []string
		absent []string
	}{
		{"loss_and_round_trip", probe.NetReport{RTT: 52 * time.Millisecond, Retried: 212, Loss: 0.031},
			[]string{"About 3% of probes were lost on the way; 212 retried", "Round trip 52 ms"}, []string{"paced"}},
		{"rate_limit", probe.NetReport{RTT: 2 * time.Millisecond, Paced: 298.6},
			[]string{"limits new connections to about 299/s: paced"}, []string{"Round trip", "were lost"}},
		{"slow_link", probe.NetReport{Paced: 4100, Queue: true},
			[]string{"The path is slower than the scan", "paced to about 4100 probes/s"}, nil},
		{"clean_lan", probe.NetReport{RTT: 300 * time.Microsecond}, nil, []string{"paced", "were lost", "Round trip"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := probe.ScanResult{Duration: time.Second, Net: tc.net, Results: []probe.Result{
				tcp(80, probe.Open, probe.Handshake, false),
				tcp(81, probe.Closed, probe.Refused, false),
				tcp(82, probe.Filtered, probe.Timeout, false),
				tcp(83, probe.Filtered, probe.Timeout, true),
				tcp(84, probe.Filtered, probe.Timeout, true),
			}}
			r := scanReply("10.0.0.9 tcp 80-84", bot.Target{Addrs: []netip.Addr{a}}, a, ta, res)
			assert.Equal(t, bot.Field{Name: "ports", Value: "1 open, 1 closed, 3 filtered (2 unconfirmed)"}, r.Fields[0])
			assert.Contains(t, r.Text, "filtered: 82")
			assert.Contains(t, r.Text, "unconfirmed, no answer after every try (the path lost too many probes to be sure no answer was lost too): 83-84")
			for _, w := range tc.want {
				assert.Contains(t, r.Text, w)
			}
			for _, w := range tc.absent {
				assert.NotContains(t, r.Text, w)
			}
		})
	}
	res := probe.ScanResult{Net: probe.NetReport{Stopped: true}, Results: []probe.Result{tcp(83, probe.Filtered, probe.Timeout, true)}}
	r := scanReply("10.0.0.9 tcp 83", bot.Target{Addrs: []netip.Addr{a}}, a, targetArgs{proto: probe.TCP, ports: []uint16{83}}, res)
	assert.Contains(t, r.Text, "(the target stopped answering during the scan): 83")
}

func TestScanReply_NothingAnsweredSaysSo(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.9")
	ta := targetArgs{proto: probe.TCP, spec: "80-81", ports: []uint16{80, 81}}
	silent := func(p uint16) probe.Result {
		return probe.Result{Target: netip.AddrPortFrom(a, p), Proto: probe.TCP, State: probe.Filtered, Reason: probe.Timeout, Tries: 6}
	}
	res := probe.ScanResult{Results: []probe.Result{silent(80), silent(81)}}
	r := scanReply("10.0.0.9 tcp 80-81", bot.Target{Addrs: []netip.Addr{a}}, a, ta, res)
	assert.Contains(t, r.Text, "Nothing answered at all, on any port")

	res.Results[0].State, res.Results[0].Reason = probe.Closed, probe.Refused
	res.Net.Answered = 1
	r = scanReply("10.0.0.9 tcp 80-81", bot.Target{Addrs: []netip.Addr{a}}, a, ta, res)
	assert.NotContains(t, r.Text, "Nothing answered")
}

func TestScanReply_EveryPortOpenIsOneRowNotSixtyFiveThousand(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.9")
	var res probe.ScanResult
	for p := 1; p <= 65535; p++ {
		rtt := time.Millisecond
		if p == 80 {
			rtt = 3 * time.Millisecond
		}
		res.Results = append(res.Results, probe.Result{Target: netip.AddrPortFrom(a, uint16(p)), Proto: probe.TCP, State: probe.Open, Reason: probe.Handshake, RTT: rtt})
	}
	ta := targetArgs{proto: probe.TCP, spec: "1-65535", ports: make([]uint16, 65535)}
	r := scanReply("10.0.0.9 tcp 1-65535", bot.Target{Addrs: []netip.Addr{a}}, a, ta, res)
	require.NotNil(t, r.Table)
	assert.Equal(t, [][]string{{"1-65535/tcp", "open", "65535 ports", "handshake completed, 1.0 ms to 3.0 ms"}}, r.Table.Rows)
	assert.Equal(t, "10.0.0.9 tcp 1-65535: 65535 open", r.Title)
}

func TestScanReply_RunsOfOpenPortsGroupOnlyPastFifty(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.9")
	open := func(ports ...int) probe.ScanResult {
		var res probe.ScanResult
		for _, p := range ports {
			res.Results = append(res.Results, probe.Result{Target: netip.AddrPortFrom(a, uint16(p)), Proto: probe.TCP, State: probe.Open, Reason: probe.Handshake, RTT: time.Millisecond})
		}
		return res
	}
	ta := targetArgs{proto: probe.TCP, spec: "1-1000", ports: make([]uint16, 1000)}
	few := scanReply("t", bot.Target{Addrs: []netip.Addr{a}}, a, ta, open(22, 23, 24))
	assert.Len(t, few.Table.Rows, 3, "a few ports: a row each, with their service names")
	assert.Equal(t, "ssh", few.Table.Rows[0][2])
	var ports []int
	for p := 100; p < 160; p++ {
		ports = append(ports, p)
	}
	ports = append(ports, 443, 8000, 8001)
	many := scanReply("t", bot.Target{Addrs: []netip.Addr{a}}, a, ta, open(ports...))
	assert.Equal(t, [][]string{
		{"100-159/tcp", "open", "60 ports", "handshake completed, 1.0 ms"},
		{"443/tcp", "open", "https", "handshake completed, 1.0 ms"},
		{"8000-8001/tcp", "open", "2 ports", "handshake completed, 1.0 ms"},
	}, many.Table.Rows)
}
