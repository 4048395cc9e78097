package probe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// tcpScan runs the TCP engine. A few connector goroutines (one per CPU) do
// the socket/connect/look path, which decides every loopback port without
// a goroutine switch; only sockets still connecting are handed to waiter
// goroutines parked in the netpoller. The path model (adapt.go) sets how
// long a try waits, how many tries a silent port gets, how many tries are
// in flight and how fast they go out.
//
// Every try has a socket of its own. A try whose timeout passes is not
// closed at once: it keeps listening while the next try goes out, so a
// late answer still decides the port, and an answer to a later try proves
// the earlier ones lost.
type tcpScan struct {
	*scan
	ctl     *control
	order   []int32 // ports in the order of their first try: shuffled
	next    atomic.Int64
	slots   chan struct{} // tries open: Concurrency, less a spare socket per connector when spares
	spares  bool          // connectors keep a refused try's socket for their next try
	waitq   chan pendingConn
	kick    chan struct{} // a retry was queued or the last port decided
	waiters sync.WaitGroup
	errOnce sync.Once
	err     error
	cancel  context.CancelFunc

	mu        sync.Mutex
	port      []tcpPort
	retryq    []int32
	undecided int
	// Liveness: a port that answered, probed again while the target is
	// quiet (nmap's timing pings), so that silence from a target that is
	// still there reads filtered and silence from one that went away does
	// not.
	responsive int // a port that answered; -1 until one did
	pingDue    bool
	pinging    bool
	lastPing   time.Time
	unanswered int // pings unanswered since the last answer
	// Evidence: behind a firewall that drops most ports, the few that
	// answer say too little about the path's loss, and a silent port needs
	// many tries before it may be called filtered. Probes of a port that
	// answered closed (a RST costs the target nothing) measure the loss
	// instead, a few at a time, until the number of tries stops falling.
	closedPort int      // a port that answered closed; -1 until one did
	evPings    int      // evidence probes in flight
	evLost     []*epoch // of evidence probes unanswered since the last answered one
	evDone     atomic.Bool
	parked     []int32 // silent ports waiting for the target to show it is alive
	// quietWake: parked is empty and unanswered is 0, so an answer has
	// nothing to wake; read without the lock on every answer.
	quietWake atomic.Bool
}

// tcpPort is what the engine knows of one port while it runs. It holds no
// pointer until a try of the port has to wait for its answer: a loopback
// or LAN scan, whose tries the kernel decides at once, keeps 65535 of them
// in 1.5 MB the garbage collector need not scan.
type tcpPort struct {
	tries   uint8
	queued  bool          // a retry waits in retryq
	decided bool          //
	parked  bool          // in tcpScan.parked
	sent    time.Duration // when the last try went out, from the scan's start
	w       *tcpWaiting
}

// tcpWaiting is what a port needs once a try of it waits for an answer.
type tcpWaiting struct {
	open   []*os.File // sockets of tries still listening
	epochs []*epoch   // the interval of each try that waited, by try-1; nil for one decided at once
}

func (p *tcpPort) waiting(try int, e *epoch, f *os.File) {
	if p.w == nil {
		p.w = &tcpWaiting{epochs: make([]*epoch, 0, 4)}
	}
	for len(p.w.epochs) < try {
		p.w.epochs = append(p.w.epochs, nil)
	}
	p.w.epochs[try-1] = e
	p.w.open = append(p.w.open, f)
}

// dropOpen forgets f among the port's listening sockets. A probe of a
// decided port (a ping) may have none: its port never waited.
func (p *tcpPort) dropOpen(f *os.File) {
	if p.w != nil {
		p.w.open = slicesDelete(p.w.open, f)
	}
}

// listening is the number of the port's sockets still waiting for an answer.
func (p *tcpPort) listening() int {
	if p.w == nil {
		return 0
	}
	return len(p.w.open)
}

// tryEpochs gives the intervals of the port's tries that waited.
func (p *tcpPort) tryEpochs() []*epoch {
	if p.w == nil {
		return nil
	}
	return p.w.epochs
}

// pendingConn is a socket whose connect is in progress, handed from a
// connector to a waiter.
type pendingConn struct {
	f    *os.File
	i    int
	try  int // 1-based
	sent time.Time
	rto  time.Duration
	e    *epoch
	kind tryKind
}

// tryKind tells a try of a port from a probe of a port already decided.
type tryKind uint8

const (
	portTry  tryKind = iota
	livePing         // is the target still there?
	evidence         // what does the path lose?
)

// evidencePings is how many evidence probes may be in flight at once.
const evidencePings = 16

