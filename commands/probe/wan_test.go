package probe_test

// Scans across a WAN link (testbed/wan.go): random loss with tens of ms of
// round trip, a slow link with a short queue, a target that limits SYNs or
// RSTs, a long round trip behind a default-DROP firewall, and UDP with
// loss. Each scenario runs at both ends of its range of parameters, and
// every run must give exactly the open, closed and filtered sets that the
// bed was built with. OPSBOT_WAN_SEED repeats a run's random choices (the
// seed is logged).

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/commands/probe"
	"github.com/opsbot/opsbot/commands/probe/testbed"
)

const wanSeedVar = "OPSBOT_WAN_SEED"

// wanCase is one scenario at one point of its range.
type wanCase struct {
	name  string
	proto probe.Proto
	link  testbed.Link
	ports uint16 // scan 1..ports
	// nft is the target's ruleset (fmt verb %d: the rate, if any).
	nft      string
	open     []uint16 // listeners
	filtered []uint16 // dropped by the ruleset (UDP: silent)
	// defaultDrop: every port not in accept is filtered.
	defaultDrop bool
	accept      []uint16
}

// wanCases builds the scenarios from one seed: the parent and the child
// process compute the same ones.
func wanCases(seed uint64) []wanCase {
	rng := rand.New(rand.NewPCG(seed, 1))
	pick := func(n int, hi uint16, avoid ...[]uint16) []uint16 {
		var out []uint16
		for len(out) < n {
			p := uint16(1 + rng.IntN(int(hi)))
			if slices.Contains(out, p) || slices.ContainsFunc(avoid, func(a []uint16) bool { return slices.Contains(a, p) }) {
				continue
			}
			out = append(out, p)
		}
		slices.Sort(out)
		return out
	}
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	var cs []wanCase
	for _, end := range []string{"low", "high"} {
		hi := end == "high"
		at := func(lo, high float64) float64 {
			if hi {
				return high
			}
			return lo
		}
		// Random loss, 1-5 % each way, 20-80 ms round trip.
		c := wanCase{name: "loss/" + end, proto: probe.TCP, ports: 2000,
			link: testbed.Link{Delay: ms(int(at(10, 40))), Jitter: ms(2), Loss: at(0.01, 0.05), LossBack: at(0.01, 0.05), Seed: rng.Uint64()}}
		c.open = pick(15, c.ports)
		cs = append(cs, c)

		// A slow link (2-6 Mbit/s) with a short queue (8-32 packets).
		c = wanCase{name: "slow_link/" + end, proto: probe.TCP, ports: 2000,
			link: testbed.Link{Delay: ms(int(at(5, 20))), Rate: int64(at(2e6, 6e6)), Queue: int(at(8, 32)), Seed: rng.Uint64()}}
		c.open = pick(15, c.ports)
		cs = append(cs, c)

		// A target that limits SYNs, as firewalls ship it.
		rate := int(at(400, 1000))
		c = wanCase{name: "syn_limit/" + end, proto: probe.TCP, ports: 1500,
			link: testbed.Link{Delay: ms(int(at(5, 20))), Seed: rng.Uint64()},
			nft: fmt.Sprintf(`table inet wan {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp flags syn limit rate over %d/second burst 20 packets drop
	}
}`, rate)}
		c.open = pick(12, c.ports)
		cs = append(cs, c)

		// A target that limits the RSTs it sends (closed ports).
		rate = int(at(300, 800))
		c = wanCase{name: "rst_limit/" + end, proto: probe.TCP, ports: 1000,
			link: testbed.Link{Delay: ms(int(at(5, 20))), Seed: rng.Uint64()},
			nft: fmt.Sprintf(`table inet wan {
	chain output {
		type filter hook output priority 0; policy accept;
		tcp flags & (rst|ack) == rst|ack limit rate over %d/second burst 10 packets drop
	}
}`, rate)}
		c.open = pick(8, c.ports)
		cs = append(cs, c)

		// A long round trip (100-300 ms) behind a default-DROP firewall.
		c = wanCase{name: "long_rtt_drop/" + end, proto: probe.TCP, ports: 1000, defaultDrop: true,
			link: testbed.Link{Delay: ms(int(at(50, 150))), Jitter: ms(5), Seed: rng.Uint64()}}
		c.open = pick(6, c.ports)
		c.accept = append(slices.Clone(c.open), pick(4, c.ports, c.open)...) // accepted, nothing listens: closed
		slices.Sort(c.accept)
		cs = append(cs, c)

		// UDP with loss: responders, silent (dropped) ports, the rest
		// closed by ICMP.
		c = wanCase{name: "udp_loss/" + end, proto: probe.UDP, ports: 300,
			link: testbed.Link{Delay: ms(int(at(5, 20))), Loss: at(0.01, 0.03), LossBack: at(0.01, 0.03), Seed: rng.Uint64()}}
		c.open = pick(5, c.ports)
		c.filtered = pick(5, c.ports, c.open)
		cs = append(cs, c)
	}
	return cs
}

