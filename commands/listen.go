package commands

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/probe"
)

// Listen is /listen: a temporary listener on the bot's host (nc -l -p PORT),
// so someone can test a firewall rule from the other side.
type Listen struct {
	longest time.Duration
	listen  func(context.Context, probe.ListenSpec, func(probe.ListenEvent)) (probe.ListenSummary, error)
}

// NewListen listens for at most longest (limits.listen_for).
func NewListen(longest time.Duration) *Listen {
	return &Listen{longest: longest, listen: probe.Listen}
}

var (
	_ bot.Command  = (*Listen)(nil)
	_ bot.Preparer = (*Listen)(nil)
)

const (
	listenSynopsis = "/listen PORT [tcp|udp] [for 1m]"
	listenDefault  = time.Minute
)

// Name implements bot.Command.
func (*Listen) Name() string { return "listen" }

// Changes implements bot.Changer: a listener on the bot's own host, for a
// bounded time, changes nothing on the hosts opsbot operates.
func (*Listen) Changes(string) bool { return false }

// Summary implements bot.Command.
func (*Listen) Summary() string { return "a temporary listener on the bot's host (nc -l -p PORT)" }

// Usage implements bot.Command.
func (l *Listen) Usage() string {
	return listenSynopsis + `
  /listen 3873                 TCP, for 1 minute
  /listen 5353 udp for 5m
  /listen -l -u -p 5000        nc flags work as typed

Listens on every address of the bot's host, reports the first 10 connections
or datagrams one message each (source address and port, bytes, the first
bytes received), then counts the rest in one message and sums them up by
sender at the end, and closes by itself. Longest: ` + l.longest.String() + ` (limits.listen_for). Ports below 1024 need
the bot to run with the privilege to bind them.
Exit status of opsbot run: 0 when something arrived, 1 when nothing did.`
}

type listenArgs struct {
	port  uint16
	proto probe.Proto
	dur   time.Duration
}

func (l *Listen) parse(args []string) (listenArgs, error) {
	la := listenArgs{proto: probe.TCP, dur: listenDefault}
	f, err := bot.ParseFlags(args, bot.FlagSpec{Bools: "lvuk", Values: "pw"})
	if err != nil {
		return la, err
	}
	if f.Has('u') {
		la.proto = probe.UDP
	}
	var portWords []string
	if p, ok := f.Value('p'); ok {
		portWords = append(portWords, p)
	}
	rest := f.Args
	for i := 0; i < len(rest); i++ {
		w := strings.ToLower(rest[i])
		switch {
		case w == "tcp" || w == "udp":
			la.proto, _ = probe.ParseProto(w)
		case w == "for":
			if i+1 >= len(rest) {
				return la, bot.Errorf(bot.EINVALID, "for needs a duration, like for 5m")
			}
			i++
			if la.dur, err = parseDuration("duration", rest[i], time.Second, 24*time.Hour); err != nil {
				return la, err
			}
		case unsupportedProtos[w]:
			return la, protoError(w)
		default:
			portWords = append(portWords, rest[i])
		}
	}
	if len(portWords) != 1 {
		return la, bot.Errorf(bot.EINVALID, "give exactly one port: usage %s", listenSynopsis)
	}
	if la.port, err = parsePort(portWords[0], la.proto); err != nil {
		return la, err
	}
	if la.dur > l.longest {
		return la, bot.Errorf(bot.EINVALID, "for %s is longer than policy allows: at most %s (limits.listen_for)", la.dur, l.longest)
	}
	return la, nil
}

// Prepare validates without binding, for an approval request.
func (l *Listen) Prepare(_ context.Context, req bot.Request) (bot.Prepared, error) {
	la, err := l.parse(req.Args)
	if err != nil {
		return bot.Prepared{}, err
	}
	return bot.Prepared{Impact: fmt.Sprintf("Opens %s port %d on the bot's host for %s.", la.proto, la.port, la.dur)}, nil
}

// Run listens until the time is up or the request is canceled, posting an
// event per connection or datagram.
func (l *Listen) Run(ctx context.Context, req bot.Request) (bot.Reply, error) {
	la, err := l.parse(req.Args)
	if err != nil {
		return bot.Reply{}, err
	}
	spec := probe.ListenSpec{Proto: la.proto, Addr: netip.AddrPortFrom(netip.IPv6Unspecified(), la.port), For: la.dur}
	rep := &listenReport{la: la, addrs: hostAddrs(), stream: req.Stream, sources: map[netip.Addr]int{}}
	sum, err := l.listen(ctx, spec, rep.event)
	if err != nil {
		if busy := busyError(ctx, err); busy != nil {
			return bot.Reply{}, busy
		}
		return bot.Reply{}, &bot.Error{Code: bot.EFAILED, Message: fmt.Sprintf("cannot listen on %s port %d: %s", la.proto, la.port, bindReason(err)), Err: err}
	}
	r := listenReply(la, sum, ctx.Err() != nil)
	if t := rep.summary(); t != "" {
		r.Text = strings.TrimPrefix(r.Text+"\n"+t, "\n")
	}
	return r, nil
}

// listenShown is how many connections or datagrams /listen reports one
// message each; after them it counts, in one progress message edited in
// place, and sums up at the end. Anyone who can reach the port can send
// 20 000 connections a second: the channel gets a dozen messages.
const listenShown = 10

// listenMaxSources bounds the per-address counts kept for the summary.
const listenMaxSources = 1000

// listenReport turns a listener's events into a bounded number of
// messages.
type listenReport struct {
	la     listenArgs
	addrs  []string
	stream bot.Stream

	mu      sync.Mutex
	shown   int
	counted int                // events after the first listenShown
	bytes   int                // their bytes
	sources map[netip.Addr]int // their senders, at most listenMaxSources
	others  int                // events from senders past that bound
}