// kernelSYNRetry is when Linux sends a connecting socket's SYN again (its
// initial RTO). An answer after it may answer the kernel's SYN, not ours:
// it decides the port but is no round-trip sample.
const kernelSYNRetry = time.Second

// stretched is the timeout of a port's later tries, as TCP backs off
// its retransmission timer: a port still silent after a few tries is more
// likely meeting congestion or a rate limit than the fourth loss in a row,
// and its next tries should outlast the scan's slowing down.
// A path that has lost nothing and never congested gives no reason to.
func stretched(rto time.Duration, try int, troubled bool) time.Duration {
	if try <= backoffAfter || !troubled {
		return rto
	}
	return rto << min(try-backoffAfter, 2)
}

const backoffAfter = 3

// localErrorBudget is how long a local error (no descriptors, no ephemeral
// ports) may persist before the scan gives up instead of waiting forever.
const localErrorBudget = 5 * time.Second

func (s *scan) runTCP(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	connectors := min(runtime.GOMAXPROCS(0), s.spec.Concurrency, len(s.ports))
	// A connector keeps the socket of a refused try for its next try
	// (tcpStart's spare): those sockets come out of the scan's share too,
	// so that the scan never holds more than its lease.
	tries := s.spec.Concurrency
	spares := reuseRefused && tries > 2*connectors
	if spares {
		tries -= connectors
	}
	ts := &tcpScan{
		scan:       s,
		ctl:        s.ctl,
		spares:     spares,
		slots:      make(chan struct{}, tries),
		waitq:      make(chan pendingConn),
		kick:       make(chan struct{}, 1),
		cancel:     cancel,
		port:       make([]tcpPort, len(s.ports)),
		undecided:  len(s.ports),
		responsive: -1,
		closedPort: -1,
	}
	// A random order spreads a firewall's closed ranges over the whole
	// scan, so that the loss and answer rates measured early hold for the
	// rest, and a target that stops answering shows as a change.
	// Ports that are often open go first: their answers give the first
	// round-trip samples even behind a firewall that drops the rest.
	ts.order = probeOrder(s.ports)
	ts.quietWake.Store(true)

	var wg sync.WaitGroup
	for range connectors {
		wg.Go(func() { ts.connector(ctx) })
	}
	wg.Wait()
	close(ts.waitq) // no connector sends any more
	ts.waiters.Wait()
	return ts.err
}

func (ts *tcpScan) fail(err error) {
	ts.errOnce.Do(func() {
		ts.err = err
		ts.cancel()
	})
}

func (ts *tcpScan) poke() {
	select {
	case ts.kick <- struct{}{}:
	default:
	}
}

