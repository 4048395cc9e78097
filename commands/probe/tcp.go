package probe

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// errLocal wraps failures on our side of the socket (no descriptors, no
// ephemeral ports, no route table entry for the family). They say nothing
// about the port, so callers retry or give up instead of reporting a state.
type errLocal struct {
	op    string
	errno unix.Errno
}

func (e *errLocal) Error() string { return e.op + ": " + e.errno.Error() }
func (e *errLocal) Unwrap() error { return e.errno }

// transient reports whether waiting a little may cure the local error.
func (e *errLocal) transient() bool {
	switch e.errno {
	case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM, unix.EADDRNOTAVAIL, unix.EAGAIN, unix.EADDRINUSE, unix.EINTR:
		return true
	}
	return false
}

// tcpClassify maps a finished connect's errno to the port state it proves.
// ok is false for errors that are about us, not about the port.
func tcpClassify(errno unix.Errno) (State, Reason, bool) {
	switch errno {
	case unix.ECONNREFUSED, unix.ECONNRESET:
		return Closed, Refused, true
	case unix.EHOSTUNREACH, unix.EHOSTDOWN:
		return Filtered, HostUnreachable, true
	case unix.ENETUNREACH, unix.ENETDOWN:
		return Filtered, NetUnreachable, true
	case unix.ETIMEDOUT:
		return Filtered, Timeout, true
	case unix.EACCES, unix.EPERM:
		// A local firewall (netfilter OUTPUT reject/drop) or a broadcast
		// destination: the port cannot be reached by policy.
		return Filtered, AdminProhibited, true
	}
	return 0, 0, false
}

// reuseRefused: a socket whose connect was refused is connected again by
// the next try (spare in tcpStart). Linux returns such a socket to
// unconnected and releases its source port; other kernels are not relied
// on for that.
const reuseRefused = runtime.GOOS == "linux"

// tcpStart opens a non-blocking socket and starts connecting it. A state of
// 0 with a nil error means the connect is in progress and fd is open for
// tcpWait; otherwise fd is already closed, or, when the port refused and
// spare is given, kept in *spare for the next try to connect again (which
// saves a socket(2) and a close(2) per closed port: a third of a loopback
// scan's system time). The loopback answer (RST or
// SYN-ACK) is processed by the kernel before connect returns to user space,
// so the immediate SO_ERROR / getpeername check decides most local probes
// without a trip through the poller.
func tcpStart(sa unix.Sockaddr, family int, bind unix.Sockaddr, spare *int) (fd int, st State, rs Reason, err error) {
	reused := reuseRefused && spare != nil && *spare >= 0
	if reused {
		fd, *spare = *spare, -1
	} else if fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
		return -1, 0, 0, &errLocal{"socket", errnoOf(err)}
	}
	if bind != nil {
		// Test hook: a fixed source port makes a self-connect certain.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if err = unix.Bind(fd, bind); err != nil {
			_ = unix.Close(fd)
			return -1, 0, 0, &errLocal{"bind", errnoOf(err)}
		}
	}
	err = unix.Connect(fd, sa)
	if reused && errors.Is(err, unix.ECONNABORTED) {
		// The first connect of a refused socket only returns it to
		// unconnected (Linux reports the old attempt's end): connect again.
		err = unix.Connect(fd, sa)
	}
	if reused && err != nil && !errors.Is(err, unix.EINPROGRESS) && !errors.Is(err, unix.EINTR) {
		if _, _, ok := tcpClassify(errnoOf(err)); !ok {
			// The kernel would not connect the old socket again: a
			// fresh one decides, as if nothing had been reused.
			_ = unix.Close(fd)
			return tcpStart(sa, family, bind, nil)
		}
	}
	switch {
	case err == nil:
		st, rs = tcpConnected(fd)
	case errors.Is(err, unix.EINPROGRESS) || errors.Is(err, unix.EINTR):
		var done bool
		if st, rs, done = tcpPoll(fd); !done {
			return fd, 0, 0, nil
		}
	default:
		errno := errnoOf(err)
		var ok bool
		if st, rs, ok = tcpClassify(errno); !ok {
			_ = unix.Close(fd)
			return -1, 0, 0, &errLocal{"connect", errno}
		}
	}
	if reuseRefused && spare != nil && rs == Refused && bind == nil {
		// A connect that was refused leaves the socket unconnected, its
		// source port released (Linux): the next try may connect it
		// again, which saves a socket(2) and a close(2) per closed port.
		*spare = fd
		return -1, st, rs, nil
	}
	_ = unix.Close(fd)
	return -1, st, rs, nil
}