func (rp *listenReport) event(ev probe.ListenEvent) {
	r, ok := listenEventReply(rp.la, ev, rp.addrs)
	if !ok {
		return
	}
	if ev.Kind == probe.Listening {
		rp.stream.Post(r)
		return
	}
	rp.mu.Lock()
	if rp.shown < listenShown {
		rp.shown++
		rp.mu.Unlock()
		rp.stream.Post(r)
		return
	}
	rp.counted++
	rp.bytes += ev.Bytes
	from := ev.From.Addr().Unmap()
	if _, seen := rp.sources[from]; seen || len(rp.sources) < listenMaxSources {
		rp.sources[from]++
	} else {
		rp.others++
	}
	progress := bot.Reply{Status: bot.StatusRunning,
		Title: fmt.Sprintf("Listening on %s port %d: %d more %s after the first %d, %d bytes, from %s",
			rp.la.proto, rp.la.port, rp.counted, rp.what(), listenShown, rp.bytes, addresses(len(rp.sources)+min(rp.others, 1))),
		Text: "Each of the first " + fmt.Sprint(listenShown) + " is in its own message; the rest are counted here and summed up at the end."}
	rp.mu.Unlock()
	rp.stream.Progress(progress)
}

func (rp *listenReport) what() string {
	if rp.la.proto == probe.UDP {
		return "datagrams"
	}
	return "connections"
}

// summary sums up the events that were counted, not shown: how many, from
// whom (the busiest senders first).
func (rp *listenReport) summary() string {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.counted == 0 {
		return ""
	}
	type src struct {
		addr netip.Addr
		n    int
	}
	var top []src
	for a, n := range rp.sources {
		top = append(top, src{a, n})
	}
	sort.Slice(top, func(i, j int) bool {
		if top[i].n != top[j].n {
			return top[i].n > top[j].n
		}
		return top[i].addr.Less(top[j].addr)
	})
	var parts []string
	for i, s := range top {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("%d other address(es)", len(top)-5))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%d)", s.addr, s.n))
	}
	if rp.others > 0 {
		parts = append(parts, fmt.Sprintf("%d more from addresses not counted one by one", rp.others))
	}
	return fmt.Sprintf("The first %d are posted one by one; %d more %s (%d bytes) came from %s.",
		listenShown, rp.counted, rp.what(), rp.bytes, strings.Join(parts, ", "))
}

// bindReason says why a bind failed in words, without Go's wrapping.
func bindReason(err error) string {
	s := err.Error()
	switch {
	case strings.Contains(s, "address already in use"):
		return "the port is already in use on the bot's host"
	case strings.Contains(s, "permission denied"):
		return "permission denied (ports below 1024 need privilege)"
	}
	return s
}

// listenEventReply turns one listener event into a message; addrs are the
// bot host's addresses, for the person on the other side.
func listenEventReply(la listenArgs, ev probe.ListenEvent, addrs []string) (bot.Reply, bool) {
	switch ev.Kind {
	case probe.Listening:
		return bot.Reply{Status: bot.StatusRunning,
			Title: fmt.Sprintf("Listening on %s port %d until %s (%s)", la.proto, la.port, ev.Time.Add(la.dur).Format("15:04:05 MST"), la.dur),
			Text:  "Send from the other side, e.g. " + tryHint(la) + addrText(addrs)}, true
	case probe.Connection:
		return bot.Reply{Status: bot.StatusInfo, Lines: []string{fmt.Sprintf("%s connection from %s, %d bytes%s", ev.Time.Format("15:04:05"), ev.From, ev.Bytes, preview(ev.Preview))}}, true
	case probe.Datagram:
		return bot.Reply{Status: bot.StatusInfo, Lines: []string{fmt.Sprintf("%s datagram from %s, %d bytes%s", ev.Time.Format("15:04:05"), ev.From, ev.Bytes, preview(ev.Preview))}}, true
	}
	return bot.Reply{}, false
}

func tryHint(la listenArgs) string {
	if la.proto == probe.UDP {
		return fmt.Sprintf("echo hello | nc -u -w1 THIS_HOST %d", la.port)
	}
	return fmt.Sprintf("nc -zv THIS_HOST %d", la.port)
}

// hostAddrs lists the bot host's addresses, so the person on the other side
// knows what to aim at.
func hostAddrs() []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
			out = append(out, p.Addr().String())
		}
	}
	return out
}

func addrText(addrs []string) string {
	if len(addrs) == 0 {
		return ""
	}
	return "\nThis host's addresses: " + strings.Join(addrs, ", ")
}

func preview(p string) string {
	if p == "" {
		return ""
	}
	return ": " + p
}

func listenReply(la listenArgs, sum probe.ListenSummary, canceled bool) bot.Reply {
	r := bot.Reply{Status: bot.StatusOK}
	what := plural(sum.Connections, "connection")
	if la.proto == probe.UDP {
		what = plural(sum.Datagrams, "datagram")
	}
	ended := "closed after " + sum.Duration.Round(time.Second).String()
	if canceled {
		ended = "canceled after " + sum.Duration.Round(time.Second).String()
	}
	r.Title = fmt.Sprintf("Listener on %s port %d %s: %s, %d bytes", la.proto, la.port, ended, what, sum.Bytes)
	if sum.Connections+sum.Datagrams == 0 {
		r.Status = bot.StatusNegative
		r.Text = "Nothing arrived. If the other side sent something, a firewall between the two hosts (or on this one) dropped it."
	}
	return r
}

func addresses(n int) string {
	if n == 1 {
		return "1 address"
	}
	return fmt.Sprintf("%d addresses", n)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
