package probe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// ScanSpec says what to scan and how hard.
type ScanSpec struct {
	Target      netip.Addr
	Proto       Proto
	Ports       []uint16      // as given; duplicates already removed by the caller; any order
	Timeout     time.Duration // a try's wait before the round trip is known, and its longest; 0 → 1.5s TCP, 1s UDP
	Retries     int           // UDP extra tries on silence, at least (more when the loss measured asks); 0 → 2
	Concurrency int           // most probes in flight; 0 → 1024; Scan lowers it to the share of the socket budget it gets
	Rate        float64       // most new probes per second; 0 → no limit
	// Sockets is the budget the scan draws on; nil is the process's
	// (Sockets()), which every scan, check and listener shares.
	Sockets *Budget
}

// Progress is a snapshot of a running scan.
type Progress struct {
	Done, Total, Open int
	Elapsed           time.Duration
}

// ScanResult is what a scan found.
type ScanResult struct {
	Results     []Result      // one per port, sorted by port
	Duration    time.Duration // wall time of the scan
	RateLimited bool          // UDP: the target's ICMP rate limit was detected and pacing engaged
	Canceled    bool          // ctx ended first; Results then hold only ports that finished
	Net         NetReport     // what the path did: round trip, loss, retries, pacing
}

// Count gives the number of ports in state s.
func (r ScanResult) Count(s State) int {
	n := 0
	for i := range r.Results {
		if r.Results[i].State == s {
			n++
		}
	}
	return n
}

// Ports gives the ports in state s, in ascending order.
func (r ScanResult) Ports(s State) []uint16 {
	var ps []uint16
	for i := range r.Results {
		if r.Results[i].State == s {
			ps = append(ps, r.Results[i].Target.Port())
		}
	}
	return ps
}

// Check probes one port (UDP for UDP, TCP for anything else). It never
// returns an error: a canceled ctx gives the state known so far
// (Filtered/Timeout or OpenFiltered/Silence).
//
// The check takes one socket from the socket budget first (opt.Sockets,
// nil: the process's). When none is free within the budget's wait, it
// probes all the same, on the reserve the budget keeps for the bot itself:
// a check is one socket, the job caps bound how many run, and a verdict is
// never given for a port that was not asked.
func Check(ctx context.Context, target netip.AddrPort, proto Proto, opt Options) Result {
	timeout := opt.Timeout
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	sockets := opt.Sockets
	if sockets == nil {
		sockets = Sockets()
	}
	if lease, err := sockets.One(ctx); err == nil {
		defer lease.Release()
	}
	if proto == UDP {
		return checkUDP(ctx, target, timeout, retries(opt.Retries))
	}
	return checkTCP(ctx, target, timeout, nil)
}

// Scan probes many ports of one address. progress, if not nil, is called
// from one goroutine at most every 100 ms while running and once at the end.
//
// It first reserves its share of the socket budget (spec.Sockets) and uses
// that as its concurrency; when no share is free within the budget's
// wait, it returns a *BusyError and probes nothing.
func Scan(ctx context.Context, spec ScanSpec, progress func(Progress)) (ScanResult, error) {
	if spec.Sockets == nil {
		spec.Sockets = Sockets()
	}
	want := spec.Concurrency
	if want <= 0 {
		want = DefaultConcurrency
	}
	lease, err := spec.Sockets.Reserve(ctx, min(want, max(len(spec.Ports), 1)))
	if err != nil {
		if ctx.Err() != nil {
			// Canceled while waiting for sockets: nothing decided.
			return ScanResult{Canceled: true}, nil
		}
		return ScanResult{}, err
	}
	defer lease.Release()
	spec.Concurrency = lease.N()
	s, err := newScan(spec)
	if err != nil {
		return ScanResult{}, err
	}
	stopProgress := s.reportProgress(progress)
	switch s.spec.Proto {
	case TCP:
		err = s.runTCP(ctx)
	case UDP:
		err = s.runUDP(ctx)
	}
	stopProgress()
	return s.result(ctx), err
}

// scan is the state shared by the workers of one Scan. results[i] belongs
// to ports[i] and is written by exactly one goroutine; the counters are what
// progress reads.
type scan struct {
	spec    ScanSpec
	target  *sockTarget
	ports   []uint16
	results []Result
	done    atomic.Int64
	open    atomic.Int64
	limiter *rate.Limiter
	start   time.Time
	ctl     *control

	rateLimited bool // UDP pacing saw a withheld ICMP
	icmpLimited bool // UDP: most witness rounds found the target short of ICMP tokens
}

