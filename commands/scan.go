package commands

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/probe"
)

// Scan is /scan: which ports are open? (nc -zv host 1-500 | grep succeeded)
type Scan struct {
	targets  *bot.Targets
	limits   bot.Limits
	scan     func(context.Context, probe.ScanSpec, func(probe.Progress)) (probe.ScanResult, error)
	now      func() time.Time
	vantages Vantages
}

// NewScan scans hosts the target policy allows, within limits (ports per
// scan, concurrency, rate).
func NewScan(targets *bot.Targets, limits bot.Limits) *Scan {
	return &Scan{targets: targets, limits: limits, scan: probe.Scan, now: time.Now}
}

// WithVantages lets /scan run from inventory hosts: "from web01",
// "from web".
func (s *Scan) WithVantages(v Vantages) *Scan {
	s.vantages = v
	return s
}

var (
	_ bot.Command  = (*Scan)(nil)
	_ bot.Preparer = (*Scan)(nil)
	_ bot.Changer  = (*Scan)(nil)
)

const scanSynopsis = "/scan HOST|SUBNET|GROUP [PORTS] [tcp|udp] [timeout 1.5s] [from HOST|GROUP]"

// Name implements bot.Command.
func (*Scan) Name() string { return "scan" }

// Changes implements bot.Changer: a scan changes nothing.
func (*Scan) Changes(string) bool { return false }

// Summary implements bot.Command.
func (*Scan) Summary() string { return "which ports are open? (nc -zv HOST 1-500 | grep succeeded)" }

// Usage implements bot.Command.
func (s *Scan) Usage() string {
	return scanSynopsis + `
  PORTS: 1-500, 22,80,443, top100 (the default), or any mix: top20,8080-8090
  /scan 10.0.0.10                   the 100 most common TCP ports
  /scan 10.0.0.10 1-65535
  /scan 10.0.0.10 top100 udp
  /scan 10.0.0.0/24 22,443          every host of a subnet (IPv4 or IPv6)
  /scan web 22,443                  every host of an inventory group

Shows progress while it runs, then the open ports with service names, a count
per state and the duration. TCP: a port is open only when something really
listens (a scan of the bot's own host never reports the kernel's
self-connections, which netcat does). UDP: closed ports are told apart from
silent ones even when the target rate-limits its ICMP errors (Linux sends
about one per second after a burst of six): opsbot paces and re-probes, and
lists the ports it could not confirm. Past 50 open ports, a run of
consecutive open ports alike is one row ("1-65535/tcp open, 65535 ports").

Across a real network (loss, a slow link, a firewall that limits SYNs) the
engine works as TCP does: it measures the round trip and waits for it,
asks every silent port again (as often as the loss it measures asks for),
slows to the rate the path or the target's rate limit carries, and says
what the network did ("about 3% of probes lost, 212 retried", "limits new
connections to about 300/s: paced"). A port is filtered only when the
target answered other probes meanwhile; ports it cannot be sure of are
listed as unconfirmed, never guessed. timeout is the longest wait of one
try (and the wait before the round trip is known).

Policy: at most ` + fmt.Sprint(s.limits.ScanPorts) + ` ports per scan,
` + fmt.Sprint(s.limits.ScanConcurrency) + ` probes in flight` + rateText(s.limits.ScanRate) + ` (fewer while other scans
hold a share of the bot's sockets; when none is free the bot answers busy
and says when to try again).

Many targets: a subnet (10.0.0.0/24, fd00::/120) or an inventory group
(web: each host at its inventory address; a single inventory host is one
target at its address). Every address is checked against the target
policy before anything is probed: the refused ones are not probed, and the
reply says which and why. At most ` + fmt.Sprint(s.addrLimit()) + ` addresses per request
(limits.addresses_per_request). A subnet written with host bits set
(10.0.0.5/24) checks its network (10.0.0.0/24) and says so; an IPv4 subnet
leaves out its network and broadcast addresses. Each address gets the same
engine as one host, up to 64 addresses at a time within the limits above
(the whole request, not each address); progress counts hosts. The answer
is a row per result, with the hosts that share it ("22 open, 443 closed:
10.0.0.1-10.0.0.40, 10.0.0.77"), so 256 hosts read as a few lines. An
approval binds the address list: the approved run probes that list, each
address checked again, and resolves nothing. until and from take one host.

From other hosts: /scan 10.0.0.10 top20 from web (an inventory host or
group). Each vantage host scans the address the bot resolved and allowed,
with a copy of opsbot when it has one (the same engine and limits as here),
else OpenBSD netcat or bash's /dev/tcp (TCP only), which check one port at
a time: they take only as many ports as fit in the time a vantage check
may take (about 20 at the default timeout), and the reply says so. The reply
counts states per vantage host and shows the ports that are open somewhere
or seen differently, a row per host.
Exit status of opsbot run: 0 when at least one port is open, 1 otherwise.`
}

