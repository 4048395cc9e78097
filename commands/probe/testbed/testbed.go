// Package testbed builds throwaway network namespaces for tests of the probe
// engine: a probe namespace joined to one or more target namespaces by veth
// pairs, with IPv4 and IPv6 addresses, nftables rulesets, listeners and ICMP
// rate limiting on or off per target. It needs root, iproute2 and nftables.
//
// Sockets belong to the network namespace of the OS thread that creates
// them, and the Go runtime moves goroutines between threads, so test code
// that probes from the probe namespace runs in a child process started
// there (RunInProbe, Child). Listeners in targets are created by the test
// process itself on a thread that visits the target namespace briefly.
package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/opsbot/opsbot/internal/testenv"
)

// EnvVar carries the JSON description of the bed (an Env) to a child test
// process started by RunInProbe.
const EnvVar = "OPSBOT_TESTBED"

// Names of namespaces this package creates: obp-PID-N (probe) and
// obt-PID-N-I (targets). The PID lets a later run remove what a killed run
// left behind without touching anything of a live one.
const (
	probePrefix  = "obp-"
	targetPrefix = "obt-"
	netnsDir     = "/run/netns"
	etcNetnsDir  = "/etc/netns"
)

const installHint = "apt-get install nftables iproute2"

// Options describes a bed.
type Options struct {
	// Targets: one namespace each; at least one (an empty list means one
	// target with default options).
	Targets []TargetOptions
	// Hosts: extra names for the probe namespace's /etc/hosts.
	Hosts map[string][]netip.Addr
}

// TargetOptions describes one target namespace.
type TargetOptions struct {
	// ICMPRateLimit false sets net.ipv4.icmp_ratelimit=0 and
	// net.ipv6.icmp.ratelimit=0 in the target, so that it answers every
	// probe with its ICMP error; true keeps the kernel's defaults.
	ICMPRateLimit bool
	// Aliases: more names for this target in the probe's /etc/hosts,
	// besides "targetI.test".
	Aliases []string
	// WAN, if set, joins the target to the probe by a WAN link (tun
	// devices and a relay with delay, loss and a bottleneck: wan.go)
	// instead of a veth pair.
	WAN *Link
}

// TargetInfo is what a test needs to know about a target; it crosses into
// the child process as JSON.
type TargetInfo struct {
	Index         int        `json:"index"` // 1-based, as in the host name
	Netns         string     `json:"netns"`
	Host          string     `json:"host"` // "targetI.test"
	V4            netip.Addr `json:"v4"`
	V6            netip.Addr `json:"v6"`
	ProbeV4       netip.Addr `json:"probe_v4"` // the probe's address on this link
	ProbeV6       netip.Addr `json:"probe_v6"`
	ICMPRateLimit bool       `json:"icmp_rate_limit"`
}

// Addr gives the target's IPv4 or IPv6 address.
func (ti TargetInfo) Addr(v6 bool) netip.Addr {
	if v6 {
		return ti.V6
	}
	return ti.V4
}

// Env describes a bed to a child process.
type Env struct {
	Probe   string                  `json:"probe"` // probe namespace name
	Targets []TargetInfo            `json:"targets"`
	Hosts   map[string][]netip.Addr `json:"hosts"` // the probe's /etc/hosts entries
}

// Target gives target i (1-based).
func (e *Env) Target(i int) TargetInfo {
	if i < 1 || i > len(e.Targets) {
		panic(fmt.Sprintf("testbed: no target %d (bed has %d)", i, len(e.Targets)))
	}
	return e.Targets[i-1]
}

// Bed is a probe namespace and its targets. New builds it; the test's
// cleanup tears it down.
type Bed struct {
	Probe   string // probe namespace name
	Targets []*Target

	ipPath, nftPath string
	hostsDir        string // /etc/netns/<probe>, "" until written
	hosts           map[string][]netip.Addr

	mu      sync.Mutex
	closers []func() error
	wg      sync.WaitGroup // serving goroutines
	closed  bool
}

// Target is one target namespace.
type Target struct {
	TargetInfo
	bed *Bed
	wan *wanLink // nil on a veth link
}

var (
	bedCounter    atomic.Int64 // beds in this process
	targetCounter atomic.Int64 // targets in this process: subnet numbers
	staleOnce     sync.Once
)

// tools finds ip and nft, also where a non-root PATH lacks /usr/sbin.
func tools() (ipPath, nftPath string, missing []string) {
	find := func(name string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
			p := filepath.Join(dir, name)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
				return p
			}
		}
		return ""
	}
	ipPath, nftPath = find("ip"), find("nft")
	if ipPath == "" {
		missing = append(missing, "ip (iproute2)")
	}
	if nftPath == "" {
		missing = append(missing, "nft (nftables)")
	}
	return ipPath, nftPath, missing
}

