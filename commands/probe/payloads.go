package probe

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
)

// token is the per-probe random material a request carries (DNS ID, NTP
// transmit time, STUN transaction ID, ...), so that a reply can be matched
// to the probe that caused it and not to a stale or forged datagram.
type token [16]byte

func newToken() token {
	var t token
	_, _ = rand.Read(t[:]) // never fails (crypto/rand since Go 1.24)
	return t
}

// udpService is a request that makes a real server on that port answer,
// and the test that the answer is that protocol. Each builder follows the
// protocol's RFC; they are written here, not taken from other scanners.
type udpService struct {
	name      string
	build     func(t *token) []byte
	recognize func(reply []byte, t *token) bool
}

var (
	svcDNS       = &udpService{"DNS", buildDNS, recognizeDNS}
	svcMDNS      = &udpService{"mDNS", buildMDNS, recognizeDNS}
	svcNTP       = &udpService{"NTP", buildNTP, recognizeNTP}
	svcSNMP      = &udpService{"SNMP", buildSNMP, recognizeSNMP}
	svcNetBIOS   = &udpService{"NetBIOS-NS", buildNetBIOS, recognizeNetBIOS}
	svcSSDP      = &udpService{"SSDP", buildSSDP, recognizeSSDP}
	svcMemcached = &udpService{"memcached", buildMemcached, recognizeMemcached}
	svcSTUN      = &udpService{"STUN", buildSTUN, recognizeSTUN}
	svcRPC       = &udpService{"RPC", buildRPC, recognizeRPC}
	svcSIP       = &udpService{"SIP", buildSIP, recognizeSIP}
	svcIKE       = &udpService{"IKE", buildIKE, recognizeIKE}
	svcIKENATT   = &udpService{"IKE", buildIKENATT, recognizeIKENATT}
)

// udpServices maps well-known ports to their request. Other ports get an
// empty datagram: it still draws ICMP port unreachable from a closed port,
// and carries nothing a service could misread.
var udpServices = map[uint16]*udpService{
	53:    svcDNS,
	111:   svcRPC,
	123:   svcNTP,
	137:   svcNetBIOS,
	161:   svcSNMP,
	500:   svcIKE,
	1900:  svcSSDP,
	3478:  svcSTUN,
	4500:  svcIKENATT,
	5060:  svcSIP,
	5353:  svcMDNS,
	11211: svcMemcached,
}

// serviceFor gives the request for port, nil for the empty datagram.
func serviceFor(port uint16) *udpService { return udpServices[port] }

// recognizeAny names the protocol of reply for the service expected on the
// port; "" if the reply is not that protocol (the port is open all the same).
func recognizeAny(svc *udpService, reply []byte, t *token) string {
	if svc != nil && svc.recognize(reply, t) {
		return svc.name
	}
	return ""
}

// --- DNS (RFC 1035 §4.1) and mDNS legacy unicast (RFC 6762 §6.7) ---

func dnsQuery(id uint16, name string, qtype, qclass uint16) []byte {
	b := make([]byte, 12, 12+len(name)+6)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[4:], 1) // QDCOUNT; flags 0: standard query
	for _, label := range bytes.Split([]byte(name), []byte(".")) {
		if len(label) == 0 {
			continue
		}
		b = append(b, byte(len(label))) //nolint:gosec // our own names: labels are under 64 bytes
		b = append(b, label...)
	}
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, qtype)
	return binary.BigEndian.AppendUint16(b, qclass)
}

// buildDNS asks for the root's NS records without recursion: every DNS
// server answers that, with data, a referral or REFUSED, and none of those
// is expensive for it.
func buildDNS(t *token) []byte { return dnsQuery(binary.BigEndian.Uint16(t[:]), ".", 2, 1) }

// buildMDNS asks for the DNS-SD service list. Sent from a port other than
// 5353 it is a legacy unicast query: the answer comes back to us by unicast
// and repeats our ID.
func buildMDNS(t *token) []byte {
	return dnsQuery(binary.BigEndian.Uint16(t[:]), "_services._dns-sd._udp.local", 12, 1)
}

func recognizeDNS(r []byte, t *token) bool {
	if len(r) < 12 || binary.BigEndian.Uint16(r) != binary.BigEndian.Uint16(t[:]) {
		return false
	}
	flags := binary.BigEndian.Uint16(r[2:])
	return flags&0x8000 != 0 && (flags>>11)&0xf == 0 // QR set, opcode QUERY
}

// --- NTP (RFC 5905 §7.3) ---

// buildNTP is a version 4 client request. The transmit timestamp is random
// rather than the time, as RFC 9109 recommends for clients; servers copy it
// into the origin field of the reply.
func buildNTP(t *token) []byte {
	b := make([]byte, 48)
	b[0] = 4<<3 | 3 // LI 0, VN 4, mode 3 (client)
	copy(b[40:48], t[:8])
	return b
}

func recognizeNTP(r []byte, _ *token) bool {
	if len(r) < 48 {
		return false
	}
	vn, mode := (r[0]>>3)&7, r[0]&7
	return mode == 4 && vn >= 1 && vn <= 4
}

