// Package probe owns the facts about ports: it checks one port (TCP connect,
// UDP request with ICMP errors read precisely), scans many ports of one
// address, runs a temporary listener, and knows service names and payloads.
// It returns typed results and never formats chat replies; the commands that
// use it turn results into words.
package probe

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Proto is a transport protocol.
type Proto uint8

// Transport protocols.
const (
	TCP Proto = iota + 1
	UDP
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return "proto(" + strconv.Itoa(int(p)) + ")"
}

// ParseProto reads "tcp" or "udp", in any case.
func ParseProto(s string) (Proto, bool) {
	switch strings.ToLower(s) {
	case "tcp":
		return TCP, true
	case "udp":
		return UDP, true
	}
	return 0, false
}

// State is what a probe concluded about a port.
type State uint8

// Port states, with the meanings nmap gives them.
const (
	Open State = iota + 1
	Closed
	Filtered
	OpenFiltered
)

func (s State) String() string {
	switch s {
	case Open:
		return "open"
	case Closed:
		return "closed"
	case Filtered:
		return "filtered"
	case OpenFiltered:
		return "open|filtered"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Reason is the evidence behind a State.
type Reason uint8

// Reasons. Each names what was observed, not what it implies.
const (
	Handshake       Reason = iota + 1 // tcp open: handshake completed
	Reply                             // udp open: a datagram came back
	Refused                           // tcp closed: RST or ICMP port unreachable (ECONNREFUSED; the two cannot be told apart)
	PortUnreachable                   // udp closed: ICMP port unreachable
	SelfConnect                       // tcp closed: the kernel connected the socket to itself; nothing listens
	HostUnreachable                   // filtered: ICMP host unreachable (EHOSTUNREACH); for TCP this also covers admin-prohibited, which Linux maps to the same errno
	NetUnreachable                    // filtered: ICMP net unreachable (ENETUNREACH)
	AdminProhibited                   // filtered: ICMP administratively prohibited (known exactly only when the ICMP code is visible: UDP with IP_RECVERR)
	Timeout                           // tcp filtered: no answer within the timeout
	Silence                           // udp open|filtered: no reply and no ICMP error after every try
)

func (r Reason) String() string {
	switch r {
	case Handshake:
		return "handshake completed"
	case Reply:
		return "reply received"
	case Refused:
		return "connection refused (RST)"
	case PortUnreachable:
		return "ICMP port unreachable"
	case SelfConnect:
		return "socket connected to itself (nothing listens)"
	case HostUnreachable:
		return "ICMP host unreachable"
	case NetUnreachable:
		return "ICMP net unreachable"
	case AdminProhibited:
		return "ICMP administratively prohibited"
	case Timeout:
		return "no answer (timeout)"
	case Silence:
		return "no reply and no ICMP error"
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// Result is what is known about one port.
type Result struct {
	Target    netip.AddrPort
	Proto     Proto
	State     State
	Reason    Reason
	RTT       time.Duration // time from the last probe sent to the deciding answer; 0 for Timeout/Silence
	Tries     int           // probes sent for this port
	Service   string        // UDP: protocol recognised in the reply ("DNS", "NTP", "SNMP", ...); "" if none/unknown
	Bytes     int           // UDP: size of the reply datagram
	ICMPFrom  netip.Addr    // UDP: who sent the ICMP error, when known (a router, or the target itself); zero otherwise
	Witnessed bool          // UDP open|filtered in a scan: a known-closed port of the same target answered ICMP right after this port stayed silent, so this port is not closed (rate limiting ruled out)
	// Doubtful: no answer after every try, but the path lost so many
	// probes (or the target stopped answering) that an answer may have
	// been lost too. Listed as unconfirmed, never as a plain verdict.
	Doubtful bool
}

// DefaultRetries is the number of extra UDP tries on silence when
// Options.Retries or ScanSpec.Retries is 0. A negative value means none:
// under CPU load a read deadline can pass before the read runs, so one try is
// rarely enough.
const DefaultRetries = 2

// Default timeouts. Check waits like nc -w 3; a scan trades a little
// certainty on slow paths for finishing in reasonable time.
const (
	DefaultCheckTimeout   = 3 * time.Second
	DefaultScanTCPTimeout = 1500 * time.Millisecond // a try's wait before any round trip is measured, and its longest
	DefaultScanUDPTimeout = time.Second
	DefaultConcurrency    = 1024
)

// Options tune Check.
type Options struct {
	Timeout time.Duration // TCP: connect timeout; UDP: wait for a reply per try. 0 → 3s
	Retries int           // UDP: extra tries on silence. 0 → DefaultRetries; <0 → none
	Sockets *Budget       // the budget the check draws on; nil is the process's (Sockets)
}

func retries(n int) int {
	switch {
	case n < 0:
		return 0
	case n == 0:
		return DefaultRetries
	}
	return n
}