// take gives the next port to try: a queued retry first, then a port not
// yet tried. It waits while every remaining port is in flight, and
// returns false when every port is decided or ctx ends.
func (ts *tcpScan) take(ctx context.Context) (i int, retry bool, kind tryKind, ok bool) {
	for {
		ts.mu.Lock()
		if ts.pingDue && ts.undecided > 0 {
			ts.pingDue, ts.pinging, ts.lastPing = false, true, time.Now()
			i = ts.responsive
			ts.mu.Unlock()
			return i, false, livePing, true // a probe of a decided port is no retry
		}
		if ts.closedPort >= 0 && ts.evPings < evidencePings && ts.undecided > evidencePings && !ts.evDone.Load() {
			want, final := ts.ctl.needEvidence()
			if want {
				ts.evPings++
				i = ts.closedPort
				ts.mu.Unlock()
				return i, false, evidence, true
			}
			ts.evDone.Store(final)
		}
		if len(ts.retryq) > 0 {
			i = int(ts.retryq[0])
			ts.retryq = ts.retryq[1:]
			ts.port[i].queued = false
			ts.mu.Unlock()
			return i, true, portTry, true
		}
		undecided := ts.undecided
		var release []int32
		if ts.goneLocked() {
			release, ts.parked = ts.parked, nil
			ts.quietWake.Store(ts.unanswered == 0)
			for _, i := range release {
				ts.port[i].parked = false
			}
		} else if len(ts.parked) > 0 && ts.responsive >= 0 && !ts.pinging && !ts.pingDue && time.Since(ts.lastPing) > ts.ctl.rto() {
			ts.pingDue = true
		}
		ts.mu.Unlock()
		for _, i := range release {
			ts.settle(int(i))
		}
		if k := ts.next.Add(1) - 1; k < int64(len(ts.order)) {
			return int(ts.order[k]), false, portTry, true
		}
		ts.next.Add(-1) // keep it from growing without bound while idle
		if undecided == 0 {
			ts.poke() // wake the other connectors too
			return 0, false, portTry, false
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ts.kick:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		if ctx.Err() != nil {
			return 0, false, portTry, false
		}
	}
}

func (ts *tcpScan) connector(ctx context.Context) {
	t := ts.target.clone() // at() writes the port into it
	defer func() {
		if t.spare >= 0 {
			closeFD(t.spare)
		}
	}()
	for ctx.Err() == nil {
		i, retry, kind, ok := ts.take(ctx)
		if !ok {
			return
		}
		if ts.wait(ctx, 1) != nil {
			return
		}
		e, err := ts.ctl.acquire(ctx, retry)
		if err != nil {
			return
		}
		select {
		case ts.slots <- struct{}{}:
		case <-ctx.Done():
			ts.ctl.release()
			return
		}
		if !ts.probe(ctx, t, i, e, kind) {
			return
		}
	}
}

// probe sends one try to port i and either decides the port or hands the
// socket to a waiter. It returns false if the scan must stop.
func (ts *tcpScan) probe(ctx context.Context, t *sockTarget, i int, e *epoch, kind tryKind) bool {
	sa := t.at(ts.ports[i])
	var spare *int
	if ts.spares {
		spare = &t.spare
	}
	var firstErr time.Time
	backoff := time.Millisecond
	for {
		start := time.Now()
		fd, st, rs, err := tcpStart(sa, t.family, nil, spare)
		if err == nil {
			ts.mu.Lock()
			p := &ts.port[i]
			if kind != portTry {
				ts.mu.Unlock()
				ping := pendingConn{i: i, try: 1, sent: start, e: e, kind: kind}
				if st != 0 {
					ts.ctl.release()
					ts.answered(ping, st, rs, time.Now())
					<-ts.slots
					return true
				}
				// A late answer to a ping is an answer, not a loss: it
				// waits twice the timeout of a try.
				ping.f, ping.rto = os.NewFile(uintptr(fd), "tcp-ping"), 2*ts.ctl.rto()
				ts.handoff(ctx, ping)
				return true
			}
			if p.decided { // a late answer to an earlier try came first
				ts.mu.Unlock()
				if fd >= 0 {
					closeFD(fd)
				}
				ts.ctl.release()
				<-ts.slots
				return true
			}
			try := int(min(p.tries, maxTriesAll-1)) + 1
			p.tries = uint8(try)
			p.sent = start.Sub(ts.start)
			if st != 0 && try == 1 {
				ts.decidedAtOnce(i, st, rs, e, time.Since(start))
				return true
			}
			if st != 0 {
				ts.mu.Unlock()
				ts.ctl.release()
				ts.answered(pendingConn{i: i, try: try, sent: start, e: e}, st, rs, time.Now())
				<-ts.slots
				return true
			}
			f := os.NewFile(uintptr(fd), "tcp-probe")
			p.waiting(try, e, f)
			ts.mu.Unlock()
			ts.handoff(ctx, pendingConn{f: f, i: i, try: try, sent: start, rto: stretched(ts.ctl.rto(), try, ts.ctl.troubled()), e: e})
			return true
		}
		var le *errLocal
		if !errors.As(err, &le) || !le.transient() {
			ts.ctl.release()
			<-ts.slots
			ts.fail(fmt.Errorf("scan %s port %d: %w", ts.spec.Target, ts.ports[i], err))
			return false
		}
		// Out of descriptors or ephemeral ports: other probes will free
		// some; the port itself has not been asked yet.
		if firstErr.IsZero() {
			firstErr = start
		} else if time.Since(firstErr) > localErrorBudget {
			ts.ctl.release()
			<-ts.slots
			ts.fail(fmt.Errorf("scan %s port %d: %w", ts.spec.Target, ts.ports[i], err))
			return false
		}
		sleepCtx(ctx, backoff)
		if ctx.Err() != nil {
			ts.ctl.release()
			<-ts.slots
			return false
		}
		backoff = min(2*backoff, 50*time.Millisecond)
	}
}

// decidedAtOnce decides port i from the first try, which the local kernel
// answered within connect(2): a loopback or LAN port. It is answered()
// without what only a try that waited needs; ts.mu is held and released.
func (ts *tcpScan) decidedAtOnce(i int, st State, rs Reason, e *epoch, rtt time.Duration) {
	p := &ts.port[i]
	if st == Closed || st == Open {
		ts.responsive = i
	}
	if st == Closed && ts.closedPort < 0 {
		ts.closedPort = i
	}
	p.decided = true
	ts.undecided--
	last := ts.undecided == 0
	ts.mu.Unlock()
	ts.ctl.answerAtOnce(e, rtt)
	ts.finish(i, st, rs, rtt, 1)
	<-ts.slots
	ts.wake()
	if last {
		ts.poke()
	}
}

func (ts *tcpScan) handoff(ctx context.Context, p pendingConn) {
	select {
	case ts.waitq <- p: // an idle waiter took it
	default:
		ts.waiters.Add(1)
		go ts.waiter(ctx, p)
	}
}

func (ts *tcpScan) waiter(ctx context.Context, p pendingConn) {
	defer ts.waiters.Done()
	for {
		ts.serve(ctx, p)
		var ok bool
		if p, ok = <-ts.waitq; !ok {
			return
		}
	}
}

// serve waits for the answer to one try. Until its timeout the try holds
// a slot of the window; then a retry is queued (if the port has tries
// left) and the socket keeps listening for a late answer until the retry
// itself would time out.
func (ts *tcpScan) serve(ctx context.Context, p pendingConn) {
	defer func() {
		ts.forget(p)
		<-ts.slots
	}()
	st, rs, at, done := fileWait(ctx, p.f, p.sent, p.rto, ts.ctl.rto)
	ts.ctl.release()
	if ctx.Err() != nil {
		return
	}
	if done {
		ts.answered(p, st, rs, at)
		return
	}
	switch p.kind {
	case livePing:
		ts.mu.Lock()
		ts.pinging = false
		ts.unanswered++
		ts.quietWake.Store(false)
		ts.mu.Unlock()
		return
	case evidence:
		ts.mu.Lock()
		ts.evPings--
		if len(ts.evLost) < 4*evidencePings {
			ts.evLost = append(ts.evLost, p.e)
		}
		ts.mu.Unlock()
		return
	}
	if ts.isDecided(p.i) {
		return // woken: another try of this port was answered
	}
	ts.ctl.timeout()
	ts.retry(p.i)
	// A try sent before the round trip was known waited the timeout the
	// round trip then gave (fileWait's current), not the scan's longest:
	// so does its late listening.
	rto := min(p.rto, stretched(ts.ctl.rto(), p.try, ts.ctl.troubled()))
	st, rs, at, done = fileWait(ctx, p.f, p.sent, max(rto, min(2*rto+rto/2, kernelSYNRetry-50*time.Millisecond)), nil)
	if ctx.Err() != nil {
		return
	}
	if done {
		ts.answered(p, st, rs, at)
		return
	}
	ts.giveUp(p)
}

func (ts *tcpScan) isDecided(i int) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.port[i].decided
}

