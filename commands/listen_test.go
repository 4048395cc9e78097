package commands

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/probe"
)

func TestListen_TwentyThousandConnectionsPostTheFirstTenThenCount(t *testing.T) {
	l := NewListen(time.Minute)
	const n = 20000
	l.listen = func(_ context.Context, _ probe.ListenSpec, ev func(probe.ListenEvent)) (probe.ListenSummary, error) {
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		ev(probe.ListenEvent{Kind: probe.Listening, Time: now})
		for i := range n {
			from := netip.AddrPortFrom(netip.MustParseAddr(fmt.Sprintf("10.0.0.%d", 1+i%3)), uint16(40000+i%1000))
			ev(probe.ListenEvent{Kind: probe.Connection, Time: now, From: from})
		}
		return probe.ListenSummary{Connections: n, Duration: time.Minute}, nil
	}
	st := &recordingStream{}
	r, err := l.Run(context.Background(), bot.Request{Args: []string{"3873"}, Stream: st})
	require.NoError(t, err)
	assert.Len(t, st.posts, 1+listenShown, "the listening notice and the first connections, one message each")
	require.NotEmpty(t, st.progress)
	last := st.progress[len(st.progress)-1]
	assert.Equal(t, "Listening on tcp port 3873: 19990 more connections after the first 10, 0 bytes, from 3 addresses", last.Title)
	assert.Equal(t, "Listener on tcp port 3873 closed after 1m0s: 20000 connections, 0 bytes", r.Title)
	assert.Contains(t, r.Text, "The first 10 are posted one by one; 19990 more connections (0 bytes) came from 10.0.0.2 (6664), 10.0.0.1 (6663), 10.0.0.3 (6663).")
}

func TestListen_SendersPastTheBoundAreCountedTogether(t *testing.T) {
	l := NewListen(time.Minute)
	l.listen = func(_ context.Context, _ probe.ListenSpec, ev func(probe.ListenEvent)) (probe.ListenSummary, error) {
		for i := range listenShown + listenMaxSources + 7 {
			a := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
			ev(probe.ListenEvent{Kind: probe.Datagram, From: netip.AddrPortFrom(a, 9), Bytes: 1})
		}
		return probe.ListenSummary{Datagrams: listenShown + listenMaxSources + 7}, nil
	}
	st := &recordingStream{}
	r, err := l.Run(context.Background(), bot.Request{Args: []string{"5353", "udp"}, Stream: st})
	require.NoError(t, err)
	assert.Len(t, st.posts, listenShown)
	assert.Contains(t, r.Text, "995 other address(es), 7 more from addresses not counted one by one")
	assert.Contains(t, r.Text, fmt.Sprintf("%d more datagrams (%d bytes)", listenMaxSources+7, listenMaxSources+7))
}