// Require skips the test, or fails it when CI=true, unless the bed can be
// built here: root, ip and nft.
func Require(t testing.TB) {
	t.Helper()
	var problems []string
	if os.Geteuid() != 0 {
		problems = append(problems, "run as root")
	}
	if _, _, missing := tools(); len(missing) > 0 {
		problems = append(problems, "missing "+strings.Join(missing, ", ")+": "+installHint)
	}
	if len(problems) == 0 {
		return
	}
	testenv.Missing(t, "network namespace test bed: %s", strings.Join(problems, "; "))
}

// New builds a bed and registers its teardown with t.Cleanup. It skips or
// fails t (see Require) when the bed cannot be built here.
func New(t testing.TB, opts Options) *Bed {
	t.Helper()
	Require(t)
	if _, ok := Child(); ok {
		t.Fatal("testbed.New called inside a child process: build the bed in the parent, check testbed.Child() first")
	}
	staleOnce.Do(func() { removeStale(t) })

	ipPath, nftPath, _ := tools()
	pid, n := os.Getpid(), bedCounter.Add(1)
	if len(opts.Targets) == 0 {
		opts.Targets = []TargetOptions{{}}
	}
	b := &Bed{
		Probe:   fmt.Sprintf("%s%d-%d", probePrefix, pid, n),
		ipPath:  ipPath,
		nftPath: nftPath,
		hosts:   map[string][]netip.Addr{},
	}
	// Registered before anything exists, so a failure half-way still
	// removes whatever was made.
	t.Cleanup(func() {
		if err := b.close(); err != nil {
			t.Errorf("testbed cleanup: %v", err)
		}
	})

	start := time.Now()
	// Order matters for IPv6: links come up before any address is added.
	// An address added while its link is down (or has no carrier) answered
	// neighbour solicitations only after about 1 s, the first probe's
	// solicitation being lost; added after, it works at once.
	var create, probeUp, probeAddrs strings.Builder
	fmt.Fprintf(&create, "netns add %s\n", b.Probe)
	probeUp.WriteString("link set lo up\n")
	for i, to := range opts.Targets {
		x := (targetCounter.Add(1)-1)%250 + 1 // subnet number, unique per target in a run
		tg := &Target{bed: b, TargetInfo: TargetInfo{
			Index:         i + 1,
			Netns:         fmt.Sprintf("%s%d-%d-%d", targetPrefix, pid, n, i+1),
			Host:          fmt.Sprintf("target%d.test", i+1),
			V4:            netip.AddrFrom4([4]byte{10, 213, byte(x), 2}),
			ProbeV4:       netip.AddrFrom4([4]byte{10, 213, byte(x), 1}),
			V6:            netip.MustParseAddr(fmt.Sprintf("fd6f:7062:6f74:%x::2", x)),
			ProbeV6:       netip.MustParseAddr(fmt.Sprintf("fd6f:7062:6f74:%x::1", x)),
			ICMPRateLimit: to.ICMPRateLimit,
		}}
		b.Targets = append(b.Targets, tg)
		// Both ends are created inside their namespaces: nothing appears
		// in the root namespace, so nothing can be left behind there.
		peer := fmt.Sprintf("t%d", i+1)
		fmt.Fprintf(&create, "netns add %s\n", tg.Netns)
		if to.WAN == nil {
			fmt.Fprintf(&create, "link add %s netns %s type veth peer name eth0 netns %s\n", peer, b.Probe, tg.Netns)
		}
		fmt.Fprintf(&probeUp, "link set %s up\n", peer)
		fmt.Fprintf(&probeAddrs, "addr add %s/24 dev %s\n", tg.ProbeV4, peer)
		fmt.Fprintf(&probeAddrs, "addr add %s/64 dev %s nodad\n", tg.ProbeV6, peer)
		for _, name := range append([]string{tg.Host}, to.Aliases...) {
			b.hosts[name] = append(b.hosts[name], tg.V4, tg.V6)
		}
	}
	for name, addrs := range opts.Hosts {
		b.hosts[name] = append(b.hosts[name], addrs...)
	}

	b.mustIP(t, create.String())
	for i, to := range opts.Targets {
		if to.WAN != nil {
			if err := b.startWAN(b.Targets[i], fmt.Sprintf("t%d", i+1), *to.WAN); err != nil {
				t.Fatalf("testbed: WAN link to %s: %v", b.Targets[i].Netns, err)
			}
		}
	}
	b.mustIP(t, probeUp.String(), "-n", b.Probe)
	for _, tg := range b.Targets {
		if !tg.ICMPRateLimit {
			err := tg.inNetns(func() error {
				for _, p := range []string{"/proc/sys/net/ipv4/icmp_ratelimit", "/proc/sys/net/ipv6/icmp/ratelimit"} {
					if err := os.WriteFile(p, []byte("0\n"), 0o644); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatalf("testbed: icmp rate limit off in %s: %v", tg.Netns, err)
			}
		}
		cfg := fmt.Sprintf("link set lo up\nlink set eth0 up\naddr add %s/24 dev eth0\naddr add %s/64 dev eth0 nodad\n", tg.V4, tg.V6)
		b.mustIP(t, cfg, "-n", tg.Netns)
	}
	b.mustIP(t, probeAddrs.String(), "-n", b.Probe)
	if err := b.writeHosts(); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	t.Logf("testbed: probe %s, targets %s (setup %v)", b.Probe, b.describeTargets(), time.Since(start).Round(time.Millisecond))
	return b
}

func (b *Bed) describeTargets() string {
	var parts []string
	for _, tg := range b.Targets {
		rl := "icmp limit off"
		if tg.ICMPRateLimit {
			rl = "icmp limit default"
		}
		if tg.wan != nil {
			rl += ", WAN " + tg.wan.cfg.String()
		}
		parts = append(parts, fmt.Sprintf("%s=%s %s/%s (%s)", tg.Host, tg.Netns, tg.V4, tg.V6, rl))
	}
	return strings.Join(parts, ", ")
}

// mustIP runs an ip batch script, failing t on error.
func (b *Bed) mustIP(t testing.TB, script string, globalArgs ...string) {
	t.Helper()
	if out, err := b.ipBatch(script, false, globalArgs...); err != nil {
		t.Fatalf("testbed: ip %s -batch: %v\n%s\nscript:\n%s", strings.Join(globalArgs, " "), err, out, script)
	}
}

func (b *Bed) ipBatch(script string, force bool, globalArgs ...string) ([]byte, error) {
	args := append([]string{}, globalArgs...)
	if force {
		args = append(args, "-force")
	}
	args = append(args, "-batch", "-")
	cmd := exec.Command(b.ipPath, args...)
	cmd.Stdin = strings.NewReader(script)
	return cmd.CombinedOutput()
}

func (b *Bed) writeHosts() error {
	var sb strings.Builder
	sb.WriteString("# written by opsbot's testbed for namespace " + b.Probe + "\n127.0.0.1\tlocalhost\n::1\tlocalhost\n")
	names := make([]string, 0, len(b.hosts))
	for name := range b.hosts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, a := range b.hosts[name] {
			fmt.Fprintf(&sb, "%s\t%s\n", a, name)
		}
	}
	dir := filepath.Join(etcNetnsDir, b.Probe)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b.hostsDir = dir
	return os.WriteFile(filepath.Join(dir, "hosts"), []byte(sb.String()), 0o644)
}

// Env describes the bed for a child process.
func (b *Bed) Env() *Env {
	e := &Env{Probe: b.Probe, Hosts: b.hosts}
	for _, tg := range b.Targets {
		e.Targets = append(e.Targets, tg.TargetInfo)
	}
	return e
}

// Target gives target i (1-based).
func (b *Bed) Target(i int) *Target {
	if i < 1 || i > len(b.Targets) {
		panic(fmt.Sprintf("testbed: no target %d (bed has %d)", i, len(b.Targets)))
	}
	return b.Targets[i-1]
}

// addCloser registers something to close at teardown; false if the bed is
// already closed.
func (b *Bed) addCloser(f func() error) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.closers = append(b.closers, f)
	return true
}