func rateText(r int) string {
	if r == 0 {
		return ""
	}
	return fmt.Sprintf(", %d probes per second", r)
}

// parseArgs validates the words; it touches neither DNS nor the network.
func (s *Scan) parseArgs(args []string) (targetArgs, error) {
	ta, err := parseTargetArgs(args, scanSynopsis)
	if err != nil {
		return ta, err
	}
	if len(ta.ports) == 0 {
		ta.ports = probe.TopPorts(ta.proto, 100)
		ta.spec = "top100"
	}
	if len(ta.ports) > s.limits.ScanPorts {
		return ta, bot.Errorf(bot.EINVALID, "%s is %d ports: policy allows at most %d per scan (limits.scan_ports)", ta.spec, len(ta.ports), s.limits.ScanPorts)
	}
	return ta, nil
}

// Prepare validates and resolves without probing, for an approval request:
// the scan is bound to the one address it will probe.
func (s *Scan) Prepare(ctx context.Context, req bot.Request) (bot.Prepared, error) {
	ta, err := s.parseArgs(req.Args)
	if err != nil {
		return bot.Prepared{}, err
	}
	tg, set, many, err := pickTargets(ctx, req, s.Name(), s.targets, s.vantages.Hosts, &ta, s.addrLimit(), 1)
	if err != nil {
		return bot.Prepared{}, err
	}
	if ta.vantage != "" {
		v, err := s.vantages.resolve(ctx, req, s.Name(), s.targets, ta)
		if err != nil {
			return bot.Prepared{}, err
		}
		return bot.Prepared{Hosts: v.preparedHosts(),
			Impact: fmt.Sprintf("Probes %d %s ports of %s from %s.", len(ta.ports), ta.proto, v.addr, v.hostList())}, nil
	}
	if many {
		hosts, _ := s.sweepSpec(set, ta).inFlight()
		return bot.Prepared{Hosts: set.addrs(),
			Impact: fmt.Sprintf("Probes %d %s ports on each of %d addresses of %s (%s), %d addresses at a time%s.", len(ta.ports), ta.proto, len(set.targets), set.what(), hostList(set.targets), hosts, rateText(s.limits.ScanRate))}, nil
	}
	return bot.Prepared{Hosts: []string{tg.Addrs[0].String()},
		Impact: fmt.Sprintf("Probes %d %s ports of %s, up to %d at a time%s.", len(ta.ports), ta.proto, tg.Addrs[0], s.limits.ScanConcurrency, rateText(s.limits.ScanRate))}, nil
}

