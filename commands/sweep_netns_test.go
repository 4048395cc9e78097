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
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/probe/testbed"
)

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
		bed.Target(1).FillSubnet(t)
		bed.RunInProbe(t, t.Name())
		return
	}
	tg := env.Target(1)
	subnet := testbed.SubnetOf(tg.V4)
	var want []string
	for ap := range subnet.Open {
		want = append(want, ap.String())
	}
	sort.Strings(want)
	prefix := subnet.Prefix

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
		assert.Equal(t, subnet.Dropped[0].String()+"-"+subnet.Dropped[len(subnet.Dropped)-1].String(), dropped, "%s: the silent hosts are one row", line)
	}
}
