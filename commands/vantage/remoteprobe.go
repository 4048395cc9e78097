package vantage

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opsbot/opsbot/commands/internal/portwords"
	"github.com/opsbot/opsbot/commands/probe"
	"github.com/opsbot/opsbot/internal/text"
)

// The remote probe: `opsbot probe`, a hidden subcommand that a copy of
// opsbot installed on a vantage host runs for the bot. It applies no
// policy (the calling bot has resolved the name, checked the address
// against its target policy and its rate limits, and bounded the ports);
// it takes an address, never a name, so DNS on the vantage host cannot
// lead it anywhere; and it prints typed results as JSON. The writer and
// the reader of that JSON are both in this file, so they cannot drift
// apart within one version, and the format carries its own version for
// bots and vantage copies of different releases.

// probeProtocol is what `opsbot probe --protocol` prints: detection on a
// vantage host uses a copy only when it prints exactly this.
const probeProtocol = "opsbot-probe 1"

// probeFormat names the JSON format of a report.
const probeFormat = "opsbot-probe/1"

// Bounds of the remote probe, whatever the caller asks.
const (
	probeCheckConcurrency = 32 // like a local /portcheck
	probeMaxTime          = 30 * time.Minute
	// -w takes what /portcheck's and /scan's timeout accepts.
	minWait = 10 * time.Millisecond
	maxWait = 60 * time.Second
)

// probeReport is the JSON document `opsbot probe --json` prints.
type probeReport struct {
	Format      string        `json:"format"`
	Address     string        `json:"address"`
	Proto       string        `json:"proto"`
	Mode        string        `json:"mode"` // "check" or "scan"
	DurationMS  float64       `json:"duration_ms"`
	RateLimited bool          `json:"rate_limited,omitempty"`
	Canceled    bool          `json:"canceled,omitempty"` // stopped at --max-time: results hold the ports decided by then
	Results     []probeResult `json:"results"`
}

// probeResult is one probe.Result on the wire: states and reasons as
// stable words, durations in microseconds.
type probeResult struct {
	Port      uint16 `json:"port"`
	State     string `json:"state"`
	Reason    string `json:"reason"`
	RTTus     int64  `json:"rtt_us,omitempty"`
	Tries     int    `json:"tries,omitempty"`
	Service   string `json:"service,omitempty"`
	Bytes     int    `json:"bytes,omitempty"`
	ICMPFrom  string `json:"icmp_from,omitempty"`
	Witnessed bool   `json:"witnessed,omitempty"`
	// Doubtful: filtered by the tries made, but the path lost too much (or
	// the target went quiet) to be sure. Older copies never set it.
	Doubtful bool `json:"doubtful,omitempty"`
}

var (
	wireStates = map[probe.State]string{
		probe.Open: "open", probe.Closed: "closed", probe.Filtered: "filtered", probe.OpenFiltered: "open|filtered",
	}
	wireReasons = map[probe.Reason]string{
		probe.Handshake: "handshake", probe.Reply: "reply", probe.Refused: "refused",
		probe.PortUnreachable: "port-unreachable", probe.SelfConnect: "self-connect",
		probe.HostUnreachable: "host-unreachable", probe.NetUnreachable: "net-unreachable",
		probe.AdminProhibited: "admin-prohibited", probe.Timeout: "timeout", probe.Silence: "silence",
	}
	stateOfWire  = invert(wireStates)
	reasonOfWire = invert(wireReasons)
)

