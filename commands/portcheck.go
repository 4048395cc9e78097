package commands

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/probe"
)

// Portcheck is /portcheck: is this port reachable? The answer for nc -zv
// and nc -zuv users, in netcat's words where netcat is right and in plain
// words where it is not.
type Portcheck struct {
	targets  *bot.Targets
	maxPorts int
	maxAddrs int // addresses of a subnet or group per request; 0: bot.DefaultAddressesPerRequest
	check    func(context.Context, netip.AddrPort, probe.Proto, probe.Options) probe.Result
	scan     func(context.Context, probe.ScanSpec, func(probe.Progress)) (probe.ScanResult, error)
	vantages Vantages
	tls      *TLS
	// now and sleep drive /portcheck ... until; nil: the real clock.
	now   func() time.Time
	sleep func(context.Context, time.Duration) error
}

// WithTLS lets "/portcheck HOST PORT tls" answer as /tls HOST PORT.
func (c *Portcheck) WithTLS(t *TLS) *Portcheck {
	c.tls = t
	return c
}

// asTLS returns the words for /tls when the request says "tls" after the
// host: /portcheck HOST PORT tls [sni NAME] ...
func (c *Portcheck) asTLS(args []string) ([]string, bool) {
	if c.tls == nil {
		return nil, false
	}
	for i := 1; i < len(args); i++ {
		if strings.EqualFold(args[i], "tls") {
			return append(append([]string(nil), args[:i]...), args[i+1:]...), true
		}
	}
	return nil, false
}

// NewPortcheck checks ports on hosts the target policy allows, at most
// maxPorts per request.
func NewPortcheck(targets *bot.Targets, maxPorts int) *Portcheck {
	return &Portcheck{targets: targets, maxPorts: maxPorts, check: probe.Check, scan: probe.Scan}
}

// WithAddresses bounds the addresses one /portcheck of a subnet or an
// inventory group may check (limits.addresses_per_request).
func (c *Portcheck) WithAddresses(n int) *Portcheck {
	c.maxAddrs = n
	return c
}

func (c *Portcheck) addrLimit() int {
	if c.maxAddrs > 0 {
		return c.maxAddrs
	}
	return bot.DefaultAddressesPerRequest
}

// WithVantages lets /portcheck check from inventory hosts: "from web01",
// "from web".
func (c *Portcheck) WithVantages(v Vantages) *Portcheck {
	c.vantages = v
	return c
}

var (
	_ bot.Command  = (*Portcheck)(nil)
	_ bot.Preparer = (*Portcheck)(nil)
	_ bot.Changer  = (*Portcheck)(nil)
)

const portcheckSynopsis = "/portcheck HOST|SUBNET|GROUP PORT[,PORT|LO-HI ...] [tcp|udp] [timeout 3s] [from HOST|GROUP]"

// Name implements bot.Command.
func (*Portcheck) Name() string { return "portcheck" }

// Changes implements bot.Changer: a check changes nothing.
func (*Portcheck) Changes(string) bool { return false }

// Summary implements bot.Command.
func (*Portcheck) Summary() string { return "is this port reachable? (nc -zv, nc -zuv)" }

