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

// A refused socket is connected again by the next try: closed ports keep
// reading closed, a listener after them reads open on the same socket, and
// nothing is left open but the one spare.
func TestTCPStart_ReusesARefusedSocket(t *testing.T) {
	if !reuseRefused {
		t.Skip("only Linux connects a refused socket again")
	}
	open := tcpListeners(t, 1)[0]
	var closed []uint16
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		closed = append(closed, uint16(l.Addr().(*net.TCPAddr).Port))
		require.NoError(t, l.Close())
	}
	target, err := newSockTarget(loopback)
	require.NoError(t, err)
	tg := target.clone()
	require.Equal(t, -1, tg.spare)

	var first int
	for k, p := range closed {
		fd, st, rs, err := tcpStart(tg.at(p), tg.family, nil, &tg.spare)
		require.NoError(t, err)
		assert.Equal(t, -1, fd)
		assert.Equal(t, Closed, st, "port %d", p)
		assert.Equal(t, Refused, rs)
		require.GreaterOrEqual(t, tg.spare, 0, "the refused socket is kept")
		if k == 0 {
			first = tg.spare
		}
		assert.Equal(t, first, tg.spare, "and the same one is used again")
	}
	fd, st, _, err := tcpStart(tg.at(open), tg.family, nil, &tg.spare)
	require.NoError(t, err)
	assert.Equal(t, -1, fd)
	assert.Equal(t, Open, st, "a listener answers the reused socket")
	assert.Equal(t, -1, tg.spare, "a connected socket is closed, not kept")
}
