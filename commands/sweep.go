package commands

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/probe"
)

// A sweep probes the same ports on many addresses: each address gets the
// scan engine of /scan (its own round-trip estimate, retries and pacing),
// a bounded number of addresses at a time. Every scan reserves its share
// of the process's socket budget as it starts, so a sweep shares the
// budget with everything else the bot probes; the whole sweep is one job
// of its asker's.

// maxHostsInFlight bounds the addresses scanned at once: enough to hide
// the round trip and the time-outs of silent hosts, few enough that one
// sweep leaves the budget to others.
const maxHostsInFlight = 64

type scanFunc func(context.Context, probe.ScanSpec, func(probe.Progress)) (probe.ScanResult, error)

// sweepSpec is what a sweep probes and how hard, for the whole request.
type sweepSpec struct {
	targets     []sweepTarget
	proto       probe.Proto
	ports       []uint16
	timeout     time.Duration
	concurrency int     // probes in flight for the whole sweep
	rate        float64 // new probes per second for the whole sweep; 0 = no limit
	// shareRTT: the addresses are one subnet, behind one path, and no
	// timeout was asked for: once enough of them answered, the others
	// wait for a try what the slowest measured round trip allows
	// (sharedTimeout), not the default meant for an unknown path.
	shareRTT bool
}

// Sharing the round trip within a subnet: after sharedAfter hosts answered,
// a first try waits sharedRTTs times the slowest round trip measured, at
// least sharedFloor (nmap -T4's least, which nmap too takes from the hosts
// scanned together), instead of the 1.5 s meant for a path nobody knows.
// The engine doubles the wait of each retry, so a slow host still gets
// long tries; a host of the subnet that is down costs about a second
// instead of seven (measured on the namespace test bed: 1.2 s against
// 7.5 s for two ports).
const (
	sharedAfter = 4
	sharedRTTs  = 8
	sharedFloor = 100 * time.Millisecond
)

// hostResult is one address's scan.
type hostResult struct {
	target  sweepTarget
	res     probe.ScanResult
	ran     bool          // the scan ran (maybe canceled part-way)
	shared  time.Duration // the try timeout shared from the subnet's round trips; 0: the request's
	busy    bool          // the socket budget had no share for it
	busyErr error         // the budget's refusal, for the one that met it
	failed  string        // it could not run here, in words
}

// sweepProgress is a snapshot of a running sweep.
type sweepProgress struct {
	done, total int // addresses
	open        int // open ports found so far
	openHosts   int
	elapsed     time.Duration
}

// inFlight is how many addresses a sweep scans at once, and each scan's
// share of the request's probes in flight.
func (s sweepSpec) inFlight() (hosts, perHost int) {
	c := max(s.concurrency, 1)
	hosts = min(max(c/max(len(s.ports), 1), 1), maxHostsInFlight, max(len(s.targets), 1))
	return hosts, max(c/hosts, 1)
}