// Usage implements bot.Command.
func (c *Portcheck) Usage() string {
	return portcheckSynopsis + `
  /portcheck -zv 10.0.0.10 80          nc flags work as typed: -z -v -n -u -4 -6 -w SECONDS
  /portcheck -zuv 10.0.0.10 123
  /portcheck web01.example.com 22,80,443 timeout 1s
  /portcheck web 443                   every host of an inventory group (db01: one host)
  /portcheck 10.0.0.0/24 443           every host of a subnet

One line per port and address. TCP: open (handshake completed), closed (RST
or ICMP port unreachable), filtered (no answer, or an ICMP unreachable: a
firewall). UDP: open only when a reply comes back (DNS, NTP, SNMP and other
well-known services get a real request), closed on ICMP port unreachable,
filtered on ICMP unreachable or prohibited, and open|filtered on silence:
netcat calls that "succeeded", opsbot does not. A name is checked on each of
its addresses. Default timeout 3s; at most ` + fmt.Sprint(c.maxPorts) + ` ports (use /scan for more).

A subnet or an inventory group is checked as /scan checks one (see /scan
help): each address against the policy first (the refused ones are said,
never probed), at most ` + fmt.Sprint(c.addrLimit()) + ` addresses (limits.addresses_per_request),
and one row per result with the hosts that share it. Exit status of
opsbot run: 0 when every port is open on every host, 1 otherwise.

From other hosts: /portcheck db01.example.com 5432 from web (an inventory
host or group; /opsbot hosts lists those you may use). The bot resolves the
name and checks it against policy, and each vantage host checks that
address with the best tool it has: a copy of opsbot (opsbot probe: the same
evidence as here), OpenBSD netcat, or bash's /dev/tcp (TCP only). The reply
is a table, a row per vantage host, and says which tool each used and what
that tool cannot tell (netcat calls a dropped UDP port "succeeded": opsbot
reports it open|filtered). nc and bash check one port at a time, so they
take only as many ports as fit in the time a vantage check may take.
Waiting: /portcheck db01.example.com 5432 until open [for 10m] (or until
closed: anything but open, for a port that must go away). Checks the first
allowed address at once, then after 1s, 2s, 4s ... at most every 30s,
keeps one message current (with a Cancel button), posts to the thread,
naming you (a mention, so that Slack or Mattermost notifies you), when the
state changes and when the time is up, and answers when the state is
reached or the time is up
(default 10m, at most 24h). It counts as a running command of yours
(limits.jobs_per_user) while it waits. Exit status of opsbot run: 0 when
the state was reached, 1 when the time ran out.

With tls after the port (/portcheck www.example.com 443 tls), the answer
is /tls's: the certificate served, verification, versions (see /opsbot help tls).
Exit status of opsbot run: 0 when every port is open (from every vantage
host), 1 otherwise.`
}

// parseArgs validates the words; it touches neither DNS nor the network.
func (c *Portcheck) parseArgs(args []string) (targetArgs, error) {
	ta, err := parseTargetArgs(args, portcheckSynopsis)
	if err != nil {
		return ta, err
	}
	if len(ta.ports) == 0 {
		return ta, bot.Errorf(bot.EINVALID, "no port given: usage %s", portcheckSynopsis)
	}
	if len(ta.ports) > c.maxPorts {
		return ta, bot.Errorf(bot.EINVALID, "%d ports: /portcheck takes at most %d (limits.portcheck_ports); use /scan for more", len(ta.ports), c.maxPorts)
	}
	return ta, nil
}

// Prepare validates and resolves without probing, for an approval request.
func (c *Portcheck) Prepare(ctx context.Context, req bot.Request) (bot.Prepared, error) {
	if args, ok := c.asTLS(req.Args); ok {
		req.Args = args
		return c.tls.Prepare(ctx, req)
	}
	if ta, u, ok, err := c.parseUntil(req.Args); ok {
		if err != nil {
			return bot.Prepared{}, err
		}
		tg, err := c.untilTarget(ctx, req, ta)
		if err != nil {
			return bot.Prepared{}, err
		}
		return bot.Prepared{Hosts: []string{tg.Addrs[0].String()}, Impact: fmt.Sprintf("Checks %s port %d of %s until it is %s, for at most %s.", ta.proto, ta.ports[0], tg.Addrs[0], u.want(), bot.Human(u.dur))}, nil
	}
	ta, err := c.parseArgs(req.Args)
	if err != nil {
		return bot.Prepared{}, err
	}
	tg, set, many, err := pickTargets(ctx, req, c.Name(), c.targets, c.vantages.Hosts, &ta, c.addrLimit(), 0)
	if err != nil {
		return bot.Prepared{}, err
	}
	if ta.vantage != "" {
		v, err := c.vantages.resolve(ctx, req, c.Name(), c.targets, ta)
		if err != nil {
			return bot.Prepared{}, err
		}
		return bot.Prepared{Hosts: v.preparedHosts(), Impact: fmt.Sprintf("Checks %d %s port(s) of %s from %s.", len(ta.ports), ta.proto, v.addr, v.hostList())}, nil
	}
	if many {
		return bot.Prepared{Hosts: set.addrs(), Impact: fmt.Sprintf("Checks %d %s port(s) on each of %d addresses of %s (%s).", len(ta.ports), ta.proto, len(set.targets), set.what(), hostList(set.targets))}, nil
	}
	return bot.Prepared{Hosts: addrStrings(tg.Addrs), Impact: fmt.Sprintf("Checks %d %s port(s) on %s.", len(ta.ports), ta.proto, strings.Join(addrStrings(tg.Addrs), ", "))}, nil
}