// forget closes the socket of a try and drops it from its port.
func (ts *tcpScan) forget(p pendingConn) {
	ts.mu.Lock()
	ts.port[p.i].dropOpen(p.f)
	ts.mu.Unlock()
	_ = p.f.Close()
}

// slicesDelete removes f from open, if there, without keeping the order.
func slicesDelete(open []*os.File, f *os.File) []*os.File {
	for k, g := range open {
		if g == f {
			open[k] = open[len(open)-1]
			return open[:len(open)-1]
		}
	}
	return open
}

// retry queues port i for another try if it has tries left.
func (ts *tcpScan) retry(i int) {
	n := ts.ctl.tries()
	ts.mu.Lock()
	p := &ts.port[i]
	if p.decided || p.queued || int(p.tries) >= n || ts.goneLocked() {
		ts.mu.Unlock()
		return
	}
	p.queued = true
	ts.retryq = append(ts.retryq, int32(i)) //nolint:gosec // i indexes the scan's ports: at most 65535
	ts.mu.Unlock()
	ts.poke()
}

// giveUp is called when the socket of a try stops listening.
func (ts *tcpScan) giveUp(p pendingConn) {
	ts.mu.Lock()
	ts.port[p.i].dropOpen(p.f)
	ts.mu.Unlock()
	ts.settle(p.i)
}