func (c wanCase) ruleset() string {
	switch {
	case c.defaultDrop:
		return fmt.Sprintf(`table inet wan {
	chain input {
		type filter hook input priority 0; policy drop;
		iif lo accept
		ct state established,related accept
		tcp dport { %s } accept
	}
}`, joinPorts(c.accept))
	case len(c.filtered) > 0:
		return fmt.Sprintf(`table inet wan {
	chain input {
		type filter hook input priority 0; policy accept;
		%s dport { %s } drop
	}
}`, c.proto, joinPorts(c.filtered))
	}
	return c.nft
}

func joinPorts(ps []uint16) string {
	s := ""
	for i, p := range ps {
		if i > 0 {
			s += ", "
		}
		s += strconv.Itoa(int(p))
	}
	return s
}

// truth gives the expected state of every port of the scan.
func (c wanCase) truth() (open, closed, filtered []uint16) {
	for p := uint16(1); p <= c.ports; p++ {
		switch {
		case slices.Contains(c.open, p):
			open = append(open, p)
		case c.defaultDrop && !slices.Contains(c.accept, p), slices.Contains(c.filtered, p):
			filtered = append(filtered, p)
		default:
			closed = append(closed, p)
		}
	}
	return open, closed, filtered
}

func wanSeed(t *testing.T) uint64 {
	if s := os.Getenv(wanSeedVar); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, wanSeedVar)
		return seed
	}
	seed := rand.Uint64()
	t.Setenv(wanSeedVar, strconv.FormatUint(seed, 10)) // the child computes the same cases
	return seed
}

// TestScanWAN asserts exact verdicts across every WAN scenario.
func TestScanWAN(t *testing.T) {
	seed := wanSeed(t)
	cases := wanCases(seed)
	env, child := testbed.Child()
	if !child {
		t.Logf("%s=%d", wanSeedVar, seed)
		var opts []testbed.TargetOptions
		for _, c := range cases {
			opts = append(opts, testbed.TargetOptions{WAN: &c.link})
		}
		bed := testbed.New(t, testbed.Options{Targets: opts})
		for i, c := range cases {
			tg := bed.Target(i + 1)
			for _, p := range c.open {
				if c.proto == probe.UDP {
					tg.ListenUDP(t, p, func([]byte) []byte { return []byte("pong") })
				} else {
					tg.ListenTCP(t, p)
				}
			}
			if rs := c.ruleset(); rs != "" {
				tg.Nft(t, rs)
			}
		}
		bed.RunInProbe(t, t.Name())
		for i, c := range cases {
			out, back := bed.Target(i + 1).Stats()
			t.Logf("%s link: out %+v, back %+v", c.name, out, back)
		}
		return
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			target := env.Target(i + 1).V4
			t.Logf("%s: %s %s 1-%d", c.link, c.proto, target, c.ports)
			ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second) // a guard, not a target: twelve scans share two loaded cores under -race
			defer cancel()
			res, err := probe.Scan(ctx, probe.ScanSpec{Target: target, Proto: c.proto, Ports: portRange(1, c.ports)}, nil)
			require.NoError(t, err)
			require.False(t, res.Canceled, "ran out of time")
			open, closed, filtered := c.truth()
			n := res.Net
			t.Logf("%v: open %v; closed %d, filtered %d, open|filtered %d; rtt %v (min %v), sent %d, retried %d, lost %d (%.1f%%), paced %.0f/s queue %v",
				res.Duration.Round(time.Millisecond), res.Ports(probe.Open), res.Count(probe.Closed), res.Count(probe.Filtered), res.Count(probe.OpenFiltered),
				n.RTT.Round(time.Millisecond), n.MinRTT.Round(time.Millisecond), n.Sent, n.Retried, n.Lost, 100*n.Loss, n.Paced, n.Queue)
			assert.Equal(t, open, res.Ports(probe.Open), "open")
			assert.Equal(t, closed, res.Ports(probe.Closed), "closed")
			silent := probe.Filtered
			if c.proto == probe.UDP {
				silent = probe.OpenFiltered
			}
			assert.Equal(t, filtered, res.Ports(silent), "no answer")
			var doubtful []uint16
			for _, r := range res.Results {
				if r.Doubtful {
					doubtful = append(doubtful, r.Target.Port())
				}
			}
			assert.Empty(t, doubtful, "ports left unconfirmed")
		})
	}
}

