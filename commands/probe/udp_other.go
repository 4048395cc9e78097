//go:build !linux

package probe

// Other systems have no IP_RECVERR: a connected UDP socket reports ICMP
// errors only as errno (ECONNREFUSED, EHOSTUNREACH), which udpClassifyErrno
// reads, and the ICMP sender stays unknown.

const recvTruncFlag = 0

func setRecvErr(int, int) {}

func readErrQueue(int, []byte) (udpAnswer, bool) { return udpAnswer{}, false }
