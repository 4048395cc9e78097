package probe

import "slices"

//go:generate go run ./internal/gen -o services_table.go

type portName struct {
	port uint16
	name string
}

// ServiceName gives the name netcat prints ([tcp/http], [udp/domain]) from a
// table built into the binary (names as in netbase's /etc/services); "" if
// none.
func ServiceName(proto Proto, port uint16) string {
	var table []portName
	switch proto {
	case TCP:
		table = tcpNames[:]
	case UDP:
		table = udpNames[:]
	default:
		return ""
	}
	i, ok := slices.BinarySearchFunc(table, port, func(e portName, p uint16) int { return int(e.port) - int(p) })
	if !ok {
		return ""
	}
	return table[i].name
}

// TopPorts gives the n most common ports for proto, most common first, in
// nmap's frequency order (nmap-services). It holds 1000 ports per protocol;
// a larger n gives them all.
func TopPorts(proto Proto, n int) []uint16 {
	var table []uint16
	switch proto {
	case TCP:
		table = topTCP[:]
	case UDP:
		table = topUDP[:]
	}
	if n <= 0 || len(table) == 0 {
		return nil
	}
	return slices.Clone(table[:min(n, len(table))])
}

// isCommonPort reports whether p is among the 100 most common TCP ports.
func isCommonPort(p uint16) bool {
	return slices.Contains(topTCP[:100], p)
}