// TestScanWAN_Faults: a target that stops answering mid-scan, a link that
// drops everything, a rate limit that changes during the scan, and a
// cancel in the middle of retransmissions. Each gives a truthful result
// (what is known, and what is not) and leaves no goroutine or socket.
func TestScanWAN_Faults(t *testing.T) {
	const (
		stopPorts   = 2000
		deadPorts   = 200
		cancelPorts = 3000
		changePorts = 2500
	)
	stopOpen := []uint16{22, 80, 443, 1500}
	changeOpen := []uint16{25, 110, 2222}
	env, child := testbed.Child()
	if !child {
		ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
		bed := testbed.New(t, testbed.Options{Targets: []testbed.TargetOptions{
			{WAN: &testbed.Link{Delay: ms(10)}},                                          // 1: stops answering
			{WAN: &testbed.Link{Delay: ms(10), Loss: 1, LossBack: 1}},                    // 2: drops everything
			{WAN: &testbed.Link{Delay: ms(20), Jitter: ms(2), Loss: 0.3, LossBack: 0.3}}, // 3: cancel
			{WAN: &testbed.Link{Delay: ms(10)}},                                          // 4: limit changes
		}})
		for _, p := range stopOpen {
			bed.Target(1).ListenTCP(t, p)
		}
		for _, p := range changeOpen {
			bed.Target(4).ListenTCP(t, p)
		}
		limit := func(rate int) string { // keep in step with the change below
			return fmt.Sprintf("table inet wan {\n chain input {\n  type filter hook input priority 0; policy accept;\n  tcp flags syn limit rate over %d/second burst 20 packets drop\n }\n}\n", rate)
		}
		bed.Target(1).Nft(t, limit(500)) // slow enough to stop it half-way
		bed.Target(3).Nft(t, "table inet wan {\n chain input {\n  type filter hook input priority 0; policy accept;\n  tcp dport 1500-3000 drop\n }\n}\n")
		bed.Target(4).Nft(t, limit(1500))
		bed.RunInProbe(t, t.Name())
		return
	}
	// nftAt loads a ruleset into target i once the scan has decided
	// `after` ports: the target changes mid-scan, at a known point.
	nftAt := func(t *testing.T, i, after int, ruleset string) func(probe.Progress) {
		var once sync.Once
		return func(p probe.Progress) {
			if p.Done < after {
				return
			}
			once.Do(func() {
				cmd := exec.Command("ip", "netns", "exec", env.Target(i).Netns, "nft", "-f", "-")
				cmd.Stdin = strings.NewReader(ruleset)
				out, err := cmd.CombinedOutput()
				assert.NoError(t, err, "nft in target %d: %s", i, out)
				t.Logf("target %d changed after %d ports", i, p.Done)
			})
		}
	}
	scanOf := func(t *testing.T, ctx context.Context, i int, n uint16, timeout time.Duration, progress func(probe.Progress)) probe.ScanResult {
		t.Helper()
		res, err := probe.Scan(ctx, probe.ScanSpec{Target: env.Target(i).V4, Proto: probe.TCP, Ports: portRange(1, n), Timeout: timeout}, progress)
		require.NoError(t, err)
		n2 := res.Net
		t.Logf("%v: open %v, closed %d, filtered %d; sent %d, retried %d, answered %d, lost %d, paced %.0f/s, stopped %v",
			res.Duration.Round(time.Millisecond), res.Ports(probe.Open), res.Count(probe.Closed), res.Count(probe.Filtered),
			n2.Sent, n2.Retried, n2.Answered, n2.Lost, n2.Paced, n2.Stopped)
		return res
	}
	t.Run("cancel_during_retransmissions", func(t *testing.T) {
		// First and alone (the others are parallel and wait): the
		// descriptors and goroutines counted are this scan's.
		fds := countFDs(t)
		goroutines := runtime.NumGoroutine() // +2: Eventually's own
		ctx, cancel := context.WithTimeout(t.Context(), 700*time.Millisecond)
		defer cancel()
		res := scanOf(t, ctx, 3, cancelPorts, 0, nil)
		assert.True(t, res.Canceled)
		assert.Less(t, len(res.Results), int(cancelPorts), "only decided ports")
		for _, r := range res.Results {
			if r.Target.Port() >= 1500 {
				assert.NotEqual(t, probe.Closed, r.State, "port %d is dropped", r.Target.Port())
			} else {
				assert.NotEqual(t, probe.Filtered, r.State, "port %d answers (a lost probe is retried)", r.Target.Port())
			}
		}
		assert.Positive(t, res.Net.Retried, "canceled while retransmitting")
		assert.Eventually(t, func() bool { return countFDs(t) <= fds }, 5*time.Second, 20*time.Millisecond, "sockets left open")
		if !assert.Eventually(t, func() bool { return runtime.NumGoroutine() <= goroutines+2 }, 5*time.Second, 20*time.Millisecond, "goroutines left running") {
			buf := make([]byte, 1<<20)
			t.Logf("%d goroutines before, %d now:\n%s", goroutines, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
	})
	t.Run("target_stops_answering", func(t *testing.T) {
		t.Parallel()
		change := nftAt(t, 1, 400, "table inet gone {\n chain input {\n  type filter hook input priority -10; policy drop;\n }\n}\n")
		ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
		defer cancel()
		res := scanOf(t, ctx, 1, stopPorts, 0, change)
		require.False(t, res.Canceled)
		doubtful := 0
		for _, r := range res.Results {
			p := r.Target.Port()
			switch r.State {
			case probe.Open:
				assert.Contains(t, stopOpen, p, "open")
			case probe.Closed:
				assert.NotContains(t, stopOpen, p, "closed")
			case probe.Filtered:
				// Nothing here is filtered: a port that got no answer
				// after the target went quiet is unknown, not filtered.
				assert.True(t, r.Doubtful, "port %d called filtered after the target stopped answering", p)
				doubtful++
			}
		}
		assert.True(t, res.Net.Stopped, "the scan says the target stopped answering")
		assert.Positive(t, doubtful, "the link died mid-scan: some ports must be unknown")
		assert.Positive(t, res.Count(probe.Closed), "ports answered before the link died")
	})
	t.Run("link_drops_everything", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		res := scanOf(t, ctx, 2, deadPorts, 300*time.Millisecond, nil)
		require.False(t, res.Canceled)
		assert.Equal(t, int(deadPorts), res.Count(probe.Filtered), "nothing answered: every port filtered")
		assert.Zero(t, res.Net.Answered)
		assert.Zero(t, res.Net.RTT, "no round trip was measured")
	})
	t.Run("rate_limit_changes", func(t *testing.T) {
		t.Parallel()
		change := nftAt(t, 4, 800, "delete table inet wan\n"+fmt.Sprintf("table inet wan {\n chain input {\n  type filter hook input priority 0; policy accept;\n  tcp flags syn limit rate over %d/second burst 20 packets drop\n }\n}\n", 300))
		ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
		defer cancel()
		res := scanOf(t, ctx, 4, changePorts, 0, change)
		require.False(t, res.Canceled)
		assert.Equal(t, changeOpen, res.Ports(probe.Open))
		assert.Equal(t, int(changePorts)-len(changeOpen), res.Count(probe.Closed))
		assert.Zero(t, res.Count(probe.Filtered))
	})
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}