// close removes everything this bed made, by name: listeners first (an
// open socket keeps its namespace alive), then the namespaces (which takes
// their veth pairs along), then the hosts directory.
func (b *Bed) close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	closers := b.closers
	b.closers = nil
	b.mu.Unlock()

	var errs []error
	for i := len(closers) - 1; i >= 0; i-- {
		if err := closers[i](); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	b.wg.Wait()

	var del strings.Builder
	var names []string
	for _, tg := range b.Targets {
		names = append(names, tg.Netns)
	}
	names = append(names, b.Probe)
	for _, name := range names {
		if _, err := os.Stat(filepath.Join(netnsDir, name)); err == nil {
			fmt.Fprintf(&del, "netns del %s\n", name)
		}
	}
	if del.Len() > 0 {
		if out, err := b.ipBatch(del.String(), true); err != nil {
			errs = append(errs, fmt.Errorf("ip netns del: %w: %s", err, bytes.TrimSpace(out)))
		}
	}
	for _, name := range names {
		if _, err := os.Stat(filepath.Join(netnsDir, name)); err == nil {
			errs = append(errs, fmt.Errorf("namespace %s still exists", name))
		}
	}
	if b.hostsDir != "" {
		if err := os.RemoveAll(b.hostsDir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeStale deletes namespaces (and /etc/netns directories) named by
// this package for a process that no longer runs: what a killed test run
// left behind. Those of live processes, this one included, stay.
func removeStale(t testing.TB) {
	ipPath, _, _ := tools()
	var del strings.Builder
	var dirs []string
	for _, dir := range []string{netnsDir, etcNetnsDir} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			pid, ok := ownerPID(e.Name())
			if !ok || pidAlive(pid) {
				continue
			}
			if dir == netnsDir {
				fmt.Fprintf(&del, "netns del %s\n", e.Name())
			} else {
				dirs = append(dirs, filepath.Join(dir, e.Name()))
			}
		}
	}
	if del.Len() > 0 {
		cmd := exec.Command(ipPath, "-force", "-batch", "-")
		cmd.Stdin = strings.NewReader(del.String())
		out, err := cmd.CombinedOutput()
		t.Logf("testbed: removed stale namespaces of dead runs:\n%s(err=%v) %s", del.String(), err, out)
	}
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}

// ownerPID parses the PID out of obp-PID-N or obt-PID-N-I.
func ownerPID(name string) (int, bool) {
	var rest string
	switch {
	case strings.HasPrefix(name, probePrefix):
		rest = name[len(probePrefix):]
	case strings.HasPrefix(name, targetPrefix):
		rest = name[len(targetPrefix):]
	default:
		return 0, false
	}
	pidStr, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// pidAlive: a zombie counts as dead (kill -0 succeeds on one).
func pidAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // alive per kill(2), /proc unreadable: leave it
	}
	// "PID (comm) S ...": the state follows the last ')'.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z' && stat[i+2] != 'X'
	}
	return true
}