func invert[K comparable](m map[K]string) map[string]K {
	out := make(map[string]K, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

func toWire(r probe.Result) probeResult {
	w := probeResult{
		Port: r.Target.Port(), State: wireStates[r.State], Reason: wireReasons[r.Reason],
		RTTus: r.RTT.Microseconds(), Tries: r.Tries, Service: r.Service, Bytes: r.Bytes, Witnessed: r.Witnessed,
		Doubtful: r.Doubtful,
	}
	if r.ICMPFrom.IsValid() {
		w.ICMPFrom = r.ICMPFrom.String()
	}
	return w
}

// ProbeMain is `opsbot probe`:
//
//	opsbot probe --protocol
//	opsbot probe --json [-u] [-w TIMEOUT] [--scan [--concurrency N] [--rate R]] [--max-time D] ADDRESS PORTS...
//
// PORTS are numbers, ranges and comma lists (80 1-1024 22,80,443). Without
// --scan each port is checked as /portcheck checks it; with --scan the
// ports are scanned as /scan scans them (UDP paced against ICMP rate
// limits). It returns the exit code: 0 with a report on stdout, 2 for bad
// arguments, 1 when the probe could not run.
func ProbeMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("opsbot probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		protocol    = fs.Bool("protocol", false, "print the report format this copy speaks, and exit")
		asJSON      = fs.Bool("json", false, "print the results as JSON (the only output)")
		udp         = fs.Bool("u", false, "UDP instead of TCP")
		wait        = fs.String("w", "", "timeout per try: a duration (1.5s) or seconds; default as /portcheck or /scan")
		scan        = fs.Bool("scan", false, "scan (paced, for many ports) instead of checking each port")
		concurrency = fs.Int("concurrency", 0, "scan: most probes in flight (0: the engine's default)")
		rateLimit   = fs.Float64("rate", 0, "scan: most new probes per second (0: no limit)")
		maxTime     = fs.Duration("max-time", 0, "stop after this long and report the ports decided by then")
	)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: opsbot probe --json [-u] [-w TIMEOUT] [--scan [--concurrency N] [--rate R]] [--max-time D] ADDRESS PORTS...")
		fmt.Fprintln(stderr, "The probe a bot runs on a vantage host over SSH: no policy, an address only, results as JSON.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *protocol {
		fmt.Fprintln(stdout, probeProtocol)
		return 0
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "opsbot probe: "+format+"\n", a...)
		return 2
	}
	if !*asJSON {
		return usage("give --json: the report is for a bot, as JSON")
	}
	if fs.NArg() < 2 {
		return usage("give an address and at least one port")
	}
	addr, err := netip.ParseAddr(strings.Trim(fs.Arg(0), "[]"))
	if err != nil {
		return usage("%q is not an IP address: the calling bot resolves names and passes the address it checked against its policy", fs.Arg(0))
	}
	addr = addr.Unmap()
	set := map[uint16]bool{}
	for _, w := range fs.Args()[1:] {
		if err := parseWirePorts(w, set); err != nil {
			return usage("%v", err)
		}
	}
	ports := portwords.Sorted(set)
	proto := probe.TCP
	if *udp {
		proto = probe.UDP
	}
	var timeout time.Duration
	if *wait != "" {
		if timeout, err = portwords.Duration("-w", *wait, minWait, maxWait); err != nil {
			return usage("%s", err.Error())
		}
	}
	if *maxTime < 0 || *maxTime > probeMaxTime {
		return usage("--max-time %s: accepted 0 (none) to %s", *maxTime, probeMaxTime)
	}
	if *concurrency < 0 || *rateLimit < 0 {
		return usage("--concurrency and --rate are 0 or more")
	}
	if *maxTime > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *maxTime)
		defer cancel()
	}
	rep := probeReport{Format: probeFormat, Address: addr.String(), Proto: proto.String(), Mode: "check"}
	start := time.Now()
	if *scan {
		rep.Mode = "scan"
		res, err := probe.Scan(ctx, probe.ScanSpec{
			Target: addr, Proto: proto, Ports: ports, Timeout: timeout,
			Concurrency: *concurrency, Rate: *rateLimit,
		}, nil)
		if err != nil && !res.Canceled {
			fmt.Fprintf(stderr, "opsbot probe: scan of %s failed: %v\n", addr, err)
			return 1
		}
		rep.RateLimited, rep.Canceled = res.RateLimited, res.Canceled
		for _, r := range res.Results {
			rep.Results = append(rep.Results, toWire(r))
		}
	} else if len(ports) > 1 {
		// Several ports: the scan engine, as a local /portcheck of
		// several ports uses, measuring the path and retrying its losses.
		res, err := probe.Scan(ctx, probe.ScanSpec{Target: addr, Proto: proto, Ports: ports, Timeout: timeout}, nil)
		if err != nil && !res.Canceled {
			fmt.Fprintf(stderr, "opsbot probe: check of %s failed: %v\n", addr, err)
			return 1
		}
		rep.Canceled = res.Canceled
		for _, r := range res.Results {
			rep.Results = append(rep.Results, toWire(r))
		}
	} else {
		results, decided := checkPorts(ctx, probe.Check, addr, ports, proto, timeout)
		rep.Canceled = ctx.Err() != nil
		for i, r := range results {
			if decided[i] {
				rep.Results = append(rep.Results, toWire(r))
			}
		}
	}
	rep.DurationMS = float64(time.Since(start).Microseconds()) / 1000
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(rep); err != nil {
		fmt.Fprintf(stderr, "opsbot probe: %v\n", err)
		return 1
	}
	return 0
}

