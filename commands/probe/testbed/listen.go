package testbed

import (
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listenBacklog is a real backlog: a small one (python's http.server has 5)
// overflows under a scan, and every dropped SYN costs a 1 s retransmit.
const listenBacklog = 4096

// socketInNetns creates a dual-stack socket bound to [::]:port inside the
// target namespace, so one listener serves the IPv4 and IPv6 addresses.
func (tg *Target) socketInNetns(typ int, port uint16) (*os.File, error) {
	var fd int
	err := tg.inNetns(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET6, typ|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		fail := func(what string, err error) error {
			_ = unix.Close(fd)
			return fmt.Errorf("%s: %w", what, err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fail("SO_REUSEADDR", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return fail("IPV6_V6ONLY", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrInet6{Port: int(port)}); err != nil {
			return fail("bind", err)
		}
		if typ == unix.SOCK_STREAM {
			if err := unix.Listen(fd, listenBacklog); err != nil {
				return fail("listen", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), fmt.Sprintf("%s:[::]:%d", tg.Netns, port)), nil
}

// ListenTCP listens on port (IPv4 and IPv6) in the target namespace and
// accepts and closes every connection until teardown, or until the test
// that asked for it ends.
func (tg *Target) ListenTCP(t testing.TB, port uint16) net.Listener {
	t.Helper()
	f, err := tg.socketInNetns(unix.SOCK_STREAM, port)
	if err != nil {
		t.Fatalf("testbed: tcp listener %s port %d: %v", tg.Netns, port, err)
	}
	ln, err := net.FileListener(f)
	_ = f.Close() // FileListener holds its own duplicate
	if err != nil {
		t.Fatalf("testbed: tcp listener %s port %d: %v", tg.Netns, port, err)
	}
	b := tg.bed
	if !b.addCloser(ln.Close) {
		_ = ln.Close()
		t.Fatal("testbed: bed already torn down")
	}
	t.Cleanup(func() { _ = ln.Close() })
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				time.Sleep(10 * time.Millisecond) // EMFILE and the like: back off, keep serving
				continue
			}
			_ = c.Close()
		}
	}()
	return ln
}

// ListenUDP binds port (IPv4 and IPv6) in the target namespace. Each
// datagram goes to respond; a non-nil answer is sent back to its sender.
// respond nil, or returning nil, makes a listener that never answers.
func (tg *Target) ListenUDP(t testing.TB, port uint16, respond func(req []byte) []byte) net.PacketConn {
	t.Helper()
	f, err := tg.socketInNetns(unix.SOCK_DGRAM, port)
	if err != nil {
		t.Fatalf("testbed: udp socket %s port %d: %v", tg.Netns, port, err)
	}
	pc, err := net.FilePacketConn(f)
	_ = f.Close()
	if err != nil {
		t.Fatalf("testbed: udp socket %s port %d: %v", tg.Netns, port, err)
	}
	b := tg.bed
	if !b.addCloser(pc.Close) {
		_ = pc.Close()
		t.Fatal("testbed: bed already torn down")
	}
	t.Cleanup(func() { _ = pc.Close() })
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // e.g. a queued ICMP error from an earlier reply
			}
			if respond == nil {
				continue
			}
			req := append([]byte(nil), buf[:n]...)
			if out := respond(req); out != nil {
				_, _ = pc.WriteTo(out, from)
			}
		}
	}()
	return pc
}
