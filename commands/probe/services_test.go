package probe

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestServiceName_KnownPorts(t *testing.T) {
	tests := []struct {
		proto Proto
		port  uint16
		want  string
	}{
		{TCP, 22, "ssh"},
		{TCP, 80, "http"},
		{TCP, 443, "https"},
		{TCP, 5432, "postgresql"},
		{UDP, 53, "domain"},
		{TCP, 53, "domain"},
		{UDP, 123, "ntp"},
		{UDP, 161, "snmp"},
		{TCP, 3873, ""},
		{UDP, 1, ""},
		{0, 80, ""},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, ServiceName(tt.proto, tt.port), "%s/%d", tt.proto, tt.port)
	}
}

func TestTopPorts_NmapOrder(t *testing.T) {
	top := TopPorts(TCP, 10)
	assert.Len(t, top, 10)
	assert.Equal(t, uint16(80), top[0], "nmap's most frequent TCP port")
	assert.Subset(t, top, []uint16{22, 443})
	assert.Len(t, TopPorts(TCP, 1000), 1000)
	assert.Len(t, TopPorts(UDP, 100), 100)
	assert.Subset(t, TopPorts(UDP, 20), []uint16{53, 123, 161})
	assert.Nil(t, TopPorts(TCP, 0))
	assert.Nil(t, TopPorts(0, 10))

	all := TopPorts(UDP, 1<<20)
	sorted := slices.Sorted(slices.Values(all))
	assert.Len(t, slices.Compact(sorted), len(all), "no duplicates")

	top[0] = 1
	assert.Equal(t, uint16(80), TopPorts(TCP, 1)[0], "callers get a copy")
}

func TestProtoStateReason_Strings(t *testing.T) {
	assert.Equal(t, "tcp", TCP.String())
	assert.Equal(t, "udp", UDP.String())
	p, ok := ParseProto("UDP")
	assert.True(t, ok)
	assert.Equal(t, UDP, p)
	_, ok = ParseProto("sctp")
	assert.False(t, ok)
	assert.Equal(t, "open|filtered", OpenFiltered.String())
	assert.Equal(t, "closed", Closed.String())
	assert.Equal(t, "connection refused (RST)", Refused.String())
	assert.Equal(t, "ICMP port unreachable", PortUnreachable.String())
	for r := Handshake; r <= Silence; r++ {
		assert.NotContains(t, r.String(), "reason(", "reason %d has no text", r)
	}
}