// Run scans one address of the host.
func (s *Scan) Run(ctx context.Context, req bot.Request) (bot.Reply, error) {
	ta, err := s.parseArgs(req.Args)
	if err != nil {
		return bot.Reply{}, err
	}
	tg, set, many, err := pickTargets(ctx, req, s.Name(), s.targets, s.vantages.Hosts, &ta, s.addrLimit(), 1)
	if err != nil {
		return bot.Reply{}, err
	}
	if ta.vantage != "" {
		return s.runFrom(ctx, req, ta)
	}
	if many {
		return s.runSweep(ctx, req, set, ta)
	}
	addr := tg.Addrs[0]
	title := scanTitle(tg, addr, ta)
	spec := probe.ScanSpec{
		Target:      addr,
		Proto:       ta.proto,
		Ports:       ta.ports,
		Timeout:     ta.timeout,
		Concurrency: s.limits.ScanConcurrency,
		Rate:        float64(s.limits.ScanRate),
	}
	res, err := s.scan(ctx, spec, func(p probe.Progress) {
		req.Stream.Progress(scanProgressReply(title, p))
	})
	if err != nil {
		if busy := busyError(ctx, err); busy != nil {
			return bot.Reply{}, busy
		}
		// The cause (a local socket error) is for the log, not the channel.
		return bot.Reply{}, &bot.Error{Code: bot.EFAILED, Message: "the scan of " + addr.String() + " could not run from the bot's host", Err: err}
	}
	bot.ObserverFrom(ctx).ScanPorts(len(res.Results), res.Duration)
	return scanReply(title, tg, addr, ta, res), nil
}

func (s *Scan) addrLimit() int {
	if s.limits.AddressesPerRequest > 0 {
		return s.limits.AddressesPerRequest
	}
	return bot.DefaultAddressesPerRequest
}

// sweepSpec is the sweep of a subnet or group within the scan limits:
// limits.scan_concurrency and scan_rate bound the whole request.
func (s *Scan) sweepSpec(set targetSet, ta targetArgs) sweepSpec {
	return sweepSpec{targets: set.targets, proto: ta.proto, ports: ta.ports, timeout: ta.timeout,
		concurrency: cmp.Or(s.limits.ScanConcurrency, bot.DefaultScanConcurrency), rate: float64(s.limits.ScanRate),
		shareRTT: set.prefix.IsValid() && ta.timeout == 0}
}

// runSweep scans the same ports on every address of a subnet or group.
func (s *Scan) runSweep(ctx context.Context, req bot.Request, set targetSet, ta targetArgs) (bot.Reply, error) {
	title := fmt.Sprintf("%s %s %s", set.what(), ta.proto, ta.spec)
	spec := s.sweepSpec(set, ta)
	stream := req.Stream
	if stream == nil {
		stream = bot.NopStream{}
	}
	results, took := sweep(ctx, s.scan, spec, func(p sweepProgress) {
		stream.Progress(sweepProgressReply("Scanning", title, p))
	})
	if busy := sweepBusy(ctx, results); busy != nil {
		return bot.Reply{}, busy
	}
	probed := 0
	for _, r := range results {
		probed += len(r.res.Results)
	}
	bot.ObserverFrom(ctx).ScanPorts(probed, took)
	return sweepReply(title, set, spec, results, took, false), nil
}

func scanTitle(tg bot.Target, addr netip.Addr, ta targetArgs) string {
	who := addr.String()
	if tg.Name != "" {
		who = tg.Name + " (" + who + ")"
	}
	return fmt.Sprintf("%s %s %s", who, ta.proto, ta.spec)
}

func scanProgressReply(title string, p probe.Progress) bot.Reply {
	return bot.Reply{
		Status: bot.StatusRunning,
		Title:  "Scanning " + title,
		Text: fmt.Sprintf("%d of %d ports (%d%%), %d open so far, %s",
			p.Done, p.Total, percent(p.Done, p.Total), p.Open, human(p.Elapsed)),
	}
}

func percent(a, b int) int {
	if b == 0 {
		return 100
	}
	return a * 100 / b
}

