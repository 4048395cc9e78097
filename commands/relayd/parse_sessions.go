package relayd

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"time"
)

// Session is one relay session of `relayctl show sessions`: two lines,
//
//	session 0:3119 198.51.100.23:51532 -> 10.0.0.11:80	RUNNING
//		age 00:00:04, idle 00:00:01, relay 1, pid 48213
//
// Session ids are counted per relay process and repeat across the
// preforked processes: (PID, ID) identifies a session.
type Session struct {
	Line       int        `json:"line"`    // of the session line; the age line follows it
	PeerID     uint32     `json:"peer_id"` // always 0 from current relayd
	ID         uint32     `json:"id"`
	ClientAddr netip.Addr `json:"client_addr"`
	ClientPort uint16     `json:"client_port"`
	// ServerAddr is the zero Addr while the relay has not connected to a
	// backend yet (relayctl prints "-> :80").
	ServerAddr netip.Addr    `json:"server_addr"`
	ServerPort uint16        `json:"server_port"`
	Done       bool          `json:"done"` // DONE rather than RUNNING
	Age        time.Duration `json:"age"`
	Idle       time.Duration `json:"idle"`
	Relay      uint32        `json:"relay"`         // the relay's id in show relays
	PID        uint32        `json:"pid,omitempty"` // the relay process; relayctl before 2017 did not print it
	Tag        uint32        `json:"tag,omitempty"` // pf tag id, when the session is tagged
	Mark       uint32        `json:"mark,omitempty"`
}

var (
	// Addresses are numeric and IPv6 has no brackets, so the port is
	// after the last colon: the greedy \S* backtracks to it. An address
	// is empty when relayd could not print it.
	sessionRE = regexp.MustCompile(`^session (\d+):(\d+) (\S*):(\d+) -> (\S*):(\d+)\t(RUNNING|DONE)$`)
	// pid arrived in 2017 (relayctl 1.58), mark was there in 2011 (1.43).
	sessionAgeRE = regexp.MustCompile(`^\tage (\d+):(\d\d):(\d\d), idle (\d+):(\d\d):(\d\d), relay (\d+)(?:, pid (\d+))?(?:, tag \(id\) (\d+)|, mark (\d+))?$`)
)

// ParseSessions parses `relayctl show sessions`. It has no header, and no
// sessions print nothing at all.
func ParseSessions(out []byte) ([]Session, []Line) {
	lines := splitLines(out)
	var sessions []Session
	var unknown []Line
	for i := 0; i < len(lines); i++ {
		line := rtrim(lines[i])
		if blank(line) {
			continue
		}
		m := sessionRE.FindStringSubmatch(line)
		if m == nil {
			reason := "not a line show sessions prints"
			if sessionAgeRE.MatchString(line) {
				reason = "age line without its session line"
			}
			unknown = append(unknown, Line{N: i + 1, Text: lines[i], Reason: reason})
			continue
		}
		var a []string
		if i+1 < len(lines) {
			a = sessionAgeRE.FindStringSubmatch(rtrim(lines[i+1]))
		}
		if a == nil {
			unknown = append(unknown, Line{N: i + 1, Text: lines[i], Reason: "session line without its age line"})
			continue
		}
		s, err := parseSession(m, a)
		if err != nil {
			unknown = append(unknown,
				Line{N: i + 1, Text: lines[i], Reason: err.Error()},
				Line{N: i + 2, Text: lines[i+1], Reason: "the session line above was not understood"})
			i++
			continue
		}
		s.Line = i + 1
		sessions = append(sessions, s)
		i++
	}
	return sessions, unknown
}

// parseSession converts the submatches of both lines. The regexps have
// checked the shapes; what is left is ranges and addresses.
func parseSession(m, a []string) (Session, error) {
	var s Session
	var err error
	u32 := func(v string) uint32 {
		if err != nil || v == "" {
			return 0
		}
		var n uint64
		n, err = strconv.ParseUint(v, 10, 32)
		return uint32(n)
	}
	u16 := func(v string) uint16 {
		if err != nil {
			return 0
		}
		var n uint64
		n, err = strconv.ParseUint(v, 10, 16)
		return uint16(n)
	}
	addr := func(v string) netip.Addr {
		if err != nil || v == "" {
			return netip.Addr{}
		}
		var ip netip.Addr
		if ip, err = netip.ParseAddr(v); err != nil {
			err = fmt.Errorf("address %q is not an IP address", v)
		}
		return ip
	}
	dur := func(h, mi, se string) time.Duration {
		if err != nil {
			return 0
		}
		var n [3]int64
		for k, v := range []string{h, mi, se} {
			if n[k], err = strconv.ParseInt(v, 10, 64); err != nil {
				return 0
			}
		}
		if n[0] >= maxSeconds/3600 {
			err = fmt.Errorf("%s hours is too long", h)
			return 0
		}
		return time.Duration(n[0]*3600+n[1]*60+n[2]) * time.Second
	}
	s.PeerID, s.ID = u32(m[1]), u32(m[2])
	s.ClientAddr, s.ClientPort = addr(m[3]), u16(m[4])
	s.ServerAddr, s.ServerPort = addr(m[5]), u16(m[6])
	s.Done = m[7] == "DONE"
	s.Age, s.Idle = dur(a[1], a[2], a[3]), dur(a[4], a[5], a[6])
	s.Relay, s.PID, s.Tag, s.Mark = u32(a[7]), u32(a[8]), u32(a[9]), u32(a[10])
	if err != nil {
		var num *strconv.NumError
		if errors.As(err, &num) {
			err = fmt.Errorf("number %q out of range", num.Num)
		}
		return Session{}, err
	}
	return s, nil
}
