package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// ListenSpec says what to listen on and for how long.
type ListenSpec struct {
	Proto Proto
	Addr  netip.AddrPort // bind address and port; unspecified address = all
	For   time.Duration  // lifetime; required > 0
}

// ListenEventKind says what a ListenEvent reports.
type ListenEventKind uint8

// Listen event kinds, in the order they can happen. The last is
// ListenClosed, not Closed as first drafted: Closed is already the port
// State, and one package cannot declare both.
const (
	Listening ListenEventKind = iota + 1
	Connection
	Datagram
	ListenClosed
)

// ListenEvent is one thing that happened to a listener.
type ListenEvent struct {
	Kind    ListenEventKind
	Time    time.Time
	From    netip.AddrPort
	Local   netip.AddrPort
	Bytes   int    // bytes received on that connection (until EOF/idle/limit) or in that datagram
	Preview string // first 64 bytes, non-printables escaped (%q-style without quotes)
	Err     error  // ListenClosed: why (nil = lifetime over)
}

// ListenSummary totals a listener's life.
type ListenSummary struct {
	Connections, Datagrams, Bytes int
	Duration                      time.Duration
}

// Limits of a listener: it reports that something arrived and what it
// began with, so it never needs much of any one connection.
const (
	listenMaxConns   = 64
	listenReadLimit  = 64 << 10
	listenIdle       = time.Second
	listenPreviewLen = 64
)

// Listen binds first (an error — port in use, permission — returns at once,
// before any event), then reports events from one goroutine until For
// elapses or ctx ends, then closes everything it opened.
func Listen(ctx context.Context, spec ListenSpec, events func(ListenEvent)) (ListenSummary, error) {
	if spec.For <= 0 {
		return ListenSummary{}, errors.New("listen: lifetime must be positive")
	}
	if events == nil {
		events = func(ListenEvent) {}
	}
	addr := net.JoinHostPort(bindHost(spec.Addr.Addr()), strconv.Itoa(int(spec.Addr.Port())))
	var lc net.ListenConfig
	l := &listener{events: make(chan ListenEvent), start: time.Now()}
	// The listening socket and (TCP) the connections it holds at once
	// come from the process's socket budget.
	take := Sockets().One
	if spec.Proto == TCP {
		take = func(ctx context.Context) (*Lease, error) { return Sockets().Reserve(ctx, 1+listenMaxConns) }
	}
	lease, err := take(ctx)
	if err != nil {
		return ListenSummary{}, err
	}
	defer lease.Release()
	switch spec.Proto {
	case TCP:
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return ListenSummary{}, fmt.Errorf("listen tcp %s: %w", addr, err)
		}
		l.closer, l.local = ln, addrPortOfNet(ln.Addr())
		conns := max(lease.N()-1, 1)
		l.wg.Go(func() { l.acceptTCP(ln, conns) })
	case UDP:
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return ListenSummary{}, fmt.Errorf("listen udp %s: %w", addr, err)
		}
		l.closer, l.local = pc, addrPortOfNet(pc.LocalAddr())
		l.wg.Go(func() { l.readUDP(pc) })
	default:
		return ListenSummary{}, fmt.Errorf("listen: unknown protocol %d", spec.Proto)
	}
	return l.run(ctx, spec.For, events), nil
}

// bindHost gives the host part for net.Listen; an invalid or unspecified
// address binds all addresses of both families.
func bindHost(a netip.Addr) string {
	if !a.IsValid() || a.IsUnspecified() {
		return ""
	}
	return a.String()
}

type listener struct {
	closer io.Closer
	local  netip.AddrPort
	start  time.Time
	events chan ListenEvent // from the reading goroutines to run, which alone calls back
	wg     sync.WaitGroup   // the accept or read loop and the connections

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  bool
}

// run delivers events until the lifetime is over or ctx ends, then closes
// the socket and every connection, delivers what they still report, and
// ends with the ListenClosed event.
func (l *listener) run(ctx context.Context, life time.Duration, events func(ListenEvent)) ListenSummary {
	var sum ListenSummary
	deliver := func(ev ListenEvent) {
		switch ev.Kind {
		case Connection:
			sum.Connections++
		case Datagram:
			sum.Datagrams++
		}
		sum.Bytes += ev.Bytes
		events(ev)
	}
	deliver(ListenEvent{Kind: Listening, Time: time.Now(), Local: l.local})
	timer := time.NewTimer(life)
	defer timer.Stop()
	var why error
loop:
	for {
		select {
		case ev := <-l.events:
			deliver(ev)
		case <-timer.C:
			break loop
		case <-ctx.Done():
			why = ctx.Err()
			break loop
		}
	}
	l.shutdown()
	finished := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(finished)
	}()
	for {
		select {
		case ev := <-l.events:
			deliver(ev)
		case <-finished:
			sum.Duration = time.Since(l.start)
			deliver(ListenEvent{Kind: ListenClosed, Time: time.Now(), Local: l.local, Err: why})
			return sum
		}
	}
}

// shutdown closes the socket and cuts the reads of open connections short,
// so that each still reports what it received.
func (l *listener) shutdown() {
	l.mu.Lock()
	l.done = true
	for c := range l.conns {
		_ = c.SetReadDeadline(time.Unix(1, 0))
	}
	l.mu.Unlock()
	_ = l.closer.Close()
}

func (l *listener) acceptTCP(ln net.Listener, conns int) {
	slots := make(chan struct{}, conns)
	for {
		slots <- struct{}{} // at the limit, further connections wait in the backlog
		c, err := ln.Accept()
		if err != nil {
			<-slots
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: pause instead of spinning.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !l.track(c) {
			_ = c.Close()
			<-slots
			return
		}
		l.wg.Go(func() {
			defer func() { <-slots }()
			l.serveTCP(c)
		})
	}
}

func (l *listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return false
	}
	if l.conns == nil {
		l.conns = map[net.Conn]struct{}{}
	}
	l.conns[c] = struct{}{}
	return true
}

// serveTCP reads until EOF, an idle second, the limit, or shutdown, and
// reports the connection once.
func (l *listener) serveTCP(c net.Conn) {
	at := time.Now()
	var head []byte
	total := 0
	buf := make([]byte, 4096)
	for total < listenReadLimit {
		l.mu.Lock()
		if !l.done {
			_ = c.SetReadDeadline(time.Now().Add(listenIdle))
		}
		l.mu.Unlock()
		n, err := c.Read(buf[:min(len(buf), listenReadLimit-total)])
		total += n
		if len(head) < listenPreviewLen {
			head = append(head, buf[:min(n, listenPreviewLen-len(head))]...)
		}
		if err != nil {
			break
		}
	}
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	_ = c.Close()
	l.events <- ListenEvent{Kind: Connection, Time: at, From: addrPortOfNet(c.RemoteAddr()), Local: addrPortOfNet(c.LocalAddr()), Bytes: total, Preview: preview(head)}
}

func (l *listener) readUDP(pc net.PacketConn) {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // an ICMP error from an earlier reply of ours, for instance
		}
		l.events <- ListenEvent{Kind: Datagram, Time: time.Now(), From: addrPortOfNet(from), Local: l.local, Bytes: n, Preview: preview(buf[:min(n, listenPreviewLen)])}
	}
}

// preview escapes like %q without the quotes, so that a preview is one
// printable line whatever arrived.
func preview(b []byte) string {
	q := strconv.Quote(string(b))
	return q[1 : len(q)-1]
}

func addrPortOfNet(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case *net.UDPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