// scanReply is the one place /scan results become words.
func scanReply(title string, tg bot.Target, addr netip.Addr, ta targetArgs, res probe.ScanResult) bot.Reply {
	open := res.Ports(probe.Open)
	reply := bot.Reply{Status: bot.StatusOK}
	if len(open) == 0 {
		reply.Status = bot.StatusNegative
	}
	done := len(res.Results)
	switch {
	case res.Canceled:
		reply.Status = bot.StatusNegative
		reply.Title = fmt.Sprintf("Scan of %s canceled after %d of %d ports: %d open so far", title, done, len(ta.ports), len(open))
	default:
		reply.Title = fmt.Sprintf("%s: %d open", title, len(open))
	}
	if len(open) > 0 {
		reply.Table = openTable(res.Results, len(open))
	}
	var counts []string
	for _, st := range []probe.State{probe.Open, probe.Closed, probe.Filtered, probe.OpenFiltered} {
		if n := res.Count(st); n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", n, st))
		}
	}
	if n := countDoubtful(res); n > 0 {
		counts[len(counts)-1] += fmt.Sprintf(" (%d unconfirmed)", n)
	}
	if len(counts) == 0 {
		counts = append(counts, "none")
	}
	rate := "-"
	if res.Duration > 0 {
		rate = fmt.Sprintf("%.0f ports/s", float64(done)/res.Duration.Seconds())
	}
	reply.Fields = []bot.Field{
		{Name: "ports", Value: strings.Join(counts, ", ")},
		{Name: "duration", Value: human(res.Duration)},
		{Name: "rate", Value: rate},
	}
	var notes []string
	if len(tg.Addrs) > 1 {
		notes = append(notes, fmt.Sprintf("%s has %d addresses; scanned %s (add -4 or -6 to choose).", tg.Name, len(tg.Addrs), addr))
	}
	if len(tg.Skipped) > 0 {
		notes = append(notes, "Not scanned (policy): "+joinSemicolon(tg.Skipped))
	}
	if ta.proto == probe.UDP {
		var witnessed, unconfirmed []uint16
		for _, r := range res.Results {
			if r.State != probe.OpenFiltered {
				continue
			}
			if r.Witnessed {
				witnessed = append(witnessed, r.Target.Port())
			} else {
				unconfirmed = append(unconfirmed, r.Target.Port())
			}
		}
		if len(witnessed) > 0 {
			notes = append(notes, "open|filtered (no reply and no ICMP error, while a closed port of the same host did answer, so these are not closed: open or dropped by a firewall): "+portRanges(witnessed))
		}
		if len(unconfirmed) > 0 {
			notes = append(notes, "unconfirmed (silent, and the host's ICMP rate limit or a firewall kept opsbot from telling closed from open|filtered): "+portRanges(unconfirmed))
		}
		if res.RateLimited {
			notes = append(notes, "The target rate-limits ICMP errors; opsbot paced its probes so that closed ports read closed.")
		}
	}
	var filtered, doubtful []uint16
	for _, r := range res.Results {
		switch {
		case r.State == probe.Filtered && r.Doubtful:
			doubtful = append(doubtful, r.Target.Port())
		case r.State == probe.Filtered:
			filtered = append(filtered, r.Target.Port())
		}
	}
	if len(filtered) > 0 && len(filtered) <= 50 {
		notes = append(notes, "filtered: "+portRanges(filtered))
	}
	if len(doubtful) > 0 {
		why := "the path lost too many probes to be sure no answer was lost too"
		if res.Net.Stopped {
			why = "the target stopped answering during the scan"
		}
		notes = append(notes, fmt.Sprintf("unconfirmed, no answer after every try (%s): %s", why, portRanges(doubtful)))
	}
	if ta.proto == probe.TCP && !res.Canceled && len(res.Results) > 0 && res.Count(probe.Filtered) == len(res.Results) && res.Net.Answered == 0 {
		notes = append(notes, "Nothing answered at all, on any port: the host is down or unreachable, or a firewall drops everything. Filtered here means only that nothing came back.")
	}
	notes = append(notes, networkNotes(res.Net)...)
	reply.Text = strings.Join(notes, "\n")
	return reply
}