// withNetns runs f on an OS thread that has entered the network namespace
// at nsPath; sockets f creates stay in that namespace. The thread goes
// back to its namespace before it is released; if that fails it stays
// locked, and the runtime ends it with its goroutine.
func withNetns(nsPath string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer func() { _ = orig.Close() }()
		ns, err := os.Open(nsPath)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer func() { _ = ns.Close() }()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", nsPath, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns back from %s: %w (thread discarded)", nsPath, err)
			return // still locked: this thread exits with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func (tg *Target) inNetns(f func() error) error {
	return withNetns(filepath.Join(netnsDir, tg.Netns), f)
}

// Nft loads an nftables ruleset (nft -f syntax) into the target namespace.
func (tg *Target) Nft(t testing.TB, ruleset string) {
	t.Helper()
	cmd := exec.Command(tg.bed.ipPath, "netns", "exec", tg.Netns, tg.bed.nftPath, "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testbed: nft -f in %s: %v\n%s\nruleset:\n%s", tg.Netns, err, out, ruleset)
	}
}

// Exec runs argv inside the target namespace.
func (tg *Target) Exec(ctx context.Context, argv ...string) (stdout, stderr string, code int, err error) {
	return tg.bed.execIn(ctx, tg.Netns, argv)
}

// Exec runs argv inside the probe namespace and gives its output and exit
// code (-1 if it did not exit normally). err is set only when the command
// could not run at all or ctx ended it.
func (b *Bed) Exec(ctx context.Context, argv ...string) (stdout, stderr string, code int, err error) {
	return b.execIn(ctx, b.Probe, argv)
}

func (b *Bed) execIn(ctx context.Context, netns string, argv []string) (string, string, int, error) {
	if len(argv) == 0 {
		return "", "", -1, errors.New("testbed: empty argv")
	}
	cmd := exec.CommandContext(ctx, b.ipPath, append([]string{"netns", "exec", netns}, argv...)...)
	cmd.WaitDelay = 2 * time.Second
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && ctx.Err() == nil {
		err = nil // a non-zero exit is a result, not a failure to run
	}
	return so.String(), se.String(), code, err
}

var (
	childOnce sync.Once
	childEnv  *Env
)

// Child reports whether this process is a child started by RunInProbe,
// and if so describes the bed it runs in.
func Child() (*Env, bool) {
	childOnce.Do(func() {
		s := os.Getenv(EnvVar)
		if s == "" {
			return
		}
		var e Env
		if err := json.Unmarshal([]byte(s), &e); err != nil {
			panic(fmt.Sprintf("testbed: bad %s: %v", EnvVar, err))
		}
		childEnv = &e
	})
	return childEnv, childEnv != nil
}
