// Package vantagetest owns the test lab for checks from vantage hosts
// (/portcheck ... from GROUP); only tests import it. New builds, in
// network namespaces (package testbed): two vantage namespaces and a
// target namespace, joined through the probe namespace, which routes
// between them (where the bot runs in end-to-end tests); the target's
// nftables firewall lets the first vantage in and drops (or rejects as
// prohibited) the second on the lab's ports. SSHD starts Debian's sshd
// inside a vantage namespace (package sshtest) with a chosen set of tools
// for its sessions: a copy of opsbot on PATH, netcat, or bash alone.
//
// It needs root, iproute2, nftables, openssh-server and netcat-openbsd:
// without them it skips, naming what to install, and with CI=true it fails.
package vantagetest

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opsbot/opsbot/adapters/sshrun/sshtest"
	"github.com/opsbot/opsbot/commands/probe/testbed"
	"github.com/opsbot/opsbot/internal/testenv"
)

// The lab's ports on the target. From vantage 1 they are what they are;
// from vantage 2 the firewall drops all but UDPAdmin, which it rejects
// with ICMP administratively prohibited.
const (
	TCPOpen   = 80   // a listener
	TCPClosed = 81   // nothing listens: RST
	UDPOpen   = 5000 // a responder ("pong")
	UDPClosed = 5001 // nothing listens: ICMP port unreachable
	UDPAdmin  = 5002 // nothing listens; vantage 2 gets ICMP admin-prohibited
)

// Tools is what a vantage sshd's sessions find on PATH.
type Tools int

// Tool sets, from the most accurate.
const (
	Opsbot Tools = iota + 1 // a copy of opsbot (and nc, bash)
	Netcat                  // OpenBSD netcat and bash, no opsbot
	Bash                    // bash and timeout: netcat is hidden
)

func (t Tools) String() string {
	switch t {
	case Opsbot:
		return "opsbot"
	case Netcat:
		return "netcat"
	case Bash:
		return "bash"
	}
	return fmt.Sprintf("tools(%d)", int(t))
}

// Lab is the bed and the servers started in it.
type Lab struct {
	Bed      *testbed.Bed
	Vantages [2]*testbed.Target // 1 is let in, 2 is dropped
	Target   *testbed.Target
	// Key is a client key that every sshd started by SSHD authorizes for
	// root; KnownHosts trusts every one of them.
	Key        string
	KnownHosts string

	opsbot string // the opsbot binary Opsbot servers find
	dir    string
	mu     sync.Mutex
}

// Require skips t (fails it with CI=true) unless the lab can be built.
func Require(t testing.TB) {
	t.Helper()
	testbed.Require(t)
	sshtest.Check(t)
	if _, err := exec.LookPath("nc"); err != nil {
		testenv.Missing(t, "vantagetest: netcat is missing: apt-get install netcat-openbsd")
	}
}

// New builds the lab. opsbot is the binary that servers started with
// Opsbot find on their PATH as "opsbot" (a copy of the real one, or a test
// binary that acts as one when so named).
func New(t testing.TB, opsbot string) *Lab {
	t.Helper()
	Require(t)
	bed := testbed.New(t, testbed.Options{Targets: []testbed.TargetOptions{{}, {}, {}}})
	bed.Forward(t)
	l := &Lab{Bed: bed, Vantages: [2]*testbed.Target{bed.Target(1), bed.Target(2)}, Target: bed.Target(3), dir: t.TempDir()}
	l.Target.Nft(t, l.Ruleset())
	l.Target.ListenTCP(t, TCPOpen)
	l.Target.ListenUDP(t, UDPOpen, func([]byte) []byte { return []byte("pong") })

	bin := filepath.Join(l.dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil { //nolint:gosec // a PATH directory for the test's sshd sessions
		t.Fatalf("vantagetest: %v", err)
	}
	l.opsbot = filepath.Join(bin, "opsbot")
	if err := os.Symlink(opsbot, l.opsbot); err != nil {
		t.Fatalf("vantagetest: %v", err)
	}
	l.Key = filepath.Join(l.dir, "id_ed25519")
	sshtest.Keygen(t, l.Key)
	l.KnownHosts = filepath.Join(l.dir, "known_hosts")
	if err := os.WriteFile(l.KnownHosts, nil, 0o600); err != nil {
		t.Fatalf("vantagetest: %v", err)
	}
	return l
}

// Ruleset is the target's firewall: vantage 2 is dropped on the lab's
// ports, and rejected as prohibited on UDPAdmin.
func (l *Lab) Ruleset() string {
	v2 := l.Vantages[1]
	return fmt.Sprintf(`
table inet vantagetest {
	chain input {
		type filter hook input priority 0; policy accept;
		ip saddr %[1]s tcp dport { %[3]d, %[4]d } drop
		ip6 saddr %[2]s tcp dport { %[3]d, %[4]d } drop
		ip saddr %[1]s udp dport { %[5]d, %[6]d } drop
		ip6 saddr %[2]s udp dport { %[5]d, %[6]d } drop
		ip saddr %[1]s udp dport %[7]d reject with icmp type admin-prohibited
		ip6 saddr %[2]s udp dport %[7]d reject with icmpv6 type admin-prohibited
	}
}
`, v2.V4, v2.V6, TCPOpen, TCPClosed, UDPOpen, UDPClosed, UDPAdmin)
}

// Addr is the target's IPv4 address.
func (l *Lab) Addr() netip.Addr { return l.Target.V4 }

// SSHD starts an sshd in vantage namespace v (1 or 2) on port, whose
// sessions find tools on PATH, and adds it to KnownHosts.
func (l *Lab) SSHD(t testing.TB, v, port int, tools Tools) *sshtest.Server {
	t.Helper()
	opts := sshtest.Options{Netns: l.Vantages[v-1].Netns, Addr: l.Vantages[v-1].V4.String(), Port: port, UserKey: l.Key}
	switch tools {
	case Opsbot:
		opts.Env = []string{"PATH=" + filepath.Dir(l.opsbot) + ":/usr/local/bin:/usr/bin:/bin"}
	case Netcat:
	case Bash:
		for _, name := range []string{"nc", "netcat"} {
			if p, err := exec.LookPath(name); err == nil {
				opts.Hide = append(opts.Hide, p)
			}
		}
	}
	srv := sshtest.StartWith(t, opts)
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := os.OpenFile(l.KnownHosts, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatalf("vantagetest: %v", err)
	}
	defer func() { _ = f.Close() }()
	if _, err := fmt.Fprintln(f, srv.KnownHostsLine(srv.HostKey)); err != nil {
		t.Fatalf("vantagetest: %v", err)
	}
	return srv
}

// HostYAML is an inventory entry for srv, for the policy's hosts: map.
func HostYAML(name string, srv *sshtest.Server) string {
	return fmt.Sprintf("  %s: {address: %s, port: %d, user: root}\n", name, srv.Host, srv.Port)
}

// Groups writes a groups: map from name -> members.
func Groups(groups map[string][]string) string {
	var b strings.Builder
	b.WriteString("groups:\n")
	for g, m := range groups {
		fmt.Fprintf(&b, "  %s: [%s]\n", g, strings.Join(m, ", "))
	}
	return b.String()
}
