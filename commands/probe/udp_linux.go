package probe

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"
)

// recvTruncFlag makes recvmsg return a datagram's full length even when the
// buffer is smaller, so Result.Bytes is the true reply size.
const recvTruncFlag = unix.MSG_TRUNC

// setRecvErr asks for every ICMP error with its type, code and sender.
// Without it Linux reports on a UDP socket only the "hard" errors (port and
// protocol unreachable) and keeps host unreachable and admin-prohibited to
// itself, so a REJECT rule would look like silence.
func setRecvErr(fd, family int) {
	if family == unix.AF_INET6 {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVERR, 1)
		return
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVERR, 1)
}

// readErrQueue takes ICMP errors off the socket's error queue (MSG_ERRQUEUE)
// and returns the first that decides the port.
func readErrQueue(fd int, oob []byte) (udpAnswer, bool) {
	var dummy [1]byte
	for range 8 {
		_, oobn, _, _, err := unix.Recvmsg(fd, dummy[:], oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err != nil {
			return udpAnswer{}, false
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			if a, ok := parseExtendedErr(m); ok {
				return a, true
			}
		}
	}
	return udpAnswer{}, false
}

// parseExtendedErr reads struct sock_extended_err (linux/errqueue.h) and the
// offender address that follows it.
func parseExtendedErr(m unix.SocketControlMessage) (udpAnswer, bool) {
	isV4 := m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_RECVERR
	isV6 := m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_RECVERR
	d := m.Data
	if (!isV4 && !isV6) || len(d) < 16 {
		return udpAnswer{}, false
	}
	origin, typ, code := d[4], d[5], d[6]
	var st State
	var rs Reason
	var ok bool
	switch origin {
	case unix.SO_EE_ORIGIN_ICMP:
		st, rs, ok = icmpClassify(false, typ, code)
	case unix.SO_EE_ORIGIN_ICMP6:
		st, rs, ok = icmpClassify(true, typ, code)
	}
	if !ok {
		return udpAnswer{}, false // a local error (EMSGSIZE) or an ICMP that says nothing about the port
	}
	return udpAnswer{state: st, reason: rs, from: offender(d[16:])}, true
}

// offender decodes the sockaddr the kernel appends: who sent the ICMP error.
func offender(b []byte) netip.Addr {
	if len(b) < 2 {
		return netip.Addr{}
	}
	switch binary.NativeEndian.Uint16(b) {
	case unix.AF_INET:
		if len(b) >= 8 {
			return netip.AddrFrom4([4]byte(b[4:8]))
		}
	case unix.AF_INET6:
		if len(b) >= 24 {
			return netip.AddrFrom16([16]byte(b[8:24])).Unmap()
		}
	}
	return netip.Addr{}
}