// Run parses, checks policy, probes every port on every allowed address
// at once, and reports.
func (c *Portcheck) Run(ctx context.Context, req bot.Request) (bot.Reply, error) {
	if args, ok := c.asTLS(req.Args); ok {
		req.Args = args
		return c.tls.Run(ctx, req)
	}
	if ta, u, ok, err := c.parseUntil(req.Args); ok {
		if err != nil {
			return bot.Reply{}, err
		}
		return c.runUntil(ctx, req, ta, u)
	}
	ta, err := c.parseArgs(req.Args)
	if err != nil {
		return bot.Reply{}, err
	}
	tg, set, many, err := pickTargets(ctx, req, c.Name(), c.targets, c.vantages.Hosts, &ta, c.addrLimit(), 0)
	if err != nil {
		return bot.Reply{}, err
	}
	if ta.vantage != "" {
		return c.runFrom(ctx, req, ta)
	}
	timeout := ta.timeout
	if timeout == 0 {
		timeout = 3 * time.Second
	}
	if many {
		return c.runSweep(ctx, req, set, ta, timeout)
	}
	results, err := c.probeAll(ctx, tg.Addrs, ta.ports, ta.proto, timeout)
	if err != nil {
		return bot.Reply{}, err
	}
	return portcheckReply(tg, ta.ports, results, timeout), nil
}

// runSweep checks the ports on every address of a subnet or group with
// the scan engine, a bounded number of addresses at a time.
func (c *Portcheck) runSweep(ctx context.Context, req bot.Request, set targetSet, ta targetArgs, timeout time.Duration) (bot.Reply, error) {
	title := fmt.Sprintf("%s %s %s", set.what(), ta.proto, ta.spec)
	spec := sweepSpec{targets: set.targets, proto: ta.proto, ports: ta.ports, timeout: timeout, concurrency: bot.DefaultScanConcurrency,
		shareRTT: set.prefix.IsValid() && ta.timeout == 0}
	stream := req.Stream
	if stream == nil {
		stream = bot.NopStream{}
	}
	scan := c.scan
	if scan == nil {
		scan = probe.Scan
	}
	results, took := sweep(ctx, scan, spec, func(p sweepProgress) {
		stream.Progress(sweepProgressReply("Checking", title, p))
	})
	if busy := sweepBusy(ctx, results); busy != nil {
		return bot.Reply{}, busy
	}
	return sweepReply(title, set, spec, results, took, true), nil
}

// probeAll checks every port of every address and returns results grouped
// by port, addresses in resolver order. One port is one check (the
// kernel's own SYN retries cover a lost packet within the timeout); several
// ports of an address go through the scan engine, which measures the path
// and retries what it lost, as /scan does.
//
// The only error is a busy bot: the socket budget had no share for the
// scan of several ports.
func (c *Portcheck) probeAll(ctx context.Context, addrs []netip.Addr, ports []uint16, proto probe.Proto, timeout time.Duration) ([][]probe.Result, error) {
	out := make([][]probe.Result, len(ports))
	for i := range out {
		out[i] = make([]probe.Result, len(addrs))
	}
	if len(ports) > 1 && c.scan != nil {
		for j, a := range addrs {
			// A scan stopped by a local error (no descriptors) keeps what
			// it decided; its error says nothing about the other ports.
			res, err := c.scan(ctx, probe.ScanSpec{Target: a, Proto: proto, Ports: ports, Timeout: timeout}, nil)
			if busy := busyError(ctx, err); busy != nil {
				return nil, busy
			}
			byPort := map[uint16]probe.Result{}
			for _, r := range res.Results {
				byPort[r.Target.Port()] = r
			}
			for i, p := range ports {
				r, ok := byPort[p]
				if !ok {
					// Undecided: check it alone, which reports a local
					// error as such and, once ctx has ended, what is known.
					r = c.check(ctx, netip.AddrPortFrom(a, p), proto, probe.Options{Timeout: timeout})
				}
				out[i][j] = r
			}
		}
		return out, nil
	}
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i, p := range ports {
		for j, a := range addrs {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				out[i][j] = c.check(ctx, netip.AddrPortFrom(a, p), proto, probe.Options{Timeout: timeout})
			}()
		}
	}
	wg.Wait()
	return out, nil
}

