package probe

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// testLoopbackAddr gives a loopback address of its own to each test, so a
// well-known port (53, 123, 161) is free there whatever the machine runs on
// 127.0.0.1.
func testLoopbackAddr() string {
	return fmt.Sprintf("127.77.%d.%d", rand.IntN(250)+1, rand.IntN(250)+1)
}

// Minimal servers: each answers what the probe sends as the real server
// would, written from the RFCs like the builders, so the test checks the
// recognizer against an independent answer.
func dnsServer(req []byte) []byte {
	if len(req) < 12 || req[2]&0x80 != 0 {
		return nil
	}
	resp := append([]byte(nil), req...)
	resp[2] |= 0x80 // QR
	resp[3] = 5     // RCODE REFUSED: an answer all the same
	return resp
}

func ntpServer(req []byte) []byte {
	if len(req) < 48 || req[0]&7 != 3 {
		return nil
	}
	resp := make([]byte, 48)
	resp[0] = 4<<3 | 4
	resp[1] = 2
	copy(resp[24:32], req[40:48])
	return resp
}

func snmpServer(req []byte) []byte {
	// The GetRequest back as a GetResponse (tag 0xa2) is a valid SNMP message.
	_, msg, _, ok := berRead(req)
	if !ok {
		return nil
	}
	_, _, rest, _ := berRead(msg) // version
	_, _, rest, _ = berRead(rest) // community
	if len(rest) == 0 || rest[0] != 0xa0 {
		return nil
	}
	resp := append([]byte(nil), req...)
	resp[len(req)-len(rest)] = 0xa2
	return resp
}

func TestCheck_UDPRespondersAreOpenWithTheirService(t *testing.T) {
	tests := []struct {
		port    uint16
		server  func([]byte) []byte
		service string
	}{
		{53, dnsServer, "DNS"},
		{123, ntpServer, "NTP"},
		{161, snmpServer, "SNMP"},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			ap := udpResponder(t, fmt.Sprintf("%s:%d", testLoopbackAddr(), tt.port), tt.server)
			res := Check(context.Background(), ap, UDP, Options{Timeout: 2 * time.Second})
			assert.Equal(t, Open, res.State)
			assert.Equal(t, Reply, res.Reason)
			assert.Equal(t, tt.service, res.Service)
			assert.Positive(t, res.Bytes)
			assert.Equal(t, 1, res.Tries)
		})
	}
}

func TestCheck_UDPUnrecognisedReplyIsOpenWithoutService(t *testing.T) {
	ap := udpResponder(t, "127.0.0.1:0", func([]byte) []byte { return []byte("pong") })
	res := Check(context.Background(), ap, UDP, Options{Timeout: 2 * time.Second})
	assert.Equal(t, Open, res.State)
	assert.Equal(t, Reply, res.Reason)
	assert.Empty(t, res.Service)
	assert.Equal(t, 4, res.Bytes)
}

func TestCheck_UDPStaleDNSReplyIsNotRecognised(t *testing.T) {
	// A reply with another ID is a datagram from the port (open) but not an
	// answer to our query.
	ap := udpResponder(t, testLoopbackAddr()+":53", func(req []byte) []byte {
		resp := dnsServer(req)
		if resp != nil {
			binary.BigEndian.PutUint16(resp, binary.BigEndian.Uint16(resp)+1)
		}
		return resp
	})
	res := Check(context.Background(), ap, UDP, Options{Timeout: 2 * time.Second})
	assert.Equal(t, Open, res.State)
	assert.Empty(t, res.Service)
}

func TestCheck_UDPNothingListeningIsClosed(t *testing.T) {
	port := freeLoopbackUDPPort(t)
	res := Check(context.Background(), netip.AddrPortFrom(loopback, port), UDP, Options{Timeout: 2 * time.Second})
	assert.Equal(t, Closed, res.State)
	assert.Equal(t, PortUnreachable, res.Reason)
	assert.Equal(t, 1, res.Tries)
	if res.ICMPFrom.IsValid() { // Linux, with IP_RECVERR
		assert.Equal(t, loopback, res.ICMPFrom)
	}
}

func TestCheck_UDPSilentListenerIsOpenFilteredAfterRetries(t *testing.T) {
	ap := udpResponder(t, "127.0.0.1:0", func([]byte) []byte { return nil })
	res := Check(context.Background(), ap, UDP, Options{Timeout: 50 * time.Millisecond, Retries: 1})
	assert.Equal(t, OpenFiltered, res.State)
	assert.Equal(t, Silence, res.Reason)
	assert.Equal(t, 2, res.Tries)
	assert.Zero(t, res.RTT)
}

