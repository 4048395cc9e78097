package bench

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/opsbot/opsbot/commands/probe/testbed"
)

// (i) A /24 sweep of two ports (issue 18): /scan SUBNET 22,443 beside
// nmap -sT -T4 -p 22,443 SUBNET, alternating, in the same run. The
// target namespace holds the whole /24 on its one veth; a firewall there
// makes 22 and 443 open on some addresses, closed (RST) on the others,
// and drops everything to five of them.

// HostPorts is a set of "address:port".
type HostPorts map[string]bool

// Sorted lists the set in a stable order.
func (s HostPorts) Sorted() []string {
	out := make([]string, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Equal reports whether both sets hold the same entries.
func (s HostPorts) Equal(o HostPorts) bool {
	if len(s) != len(o) {
		return false
	}
	for k := range s {
		if !o[k] {
			return false
		}
	}
	return true
}

// Diff says how s differs from want: "extra ...; missing ...".
func (s HostPorts) Diff(want HostPorts) string {
	var extra, missing []string
	for k := range s {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	for k := range want {
		if !s[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(extra)
	sort.Strings(missing)
	var parts []string
	if len(extra) > 0 {
		parts = append(parts, "extra "+strings.Join(extra, " "))
	}
	if len(missing) > 0 {
		parts = append(parts, "missing "+strings.Join(missing, " "))
	}
	return strings.Join(parts, "; ")
}

var (
	sweepRow  = regexp.MustCompile(`^(.+?)\s{2,}(\d+)\s{2,}(\S.*)$`)
	nmapHost  = regexp.MustCompile(`^Host: (\S+) .*\tPorts: (.*)$`)
	openEntry = regexp.MustCompile(`(\d+)/open/tcp`)
)

// ParseOpsbotSweep reads the open "address:port" set from the table of a
// /scan of a subnet as `opsbot run` prints it: "RESULT  HOSTS  WHICH",
// then rows such as "22 open, 443 closed  40  10.0.0.1-10.0.0.40, 10.0.0.77".
func ParseOpsbotSweep(out string) (HostPorts, error) {
	set := HostPorts{}
	in := false
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "RESULT ") {
			in = true
			continue
		}
		if !in {
			continue
		}
		m := sweepRow.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			break // the table ended
		}
		var ports []string
		for _, part := range strings.Split(m[1], ", ") {
			if p, ok := strings.CutSuffix(part, " open"); ok {
				ports = append(ports, p)
			}
		}
		for _, r := range strings.Split(m[3], ", ") {
			lo, hi, isRange := strings.Cut(r, "-")
			a, err := netip.ParseAddr(lo)
			if err != nil {
				return nil, fmt.Errorf("row %q: %w", line, err)
			}
			b := a
			if isRange {
				if b, err = netip.ParseAddr(hi); err != nil {
					return nil, fmt.Errorf("row %q: %w", line, err)
				}
			}
			for ; a.Compare(b) <= 0; a = a.Next() {
				for _, p := range ports {
					set[a.String()+":"+p] = true
				}
			}
		}
	}
	if !in {
		return nil, fmt.Errorf("no RESULT table in the reply: %q", firstLine(out))
	}
	return set, nil
}

// ParseNmapSweep reads the open "address:port" set from `nmap -oG -`.
func ParseNmapSweep(out string) HostPorts {
	set := HostPorts{}
	for _, line := range strings.Split(out, "\n") {
		m := nmapHost.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, e := range openEntry.FindAllStringSubmatch(m[2], -1) {
			set[m[1]+":"+e[1]] = true
		}
	}
	return set
}

func TestParseSweeps(t *testing.T) {
	ob, err := ParseOpsbotSweep("10.0.0.0/24 tcp 22,443: 254 hosts, 3 with a port open (4 open ports)\n" +
		"RESULT                HOSTS  WHICH\n" +
		"22 open, 443 open     1      10.0.0.77\n" +
		"22 open, 443 closed   2      10.0.0.1-10.0.0.2\n" +
		"22 closed, 443 closed 251    10.0.0.3-10.0.0.76, 10.0.0.78-10.0.0.254\n" +
		"hosts: 254 checked of 254, 64 at a time | ports: 4 open, 504 closed\n")
	assert.NoError(t, err)
	assert.Equal(t, []string{"10.0.0.1:22", "10.0.0.2:22", "10.0.0.77:22", "10.0.0.77:443"}, ob.Sorted())
	nm := ParseNmapSweep("# Nmap 7.93 scan\nHost: 10.0.0.1 ()\tStatus: Up\n" +
		"Host: 10.0.0.1 ()\tPorts: 22/open/tcp//ssh///, 443/closed/tcp//https///\n" +
		"Host: 10.0.0.77 ()\tPorts: 22/open/tcp//ssh///, 443/open/tcp//https///\n" +
		"Host: 10.0.0.2 ()\tPorts: 22/open/tcp//ssh///, 443/filtered/tcp//https///\n# Nmap done\n")
	assert.Equal(t, []string{"10.0.0.1:22", "10.0.0.2:22", "10.0.0.77:22", "10.0.0.77:443"}, nm.Sorted())
	assert.True(t, ob.Equal(nm))
	delete(nm, "10.0.0.2:22")
	nm["10.0.0.9:22"] = true
	assert.Equal(t, "extra 10.0.0.9:22; missing 10.0.0.2:22", nm.Diff(ob))
	_, err = ParseOpsbotSweep("10.0.0.0/8 is 16777214 addresses: policy allows at most 256\n")
	assert.Error(t, err)
}

func BenchmarkSweepSubnet(b *testing.B) {
	ts := requireNet(b)
	w := printer(b)
	ctx := b.Context()

	bed := testbed.New(b, testbed.Options{})
	tg := bed.Target(1)
	sub := tg.FillSubnet(b)
	truth := HostPorts{}
	for ap := range sub.Open {
		truth[ap.String()] = true
	}
	subnet := sub.Prefix.String()
	first, last := sub.Hosts[0], sub.Hosts[len(sub.Hosts)-1]

	header(w, "(i) TCP sweep of "+subnet+", ports 22,443")
	printf(w, "  where: one target namespace %s holding %s-%s on its veth (.1 is the probe's side); every tool runs in the probe namespace %s\n", tg.Netns, first, last, bed.Probe)
	printf(w, "  truth: %d open (22 on %d hosts, 443 on %d); every other port of .1-.249 closed (RST); %s-%s drop everything\n",
		len(truth), len(sub.ByPort[22]), len(sub.ByPort[443]), sub.Dropped[0], sub.Dropped[len(sub.Dropped)-1])

	type tool struct {
		name    string
		argv    []string
		missing string
		parse   func(stdout string, code int) (HostPorts, error)
	}
	tools := []tool{
		{name: "opsbot", argv: []string{ts.opsbot, "run", "/scan " + subnet + " 22,443"}, parse: func(out string, code int) (HostPorts, error) {
			if code != 0 && code != 1 {
				return nil, fmt.Errorf("exit %d: %s", code, firstLine(out))
			}
			return ParseOpsbotSweep(out)
		}},
		{name: "nmap -sT -T4", missing: ts.nmapMissing, parse: func(out string, code int) (HostPorts, error) {
			if code != 0 || !strings.Contains(out, "# Nmap done") {
				return nil, fmt.Errorf("exit %d, no \"# Nmap done\": %s", code, firstLine(out))
			}
			return ParseNmapSweep(out), nil
		}},
	}
	if ts.nmap != "" {
		// -n: no reverse DNS (the namespace has no resolver to ask);
		// -oG -: the grepable output, read here.
		tools[1].argv = []string{ts.nmap, "-sT", "-T4", "-n", "-p", "22,443", "-oG", "-", subnet}
	}
	for _, t := range tools {
		if t.argv == nil {
			printf(w, "  %s: %s\n", t.name, t.missing)
		} else {
			printf(w, "  %s: %s\n", t.name, shellQuote(t.argv))
		}
	}
	sayln(w, "  order: opsbot nmap opsbot nmap ... (5 rounds unless the first round shows they would take over 120 s)")
	_ = w.Flush()

	type run struct {
		d    time.Duration
		set  HostPorts
		err  error
		took string // what opsbot's reply says
	}
	runs := make([][]run, len(tools))
	rounds := 5
	for r := 0; r < rounds; r++ {
		start := time.Now()
		for i, t := range tools {
			if t.argv == nil {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
			t0 := time.Now()
			so, se, code, err := bed.Exec(rctx, t.argv...)
			d := time.Since(t0)
			cancel()
			x := run{d: d, err: err}
			if err == nil {
				x.set, x.err = t.parse(so+se, code)
				x.took = opsbotDuration(so)
			}
			runs[i] = append(runs[i], x)
		}
		if r == 0 {
			if fit := int(120 * time.Second / max(time.Since(start), time.Millisecond)); fit < rounds {
				rounds = max(1, fit)
			}
		}
	}

	tbl := &Table{Header: []string{"tool", "runs", "median s", "min s", "max s", "÷ opsbot", "open", "same as truth", "same as opsbot"}}
	var notes []string
	medians := make([]time.Duration, len(tools))
	sameAll, truthAll := true, true
	for i, t := range tools {
		if t.argv == nil {
			tbl.Add(t.name, "-", t.missing)
			continue
		}
		var tm Timings
		okTruth, okOps, compared := 0, 0, 0
		for r, x := range runs[i] {
			if x.err != nil {
				notes = append(notes, fmt.Sprintf("%s run %d: %v", t.name, r+1, x.err))
				truthAll = false
				continue
			}
			tm = append(tm, x.d)
			if x.set.Equal(truth) {
				okTruth++
			} else {
				truthAll = false
				notes = append(notes, fmt.Sprintf("%s run %d vs truth: %s", t.name, r+1, x.set.Diff(truth)))
			}
			if i > 0 && r < len(runs[0]) && runs[0][r].err == nil {
				compared++
				if x.set.Equal(runs[0][r].set) {
					okOps++
				} else {
					sameAll = false
					notes = append(notes, fmt.Sprintf("%s run %d vs opsbot run %d: %s", t.name, r+1, r+1, x.set.Diff(runs[0][r].set)))
				}
			}
		}
		medians[i] = tm.Median()
		same := "-"
		if i > 0 {
			same = yesNo(compared > 0 && okOps == compared, fmt.Sprintf("%d/%d runs", okOps, compared))
		}
		tbl.Add(t.name, fmt.Sprint(len(tm)), secs(tm.Median()), secs(tm.Min()), secs(tm.Max()), ratio(tm.Median(), medians[0]),
			fmt.Sprint(len(truth)), yesNo(okTruth == len(tm) && len(tm) > 0, fmt.Sprintf("%d/%d runs", okTruth, len(tm))), same)
	}
	tbl.Write(w)
	for _, n := range notes {
		sayln(w, "  note: "+n)
	}
	var took []string
	for _, x := range runs[0] {
		if x.took != "" {
			took = append(took, x.took)
		}
	}
	if len(took) > 0 {
		printf(w, "  opsbot's reply says the sweep itself took: %s\n", strings.Join(took, ", "))
	}
	sayln(w, "  result:")
	if medians[0] > 0 && medians[1] > 0 {
		x := float64(medians[1]) / float64(medians[0])
		printf(w, "    time ratio nmap / opsbot (medians): %.2fx\n", x)
		printf(w, "    both found the same open set, equal to the truth, in every run: %s\n", yesNo(sameAll && truthAll, ""))
		b.ReportMetric(x, "nmap/opsbot")
	} else {
		printf(w, "    ratio not measured (%s)\n", orText(tools[1].missing, "no valid runs"))
	}
	if medians[0] > 0 {
		b.ReportMetric(medians[0].Seconds(), "opsbot-s")
	}
	_ = w.Flush()
}