// portcheckReply is the one place /portcheck results become words.
func portcheckReply(tg bot.Target, ports []uint16, results [][]probe.Result, timeout time.Duration) bot.Reply {
	var (
		lines     []string
		openPorts int
		udpSilent bool
	)
	for i := range ports {
		open := false
		for _, r := range results[i] {
			lines = append(lines, portLine(tg.Name, r, timeout))
			if r.State == probe.Open {
				open = true
			}
			if r.State == probe.OpenFiltered {
				udpSilent = true
				lines = append(lines, "  UDP is connectionless: a firewall that drops packets looks the same as an open port.")
			}
		}
		if open {
			openPorts++
		}
	}
	reply := bot.Reply{Lines: lines}
	host := tg.Host
	switch {
	case openPorts == len(ports):
		reply.Status = bot.StatusOK
	default:
		reply.Status = bot.StatusNegative
	}
	if len(ports) == 1 && len(results[0]) == 1 {
		r := results[0][0]
		reply.Title = fmt.Sprintf("%s %d/%s %s", host, ports[0], r.Proto, r.State)
	} else {
		reply.Title = fmt.Sprintf("%s: %d of %d ports open", host, openPorts, len(ports))
	}
	if len(tg.Skipped) > 0 {
		reply.Text = "Not checked (policy): " + joinSemicolon(tg.Skipped)
	}
	if udpSilent {
		reply.Text = joinParagraphs(reply.Text, "open|filtered: a service that ignores requests it does not understand is silent too. netcat -zu reports such a port as \"succeeded\"; opsbot does not guess.")
	}
	return reply
}

// portLine is one line in netcat's words. name is the DNS name when the
// user typed one; nc prints "name (address)" then.
func portLine(name string, r probe.Result, timeout time.Duration) string {
	addr := r.Target.Addr().String()
	who := addr
	if name != "" {
		who = name + " (" + addr + ")"
	}
	svc := probe.ServiceName(r.Proto, r.Target.Port())
	if svc == "" {
		svc = "*"
	}
	prefix := fmt.Sprintf("%s %d port [%s/%s]", who, r.Target.Port(), r.Proto, svc)
	if r.State == probe.Open && r.Proto == probe.TCP {
		return fmt.Sprintf("Connection to %s succeeded! (%s)", prefix, human(r.RTT))
	}
	return prefix + " " + r.State.String() + ": " + evidence(r, timeout)
}

// evidence says why a port has its state, in words an on-call engineer
// can act on.
func evidence(r probe.Result, timeout time.Duration) string {
	from := ""
	if r.ICMPFrom.IsValid() && r.ICMPFrom != r.Target.Addr() {
		from = " from " + r.ICMPFrom.String() + " (a router or firewall on the path)"
	} else if r.ICMPFrom.IsValid() {
		from = " from the host itself"
	}
	switch r.Reason {
	case probe.Handshake:
		return "handshake completed (" + human(r.RTT) + ")"
	case probe.Reply:
		if r.Service != "" {
			return fmt.Sprintf("%s reply received (%s)", r.Service, human(r.RTT))
		}
		return fmt.Sprintf("reply received, %d bytes (%s)", r.Bytes, human(r.RTT))
	case probe.Refused:
		return "connection refused (RST or ICMP port unreachable: nothing listens, or a firewall rejects)"
	case probe.SelfConnect:
		return "nothing listens (the kernel connected the probe socket to itself, which netcat reports as succeeded)"
	case probe.PortUnreachable:
		return "ICMP port unreachable" + from + " (nothing listens)"
	case probe.HostUnreachable:
		if r.Proto == probe.TCP {
			return "ICMP host unreachable or administratively prohibited (a firewall rejects it, or no route)"
		}
		return "ICMP host unreachable" + from
	case probe.NetUnreachable:
		return "ICMP network unreachable" + from + " (no route)"
	case probe.AdminProhibited:
		return "ICMP administratively prohibited" + from + " (a firewall rejects it)"
	case probe.Timeout:
		if r.Doubtful {
			return fmt.Sprintf("no answer to %d tries, unconfirmed: the path lost so many probes that an answer may have been lost too", r.Tries)
		}
		if r.Tries > 1 {
			return fmt.Sprintf("no answer to %d tries (a firewall drops it)", r.Tries)
		}
		return "no answer in " + timeout.String() + " (a firewall drops it)"
	case probe.Silence:
		tries := ""
		if r.Tries > 1 {
			tries = fmt.Sprintf(" after %d tries", r.Tries)
		}
		return "no reply and no ICMP error" + tries + "."
	}
	return r.Reason.String()
}

func joinSemicolon(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += "; "
		}
		out += x
	}
	return out
}

func joinParagraphs(a, b string) string {
	if a == "" {
		return b
	}
	return a + "\n" + b
}

func addrStrings(addrs []netip.Addr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}
