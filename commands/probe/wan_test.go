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
	"slices"
	"strconv"
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
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
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
