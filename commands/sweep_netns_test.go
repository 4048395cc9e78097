package commands

// A subnet of namespace targets, swept for real: a target namespace that
// holds a whole /24 on its one veth (10.213.X.2 to .254; .1 is the probe's
// side), listeners on 22 and 443 on every address, and a firewall that
// makes each port open on some addresses, closed (RST) on others, and
// drops everything to a few. The sweep must find the exact open set.
// Needs root, iproute2 and nftables: without them the test skips, or fails
// when CI=true.

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/probe/testbed"
)

// subnetTruth is which port is open where, by the last byte of the address.
func subnetTruth(last byte, port uint16) (open, dropped bool) {
	switch {
	case last >= 250:
		return false, true
	case port == 22:
		return last <= 40 || last == 77 || (last >= 120 && last <= 130), false
	case port == 443:
		return last == 77 || (last >= 100 && last <= 110) || last%50 == 3, false
	}
	return false, false
}

// newSubnetBed fills the target namespace with the /24 and its firewall.
func newSubnetBed(t testing.TB, bed *testbed.Bed) {
	t.Helper()
	tg := bed.Target(1)
	base := tg.V4.As4()
	var script strings.Builder
	for i := 3; i <= 254; i++ {
		fmt.Fprintf(&script, "addr add %d.%d.%d.%d/24 dev eth0\n", base[0], base[1], base[2], i)
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		ip = "/usr/sbin/ip"
	}
	cmd := exec.Command(ip, "-n", tg.Netns, "-batch", "-")
	cmd.Stdin = strings.NewReader(script.String())
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	tg.ListenTCP(t, 22)
	tg.ListenTCP(t, 443)

	var open22, open443, dropped []string
	for i := 2; i <= 254; i++ {
		a := netip.AddrFrom4([4]byte{base[0], base[1], base[2], byte(i)})
		for _, p := range []uint16{22, 443} {
			open, drop := subnetTruth(byte(i), p)
			switch {
			case drop && p == 22:
				dropped = append(dropped, a.String())
			case open:
				if p == 22 {
					open22 = append(open22, a.String())
				} else {
					open443 = append(open443, a.String())
				}
			}
		}
	}
	tg.Nft(t, fmt.Sprintf(`table inet sweep {
	chain input {
		type filter hook input priority 0;
		ip daddr { %s } drop
		tcp dport 22 ip daddr != { %s } reject with tcp reset
		tcp dport 443 ip daddr != { %s } reject with tcp reset
	}
}
`, strings.Join(dropped, ", "), strings.Join(open22, ", "), strings.Join(open443, ", ")))
}

// sweepOpenSet reads the open "address:port" set out of a sweep reply's
// table: each row's result says which ports are open, its hosts which
// addresses (ranges expanded).
func sweepOpenSet(t testing.TB, reply bot.Reply) []string {
	t.Helper()
	require.NotNil(t, reply.Table, reply.Title)
	var out []string
	for _, row := range reply.Table.Rows {
		var ports []string
		for _, part := range strings.Split(row[0], ", ") {
			if p, ok := strings.CutSuffix(part, " open"); ok {
				ports = append(ports, p)
			}
		}
		for _, r := range strings.Split(row[2], ", ") {
			lo, hi, isRange := strings.Cut(r, "-")
			a, b := netip.MustParseAddr(lo), netip.MustParseAddr(lo)
			if isRange {
				b = netip.MustParseAddr(hi)
			}
			for ; a.Compare(b) <= 0; a = a.Next() {
				for _, p := range ports {
					out = append(out, a.String()+":"+p)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func TestSweep_NamespaceSubnetGivesTheExactOpenSet(t *testing.T) {
	env, child := testbed.Child()
	if !child {
		bed := testbed.New(t, testbed.Options{})
		newSubnetBed(t, bed)
		bed.RunInProbe(t, t.Name())
		return
	}
	tg := env.Target(1)
	base := tg.V4.As4()
	var want []string
	for i := 2; i <= 254; i++ {
		for _, p := range []uint16{22, 443} {
			if open, _ := subnetTruth(byte(i), p); open {
				want = append(want, fmt.Sprintf("%d.%d.%d.%d:%d", base[0], base[1], base[2], i, p))
			}
		}
	}
	sort.Strings(want)
	prefix := netip.PrefixFrom(tg.V4, 24).Masked()

	p, err := bot.ParsePolicy([]byte("targets:\n  allow: [10.213.0.0/16]\n"))
	require.NoError(t, err)
	targets, err := bot.NewTargets(p.Targets, nil, nil)
	require.NoError(t, err)
	router := bot.NewRouter(bot.RouterConfig{Commands: []bot.Command{NewScan(targets, p.Limits), NewPortcheck(targets, p.Limits.PortcheckPorts)}})
	for _, line := range []string{"/scan " + prefix.String() + " 22,443", "/portcheck " + prefix.String() + " 22,443"} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		start := time.Now()
		reply := router.Handle(ctx, bot.Request{Platform: "shell", User: "t", Line: line})
		cancel()
		t.Logf("%s: %s\n%s%s", line, time.Since(start).Round(time.Millisecond), reply.Plain(), "")
		assert.Equal(t, want, sweepOpenSet(t, reply), "%s: the exact open set", line)
		assert.Contains(t, reply.Title, "254 hosts")
		var dropped string
		for _, row := range reply.Table.Rows {
			if strings.HasPrefix(row[0], "nothing answered") {
				dropped = row[2]
			}
		}
		assert.Equal(t, fmt.Sprintf("%d.%d.%d.250-%d.%d.%d.254", base[0], base[1], base[2], base[0], base[1], base[2]), dropped, "%s: the silent hosts are one row", line)
	}
}