func TestCheck_UDPNegativeRetriesMeansOneTry(t *testing.T) {
	ap := udpResponder(t, "127.0.0.1:0", func([]byte) []byte { return nil })
	res := Check(context.Background(), ap, UDP, Options{Timeout: 20 * time.Millisecond, Retries: -1})
	assert.Equal(t, OpenFiltered, res.State)
	assert.Equal(t, 1, res.Tries)
}

func TestScan_UDPLoopbackFindsRespondersAndClosed(t *testing.T) {
	addr := testLoopbackAddr()
	target := netip.MustParseAddr(addr)
	udpResponder(t, addr+":53", dnsServer)
	udpResponder(t, addr+":123", ntpServer)
	silent := udpResponder(t, addr+":0", func([]byte) []byte { return nil })
	ports := append(portRange(40, 200), silent.Port())
	res, err := Scan(context.Background(), ScanSpec{Target: target, Proto: UDP, Ports: ports, Timeout: 200 * time.Millisecond}, nil)
	require.NoError(t, err)
	assert.Equal(t, []uint16{53, 123}, res.Ports(Open))
	assert.Equal(t, []uint16{silent.Port()}, res.Ports(OpenFiltered))
	assert.Equal(t, len(ports)-3, res.Count(Closed))
	byPort := map[uint16]Result{}
	for _, r := range res.Results {
		byPort[r.Target.Port()] = r
	}
	assert.Equal(t, "DNS", byPort[53].Service)
	assert.Equal(t, "NTP", byPort[123].Service)
	// Closed ports on the same target answered right after the silent one:
	// it is witnessed as not closed. Loopback has no ICMP rate limit.
	assert.True(t, byPort[silent.Port()].Witnessed)
	assert.GreaterOrEqual(t, byPort[silent.Port()].Tries, 2)
	assert.False(t, res.RateLimited)
}

func TestScan_UDPAllSilentIsUnwitnessed(t *testing.T) {
	a := udpResponder(t, "127.0.0.1:0", func([]byte) []byte { return nil })
	b := udpResponder(t, "127.0.0.1:0", func([]byte) []byte { return nil })
	res, err := Scan(context.Background(), ScanSpec{Target: loopback, Proto: UDP, Ports: []uint16{a.Port(), b.Port()}, Timeout: 30 * time.Millisecond, Retries: 1}, nil)
	require.NoError(t, err)
	require.Len(t, res.Results, 2)
	for _, r := range res.Results {
		assert.Equal(t, OpenFiltered, r.State)
		assert.False(t, r.Witnessed, "no closed port to compare with")
		// Retries is a floor: with no answer to measure loss by, the
		// engine assumes some and tries more.
		assert.GreaterOrEqual(t, r.Tries, 2)
		assert.LessOrEqual(t, r.Tries, 6)
	}
}

func TestICMPClassify(t *testing.T) {
	tests := []struct {
		v6        bool
		typ, code uint8
		state     State
		reason    Reason
	}{
		{false, 3, 3, Closed, PortUnreachable},
		{false, 3, 1, Filtered, HostUnreachable},
		{false, 3, 0, Filtered, NetUnreachable},
		{false, 3, 9, Filtered, AdminProhibited},
		{false, 3, 10, Filtered, AdminProhibited},
		{false, 3, 13, Filtered, AdminProhibited},
		{true, 1, 4, Closed, PortUnreachable},
		{true, 1, 1, Filtered, AdminProhibited},
		{true, 1, 3, Filtered, HostUnreachable},
		{true, 1, 0, Filtered, NetUnreachable},
	}
	for _, tt := range tests {
		st, rs, ok := icmpClassify(tt.v6, tt.typ, tt.code)
		require.True(t, ok)
		assert.Equal(t, tt.state, st, "v6=%v %d/%d", tt.v6, tt.typ, tt.code)
		assert.Equal(t, tt.reason, rs, "v6=%v %d/%d", tt.v6, tt.typ, tt.code)
	}
	_, _, ok := icmpClassify(false, 3, 4)
	assert.False(t, ok, "fragmentation needed says nothing about the port")
	_, _, ok = icmpClassify(false, 11, 0)
	assert.False(t, ok, "time exceeded says nothing about the port")
}

func TestUDPClassifyErrno(t *testing.T) {
	st, rs, ok := udpClassifyErrno(unix.ECONNREFUSED)
	assert.True(t, ok)
	assert.Equal(t, Closed, st)
	assert.Equal(t, PortUnreachable, rs)
	st, _, ok = udpClassifyErrno(unix.EHOSTUNREACH)
	assert.True(t, ok)
	assert.Equal(t, Filtered, st)
}
