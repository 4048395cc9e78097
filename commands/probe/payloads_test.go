package probe

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBuildDNS_IsOneRootNSQuestion(t *testing.T) {
	tok := newToken()
	q := buildDNS(&tok)
	require.Len(t, q, 17)
	assert.Equal(t, binary.BigEndian.Uint16(tok[:]), binary.BigEndian.Uint16(q), "ID")
	assert.Zero(t, binary.BigEndian.Uint16(q[2:])&0x8000, "QR clear: a query")
	assert.Equal(t, uint16(1), binary.BigEndian.Uint16(q[4:]), "QDCOUNT")
	assert.Zero(t, binary.BigEndian.Uint16(q[6:])|binary.BigEndian.Uint16(q[8:])|binary.BigEndian.Uint16(q[10:]))
	assert.Equal(t, byte(0), q[12], "QNAME is the root")
	assert.Equal(t, uint16(2), binary.BigEndian.Uint16(q[13:]), "QTYPE NS")
	assert.Equal(t, uint16(1), binary.BigEndian.Uint16(q[15:]), "QCLASS IN")
}

func TestBuildMDNS_EncodesLabels(t *testing.T) {
	tok := newToken()
	q := buildMDNS(&tok)
	want := "\x09_services\x07_dns-sd\x04_udp\x05local\x00"
	assert.Equal(t, want, string(q[12:12+len(want)]))
	assert.Equal(t, uint16(12), binary.BigEndian.Uint16(q[12+len(want):]), "QTYPE PTR")
}

func TestBuildNTP_IsVersion4ClientRequest(t *testing.T) {
	tok := newToken()
	q := buildNTP(&tok)
	require.Len(t, q, 48)
	assert.Equal(t, byte(3), q[0]&7, "mode client")
	assert.Equal(t, byte(4), q[0]>>3&7, "version 4")
	assert.Equal(t, tok[:8], q[40:48], "transmit timestamp carries the token")
}

func TestBuildSNMP_ParsesAsV2cGetRequest(t *testing.T) {
	tok := newToken()
	q := buildSNMP(&tok)
	tag, msg, rest, ok := berRead(q)
	require.True(t, ok)
	assert.Equal(t, byte(0x30), tag)
	assert.Empty(t, rest)
	tag, ver, msg, ok := berRead(msg)
	require.True(t, ok)
	assert.Equal(t, byte(0x02), tag)
	assert.Equal(t, []byte{1}, ver, "v2c")
	tag, community, msg, ok := berRead(msg)
	require.True(t, ok)
	assert.Equal(t, byte(0x04), tag)
	assert.Equal(t, "public", string(community))
	tag, pdu, _, ok := berRead(msg)
	require.True(t, ok)
	assert.Equal(t, byte(0xa0), tag, "GetRequest-PDU")
	assert.True(t, bytes.Contains(pdu, []byte{0x06, 0x08, 0x2b, 6, 1, 2, 1, 1, 1, 0}), "sysDescr.0")
	assert.True(t, recognizeSNMP(q, &tok), "a request is an SNMP message too")
}

func TestBuildIKE_LengthsAddUp(t *testing.T) {
	tok := newToken()
	q := buildIKE(&tok)
	require.GreaterOrEqual(t, len(q), 28)
	assert.Equal(t, uint32(len(q)), binary.BigEndian.Uint32(q[24:]), "ISAKMP length")
	assert.Equal(t, uint16(len(q)-28), binary.BigEndian.Uint16(q[30:]), "SA payload length")
	assert.Equal(t, tok[:8], q[:8], "initiator cookie")
	n := buildIKENATT(&tok)
	assert.Equal(t, []byte{0, 0, 0, 0}, n[:4], "non-ESP marker")
}

func TestBuildNetBIOS_EncodesWildcard(t *testing.T) {
	tok := newToken()
	q := buildNetBIOS(&tok)
	require.Len(t, q, 50)
	assert.Equal(t, byte(0x20), q[12])
	assert.Equal(t, "CK"+string(bytes.Repeat([]byte("AA"), 15)), string(q[13:45]), "'*' then NULs, half-byte encoded")
	assert.Equal(t, uint16(0x21), binary.BigEndian.Uint16(q[46:]), "NBSTAT")
}

// replies gives, for each service, a plausible server answer to request q.
var replies = map[*udpService]func(q []byte) []byte{
	svcDNS:  func(q []byte) []byte { r := bytes.Clone(q); r[2] |= 0x80; return r },
	svcMDNS: func(q []byte) []byte { r := bytes.Clone(q); r[2] |= 0x84; return r },
	svcNTP: func([]byte) []byte {
		r := make([]byte, 48)
		r[0] = 3<<3 | 4
		return r
	},
	svcSNMP:    func(q []byte) []byte { r := bytes.Clone(q); return r },
	svcNetBIOS: func(q []byte) []byte { r := bytes.Clone(q[:12]); r[2] = 0x84; return r },
	svcSSDP:    func([]byte) []byte { return []byte("HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\n\r\n") },
	svcMemcached: func(q []byte) []byte {
		return append(bytes.Clone(q[:8]), "VERSION 1.6.21\r\n"...)
	},
	svcSTUN: func(q []byte) []byte { r := bytes.Clone(q); r[0], r[1] = 0x01, 0x01; return r },
	svcRPC: func(q []byte) []byte {
		r := bytes.Clone(q[:4])
		for _, w := range []uint32{1, 0, 0, 0, 0} { // REPLY, accepted, null verifier, success
			r = binary.BigEndian.AppendUint32(r, w)
		}
		return r
	},
	svcSIP:     func([]byte) []byte { return []byte("SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n") },
	svcIKE:     func(q []byte) []byte { r := bytes.Clone(q); r[8] = 0x42; return r },
	svcIKENATT: func(q []byte) []byte { r := bytes.Clone(q); r[12] = 0x42; return r },
}

func TestRecognize_EveryServiceKnowsItsOwnReply(t *testing.T) {
	for port, svc := range udpServices {
		reply, ok := replies[svc]
		require.True(t, ok, "no test reply for %s on %d", svc.name, port)
		tok := newToken()
		q := svc.build(&tok)
		require.NotEmpty(t, q)
		assert.Equal(t, svc.name, recognizeAny(svc, reply(q), &tok), "port %d", port)
		assert.Empty(t, recognizeAny(svc, []byte("garbage"), &tok), "port %d", port)
		assert.Empty(t, recognizeAny(svc, nil, &tok), "port %d", port)
	}
}

func TestRecognize_AnotherProbesTokenIsNotOurs(t *testing.T) {
	for _, svc := range []*udpService{svcDNS, svcSTUN, svcRPC, svcMemcached, svcIKE, svcNetBIOS} {
		tok, other := newToken(), newToken()
		other[0] ^= 0xff // differ in the bytes every builder uses
		q := svc.build(&other)
		assert.False(t, svc.recognize(replies[svc](q), &tok), svc.name)
	}
}

func FuzzRecognize(f *testing.F) {
	tok := token{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	for _, svc := range udpServices {
		q := svc.build(&tok)
		f.Add(q)
		f.Add(replies[svc](q))
	}
	f.Add([]byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, svc := range udpServices {
			if svc.recognize(b, &tok) && len(b) < len("HTTP/1.") {
				t.Errorf("%s recognised %d bytes", svc.name, len(b))
			}
		}
		if tag, content, rest, ok := berRead(b); ok {
			if len(content)+len(rest) > len(b) {
				t.Errorf("berRead tag %x grew the input", tag)
			}
		}
	})
}