// sweep scans every target, at most inFlight at a time, in order. It stops
// starting scans once ctx ends; their results say not ran.
func sweep(ctx context.Context, scan scanFunc, spec sweepSpec, progress func(sweepProgress)) ([]hostResult, time.Duration) {
	start := time.Now()
	hosts, perHost := spec.inFlight()
	rate := 0.0
	if spec.rate > 0 {
		rate = spec.rate / float64(hosts)
	}
	out := make([]hostResult, len(spec.targets))
	var (
		mu                    sync.Mutex
		done, open, openHosts int
		answered              int           // hosts that answered anything
		slowest               time.Duration // the largest round trip they measured
		busy                  atomic.Bool
	)
	timeoutFor := func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		if !spec.shareRTT || answered < sharedAfter {
			return 0
		}
		def := probe.DefaultScanTCPTimeout
		if spec.proto == probe.UDP {
			def = probe.DefaultScanUDPTimeout
		}
		return min(max(sharedRTTs*slowest, sharedFloor), def)
	}
	sem := make(chan struct{}, hosts)
	var wg sync.WaitGroup
	for i, t := range spec.targets {
		out[i].target = t
	}
	for i, t := range spec.targets {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		if busy.Load() {
			// The budget refused a scan within its wait: the others
			// would wait as long for nothing.
			out[i].busy = true
			<-sem
			continue
		}
		timeout := spec.timeout
		if shared := timeoutFor(); shared > 0 {
			timeout, out[i].shared = shared, shared
		}
		wg.Go(func() {
			defer func() { <-sem }()
			res, err := scan(ctx, probe.ScanSpec{Target: t.addr, Proto: spec.proto, Ports: spec.ports, Timeout: timeout,
				Concurrency: perHost, Rate: rate}, nil)
			var be *probe.BusyError
			switch {
			case errors.As(err, &be):
				busy.Store(true)
				out[i].busy, out[i].busyErr = true, err
			case err != nil && len(res.Results) == 0:
				out[i].failed = "the probe could not run from the bot's host"
			default:
				out[i].res, out[i].ran = res, true
			}
			mu.Lock()
			done++
			if out[i].ran && res.Net.Answered > 0 {
				answered++
				slowest = max(slowest, res.Net.RTT)
			}
			if n := res.Count(probe.Open); n > 0 && out[i].ran {
				open += n
				openHosts++
			}
			p := sweepProgress{done: done, total: len(spec.targets), open: open, openHosts: openHosts, elapsed: time.Since(start)}
			if progress != nil {
				progress(p)
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return out, time.Since(start)
}

// sweepBusy is the busy error of a sweep the budget refused before any
// address was scanned; nil when something ran.
func sweepBusy(ctx context.Context, results []hostResult) error {
	var first error
	for _, r := range results {
		if r.ran || !r.busy {
			return nil
		}
		if first == nil {
			first = r.busyErr
		}
	}
	return busyError(ctx, first)
}

func sweepProgressReply(verb, title string, p sweepProgress) bot.Reply {
	return bot.Reply{
		Status: bot.StatusRunning,
		Title:  verb + " " + title,
		Text: fmt.Sprintf("%d of %d hosts (%d%%), %d open ports on %d hosts so far, %s",
			p.done, p.total, percent(p.done, p.total), p.open, p.openHosts, human(p.elapsed)),
	}
}

// hostVerdict is one address's result in words, the key hosts are grouped
// by: "22 open, 443 closed". A host that answered nothing at all is said
// so, whatever the ports.
func hostVerdict(r hostResult, ports []uint16) string {
	switch {
	case r.busy:
		return "not checked: the bot was busy (no sockets free)"
	case r.failed != "":
		return "not checked: " + r.failed
	case !r.ran:
		return "not checked: canceled"
	}
	byPort := map[uint16]probe.Result{}
	for _, x := range r.res.Results {
		byPort[x.Target.Port()] = x
	}
	state := func(p uint16) string {
		x, ok := byPort[p]
		switch {
		case !ok:
			return "not checked"
		case x.Doubtful:
			return x.State.String() + " (unconfirmed)"
		}
		return x.State.String()
	}
	if r.res.Net.Answered == 0 && len(r.res.Results) == len(ports) && r.res.Count(probe.Filtered) == len(ports) && len(ports) > 1 {
		return "nothing answered (host down or unreachable, or everything dropped)"
	}
	if len(ports) <= 8 {
		parts := make([]string, len(ports))
		for i, p := range ports {
			parts[i] = fmt.Sprintf("%d %s", p, state(p))
		}
		return strings.Join(parts, ", ")
	}
	// Many ports: the open ones by number, the rest counted.
	var open []uint16
	counts := map[string]int{}
	var order []string
	for _, p := range ports {
		st := state(p)
		if st == "open" {
			open = append(open, p)
			continue
		}
		if counts[st] == 0 {
			order = append(order, st)
		}
		counts[st]++
	}
	var parts []string
	if len(open) > 0 {
		parts = append(parts, "open "+portRanges(open))
	} else {
		parts = append(parts, "none open")
	}
	sort.Strings(order)
	for _, st := range order {
		parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
	}
	return strings.Join(parts, "; ")
}

// sweepGroup is the hosts with one verdict.
type sweepGroup struct {
	verdict string
	open    int // open ports per host
	hosts   []sweepTarget
}

// groupHosts groups the hosts by identical result: the groups with more
// open ports first, then the larger ones.
func groupHosts(results []hostResult, ports []uint16) []sweepGroup {
	idx := map[string]int{}
	var groups []sweepGroup
	for _, r := range results {
		v := hostVerdict(r, ports)
		i, ok := idx[v]
		if !ok {
			i = len(groups)
			idx[v] = i
			groups = append(groups, sweepGroup{verdict: v, open: r.res.Count(probe.Open)})
		}
		groups[i].hosts = append(groups[i].hosts, r.target)
	}
	sort.SliceStable(groups, func(i, j int) bool {
		if groups[i].open != groups[j].open {
			return groups[i].open > groups[j].open
		}
		return len(groups[i].hosts) > len(groups[j].hosts)
	})
	return groups
}

// hostList writes a group's hosts: addresses as ranges in a subnet,
// inventory hosts by name and address.
func hostList(hosts []sweepTarget) string {
	var parts []string
	var run []netip.Addr
	flush := func() {
		if len(run) > 0 {
			parts = append(parts, addrRanges(run))
			run = nil
		}
	}
	for _, h := range hosts {
		if h.host != "" {
			flush()
			parts = append(parts, h.label())
			continue
		}
		run = append(run, h.addr)
	}
	flush()
	return strings.Join(parts, ", ")
}

// sweepReply is the one place a sweep becomes words: a row per group of
// hosts with the same result, so 256 hosts read as a few lines. allOpen
// makes the verdict /portcheck's (every port open on every host);
// otherwise /scan's (something open).
func sweepReply(title string, set targetSet, spec sweepSpec, results []hostResult, took time.Duration, allOpen bool) bot.Reply {
	groups := groupHosts(results, spec.ports)
	var (
		ran, openHosts, openPorts, probed int
		canceled, notRun                  bool
		counts                            = map[probe.State]int{}
		lossy, paced                      int
		maxRTT                            time.Duration
	)
	for _, r := range results {
		if !r.ran {
			notRun = true
			continue
		}
		ran++
		probed += len(r.res.Results)
		canceled = canceled || r.res.Canceled
		if n := r.res.Count(probe.Open); n > 0 {
			openHosts++
			openPorts += n
		}
		for _, x := range r.res.Results {
			counts[x.State]++
		}
		if r.res.Net.Retried > 0 && r.res.Net.Loss >= 0.005 {
			lossy++
		}
		if r.res.Net.Paced > 0 {
			paced++
		}
		maxRTT = max(maxRTT, r.res.Net.RTT)
	}
	reply := bot.Reply{Status: bot.StatusOK}
	everyOpen := ran == len(results) && openPorts == len(results)*len(spec.ports)
	if (allOpen && !everyOpen) || (!allOpen && openPorts == 0) || canceled {
		reply.Status = bot.StatusNegative
	}
	reply.Title = fmt.Sprintf("%s: %d hosts, %d with a port open (%d open ports)", title, len(results), openHosts, openPorts)
	if canceled || notRun && ran < len(results) {
		reply.Title = fmt.Sprintf("%s: %d of %d hosts checked, %d with a port open (%d open ports)", title, ran, len(results), openHosts, openPorts)
	}
	reply.Table = &bot.Table{Header: []string{"result", "hosts", "which"}}
	for _, g := range groups {
		reply.Table.Rows = append(reply.Table.Rows, []string{g.verdict, fmt.Sprint(len(g.hosts)), hostList(g.hosts)})
	}
	var states []string
	for _, st := range []probe.State{probe.Open, probe.Closed, probe.Filtered, probe.OpenFiltered} {
		if n := counts[st]; n > 0 {
			states = append(states, fmt.Sprintf("%d %s", n, st))
		}
	}
	if len(states) == 0 {
		states = []string{"none"}
	}
	hosts, _ := spec.inFlight()
	rate := "-"
	if took > 0 {
		rate = fmt.Sprintf("%.0f ports/s", float64(probed)/took.Seconds())
	}
	reply.Fields = []bot.Field{
		{Name: "hosts", Value: fmt.Sprintf("%d checked of %d, %d at a time", ran, len(results), hosts)},
		{Name: "ports", Value: strings.Join(states, ", ")},
		{Name: "duration", Value: human(took)},
		{Name: "rate", Value: rate},
	}
	notes := append([]string(nil), set.notes...)
	if len(set.refused) > 0 {
		notes = append(notes, "Not checked (policy): "+joinSemicolon(set.refused))
	}
	if lossy > 0 {
		notes = append(notes, fmt.Sprintf("On the way to %d hosts probes were lost; they were retried, so no port was judged on a lost probe.", lossy))
	}
	if paced > 0 {
		notes = append(notes, fmt.Sprintf("%d hosts (or a firewall on the way) limited new connections: paced.", paced))
	}
	var sharedSilent int
	var sharedTimeout time.Duration
	for _, r := range results {
		if r.shared > 0 && r.ran && r.res.Net.Answered == 0 {
			sharedSilent++
			sharedTimeout = max(sharedTimeout, r.shared)
		}
	}
	if sharedSilent > 0 {
		notes = append(notes, fmt.Sprintf("%d hosts answered nothing; a first try to them waited %s (%dx the slowest round trip measured in %s, at least %s), each retry longer: give a timeout to wait longer.",
			sharedSilent, human(sharedTimeout), sharedRTTs, set.what(), human(sharedFloor)))
	}
	if maxRTT >= 20*time.Millisecond {
		notes = append(notes, fmt.Sprintf("Round trips up to %s: each try waited for its host's.", human(maxRTT)))
	}
	if spec.proto == probe.UDP && counts[probe.OpenFiltered] > 0 {
		notes = append(notes, "open|filtered: no reply and no ICMP error (UDP is connectionless: a firewall that drops packets looks the same as an open port).")
	}
	reply.Text = strings.Join(notes, "\n")
	return reply
}
