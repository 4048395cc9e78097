package probe

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/internal/testenv"
)

// tcpListeners opens n loopback TCP listeners and returns their ports.
// fixedTCPListeners listens on n ports in [lo, hi) close together, trying a
// few random windows until all bind.
func fixedTCPListeners(t testing.TB, lo, hi uint16, n int) []uint16 {
	t.Helper()
	for range 20 {
		base := lo + uint16(rand.IntN(int(hi-lo)-4*n))
		var ports []uint16
		var lns []net.Listener
		for p := base; p < base+uint16(4*n) && len(ports) < n; p += 3 {
			l, err := net.Listen("tcp", netip.AddrPortFrom(loopback, p).String())
			if err != nil {
				continue
			}
			lns = append(lns, l)
			ports = append(ports, p)
		}
		if len(ports) < n {
			for _, l := range lns {
				_ = l.Close()
			}
			continue
		}
		for _, l := range lns {
			t.Cleanup(func() { _ = l.Close() })
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					_ = c.Close()
				}
			}()
		}
		return ports
	}
	t.Fatalf("no window of %d free ports in %d-%d", n, lo, hi)
	return nil
}

func tcpListeners(t testing.TB, n int) []uint16 {
	t.Helper()
	var ports []uint16
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { _ = l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				_ = c.Close()
			}
		}()
		ports = append(ports, uint16(l.Addr().(*net.TCPAddr).Port))
	}
	return ports
}

// udpResponder answers each datagram on addr with respond(req) (nothing if
// nil) until the test ends. It skips the test if addr cannot be bound (a
// privileged port without root).
func udpResponder(t *testing.T, addr string, respond func([]byte) []byte) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		missingInCI(t, fmt.Sprintf("binding %s needs root or a free port: %v", addr, err))
	}
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := respond(buf[:n]); resp != nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// freeLoopbackUDPPort gives a port on which nothing listens right now.
func freeLoopbackUDPPort(t *testing.T) uint16 {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	require.NoError(t, pc.Close())
	return port
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		missingInCI(t, "counting descriptors needs /proc: "+err.Error())
	}
	return len(ents)
}

func portRange(lo, hi uint16) []uint16 {
	var ps []uint16
	for p := int(lo); p <= int(hi); p++ { // int: a uint16 loop to 65535 never ends
		ps = append(ps, uint16(p))
	}
	return ps
}

var loopback = netip.MustParseAddr("127.0.0.1")

// missingInCI skips t for a missing dependency, or fails it when CI=true:
// CI must run every test.
func missingInCI(t *testing.T, why string) {
	t.Helper()
	testenv.Missing(t, "%s", why)
}
