package probe

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"
)

// sockTarget is a destination in the form the socket calls take, built once
// per target so that the per-port path only changes the port number.
type sockTarget struct {
	family int
	spare  int // a refused socket a connector may connect again; -1: none
	v4     unix.SockaddrInet4
	v6     unix.SockaddrInet6
}

func newSockTarget(addr netip.Addr) (*sockTarget, error) {
	addr = addr.Unmap() // ::ffff:a.b.c.d is an IPv4 destination
	if !addr.IsValid() {
		return nil, fmt.Errorf("invalid address")
	}
	t := &sockTarget{}
	if addr.Is4() {
		t.family = unix.AF_INET
		t.v4.Addr = addr.As4()
		return t, nil
	}
	t.family = unix.AF_INET6
	t.v6.Addr = addr.As16()
	if z := addr.Zone(); z != "" {
		id, err := zoneIndex(z)
		if err != nil {
			return nil, err
		}
		t.v6.ZoneId = id
	}
	return t, nil
}

// at returns the destination with port set. The returned value aliases t, so
// each goroutine that connects needs its own sockTarget (see clone).
func (t *sockTarget) at(port uint16) unix.Sockaddr {
	if t.family == unix.AF_INET {
		t.v4.Port = int(port)
		return &t.v4
	}
	t.v6.Port = int(port)
	return &t.v6
}

func (t *sockTarget) clone() *sockTarget {
	c := *t
	c.spare = -1
	return &c
}

func zoneIndex(zone string) (uint32, error) {
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n), nil
	}
	ifi, err := net.InterfaceByName(zone)
	if err != nil {
		return 0, fmt.Errorf("ipv6 zone %q: %w", zone, err)
	}
	return uint32(ifi.Index), nil //nolint:gosec // interface indexes are small positive ints
}

// sameSockaddr reports whether two socket addresses are the same address
// and port; the self-connect test.
func sameSockaddr(a, b unix.Sockaddr) bool {
	switch x := a.(type) {
	case *unix.SockaddrInet4:
		y, ok := b.(*unix.SockaddrInet4)
		return ok && x.Port == y.Port && x.Addr == y.Addr
	case *unix.SockaddrInet6:
		y, ok := b.(*unix.SockaddrInet6)
		return ok && x.Port == y.Port && x.Addr == y.Addr
	}
	return false
}
