package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// listen runs Listen in the background and hands its events to the test.
func listen(ctx context.Context, t *testing.T, spec ListenSpec) (<-chan ListenEvent, <-chan ListenSummary) {
	t.Helper()
	events := make(chan ListenEvent, 16)
	sums := make(chan ListenSummary, 1)
	go func() {
		sum, err := Listen(ctx, spec, func(ev ListenEvent) { events <- ev })
		assert.NoError(t, err)
		close(events)
		sums <- sum
	}()
	return events, sums
}

func next(t *testing.T, events <-chan ListenEvent) ListenEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		require.True(t, ok, "events ended early")
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	return ListenEvent{}
}

func TestListen_TCPReportsEachConnection(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, sums := listen(ctx, t, ListenSpec{Proto: TCP, Addr: netip.AddrPortFrom(loopback, 0), For: time.Minute})

	ev := next(t, events)
	require.Equal(t, Listening, ev.Kind)
	require.NotZero(t, ev.Local.Port())

	c, err := net.Dial("tcp", ev.Local.String())
	require.NoError(t, err)
	_, err = c.Write([]byte("hello\x00\n"))
	require.NoError(t, err)
	require.NoError(t, c.Close())

	ev2 := next(t, events)
	assert.Equal(t, Connection, ev2.Kind)
	assert.Equal(t, 7, ev2.Bytes)
	assert.Equal(t, `hello\x00\n`, ev2.Preview)
	assert.Equal(t, c.LocalAddr().(*net.TCPAddr).AddrPort(), ev2.From)
	assert.Equal(t, ev.Local, ev2.Local)

	cancel()
	end := next(t, events)
	assert.Equal(t, ListenClosed, end.Kind)
	assert.True(t, errors.Is(end.Err, context.Canceled))
	sum := <-sums
	assert.Equal(t, 1, sum.Connections)
	assert.Equal(t, 7, sum.Bytes)
}

func TestListen_TCPOpenConnectionIsReportedAtTheEnd(t *testing.T) {
	events, sums := listen(context.Background(), t, ListenSpec{Proto: TCP, Addr: netip.AddrPortFrom(loopback, 0), For: 300 * time.Millisecond})
	ev := next(t, events)
	c, err := net.Dial("tcp", ev.Local.String())
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	_, err = c.Write([]byte("x"))
	require.NoError(t, err)

	ev = next(t, events)
	assert.Equal(t, Connection, ev.Kind)
	assert.Equal(t, 1, ev.Bytes)
	end := next(t, events)
	assert.Equal(t, ListenClosed, end.Kind)
	assert.NoError(t, end.Err, "lifetime over")
	assert.Equal(t, 1, (<-sums).Connections)
}

func TestListen_UDPReportsEachDatagram(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, sums := listen(ctx, t, ListenSpec{Proto: UDP, Addr: netip.AddrPortFrom(loopback, 0), For: time.Minute})
	ev := next(t, events)
	require.Equal(t, Listening, ev.Kind)

	c, err := net.Dial("udp", ev.Local.String())
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	for _, msg := range []string{"one", "two!"} {
		_, err = c.Write([]byte(msg))
		require.NoError(t, err)
		ev := next(t, events)
		assert.Equal(t, Datagram, ev.Kind)
		assert.Equal(t, msg, ev.Preview)
		assert.Equal(t, len(msg), ev.Bytes)
		assert.Equal(t, c.LocalAddr().(*net.UDPAddr).AddrPort(), ev.From)
	}
	cancel()
	assert.Equal(t, ListenClosed, next(t, events).Kind)
	sum := <-sums
	assert.Equal(t, 2, sum.Datagrams)
	assert.Equal(t, 7, sum.Bytes)
}

func TestListen_BindErrorBeforeAnyEvent(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = busy.Close() }()
	calls := 0
	_, err = Listen(context.Background(), ListenSpec{Proto: TCP, Addr: busy.Addr().(*net.TCPAddr).AddrPort(), For: time.Second}, func(ListenEvent) { calls++ })
	assert.Error(t, err)
	assert.Zero(t, calls)

	_, err = Listen(context.Background(), ListenSpec{Proto: TCP, Addr: netip.AddrPortFrom(loopback, 0)}, nil)
	assert.Error(t, err, "a lifetime is required")
}

func TestPreview_EscapesNonPrintables(t *testing.T) {
	assert.Equal(t, `GET / HTTP/1.1\r\n`, preview([]byte("GET / HTTP/1.1\r\n")))
	assert.Equal(t, `\x00\xff`, preview([]byte{0, 0xff}))
	assert.Equal(t, `say \"hi\"`, preview([]byte(`say "hi"`)))
}
