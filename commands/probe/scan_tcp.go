package probe

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// pendingConn is a socket whose connect is in progress, handed from a
// connector to a waiter.
type pendingConn struct {
	fd    int
	i     int
	start time.Time
}

// tcpScan runs the TCP engine: a few connector goroutines (one per CPU) do
// the socket/connect/look path, which decides every loopback port without a
// goroutine switch or an allocation; only sockets still connecting are
// handed to waiter goroutines parked in the netpoller. Waiters are started
// on demand and reused, and slots bound sockets in flight to Concurrency.
type tcpScan struct {
	*scan
	next    atomic.Int64
	slots   chan struct{}
	waitq   chan pendingConn
	waiters sync.WaitGroup
	errOnce sync.Once
	err     error
	cancel  context.CancelFunc
}

// localErrorBudget is how long a local error (no descriptors, no ephemeral
// ports) may persist before the scan gives up instead of waiting forever.
const localErrorBudget = 5 * time.Second

func (s *scan) runTCP(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	ts := &tcpScan{
		scan:   s,
		slots:  make(chan struct{}, s.spec.Concurrency),
		waitq:  make(chan pendingConn),
		cancel: cancel,
	}
	connectors := min(runtime.GOMAXPROCS(0), s.spec.Concurrency, len(s.ports))
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

func (ts *tcpScan) connector(ctx context.Context) {
	t := ts.target.clone() // at() writes the port into it
	n := int64(len(ts.ports))
	for ctx.Err() == nil {
		i := int(ts.next.Add(1) - 1)
		if int64(i) >= n {
			return
		}
		if ts.wait(ctx, 1) != nil {
			return
		}
		select {
		case ts.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		if !ts.probe(ctx, t, i) {
			<-ts.slots
			return
		}
	}
}

// probe starts port i and either decides it or hands it to a waiter. It
// returns false if the scan must stop.
func (ts *tcpScan) probe(ctx context.Context, t *sockTarget, i int) bool {
	sa := t.at(ts.ports[i])
	var firstErr time.Time
	backoff := time.Millisecond
	for {
		start := time.Now()
		fd, st, rs, err := tcpStart(sa, t.family, nil)
		if err == nil {
			if st != 0 {
				ts.finish(i, st, rs, time.Since(start), 1)
				<-ts.slots
				return true
			}
			ts.handoff(ctx, pendingConn{fd: fd, i: i, start: start})
			return true
		}
		var le *errLocal
		if !errors.As(err, &le) || !le.transient() {
			ts.fail(fmt.Errorf("scan %s port %d: %w", ts.spec.Target, ts.ports[i], err))
			return false
		}
		// Out of descriptors or ephemeral ports: other probes will free
		// some; the port itself has not been asked yet.
		if firstErr.IsZero() {
			firstErr = start
		} else if time.Since(firstErr) > localErrorBudget {
			ts.fail(fmt.Errorf("scan %s port %d: %w", ts.spec.Target, ts.ports[i], err))
			return false
		}
		sleepCtx(ctx, backoff)
		if ctx.Err() != nil {
			return false
		}
		backoff = min(2*backoff, 50*time.Millisecond)
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
		st, rs, at, done := tcpWait(ctx, p.fd, p.start.Add(ts.spec.Timeout))
		if done {
			rtt := at.Sub(p.start)
			if rs == Timeout {
				rtt = 0
			}
			ts.finish(p.i, st, rs, rtt, 1)
		}
		<-ts.slots
		var ok bool
		if p, ok = <-ts.waitq; !ok {
			return
		}
	}
}