// checkPorts checks every port at once, bounded, as a local /portcheck
// does; results in port order. A check that ended because ctx did, with
// nothing heard, decided nothing: decided says which did.
func checkPorts(ctx context.Context, check func(context.Context, netip.AddrPort, probe.Proto, probe.Options) probe.Result,
	addr netip.Addr, ports []uint16, proto probe.Proto, timeout time.Duration) (results []probe.Result, decided []bool) {
	results, decided = make([]probe.Result, len(ports)), make([]bool, len(ports))
	sem := make(chan struct{}, probeCheckConcurrency)
	var wg sync.WaitGroup
	for i, p := range ports {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r := check(ctx, netip.AddrPortFrom(addr, p), proto, probe.Options{Timeout: timeout})
			results[i] = r
			decided[i] = ctx.Err() == nil || (r.Reason != probe.Timeout && r.Reason != probe.Silence)
		})
	}
	wg.Wait()
	return results, decided
}

// parseWirePorts reads one word of numeric ports: 80, 1-1024, 22,80,443.
func parseWirePorts(word string, into map[uint16]bool) error {
	for _, part := range strings.Split(word, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := portwords.PortNumber(lo)
		if err != nil {
			return errors.New(err.Error())
		}
		b := a
		if isRange {
			if b, err = portwords.PortNumber(hi); err != nil {
				return errors.New(err.Error())
			}
		}
		if a > b {
			return fmt.Errorf("range %s runs backwards", part)
		}
		for p := int(a); p <= int(b); p++ {
			into[uint16(p)] = true //nolint:gosec // a <= p <= b <= 65535
		}
	}
	return nil
}

// wirePorts writes ports as compact comma lists of ranges, a few words of
// at most about 4000 bytes each: 65535 ports as single numbers would not
// fit in one argument of the remote shell's command line.
func wirePorts(ports []uint16) []string {
	var words []string
	var b strings.Builder
	for i := 0; i < len(ports); {
		j := i
		for j+1 < len(ports) && ports[j+1] == ports[j]+1 {
			j++
		}
		part := strconv.Itoa(int(ports[i]))
		if j > i {
			part += "-" + strconv.Itoa(int(ports[j]))
		}
		if b.Len() > 0 && b.Len()+1+len(part) > 4000 {
			words = append(words, b.String())
			b.Reset()
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(part)
		i = j + 1
	}
	if b.Len() > 0 {
		words = append(words, b.String())
	}
	return words
}

// decodeReport reads a report and checks it answers the question asked:
// the format, the address, the protocol, and only ports that were asked
// for, each once, with states and reasons this bot knows.
func decodeReport(data []byte, addr netip.Addr, proto probe.Proto, asked []uint16) (probeReport, []probe.Result, error) {
	var rep probeReport
	if err := json.Unmarshal(data, &rep); err != nil {
		return rep, nil, fmt.Errorf("the report is not JSON: %w", err)
	}
	if rep.Format != probeFormat {
		return rep, nil, fmt.Errorf("the report's format is %q; this bot reads %q", rep.Format, probeFormat)
	}
	if rep.Address != addr.String() || rep.Proto != proto.String() {
		return rep, nil, fmt.Errorf("the report is about %s %s, not %s %s", rep.Proto, rep.Address, proto, addr)
	}
	want := make(map[uint16]bool, len(asked))
	for _, p := range asked {
		want[p] = true
	}
	seen := make(map[uint16]bool, len(rep.Results))
	out := make([]probe.Result, 0, len(rep.Results))
	for _, w := range rep.Results {
		if !want[w.Port] || seen[w.Port] {
			return rep, nil, fmt.Errorf("the report has port %d, which was not asked for or comes twice", w.Port)
		}
		seen[w.Port] = true
		st, ok := stateOfWire[w.State]
		if !ok {
			return rep, nil, fmt.Errorf("port %d: unknown state %q", w.Port, w.State)
		}
		rs, ok := reasonOfWire[w.Reason]
		if !ok {
			return rep, nil, fmt.Errorf("port %d: unknown reason %q", w.Port, w.Reason)
		}
		r := probe.Result{
			Target: netip.AddrPortFrom(addr, w.Port), Proto: proto, State: st, Reason: rs,
			RTT: time.Duration(w.RTTus) * time.Microsecond, Tries: w.Tries, Service: text.TruncateRunes(w.Service, 20),
			Bytes: w.Bytes, Witnessed: w.Witnessed, Doubtful: w.Doubtful,
		}
		if w.ICMPFrom != "" {
			a, err := netip.ParseAddr(w.ICMPFrom)
			if err != nil {
				return rep, nil, fmt.Errorf("port %d: icmp_from %q is not an address", w.Port, w.ICMPFrom)
			}
			r.ICMPFrom = a
		}
		out = append(out, r)
	}
	return rep, out, nil
}