// settle decides a silent port with no try under way: another try, if
// the loss measured asks for more; a wait, if the target has not answered
// anything since the port's last try (a target that went away is silent
// everywhere, a firewall only where it drops); or filtered.
func (ts *tcpScan) settle(i int) {
	n := ts.ctl.tries()
	ts.mu.Lock()
	port := &ts.port[i]
	if port.decided || port.queued || port.parked || port.listening() > 0 {
		ts.mu.Unlock()
		return
	}
	gone := ts.goneLocked()
	clean, pending := 0, 0
	for _, e := range port.tryEpochs() {
		if e == nil {
			continue
		}
		switch ok, later := ts.ctl.fate(e); {
		case ok:
			clean++
		case later:
			pending++
		}
	}
	// Only tries sent while the path was not congested count. Tries whose
	// interval is not judged yet are waited for (woken, as parked ports
	// are, by the next answer), not doubled by another try: a long round
	// trip makes that wait long, and every try holds a socket.
	wait := clean < n && clean+pending >= n && ts.responsive >= 0
	if clean < n && !gone && !wait && int(port.tries) < maxTriesAll {
		port.queued = true
		ts.retryq = append(ts.retryq, int32(i)) //nolint:gosec // i indexes the scan's ports: at most 65535
		ts.mu.Unlock()
		ts.poke()
		return
	}
	if !gone && (wait || ts.ctl.answeredAny() && !ts.ctl.answeredSince(ts.start.Add(port.sent))) {
		port.parked = true
		ts.parked = append(ts.parked, int32(i)) //nolint:gosec // i indexes the scan's ports: at most 65535
		ts.quietWake.Store(false)
		if ts.responsive >= 0 && !ts.pinging && !ts.pingDue {
			ts.pingDue = true
		}
		ts.mu.Unlock()
		ts.poke()
		return
	}
	port.decided = true
	ts.undecided--
	last := ts.undecided == 0
	tries := int(port.tries)
	ts.mu.Unlock()
	sure := ts.ctl.sure(clean)
	ts.results[i].Doubtful = gone || !sure || clean < n
	ts.finish(i, Filtered, Timeout, 0, tries)
	if last {
		ts.poke()
	}
}

// goneLocked reports whether the target stopped answering: silent ports
// wait for it, it has been silent far longer than its round trip, and
// pings of a port that answered before went unanswered too. Its silent
// ports are then unknown, not filtered.
func (ts *tcpScan) goneLocked() bool {
	ts.maybePingLocked()
	if !ts.ctl.silentLonger() || (ts.responsive >= 0 && ts.unanswered < 3) {
		return false
	}
	ts.ctl.markStopped()
	return true
}

// maybePingLocked asks for a liveness probe when the target has been
// silent for a few round trips and none is under way.
func (ts *tcpScan) maybePingLocked() {
	if ts.responsive >= 0 && !ts.pinging && !ts.pingDue && ts.undecided > 0 &&
		ts.ctl.silentFor() > 2*minRTO && // without a lock: a busy scan stops here
		time.Since(ts.lastPing) > ts.ctl.rto() && ts.ctl.silentFor() > 2*ts.ctl.rto() {
		ts.pingDue = true
	}
}

// wake settles the parked ports after an answer: the target is there.
func (ts *tcpScan) wake() {
	if ts.quietWake.Load() {
		return // nothing parked, no ping unanswered: the common case
	}
	ts.mu.Lock()
	ts.unanswered = 0
	release := ts.parked
	ts.parked = nil
	ts.quietWake.Store(true)
	for _, i := range release {
		ts.port[i].parked = false
	}
	ts.mu.Unlock()
	for _, i := range release {
		ts.settle(int(i))
	}
}

// answered decides port p.i from an answer to try p.try, unless another
// answer came first.
func (ts *tcpScan) answered(p pendingConn, st State, rs Reason, at time.Time) {
	switch p.kind {
	case livePing:
		ts.mu.Lock()
		ts.pinging = false
		ts.mu.Unlock()
		ts.ctl.answer(p.e, at.Sub(p.sent), nil)
		ts.wake()
		return
	case evidence:
		// Evidence probes unanswered before this one were lost: the
		// target answered them before and answers now.
		ts.mu.Lock()
		ts.evPings--
		lost := ts.evLost
		ts.evLost = nil
		ts.mu.Unlock()
		ts.ctl.answer(p.e, at.Sub(p.sent), lost)
		ts.wake()
		return
	}
	defer ts.wake()
	ts.mu.Lock()
	port := &ts.port[p.i]
	if st == Closed || st == Open {
		ts.responsive = p.i
	}
	if st == Closed && ts.closedPort < 0 {
		ts.closedPort = p.i
	}
	if port.decided {
		ts.mu.Unlock()
		return
	}
	port.decided = true
	ts.undecided--
	last := ts.undecided == 0
	tries := int(port.tries)
	var lost []*epoch
	for _, e := range port.tryEpochs()[:min(p.try-1, len(port.tryEpochs()))] {
		if e != nil {
			lost = append(lost, e)
		}
	}
	if port.w != nil {
		for _, f := range port.w.open {
			if f != p.f {
				_ = f.SetWriteDeadline(time.Unix(1, 0)) // wake its waiter
			}
		}
	}
	ts.mu.Unlock()
	rtt := at.Sub(p.sent)
	ts.ctl.answer(p.e, rtt, lost)
	ts.finish(p.i, st, rs, rtt, tries)
	if last {
		ts.poke()
	}
}
