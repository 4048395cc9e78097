package testbed

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Forward makes the probe namespace a router between its targets: IP
// forwarding on there, and in every target a default route (IPv4 and IPv6)
// through the probe's end of its link. A target can then reach every other
// target, as a vantage point reaches the host it checks, and its packets
// keep their source address, so a target's firewall can let one vantage
// point in and drop another.
func (b *Bed) Forward(t testing.TB) {
	t.Helper()
	err := withNetns(filepath.Join(netnsDir, b.Probe), func() error {
		for _, p := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
			if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil { //nolint:gosec // a sysctl of our own namespace
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("testbed: forwarding on in %s: %v", b.Probe, err)
	}
	for _, tg := range b.Targets {
		script := fmt.Sprintf("route add default via %s\nroute add default via %s\n", tg.ProbeV4, tg.ProbeV6)
		b.mustIP(t, script, "-n", tg.Netns)
	}
	b.waitTentative(t)
}

// waitTentative waits until no IPv6 address of the bed is tentative. The
// link-local addresses the kernel gives each veth go through duplicate
// address detection for about 1.5 s, and until then the first connection
// forwarded over IPv6 was lost (measured: a connect timed out after 1 s,
// the next one 0.8 s later worked).
func (b *Bed) waitTentative(t testing.TB) {
	t.Helper()
	names := []string{b.Probe}
	for _, tg := range b.Targets {
		names = append(names, tg.Netns)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, ns := range names {
		for {
			out, err := exec.Command(b.ipPath, "-n", ns, "-6", "addr", "show", "tentative").CombinedOutput() //nolint:gosec // iproute2 on our own namespace
			if err != nil {
				t.Fatalf("testbed: ip -n %s -6 addr show tentative: %v: %s", ns, err, out)
			}
			if !strings.Contains(string(out), "inet6") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("testbed: IPv6 addresses in %s still tentative after 10s:\n%s", ns, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// DialContext connects from the probe namespace, for clients that live in
// the test process (an SSH runner reaching a server started in a target
// namespace, say). The socket is made on a thread inside the namespace and
// stays there; the connection is then used like any other.
func (b *Bed) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var conn net.Conn
	err := withNetns(filepath.Join(netnsDir, b.Probe), func() error {
		var err error
		conn, err = (&net.Dialer{}).DialContext(ctx, network, address)
		return err
	})
	return conn, err
}