// groupOpenAbove is the number of open ports past which the table shows
// runs of consecutive open ports alike as one row ("1-65535/tcp open,
// 65535 ports"): a row per port of a host that answers on every port is
// 65535 rows nobody reads.
const groupOpenAbove = 50

// openTable lists the open ports: a row per port, or, past groupOpenAbove,
// a row per run of consecutive ports with the same evidence.
func openTable(results []probe.Result, nOpen int) *bot.Table {
	t := &bot.Table{Header: []string{"port", "state", "service", "evidence"}}
	var open []probe.Result
	for _, r := range results {
		if r.State == probe.Open {
			open = append(open, r)
		}
	}
	sort.SliceStable(open, func(i, j int) bool { return open[i].Target.Port() < open[j].Target.Port() })
	service := func(r probe.Result) string {
		if r.Service != "" {
			return r.Service
		}
		if svc := probe.ServiceName(r.Proto, r.Target.Port()); svc != "" {
			return svc
		}
		return "-"
	}
	if nOpen <= groupOpenAbove {
		for _, r := range open {
			t.Rows = append(t.Rows, []string{fmt.Sprintf("%d/%s", r.Target.Port(), r.Proto), "open", service(r), evidenceShort(r)})
		}
		return t
	}
	alike := func(a, b probe.Result) bool {
		return b.Target.Port() == a.Target.Port()+1 && a.Reason == b.Reason && a.Service == b.Service && a.Proto == b.Proto
	}
	for i := 0; i < len(open); {
		j := i
		lo, hi := open[i].RTT, open[i].RTT
		for j+1 < len(open) && alike(open[j], open[j+1]) {
			j++
			lo, hi = min(lo, open[j].RTT), max(hi, open[j].RTT)
		}
		r := open[i]
		if j == i {
			t.Rows = append(t.Rows, []string{fmt.Sprintf("%d/%s", r.Target.Port(), r.Proto), "open", service(r), evidenceShort(r)})
		} else {
			what := r.Reason.String()
			if r.Proto == probe.UDP && r.Service != "" {
				what = r.Service + " reply"
			}
			rtt := human(lo)
			if hi != lo {
				rtt += " to " + human(hi)
			}
			t.Rows = append(t.Rows, []string{fmt.Sprintf("%d-%d/%s", r.Target.Port(), open[j].Target.Port(), r.Proto), "open",
				fmt.Sprintf("%d ports", j-i+1), what + ", " + rtt})
		}
		i = j + 1
	}
	return t
}

// networkNotes says what the path did, when it changed the result or the
// time: loss and retries, pacing for a slow link or a rate limit, a long
// round trip.
func networkNotes(n probe.NetReport) []string {
	var notes []string
	if n.Paced > 0 {
		if n.Queue {
			notes = append(notes, fmt.Sprintf("The path is slower than the scan (its queue overflowed and the round trip grew): paced to about %.0f probes/s.", n.Paced))
		} else {
			notes = append(notes, fmt.Sprintf("The target (or a firewall on the way) limits new connections to about %.0f/s: paced.", n.Paced))
		}
	}
	if n.Retried > 0 && n.Loss >= 0.005 {
		notes = append(notes, fmt.Sprintf("About %.0f%% of probes were lost on the way; %d retried, so no port was judged on a lost probe.", math.Max(1, math.Round(100*n.Loss)), n.Retried))
	}
	if n.RTT >= 20*time.Millisecond {
		notes = append(notes, fmt.Sprintf("Round trip %s: each try waited for it.", human(n.RTT)))
	}
	return notes
}

func countDoubtful(res probe.ScanResult) int {
	n := 0
	for _, r := range res.Results {
		if r.Doubtful {
			n++
		}
	}
	return n
}

func evidenceShort(r probe.Result) string {
	if r.Proto == probe.UDP && r.Service != "" {
		return r.Service + " reply, " + human(r.RTT)
	}
	return r.Reason.String() + ", " + human(r.RTT)
}
