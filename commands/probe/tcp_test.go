package probe

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestCheck_TCPListenerIsOpen(t *testing.T) {
	port := tcpListeners(t, 1)[0]
	res := Check(context.Background(), netip.AddrPortFrom(loopback, port), TCP, Options{})
	assert.Equal(t, Open, res.State)
	assert.Equal(t, Handshake, res.Reason)
	assert.Equal(t, 1, res.Tries)
	assert.Equal(t, TCP, res.Proto)
	assert.Positive(t, res.RTT)
}

func TestCheck_TCPRefusedIsClosed(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	require.NoError(t, l.Close())

	res := Check(context.Background(), netip.AddrPortFrom(loopback, port), TCP, Options{})
	assert.Equal(t, Closed, res.State)
	assert.Equal(t, Refused, res.Reason)
}

func TestCheck_TCPIPv6Loopback(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		missingInCI(t, "no IPv6 loopback: "+err.Error())
	}
	t.Cleanup(func() { _ = l.Close() })
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	res := Check(context.Background(), netip.AddrPortFrom(netip.IPv6Loopback(), port), TCP, Options{})
	assert.Equal(t, Open, res.State)
}

// A socket bound to the very port it connects to completes a simultaneous
// open with itself: what a scan of the bot's own host meets when the kernel
// picks the target port as source port. It must read closed.
func TestCheck_TCPSelfConnectIsClosed(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0") // a free port in the ephemeral range
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())

	bind := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
	res := checkTCP(context.Background(), netip.AddrPortFrom(loopback, uint16(port)), time.Second, bind)
	assert.Equal(t, Closed, res.State)
	assert.Equal(t, SelfConnect, res.Reason)
}

func TestTCPConnected_TellsSelfFromPeer(t *testing.T) {
	port := tcpListeners(t, 1)[0]
	c, err := net.Dial("tcp", netip.AddrPortFrom(loopback, port).String())
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	raw, err := c.(*net.TCPConn).SyscallConn()
	require.NoError(t, err)
	var st State
	var rs Reason
	require.NoError(t, raw.Control(func(fd uintptr) { st, rs = tcpConnected(int(fd)) }))
	assert.Equal(t, Open, st)
	assert.Equal(t, Handshake, rs)
}

func TestCheck_TCPCanceledContextGivesTimeout(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := Check(ctx, netip.AddrPortFrom(loopback, 9), TCP, Options{})
	assert.Equal(t, Filtered, res.State)
	assert.Equal(t, Timeout, res.Reason)
	assert.Zero(t, res.RTT)
}

func TestTCPClassify(t *testing.T) {
	tests := []struct {
		errno unix.Errno
		state State
		rs    Reason
	}{
		{unix.ECONNREFUSED, Closed, Refused},
		{unix.EHOSTUNREACH, Filtered, HostUnreachable},
		{unix.ENETUNREACH, Filtered, NetUnreachable},
		{unix.ETIMEDOUT, Filtered, Timeout},
		{unix.EPERM, Filtered, AdminProhibited},
	}
	for _, tt := range tests {
		st, rs, ok := tcpClassify(tt.errno)
		assert.True(t, ok, tt.errno.Error())
		assert.Equal(t, tt.state, st, tt.errno.Error())
		assert.Equal(t, tt.rs, rs, tt.errno.Error())
	}
	_, _, ok := tcpClassify(unix.EMFILE)
	assert.False(t, ok, "running out of descriptors says nothing about the port")
}
