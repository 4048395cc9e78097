package probe

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// udpAnswer is what came back for a UDP probe: a datagram or an ICMP error.
type udpAnswer struct {
	state   State
	reason  Reason
	bytes   int
	service string
	from    netip.Addr // ICMP sender, when the kernel said
	at      time.Time
}

// icmpError reports whether the answer is an ICMP error (as opposed to data
// or a local refusal), i.e. something the target's ICMP rate limit governs.
func (a udpAnswer) icmpError() bool {
	switch a.reason {
	case PortUnreachable, HostUnreachable, NetUnreachable, AdminProhibited:
		return true
	}
	return false
}

// udpClassifyErrno maps the errno a connected UDP socket returns after an
// ICMP error. Without IP_RECVERR (other systems) this is all we learn.
func udpClassifyErrno(errno unix.Errno) (State, Reason, bool) {
	switch errno {
	case unix.ECONNREFUSED:
		return Closed, PortUnreachable, true
	case unix.EHOSTUNREACH, unix.EHOSTDOWN, unix.ENOPROTOOPT:
		return Filtered, HostUnreachable, true
	case unix.ENETUNREACH, unix.ENETDOWN:
		return Filtered, NetUnreachable, true
	case unix.EACCES, unix.EPERM:
		return Filtered, AdminProhibited, true // our own firewall refused the send
	}
	return 0, 0, false
}

// icmpClassify maps an ICMP destination-unreachable type and code (RFC 792,
// RFC 1812 §5.2.7.1, RFC 4443 §3.1) to a port state. Other ICMP messages
// (fragmentation needed, time exceeded) say nothing about the port.
func icmpClassify(v6 bool, typ, code uint8) (State, Reason, bool) {
	if v6 {
		if typ != 1 {
			return 0, 0, false
		}
		switch code {
		case 0:
			return Filtered, NetUnreachable, true
		case 1, 5, 6:
			return Filtered, AdminProhibited, true
		case 4:
			return Closed, PortUnreachable, true
		}
		return Filtered, HostUnreachable, true
	}
	if typ != 3 {
		return 0, 0, false
	}
	switch code {
	case 3:
		return Closed, PortUnreachable, true
	case 0, 6, 11:
		return Filtered, NetUnreachable, true
	case 9, 10, 13, 14, 15:
		return Filtered, AdminProhibited, true
	case 4:
		return 0, 0, false // fragmentation needed: path MTU, not the port
	}
	return Filtered, HostUnreachable, true
}

// udpProbe is one connected UDP socket used for one port: connected so that
// the kernel hands us the ICMP errors for it and filters out datagrams from
// anyone but the target.
type udpProbe struct {
	fd      int
	f       *os.File // set once the socket waits in the poller; owns fd then
	rc      syscall.RawConn
	svc     *udpService
	tok     token
	payload []byte
}

// openUDP connects a socket to sa. A synchronous error from connect (no
// route) decides the port: then st != 0 and p is nil.
func openUDP(sa unix.Sockaddr, family int, port uint16) (p *udpProbe, st State, rs Reason, err error) {
	for range 3 {
		fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, 0, 0, &errLocal{"socket", errnoOf(err)}
		}
		setRecvErr(fd, family)
		if err := unix.Connect(fd, sa); err != nil {
			_ = unix.Close(fd)
			errno := errnoOf(err)
			if st, rs, ok := udpClassifyErrno(errno); ok {
				return nil, st, rs, nil
			}
			return nil, 0, 0, &errLocal{"connect", errno}
		}
		// A probe of our own address can be given the target port as its
		// source port; the socket would then receive its own datagram and
		// read as open. Take another source port instead.
		if local, err := unix.Getsockname(fd); err == nil && sameSockaddr(local, sa) {
			_ = unix.Close(fd)
			continue
		}
		p := &udpProbe{fd: fd, svc: serviceFor(port), tok: newToken()}
		if p.svc != nil {
			p.payload = p.svc.build(&p.tok)
		}
		return p, 0, 0, nil
	}
	return nil, 0, 0, &errLocal{"connect", unix.EADDRINUSE}
}

func (p *udpProbe) close() {
	if p.f != nil {
		_ = p.f.Close()
		return
	}
	_ = unix.Close(p.fd)
}