// tcpPoll looks at a connecting socket without blocking; done is false while
// the handshake is still under way.
func tcpPoll(fd int) (State, Reason, bool) {
	e, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && e != 0 {
		if st, rs, ok := tcpClassify(unix.Errno(e)); ok {
			return st, rs, true
		}
		// An error about us (rare: ENOBUFS while connecting) still ends this
		// attempt; the port did not answer in a way we can read.
		return Filtered, Timeout, true
	}
	if _, err := unix.Getpeername(fd); err != nil {
		return 0, 0, false // ENOTCONN: still connecting
	}
	st, rs := tcpConnected(fd)
	return st, rs, true
}

// tcpConnected tells a real handshake from a socket the kernel connected to
// itself: a scan of our own address can be given a source port equal to the
// target port (simultaneous open), and then nothing listens there at all.
func tcpConnected(fd int) (State, Reason) {
	local, err1 := unix.Getsockname(fd)
	peer, err2 := unix.Getpeername(fd)
	if err1 == nil && err2 == nil && sameSockaddr(local, peer) {
		return Closed, SelfConnect
	}
	return Open, Handshake
}

// fileWait waits through the netpoller for the connect on f to finish,
// until sent+timeout, and leaves f open. If current is not nil, the wait
// also ends once sent plus what current gives has passed: a try sent
// before the round trip was known stops waiting when it becomes known.
// A deadline set on f from elsewhere (the port was decided) ends the wait
// early with done false. done is true only for an answer: a handshake, a
// refusal or an ICMP error.
func fileWait(ctx context.Context, f *os.File, sent time.Time, timeout time.Duration, current func() time.Duration) (st State, rs Reason, at time.Time, done bool) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, 0, time.Now(), false
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		deadline := sent.Add(timeout)
		if current != nil {
			// Look again at least every 50 ms while the estimate may move.
			if look := time.Now().Add(50 * time.Millisecond); look.Before(deadline) {
				deadline = look
			}
		}
		if err := f.SetWriteDeadline(deadline); err != nil {
			return 0, 0, time.Now(), false
		}
		if ctx.Err() != nil {
			return 0, 0, time.Now(), false
		}
		werr := rc.Write(func(s uintptr) bool {
			st, rs, done = tcpPoll(int(s))
			return done
		})
		at = time.Now()
		if !done && errors.Is(werr, os.ErrDeadlineExceeded) {
			// The deadline and the answer may both have come before this
			// goroutine ran again (a busy machine): look once more, so
			// that an answer already there is not taken for silence.
			_ = rc.Control(func(s uintptr) { st, rs, done = tcpPoll(int(s)) })
		}
		if done {
			if rs == Timeout { // the kernel gave up, or a local error: no answer
				return 0, 0, at, false
			}
			return st, rs, at, true
		}
		if ctx.Err() != nil || !errors.Is(werr, os.ErrDeadlineExceeded) {
			return 0, 0, at, false
		}
		if current == nil {
			return 0, 0, at, false
		}
		timeout = min(timeout, current())
		if !at.Before(sent.Add(timeout)) {
			return 0, 0, at, false
		}
		// Woken early by our own 50 ms look, or by a deadline set from
		// elsewhere: the caller tells them apart by the port's state.
		if at.Before(deadline) {
			return 0, 0, at, false
		}
	}
}

func closeFD(fd int) { _ = unix.Close(fd) }

// checkTCP is Check for TCP. bind is a test hook (nil in production).
func checkTCP(ctx context.Context, target netip.AddrPort, timeout time.Duration, bind unix.Sockaddr) Result {
	res := Result{Target: target, Proto: TCP, State: Filtered, Reason: Timeout}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	t, err := newSockTarget(target.Addr())
	if err != nil {
		res.Reason = NetUnreachable
		return res
	}
	sa := t.at(target.Port())
	backoff := time.Millisecond
	for ctx.Err() == nil && time.Now().Before(deadline) {
		start := time.Now()
		fd, st, rs, err := tcpStart(sa, t.family, bind, nil)
		if err != nil {
			var le *errLocal
			if errors.As(err, &le) && le.transient() {
				sleepCtx(ctx, backoff)
				backoff = min(2*backoff, 100*time.Millisecond)
				continue
			}
			// No way to send a SYN there from here (no IPv6, bad zone).
			res.Reason = NetUnreachable
			return res
		}
		res.Tries++
		if st != 0 {
			res.State, res.Reason, res.RTT = st, rs, time.Since(start)
			return res
		}
		f := os.NewFile(uintptr(fd), "tcp-probe")
		st, rs, at, done := fileWait(ctx, f, start, deadline.Sub(start), nil)
		_ = f.Close()
		if !done {
			return res // Filtered/Timeout: what is known when time or ctx ran out
		}
		res.State, res.Reason, res.RTT = st, rs, at.Sub(start)
		return res
	}
	return res
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// errnoOf extracts the errno from a x/sys/unix error (they are bare Errnos).
func errnoOf(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return unix.EINVAL
}
