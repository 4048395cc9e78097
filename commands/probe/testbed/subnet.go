package testbed

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// SubnetPorts are the ports FillSubnet opens and closes across the /24.
var SubnetPorts = []uint16{22, 443}

// Subnet is the ground truth of a target namespace filled by FillSubnet.
type Subnet struct {
	Prefix  netip.Prefix            // the /24
	Hosts   []netip.Addr            // .2 to .254: every address the namespace holds
	Open    map[netip.AddrPort]bool // which address has which of SubnetPorts open
	Dropped []netip.Addr            // addresses that drop everything (no RST, no answer)
	ByPort  map[uint16][]netip.Addr // the open addresses of each port
}

// subnetTruth is which port is open where, by the last byte of the
// address, and which addresses drop everything: a fixed pattern with runs
// (so a reply groups them) and strays (so it must not over-group).
func subnetTruth(last byte, port uint16) (open, dropped bool) {
	switch {
	case last >= 250:
		return false, true
	case port == 22:
		return last <= 40 || last == 77 || (last >= 120 && last <= 130), false
	case port == 443:
		return last == 77 || (last >= 100 && last <= 110) || last%50 == 3, false
	}
	return false, false
}

// SubnetOf is the truth FillSubnet makes of the /24 of v4 (a target's
// address); a child process computes it from its Env.
func SubnetOf(v4 netip.Addr) Subnet {
	base := v4.As4()
	s := Subnet{Prefix: netip.PrefixFrom(v4, 24).Masked(), Open: map[netip.AddrPort]bool{}, ByPort: map[uint16][]netip.Addr{}}
	for i := 2; i <= 254; i++ {
		a := netip.AddrFrom4([4]byte{base[0], base[1], base[2], byte(i)})
		s.Hosts = append(s.Hosts, a)
		for _, p := range SubnetPorts {
			open, drop := subnetTruth(byte(i), p)
			if open {
				s.Open[netip.AddrPortFrom(a, p)] = true
				s.ByPort[p] = append(s.ByPort[p], a)
			}
			if drop && p == SubnetPorts[0] {
				s.Dropped = append(s.Dropped, a)
			}
		}
	}
	return s
}

// FillSubnet gives target tg's namespace every address of its /24 (.2 is
// already its own; .1 is the probe's side), listens on SubnetPorts, and
// loads a firewall that makes the ports open only where SubnetOf says:
// closed (RST) elsewhere, and .250-.254 silent on every port.
func (tg *Target) FillSubnet(t testing.TB) Subnet {
	t.Helper()
	s := SubnetOf(tg.V4)
	var script strings.Builder
	for _, a := range s.Hosts[1:] { // .2 is the target's own
		fmt.Fprintf(&script, "addr add %s/24 dev eth0\n", a)
	}
	tg.bed.mustIP(t, script.String(), "-n", tg.Netns)
	for _, p := range SubnetPorts {
		tg.ListenTCP(t, p)
	}
	list := func(as []netip.Addr) string {
		parts := make([]string, len(as))
		for k, a := range as {
			parts[k] = a.String()
		}
		return strings.Join(parts, ", ")
	}
	var rules strings.Builder
	for _, p := range SubnetPorts {
		fmt.Fprintf(&rules, "\t\ttcp dport %d ip daddr != { %s } reject with tcp reset\n", p, list(s.ByPort[p]))
	}
	tg.Nft(t, fmt.Sprintf("table inet sweep {\n\tchain input {\n\t\ttype filter hook input priority 0;\n\t\tip daddr { %s } drop\n%s\t}\n}\n",
		list(s.Dropped), rules.String()))
	return s
}