// send writes the payload. An error left by an earlier try's ICMP message
// comes back here, and decides the port.
func (p *udpProbe) send(oob []byte) (udpAnswer, bool) {
	var err error
	if p.rc != nil {
		werr := p.rc.Write(func(fd uintptr) bool {
			_, err = unix.Write(int(fd), p.payload)
			return !errors.Is(err, unix.EAGAIN)
		})
		if err == nil {
			err = werr
		}
	} else {
		_, err = unix.Write(p.fd, p.payload)
	}
	if err == nil {
		return udpAnswer{}, false
	}
	if a, ok := p.readErr(oob); ok {
		return a, true
	}
	if st, rs, ok := udpClassifyErrno(errnoOf(err)); ok {
		return udpAnswer{state: st, reason: rs, at: time.Now()}, true
	}
	return udpAnswer{}, false
}

// poll looks for a reply or an error without blocking.
func (p *udpProbe) poll(fd int, buf, oob []byte) (udpAnswer, bool) {
	for range 4 {
		n, _, _, _, err := unix.Recvmsg(fd, buf, nil, recvTruncFlag)
		if err == nil {
			a := udpAnswer{state: Open, reason: Reply, bytes: n, at: time.Now()}
			a.service = recognizeAny(p.svc, buf[:min(n, len(buf))], &p.tok)
			return a, true
		}
		errno := errnoOf(err)
		if errno == unix.EAGAIN || errno == unix.EWOULDBLOCK {
			break
		}
		if errno == unix.EINTR {
			continue
		}
		// sk_err from an ICMP error; IP_RECVERR queued the details.
		if a, ok := p.readErr(oob); ok {
			return a, true
		}
		if st, rs, ok := udpClassifyErrno(errno); ok {
			return udpAnswer{state: st, reason: rs, at: time.Now()}, true
		}
	}
	// The errno may already have been consumed (by send); the error queue
	// still holds the message.
	return p.readErr(oob)
}

func (p *udpProbe) readErr(oob []byte) (udpAnswer, bool) {
	a, ok := readErrQueue(p.fd, oob)
	if ok {
		a.at = time.Now()
	}
	return a, ok
}

// await waits in the netpoller for an answer until deadline or ctx ends.
func (p *udpProbe) await(ctx context.Context, deadline time.Time, buf, oob []byte) (udpAnswer, bool) {
	if a, ok := p.poll(p.fd, buf, oob); ok {
		return a, true // loopback answers before we get here
	}
	if p.f == nil {
		p.f = os.NewFile(uintptr(p.fd), "udp-probe")
		rc, err := p.f.SyscallConn()
		if err != nil {
			return udpAnswer{}, false
		}
		p.rc = rc
	}
	if err := p.f.SetReadDeadline(deadline); err != nil {
		return udpAnswer{}, false
	}
	stop := context.AfterFunc(ctx, func() { _ = p.f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var a udpAnswer
	var ok bool
	_ = p.rc.Read(func(fd uintptr) bool {
		a, ok = p.poll(int(fd), buf, oob)
		return ok
	})
	return a, ok
}

// udpBuffers are per-goroutine scratch space: the reply (enough to
// recognise any of our protocols; the true size comes from MSG_TRUNC) and
// the control message of an ICMP error.
type udpBuffers struct {
	buf [2048]byte
	oob [512]byte
}

// checkUDP is Check for UDP: one socket, up to 1+retries probes on it, any
// answer to any of them decides.
func checkUDP(ctx context.Context, target netip.AddrPort, timeout time.Duration, retries int) Result {
	res := Result{Target: target, Proto: UDP, State: OpenFiltered, Reason: Silence}
	t, err := newSockTarget(target.Addr())
	if err != nil {
		res.State, res.Reason = Filtered, NetUnreachable
		return res
	}
	var p *udpProbe
	backoff := time.Millisecond
	for p == nil {
		var st State
		var rs Reason
		p, st, rs, err = openUDP(t.at(target.Port()), t.family, target.Port())
		switch {
		case st != 0:
			res.State, res.Reason = st, rs
			return res
		case err != nil:
			var le *errLocal
			if !errors.As(err, &le) || !le.transient() || ctx.Err() != nil {
				res.State, res.Reason = Filtered, NetUnreachable
				return res
			}
			sleepCtx(ctx, backoff)
			backoff = min(2*backoff, 100*time.Millisecond)
		}
	}
	defer p.close()
	b := new(udpBuffers)
	for try := 0; try <= retries && ctx.Err() == nil; try++ {
		start := time.Now()
		a, ok := p.send(b.oob[:])
		res.Tries++
		if !ok {
			a, ok = p.await(ctx, start.Add(timeout), b.buf[:], b.oob[:])
		}
		if ok {
			res.apply(a, start)
			return res
		}
	}
	return res
}

func (r *Result) apply(a udpAnswer, sent time.Time) {
	r.State, r.Reason, r.Bytes, r.Service, r.ICMPFrom = a.state, a.reason, a.bytes, a.service, a.from
	r.RTT = max(a.at.Sub(sent), 0)
}