func newScan(spec ScanSpec) (*scan, error) {
	if spec.Proto != TCP && spec.Proto != UDP {
		return nil, fmt.Errorf("scan: unknown protocol %d", spec.Proto)
	}
	if !spec.Target.IsValid() {
		return nil, errors.New("scan: no target address")
	}
	if len(spec.Ports) == 0 {
		return nil, errors.New("scan: no ports")
	}
	ports := slices.Clone(spec.Ports)
	slices.Sort(ports)
	ports = slices.Compact(ports)
	if ports[0] == 0 {
		return nil, errors.New("scan: port 0 cannot be probed")
	}
	t, err := newSockTarget(spec.Target)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", spec.Target, err)
	}
	if spec.Timeout <= 0 {
		spec.Timeout = DefaultScanTCPTimeout
		if spec.Proto == UDP {
			spec.Timeout = DefaultScanUDPTimeout
		}
	}
	spec.Retries = retries(spec.Retries)
	if spec.Concurrency <= 0 {
		spec.Concurrency = DefaultConcurrency
	}
	if spec.Sockets == nil {
		spec.Sockets = Sockets()
	}
	spec.Concurrency = min(spec.Concurrency, spec.Sockets.Total())
	s := &scan{spec: spec, target: t, ports: ports, results: make([]Result, len(ports)), start: time.Now(),
		ctl: newControl(spec.Timeout, spec.Concurrency, len(ports))}
	if spec.Rate > 0 {
		// A burst of about 10 ms worth keeps the limiter from waking per
		// probe at high rates, and is at least a UDP pacing round.
		burst := max(int(spec.Rate/100), udpRoundBatch+1)
		s.limiter = rate.NewLimiter(rate.Limit(spec.Rate), burst)
	}
	for i, p := range ports {
		s.results[i].Target = netip.AddrPortFrom(spec.Target, p)
		s.results[i].Proto = spec.Proto
	}
	return s, nil
}

// finish records a decided port. It is called once per port.
func (s *scan) finish(i int, st State, rs Reason, rtt time.Duration, tries int) {
	r := &s.results[i]
	r.State, r.Reason, r.RTT, r.Tries = st, rs, rtt, tries
	if st == Open {
		s.open.Add(1)
	}
	s.done.Add(1)
}

func (s *scan) wait(ctx context.Context, n int) error {
	if s.limiter == nil {
		return nil
	}
	return s.limiter.WaitN(ctx, n)
}

func (s *scan) reportProgress(progress func(Progress)) (stop func()) {
	if progress == nil {
		return func() {}
	}
	snapshot := func() Progress {
		return Progress{Done: int(s.done.Load()), Total: len(s.ports), Open: int(s.open.Load()), Elapsed: time.Since(s.start)}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				progress(snapshot())
			}
		}
	})
	return func() {
		close(quit)
		wg.Wait() // the last call below must not overlap a tick's call
		progress(snapshot())
	}
}

func (s *scan) result(ctx context.Context) ScanResult {
	r := ScanResult{Duration: time.Since(s.start), RateLimited: s.rateLimited, Results: s.results, Net: s.ctl.report(s.icmpLimited)}
	if int(s.done.Load()) < len(s.ports) {
		// Canceled, or stopped by a local error: keep only decided ports.
		r.Canceled = ctx.Err() != nil
		r.Results = slices.DeleteFunc(s.results, func(res Result) bool { return res.State == 0 })
	}
	return r
}

// probeOrder gives the order of first tries: the ports of the scan that
// are often open (the top ports of the services table) first, then the
// rest, each part shuffled.
func probeOrder(ports []uint16) []int32 {
	var common, rest []int32
	for i, p := range ports {
		if isCommonPort(p) {
			common = append(common, int32(i))
		} else {
			rest = append(rest, int32(i))
		}
	}
	// An order, not a secret: math/rand is enough.
	rand.Shuffle(len(common), func(a, b int) { common[a], common[b] = common[b], common[a] }) //nolint:gosec // see above
	rand.Shuffle(len(rest), func(a, b int) { rest[a], rest[b] = rest[b], rest[a] })           //nolint:gosec // see above
	return append(common, rest...)
}
