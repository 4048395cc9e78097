package probe

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// udpScan runs a UDP scan in passes. The first pass probes every port once,
// concurrently. Silent ports are then either retried blindly (no closed
// port known: nothing to compare with) or, once a closed port is known,
// re-probed in paced rounds (udp_pacing.go) that tell a port which is
// silent because it is open or filtered from one whose ICMP error the
// target's rate limit swallowed.
type udpScan struct {
	*scan
	tries     []int  // probes sent per port; one goroutine per index at a time
	witnessed []bool // silent, and a later probe in the same round drew an ICMP error
	// witnessCount: rounds that witnessed the port (pacing goroutine only)
	witnessCount []int

	mu      sync.Mutex
	closed  []int // ports known closed by an ICMP error from the target itself
	maxRTT  atomic.Int64
	errOnce sync.Once
	err     error
	cancel  context.CancelFunc
}

func (s *scan) runUDP(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	u := &udpScan{scan: s, tries: make([]int, len(s.ports)), witnessed: make([]bool, len(s.ports)), witnessCount: make([]int, len(s.ports)), cancel: cancel}
	all := make([]int, len(s.ports))
	for i := range all {
		all[i] = i
	}
	silent := u.pass(ctx, all, s.spec.Timeout)
	// Blind passes: every silent port again, as many times as the loss
	// measured asks for (a port that answers a later pass proves its
	// earlier probes lost, or its ICMP errors withheld by a rate limit:
	// either way, silence needs more tries). Once a closed port is known
	// and the target's ICMP errors look rate-limited, witness rounds
	// (below) take over.
	for pass := 1; len(silent) > 0 && ctx.Err() == nil && u.err == nil; pass++ {
		need := max(1+s.spec.Retries, min(s.ctl.tries(), udpMaxPasses))
		if pass >= need || (pass > s.spec.Retries && u.control() >= 0 && u.rateLimited) {
			break
		}
		silent = u.pass(ctx, silent, u.passTimeout())
	}
	if len(silent) > 0 && ctx.Err() == nil && u.control() >= 0 && u.err == nil {
		silent = u.pace(ctx, silent)
		// Witnessed ports are not closed, but a slow reply to the short
		// pacing round may have been missed: give them their remaining
		// tries with the full timeout, all at once.
		var short []int
		for _, i := range silent {
			if u.witnessed[i] && u.tries[i] < max(1+s.spec.Retries, min(s.ctl.tries(), udpMaxPasses)) {
				short = append(short, i)
			}
		}
		if len(short) > 0 && ctx.Err() == nil {
			u.pass(ctx, short, u.passTimeout())
			silent = slices.DeleteFunc(silent, func(i int) bool { return s.results[i].State != 0 })
		}
	}
	if ctx.Err() == nil && u.err == nil {
		for _, i := range silent {
			s.results[i].Witnessed = u.witnessed[i]
			s.finish(i, OpenFiltered, Silence, 0, u.tries[i])
		}
	}
	return u.err
}

// udpMaxPasses bounds the blind passes over silent ports.
const udpMaxPasses = 6

// passTimeout is the wait of a pass after the first: a few round trips as
// measured, within the scan's timeout.
func (u *udpScan) passTimeout() time.Duration {
	if !u.ctl.haveRTTNow() {
		return u.spec.Timeout
	}
	return min(max(3*u.ctl.rto(), 50*time.Millisecond), u.spec.Timeout)
}

// control gives a port known closed, or -1.
func (u *udpScan) control() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.closed) == 0 {
		return -1
	}
	return u.closed[len(u.closed)-1]
}

// decide records an answer for port i.
func (u *udpScan) decide(i int, a udpAnswer, sent time.Time) {
	r := &u.results[i]
	r.Bytes, r.Service, r.ICMPFrom = a.bytes, a.service, a.from
	rtt := max(a.at.Sub(sent), 0)
	u.ctl.udpAnswer(rtt, u.tries[i]-1)
	if a.icmpError() {
		if rtt > time.Duration(u.maxRTT.Load()) {
			u.maxRTT.Store(int64(rtt)) // racy max; an estimate is all pacing needs
		}
		if a.state == Closed && (!a.from.IsValid() || a.from == u.spec.Target.Unmap()) {
			u.mu.Lock()
			u.closed = append(u.closed, i)
			u.mu.Unlock()
		}
		if u.tries[i] > 1 && a.state == Closed {
			// Silent before, closed now: an ICMP error was withheld.
			u.mu.Lock()
			u.rateLimited = true
			u.mu.Unlock()
		}
	}
	u.witnessed[i] = false
	u.finish(i, a.state, a.reason, rtt, u.tries[i])
}

// pass probes each port in idx once, at most Concurrency at a time, waiting
// up to timeout for each, and returns the ports that stayed silent, sorted.
func (u *udpScan) pass(ctx context.Context, idx []int, timeout time.Duration) []int {
	var next atomic.Int64
	silentMask := make([]bool, len(idx))
	var wg sync.WaitGroup
	for range min(u.spec.Concurrency, len(idx)) {
		wg.Go(func() {
			t := u.target.clone()
			b := new(udpBuffers)
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= len(idx) || u.wait(ctx, 1) != nil {
					return
				}
				if !u.probeOnce(ctx, t, idx[k], timeout, b) {
					silentMask[k] = true
				}
			}
		})
	}
	wg.Wait()
	var silent []int
	for k, i := range idx {
		if silentMask[k] && u.results[i].State == 0 {
			silent = append(silent, i)
		}
	}
	return silent
}

// probeOnce sends one probe to port i and waits for its answer; false means
// silence.
func (u *udpScan) probeOnce(ctx context.Context, t *sockTarget, i int, timeout time.Duration, b *udpBuffers) bool {
	port := u.ports[i]
	var p *udpProbe
	var firstErr time.Time
	backoff := time.Millisecond
	for p == nil {
		var st State
		var rs Reason
		var err error
		start := time.Now()
		p, st, rs, err = openUDP(t.at(port), t.family, port)
		if st != 0 {
			u.tries[i]++
			u.decide(i, udpAnswer{state: st, reason: rs, at: start}, start)
			return true
		}
		if err == nil {
			break
		}
		var le *errLocal
		if !errors.As(err, &le) || !le.transient() || (!firstErr.IsZero() && time.Since(firstErr) > localErrorBudget) {
			u.fail(fmt.Errorf("scan %s port %d/udp: %w", u.spec.Target, port, err))
			return true // not silent: the port is simply not done
		}
		if firstErr.IsZero() {
			firstErr = start
		}
		sleepCtx(ctx, backoff)
		if ctx.Err() != nil {
			return true
		}
		backoff = min(2*backoff, 50*time.Millisecond)
	}
	defer p.close()
	sent := time.Now()
	u.tries[i]++
	a, ok := p.send(b.oob[:])
	if !ok {
		a, ok = p.await(ctx, sent.Add(timeout), b.buf[:], b.oob[:])
	}
	if ok {
		u.decide(i, a, sent)
		return true
	}
	return ctx.Err() != nil // canceled: not silent, unfinished
}

func (u *udpScan) fail(err error) {
	u.errOnce.Do(func() {
		u.err = err
		u.cancel()
	})
}
