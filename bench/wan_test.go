package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opsbot/opsbot/commands/probe/testbed"
)

// (h) Across a WAN link (commands/probe/testbed/wan.go): random loss with a
// round trip of tens of ms, a slow link with a short queue, a target that
// limits SYNs, a long round trip behind a default-DROP firewall, and UDP
// with loss; opsbot beside nmap -sT -T4 (nmap -sU -T4 for UDP) on the same
// target in the same run. Exactness is the whole open, closed and filtered
// sets, per run, for both tools.
func BenchmarkScanWAN(b *testing.B) {
	ts := requireNet(b)
	w := printer(b)
	ctx := b.Context()
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	pick := func(n int, hi uint16, avoid []uint16) []uint16 {
		var out []uint16
		for len(out) < n {
			p := uint16(1 + rng.IntN(int(hi)))
			if !slices.Contains(out, p) && !slices.Contains(avoid, p) {
				out = append(out, p)
			}
		}
		slices.Sort(out)
		return out
	}
	type scenario struct {
		name     string
		udp      bool
		link     testbed.Link
		ports    uint16
		open     []uint16
		accept   []uint16 // default DROP except these
		dropped  []uint16 // UDP: silent
		synLimit int      // per second, 0 none
	}
	scs := []scenario{
		{name: "loss 3%/3%, RTT 50 ms", ports: 5000, link: testbed.Link{Delay: ms(25), Jitter: ms(2), Loss: 0.03, LossBack: 0.03}},
		{name: "slow link 3 Mbit/s, queue 16", ports: 5000, link: testbed.Link{Delay: ms(10), Rate: 3_000_000, Queue: 16}},
		{name: "SYN limit 300/s", ports: 3000, link: testbed.Link{Delay: ms(10)}, synLimit: 300},
		{name: "RTT 200 ms, default DROP", ports: 1000, link: testbed.Link{Delay: ms(100), Jitter: ms(5)}},
		{name: "UDP, loss 2%/2%", udp: true, ports: 300, link: testbed.Link{Delay: ms(10), Loss: 0.02, LossBack: 0.02}},
	}
	for i := range scs {
		sc := &scs[i]
		sc.open = pick(12, sc.ports, nil)
		if strings.Contains(sc.name, "DROP") {
			sc.open = pick(6, sc.ports, nil)
			sc.accept = append(slices.Clone(sc.open), pick(4, sc.ports, sc.open)...)
		}
		if sc.udp {
			sc.open = pick(5, sc.ports, nil)
			sc.dropped = pick(5, sc.ports, sc.open)
		}
	}

	header(w, "(h) scans across a WAN link: opsbot beside nmap -T4, exact sets per run")
	sayln(w, "  link: tun devices in two namespaces and a relay (delay, jitter, random loss per direction, a bottleneck with a drop-tail queue)")
	tbl := &Table{Header: []string{"scenario", "ports", "opsbot s", "nmap s", "nmap ÷ opsbot", "limit s", "opsbot ÷ limit", "opsbot exact", "nmap exact", "target"}}
	only := os.Getenv("OPSBOT_BENCH_WAN") // a substring of the scenarios to run; all when empty
	for _, sc := range scs {
		if only != "" && !strings.Contains(sc.name, only) {
			continue
		}
		bed := testbed.New(b, testbed.Options{Targets: []testbed.TargetOptions{{WAN: &sc.link}}})
		tg := bed.Target(1)
		for _, p := range sc.open {
			if sc.udp {
				tg.ListenUDP(b, p, func([]byte) []byte { return []byte("pong") })
			} else {
				tg.ListenTCP(b, p)
			}
		}
		switch {
		case sc.accept != nil:
			tg.Nft(b, fmt.Sprintf("table inet wan {\n chain input {\n  type filter hook input priority 0; policy drop;\n  iif lo accept\n  ct state established,related accept\n  tcp dport { %s } accept\n }\n}\n", joinU16(sc.accept)))
		case sc.dropped != nil:
			tg.Nft(b, fmt.Sprintf("table inet wan {\n chain input {\n  type filter hook input priority 0; policy accept;\n  udp dport { %s } drop\n }\n}\n", joinU16(sc.dropped)))
		case sc.synLimit > 0:
			tg.Nft(b, fmt.Sprintf("table inet wan {\n chain input {\n  type filter hook input priority 0; policy accept;\n  tcp flags syn limit rate over %d/second burst 20 packets drop\n }\n}\n", sc.synLimit))
		}
		target := tg.V4.String()
		rng := fmt.Sprintf("1-%d", sc.ports)
		proto, nmapScan, silent := "tcp", "-sT", stFiltered
		if sc.udp {
			proto, nmapScan, silent = "udp", "-sU", stOpenFiltered
		}
		// Ground truth.
		open := NewPortSet(sc.open...)
		silentSet := PortSet{}
		for p := uint16(1); p <= sc.ports; p++ {
			if (sc.accept != nil && !slices.Contains(sc.accept, p)) || slices.Contains(sc.dropped, p) {
				silentSet[p] = true
			}
		}
		closedN := int(sc.ports) - len(open) - len(silentSet)
		exact := func(r ScanReport) bool {
			return r.Open().Equal(open) && r.Counts[stClosed] == closedN && r.Counts[silent] == len(silentSet) &&
				r.Counts[stFiltered]+r.Counts[stOpenFiltered] == len(silentSet)
		}
		cs := []contender{
			opsbotContender(ts, fmt.Sprintf("/scan %s %s %s", target, rng, proto), 5*time.Minute),
			nmapContender(ts, "nmap "+nmapScan+" -T4", 10*time.Minute, nmapScan, "-T4", "-n", "-Pn", "-p"+rng, "-oG", "-", target),
		}
		printf(w, "  %s: %s, target %s %s %s (%d open, %d closed, %d silent)\n", sc.name, sc.link, target, proto, rng, len(open), closedN, len(silentSet))
		_ = w.Flush()
		res := rounds(ctx, bed.Exec, cs, 3, 150*time.Second)
		var times [2]Timings
		var ok [2]int
		for i := range cs {
			for _, o := range res[i] {
				if o.err != nil {
					printf(w, "    %s run failed: %v\n", cs[i].name, o.err)
					continue
				}
				times[i] = append(times[i], o.d)
				if exact(o.report) {
					ok[i]++
				} else {
					printf(w, "    %s not exact: open %s (truth %s), counts %v\n", cs[i].name, o.report.Open(), open, o.report.Counts)
				}
			}
		}
		ob, nm := times[0].Median(), times[1].Median()
		ratio, lim, limRatio, goal := "-", "-", "-", "-"
		if ob > 0 && nm > 0 {
			ratio = fmt.Sprintf("%.2fx", float64(nm)/float64(ob))
		}
		switch {
		case sc.synLimit > 0:
			limit := time.Duration(float64(sc.ports) / float64(sc.synLimit) * float64(time.Second))
			lim = secs(limit)
			if ob > 0 {
				limRatio = fmt.Sprintf("%.2fx", float64(ob)/float64(limit))
				goal = "within 1.2x of the limit: " + met(float64(ob) <= 1.2*float64(limit))
			}
		case sc.udp:
			if ob > 0 && nm > 0 {
				goal = "no slower than nmap: " + met(ob <= nm)
			}
		default:
			if ob > 0 && nm > 0 {
				goal = ">= 2x nmap: " + met(float64(nm) >= 2*float64(ob))
			}
		}
		tbl.Add(sc.name, rng, secs(ob), secs(nm), ratio, lim, limRatio,
			fmt.Sprintf("%d/%d", ok[0], len(res[0])), fmt.Sprintf("%d/%d", ok[1], len(res[1])), goal)
		if ob > 0 && nm > 0 {
			b.ReportMetric(float64(nm)/float64(ob), "nmap/opsbot-"+strconv.Itoa(int(sc.ports)))
		}
	}
	tbl.Write(w)
	_ = w.Flush()
}

func joinU16(ps []uint16) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = strconv.Itoa(int(p))
	}
	return strings.Join(parts, ", ")
}
