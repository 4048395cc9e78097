// Package commands holds opsbot's chat commands. Each parses its words into
// validated types, acts (through the probe engine or bot interfaces), and
// hands typed results to one pure function that builds a platform-neutral
// bot.Reply. Nothing here knows which chat platform asked.
package commands

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/internal/portwords"
	"github.com/opsbot/opsbot/commands/probe"
)

const portsAccepted = "a port (80), a list (22,80,443), a range (8000-8100), a service name (https)"

// parsePortSpec parses one word of ports: "80", "22,80,443", "8000-8100",
// "https", "top100" (the most common ports for proto), or a mix joined by
// commas. Duplicates are removed; the order is ascending.
func parsePortSpec(word string, proto probe.Proto, into map[uint16]bool) error {
	for _, part := range strings.Split(word, ",") {
		if part == "" {
			return bot.Errorf(bot.EINVALID, "empty port in %q: accepted are %s", word, portsAccepted)
		}
		if n, ok := strings.CutPrefix(strings.ToLower(part), "top"); ok {
			count, err := strconv.Atoi(n)
			if err != nil || count < 1 || count > 1000 {
				return bot.Errorf(bot.EINVALID, "%q: accepted are top1 to top1000 (the most common ports)", part)
			}
			top := probe.TopPorts(proto, count)
			for _, p := range top {
				into[p] = true
			}
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			p, err := parsePort(part, proto)
			if err != nil {
				return err
			}
			into[p] = true
			continue
		}
		a, err := parsePortNumber(lo)
		if err != nil {
			return err
		}
		b, err := parsePortNumber(hi)
		if err != nil {
			return err
		}
		if a > b {
			return bot.Errorf(bot.EINVALID, "range %s runs backwards: write %d-%d", part, b, a)
		}
		for p := int(a); p <= int(b); p++ {
			into[uint16(p)] = true //nolint:gosec // a <= p <= b <= 65535, checked above
		}
	}
	return nil
}

func parsePort(s string, proto probe.Proto) (uint16, error) {
	if s != "" && s[0] >= '0' && s[0] <= '9' || s != "" && s[0] == '-' {
		return parsePortNumber(s)
	}
	if p, ok := servicePort(proto, strings.ToLower(s)); ok {
		return p, nil
	}
	return 0, bot.Errorf(bot.EINVALID, "%q is not a port or a known %s service name: accepted are %s", s, proto, portsAccepted)
}

// parsePortNumber reads one port number: 1 to 65535.
func parsePortNumber(s string) (uint16, error) { return portwords.PortNumber(s) }

func sortedPorts(set map[uint16]bool) []uint16 { return portwords.Sorted(set) }

// parseDuration accepts Go durations (3s, 500ms, 5m) and, like nc -w, a
// bare number of seconds.
func parseDuration(what, s string, lo, hi time.Duration) (time.Duration, error) {
	return portwords.Duration(what, s, lo, hi)
}

// unsupportedProtos are words a user may try for a protocol; naming them
// gives a clearer error than "not a port".
var unsupportedProtos = map[string]bool{"sctp": true, "icmp": true, "dccp": true, "quic": true, "raw": true}

func protoError(word string) error {
	return bot.Errorf(bot.EINVALID, "protocol %q is not supported: accepted are tcp and udp", word)
}

// portRanges writes a port list compactly: "22, 80, 8000-8003".
func portRanges(ports []uint16) string { return portwords.Ranges(ports) }

// human is bot.Human, under the short name the port lines use.
func human(d time.Duration) string { return bot.Human(d) }

var (
	servicesOnce sync.Once
	servicePorts map[probe.Proto]map[string]uint16
)

// servicePort maps a service name back to its port (https → 443), from the
// same built-in table that names ports in replies. The lowest port wins
// where a name has several.
func servicePort(proto probe.Proto, name string) (uint16, bool) {
	servicesOnce.Do(func() {
		servicePorts = map[probe.Proto]map[string]uint16{probe.TCP: {}, probe.UDP: {}}
		for _, pr := range []probe.Proto{probe.TCP, probe.UDP} {
			for p := 65535; p >= 1; p-- {
				if n := probe.ServiceName(pr, uint16(p)); n != "" {
					servicePorts[pr][n] = uint16(p)
				}
			}
		}
	})
	p, ok := servicePorts[proto][name]
	return p, ok
}
