// Package bench is `make bench`: opsbot's /scan and /portcheck timed beside
// the tools on-call engineers use (nmap, netcat) on the same targets in the
// same run, printed as tables of medians and ratios with the open-port sets
// compared. The benchmarks live in bench_test.go; this file and stats.go are
// the pure parts (parsing each tool's output, summarising timings), tested
// by `go test` without the network.
package bench

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// States of a port as the tools name them. opsbot and nmap share the words
// (open, closed, filtered, open|filtered).
const (
	stOpen         = "open"
	stClosed       = "closed"
	stFiltered     = "filtered"
	stOpenFiltered = "open|filtered"
)

// PortSet is a set of port numbers.
type PortSet map[uint16]bool

// NewPortSet makes a set of ports.
func NewPortSet(ports ...uint16) PortSet {
	s := PortSet{}
	for _, p := range ports {
		s[p] = true
	}
	return s
}

// Sorted gives the ports in ascending order.
func (s PortSet) Sorted() []uint16 {
	out := make([]uint16, 0, len(s))
	for p := range s {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Equal reports whether s and o hold the same ports.
func (s PortSet) Equal(o PortSet) bool {
	if len(s) != len(o) {
		return false
	}
	for p := range s {
		if !o[p] {
			return false
		}
	}
	return true
}

// Minus gives the ports of s that o lacks.
func (s PortSet) Minus(o PortSet) PortSet {
	out := PortSet{}
	for p := range s {
		if !o[p] {
			out[p] = true
		}
	}
	return out
}

// String writes the set compactly: "22, 80, 8000-8003"; "none" when empty.
func (s PortSet) String() string {
	ports := s.Sorted()
	if len(ports) == 0 {
		return "none"
	}
	var b strings.Builder
	for i := 0; i < len(ports); {
		j := i
		for j+1 < len(ports) && ports[j+1] == ports[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(int(ports[i])))
		if j > i {
			b.WriteString("-" + strconv.Itoa(int(ports[j])))
		}
		i = j + 1
	}
	return b.String()
}

// parsePortList reads "22, 80, 8000-8003" (opsbot's compact lists).
func parsePortList(s string, into PortSet) {
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 1 || a > 65535 {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a || b > 65535 {
				continue
			}
		}
		for p := a; p <= b; p++ {
			into[uint16(p)] = true //nolint:gosec // 1 <= p <= 65535, checked above
		}
	}
}

// ScanReport is what a tool said about a scan: ports by state. Ports the
// tool listed nowhere are in Rest (nmap's "Ignored State"; opsbot's closed
// ports, which its reply counts but does not list).
type ScanReport struct {
	States map[string]PortSet // listed ports by state
	Counts map[string]int     // ports per state, listed or not
	Rest   string             // the state of every port not listed ("" unknown)
	// Unconfirmed: opsbot's open|filtered ports that it says it could not
	// tell from closed (the target's ICMP rate limit or a firewall).
	Unconfirmed PortSet
}

func newScanReport() ScanReport {
	return ScanReport{States: map[string]PortSet{}, Counts: map[string]int{}}
}

// Open gives the ports the tool called open.
func (r ScanReport) Open() PortSet {
	if s := r.States[stOpen]; s != nil {
		return s
	}
	return PortSet{}
}

// StateOf gives what the tool said about port p ("" if it cannot be told).
func (r ScanReport) StateOf(p uint16) string {
	for st, set := range r.States {
		if set[p] {
			return st
		}
	}
	return r.Rest
}

var (
	// A row of opsbot's /scan table: "80/tcp  open  http  handshake completed, 0.1 ms".
	opsbotRow = regexp.MustCompile(`(?m)^(\d{1,5})/(tcp|udp)\s+open\b`)
	// The fields line: "ports: 5 open, 65530 closed | duration: 612 ms | rate: ...".
	// Fields are joined by " | "; a count may itself hold "|" (open|filtered).
	opsbotCounts = regexp.MustCompile(`(?m)^ports: (.+?)(?: \| |$)`)
	opsbotCount  = regexp.MustCompile(`(\d+) (open\|filtered|open|closed|filtered)`)
	// Notes that list ports: "open|filtered (...): 55", "unconfirmed (...): 7, 9-12",
	// "filtered: 81, 82". The list follows the last ": ".
	opsbotNote = regexp.MustCompile(`(?m)^(open\|filtered|unconfirmed|filtered)\b.*: ([0-9][0-9, -]*)$`)
)

// ParseOpsbotScan reads the reply of `opsbot run '/scan ...'` as the
// terminal renders it: the open ports from the table, the counts from the
// "ports:" field, and the open|filtered, unconfirmed (counted as
// open|filtered: silent ports opsbot could not tell from closed) and
// filtered ports from the notes. Every other port of the scan is closed.
func ParseOpsbotScan(out string) ScanReport {
	r := newScanReport()
	r.Rest = stClosed
	open := PortSet{}
	for _, m := range opsbotRow.FindAllStringSubmatch(out, -1) {
		if p, err := strconv.Atoi(m[1]); err == nil && p >= 1 && p <= 65535 {
			open[uint16(p)] = true
		}
	}
	r.States[stOpen] = open
	for _, m := range opsbotNote.FindAllStringSubmatch(out, -1) {
		st := m[1]
		if st == "unconfirmed" {
			st = stOpenFiltered
			if r.Unconfirmed == nil {
				r.Unconfirmed = PortSet{}
			}
			parsePortList(m[2], r.Unconfirmed)
		}
		if r.States[st] == nil {
			r.States[st] = PortSet{}
		}
		parsePortList(m[2], r.States[st])
	}
	if m := opsbotCounts.FindStringSubmatch(out); m != nil {
		for _, c := range opsbotCount.FindAllStringSubmatch(m[1], -1) {
			n, _ := strconv.Atoi(c[1])
			r.Counts[c[2]] += n
		}
	} else {
		for st, set := range r.States {
			r.Counts[st] = len(set)
		}
	}
	return r
}

// ParseNmapGrepable reads `nmap -oG -`: "Ports: 22/open/tcp//ssh///, ..."
// and "Ignored State: closed (65530)", which is the state of every port
// not listed.
func ParseNmapGrepable(out string) ScanReport {
	r := newScanReport()
	r.States[stOpen] = PortSet{}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "#") || !strings.Contains(line, "Ports: ") {
			continue
		}
		for _, field := range strings.Split(line, "\t") {
			switch {
			case strings.HasPrefix(field, "Ports: "):
				for _, entry := range strings.Split(strings.TrimPrefix(field, "Ports: "), ", ") {
					parts := strings.Split(entry, "/")
					if len(parts) < 3 {
						continue
					}
					p, err := strconv.Atoi(strings.TrimSpace(parts[0]))
					if err != nil || p < 1 || p > 65535 {
						continue
					}
					st := parts[1]
					if r.States[st] == nil {
						r.States[st] = PortSet{}
					}
					r.States[st][uint16(p)] = true
					r.Counts[st]++
				}
			case strings.HasPrefix(field, "Ignored State: "):
				rest := strings.TrimPrefix(field, "Ignored State: ")
				st, n, _ := strings.Cut(rest, " (")
				r.Rest = st
				if k, err := strconv.Atoi(strings.TrimSuffix(n, ")")); err == nil {
					r.Counts[st] += k
				}
			}
		}
	}
	return r
}

// ncSucceeded: netcat-openbsd's verbose success line, on stderr:
// "Connection to 127.0.0.1 22 port [tcp/ssh] succeeded!".
var ncSucceeded = regexp.MustCompile(`(?m)^Connection to \S+ (\d{1,5}) port \[(tcp|udp)/[^\]]*\] succeeded!`)

// ParseNcSucceeded gives the ports nc -zv reported as succeeded.
func ParseNcSucceeded(stderr string) PortSet {
	s := PortSet{}
	for _, m := range ncSucceeded.FindAllStringSubmatch(stderr, -1) {
		if p, err := strconv.Atoi(m[1]); err == nil && p >= 1 && p <= 65535 {
			s[uint16(p)] = true
		}
	}
	return s
}

// parseHuman reads a duration as bot.Human writes it: "2.5 ms", "660 ms",
// "1.25 s".
func parseHuman(s string) (time.Duration, bool) {
	num, unit, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, false
	}
	switch unit {
	case "ms":
		return time.Duration(v * float64(time.Millisecond)), true
	case "s":
		return time.Duration(v * float64(time.Second)), true
	}
	return 0, false
}