// --- SNMP v2c (RFC 3416, BER per X.690) ---

func berTLV(tag byte, content ...[]byte) []byte {
	n := 0
	for _, c := range content {
		n += len(c)
	}
	b := []byte{tag}
	switch {
	case n < 0x80:
		b = append(b, byte(n))
	case n < 0x100:
		b = append(b, 0x81, byte(n))
	default:
		b = append(b, 0x82, byte(n>>8), byte(n))
	}
	for _, c := range content {
		b = append(b, c...)
	}
	return b
}

// berRead splits one TLV off b (definite lengths only, as SNMP requires).
func berRead(b []byte) (tag byte, content, rest []byte, ok bool) {
	if len(b) < 2 {
		return 0, nil, nil, false
	}
	tag, l := b[0], int(b[1])
	b = b[2:]
	if l&0x80 != 0 {
		k := l & 0x7f
		if k == 0 || k > 3 || len(b) < k {
			return 0, nil, nil, false
		}
		l = 0
		for _, c := range b[:k] {
			l = l<<8 | int(c)
		}
		b = b[k:]
	}
	if l > len(b) {
		return 0, nil, nil, false
	}
	return tag, b[:l], b[l:], true
}

// buildSNMP is a GetRequest for sysDescr.0 with community "public".
func buildSNMP(t *token) []byte {
	reqID := binary.BigEndian.Uint32(t[:]) & 0x7fffffff // a positive INTEGER
	id := binary.BigEndian.AppendUint32(nil, reqID)
	sysDescr := []byte{0x2b, 6, 1, 2, 1, 1, 1, 0} // 1.3.6.1.2.1.1.1.0
	varbind := berTLV(0x30, berTLV(0x06, sysDescr), berTLV(0x05))
	pdu := berTLV(0xa0, // GetRequest-PDU
		berTLV(0x02, id), berTLV(0x02, []byte{0}), berTLV(0x02, []byte{0}),
		berTLV(0x30, varbind))
	return berTLV(0x30, berTLV(0x02, []byte{1}), berTLV(0x04, []byte("public")), pdu)
}

// recognizeSNMP accepts any SNMP message: a SEQUENCE starting with the
// version INTEGER (0 v1, 1 v2c, 3 v3) and then a community or a v3 header.
// An agent with another community may answer with a report or not at all;
// whatever it sends is SNMP.
func recognizeSNMP(r []byte, _ *token) bool {
	tag, msg, _, ok := berRead(r)
	if !ok || tag != 0x30 {
		return false
	}
	tag, ver, rest, ok := berRead(msg)
	if !ok || tag != 0x02 || len(ver) != 1 || (ver[0] != 0 && ver[0] != 1 && ver[0] != 3) {
		return false
	}
	tag, _, _, ok = berRead(rest)
	return ok && (tag == 0x04 || tag == 0x30)
}

// --- NetBIOS name service (RFC 1002 §4.2.17): node status request ---

func buildNetBIOS(t *token) []byte {
	b := make([]byte, 12, 50)
	copy(b, t[:2])
	binary.BigEndian.PutUint16(b[4:], 1) // QDCOUNT
	// The wildcard name "*" padded with NULs to 16 bytes, first-level
	// encoded: each half byte becomes 'A'+nibble.
	b = append(b, 0x20)
	name := [16]byte{'*'}
	for _, c := range name {
		b = append(b, 'A'+c>>4, 'A'+c&0xf)
	}
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, 0x21) // NBSTAT
	return binary.BigEndian.AppendUint16(b, 1) // IN
}

func recognizeNetBIOS(r []byte, t *token) bool {
	return len(r) >= 12 && r[0] == t[0] && r[1] == t[1] && r[2]&0x80 != 0
}

// --- SSDP (UPnP Device Architecture 2.0 §1.3.2) ---

func buildSSDP(*token) []byte {
	return []byte("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n")
}

func recognizeSSDP(r []byte, _ *token) bool { return bytes.HasPrefix(r, []byte("HTTP/1.")) }

// --- memcached UDP (protocol.txt, "UDP protocol") ---

// buildMemcached asks for the version: the smallest reply that proves a
// memcached, where "stats" would make the probe an amplification request.
func buildMemcached(t *token) []byte {
	b := make([]byte, 8, 8+9)
	copy(b, t[:2])                       // request ID
	binary.BigEndian.PutUint16(b[4:], 1) // one datagram; sequence 0
	return append(b, "version\r\n"...)
}

func recognizeMemcached(r []byte, t *token) bool {
	if len(r) < 8 || r[0] != t[0] || r[1] != t[1] {
		return false
	}
	body := r[8:]
	for _, p := range []string{"VERSION ", "STAT ", "END", "ERROR", "CLIENT_ERROR", "SERVER_ERROR"} {
		if bytes.HasPrefix(body, []byte(p)) {
			return true
		}
	}
	return false
}

// --- STUN (RFC 8489 §5, §6): Binding request ---

const stunCookie = 0x2112a442

