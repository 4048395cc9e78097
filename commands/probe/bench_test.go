package probe

import (
	"context"
	"testing"
)

// BenchmarkScanLoopback is the number `make bench` puts beside nmap -sT and
// nc: every TCP port of 127.0.0.1 with a few listeners.
func BenchmarkScanLoopback(b *testing.B) {
	listeners := tcpListeners(b, 3)
	ports := portRange(1, 65535)
	b.ReportAllocs()
	for b.Loop() {
		res, err := Scan(context.Background(), ScanSpec{Target: loopback, Proto: TCP, Ports: ports}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if res.Count(Open) < len(listeners) {
			b.Fatalf("found %d open ports, want at least %d", res.Count(Open), len(listeners))
		}
	}
}