func buildSTUN(t *token) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b, 0x0001) // Binding request, no attributes
	binary.BigEndian.PutUint32(b[4:], stunCookie)
	copy(b[8:], t[:12])
	return b
}

func recognizeSTUN(r []byte, t *token) bool {
	if len(r) < 20 || binary.BigEndian.Uint32(r[4:]) != stunCookie || !bytes.Equal(r[8:20], t[:12]) {
		return false
	}
	typ := binary.BigEndian.Uint16(r)
	return typ == 0x0101 || typ == 0x0111 // Binding success or error response
}

// --- ONC RPC (RFC 5531 §9) to portmapper (RFC 1833): NULL procedure ---

func buildRPC(t *token) []byte {
	b := make([]byte, 0, 40)
	b = append(b, t[:4]...) // xid
	for _, w := range []uint32{
		0,      // CALL
		2,      // RPC version
		100000, // portmapper
		2,      // version 2
		0,      // NULL procedure
		0, 0,   // credentials AUTH_NONE, empty
		0, 0, // verifier AUTH_NONE, empty
	} {
		b = binary.BigEndian.AppendUint32(b, w)
	}
	return b
}

func recognizeRPC(r []byte, t *token) bool {
	return len(r) >= 12 && bytes.Equal(r[:4], t[:4]) && binary.BigEndian.Uint32(r[4:]) == 1 // REPLY
}

// --- SIP (RFC 3261 §11): OPTIONS ---

// buildSIP asks what the server supports. The Via carries rport (RFC 3581)
// so the answer comes back to our source port rather than to 5060.
func buildSIP(t *token) []byte {
	h := hex.EncodeToString(t[:8])
	return []byte("OPTIONS sip:probe@opsbot.invalid SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP opsbot.invalid;rport;branch=z9hG4bK" + h + "\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:opsbot@opsbot.invalid>;tag=" + h[:8] + "\r\n" +
		"To: <sip:probe@opsbot.invalid>\r\n" +
		"Call-ID: " + h + "@opsbot.invalid\r\n" +
		"CSeq: 1 OPTIONS\r\n" +
		"Accept: application/sdp\r\n" +
		"Content-Length: 0\r\n\r\n")
}

func recognizeSIP(r []byte, _ *token) bool { return bytes.HasPrefix(r, []byte("SIP/2.0 ")) }

// --- IKE (RFC 2408 §3, RFC 2409): version 1 main mode, first message ---

// buildIKE offers one ordinary proposal (3DES, SHA-1, pre-shared key, MODP
// 1024): a daemon answers it with its own SA or a notification, both of
// which carry our cookie back. IKEv2-only daemons answer with
// INVALID_MAJOR_VERSION, which is also IKE.
func buildIKE(t *token) []byte {
	attrs := []uint16{
		0x8001, 5, // encryption: 3DES-CBC
		0x8002, 2, // hash: SHA
		0x8003, 1, // authentication: pre-shared key
		0x8004, 2, // group: MODP 1024
		0x800b, 1, // life type: seconds
		0x800c, 28800, // life duration
	}
	transform := []byte{0, 0, 0, 0, 1, 1, 0, 0} // last, length, #1, KEY_IKE
	for _, a := range attrs {
		transform = binary.BigEndian.AppendUint16(transform, a)
	}
	binary.BigEndian.PutUint16(transform[2:], uint16(len(transform)))     //nolint:gosec // fixed sizes, under 100 bytes
	proposal := append([]byte{0, 0, 0, 0, 1, 1, 0, 1}, transform...)      // #1, ISAKMP, no SPI, 1 transform
	binary.BigEndian.PutUint16(proposal[2:], uint16(len(proposal)))       //nolint:gosec // fixed sizes
	sa := append([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1}, proposal...) // DOI IPsec, identity only
	binary.BigEndian.PutUint16(sa[2:], uint16(len(sa)))                   //nolint:gosec // fixed sizes
	hdr := make([]byte, 28, 28+len(sa))
	copy(hdr, t[:8])                                         // initiator cookie; responder cookie zero
	hdr[16] = 1                                              // next payload: SA
	hdr[17] = 0x10                                           // version 1.0
	hdr[18] = 2                                              // exchange: identity protection (main mode)
	binary.BigEndian.PutUint32(hdr[24:], uint32(28+len(sa))) //nolint:gosec // fixed sizes
	return append(hdr, sa...)
}

func recognizeIKE(r []byte, t *token) bool {
	if len(r) < 28 || !bytes.Equal(r[:8], t[:8]) {
		return false
	}
	major := r[17] >> 4
	return major == 1 || major == 2
}

// On 4500 (NAT traversal, RFC 3948 §2.2) IKE rides behind a four-byte zero
// non-ESP marker.
func buildIKENATT(t *token) []byte { return append([]byte{0, 0, 0, 0}, buildIKE(t)...) }

func recognizeIKENATT(r []byte, t *token) bool {
	return len(r) >= 4 && bytes.Equal(r[:4], []byte{0, 0, 0, 0}) && recognizeIKE(r[4:], t)
}
