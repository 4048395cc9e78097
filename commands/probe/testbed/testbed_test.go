package testbed

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBed checks the bed itself: addresses, names, listeners, rules, the
// rate-limit sysctls, Exec and the child process, then that teardown
// leaves nothing.
func TestBed(t *testing.T) {
	if env, ok := Child(); ok {
		testBedChild(t, env)
		return
	}
	Require(t)
	var probe string
	var targets []string
	t.Run("build_use_teardown", func(t *testing.T) {
		start := time.Now()
		bed := New(t, Options{
			Targets: []TargetOptions{{}, {ICMPRateLimit: true, Aliases: []string{"limited.test"}}},
			Hosts:   map[string][]netip.Addr{"extra.test": {netip.MustParseAddr("192.0.2.7")}},
		})
		t.Logf("setup took %v", time.Since(start))
		probe = bed.Probe
		for _, tg := range bed.Targets {
			targets = append(targets, tg.Netns)
			assert.LessOrEqual(t, len(tg.Netns), 32)
		}
		assert.Regexp(t, `^obp-\d+-\d+$`, bed.Probe)

		t1, t2 := bed.Target(1), bed.Target(2)
		t1.ListenTCP(t, 7001)
		t1.ListenUDP(t, 7002, func(req []byte) []byte { return append([]byte("echo:"), req...) })
		t2.ListenTCP(t, 7001)
		for _, tg := range bed.Targets {
			tg.Nft(t, `table inet filter {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 7003 drop
		udp dport 7004 drop
	}
}`)
		}

		// At once, before anything else has used the links: IPv6 must not
		// need a second to become reachable.
		bed.RunInProbe(t, t.Name())

		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		// Rate-limit sysctls as asked for.
		out, _, code, err := t1.Exec(ctx, "cat", "/proc/sys/net/ipv4/icmp_ratelimit", "/proc/sys/net/ipv6/icmp/ratelimit")
		require.NoError(t, err)
		require.Equal(t, 0, code)
		assert.Equal(t, "0\n0\n", out)
		out, _, _, err = t2.Exec(ctx, "cat", "/proc/sys/net/ipv4/icmp_ratelimit")
		require.NoError(t, err)
		assert.NotEqual(t, "0\n", out)

		// /etc/hosts inside the probe namespace.
		out, _, code, err = bed.Exec(ctx, "cat", "/etc/hosts")
		require.NoError(t, err)
		require.Equal(t, 0, code)
		assert.Contains(t, out, t1.V4.String()+"\ttarget1.test")
		assert.Contains(t, out, t1.V6.String()+"\ttarget1.test")
		assert.Contains(t, out, t2.V4.String()+"\tlimited.test")
		assert.Contains(t, out, "192.0.2.7\textra.test")

		// Exec reports exit codes and output.
		_, errOut, code, err := bed.Exec(ctx, "sh", "-c", "echo oops >&2; exit 3")
		require.NoError(t, err)
		assert.Equal(t, 3, code)
		assert.Equal(t, "oops\n", errOut)

		if nc, err := exec.LookPath("nc"); err == nil {
			_, _, code, err = bed.Exec(ctx, nc, "-z", "-w", "2", "target1.test", "7001")
			require.NoError(t, err)
			assert.Equal(t, 0, code, "nc to a listener")
			_, _, code, err = bed.Exec(ctx, nc, "-z", "-w", "1", t1.V4.String(), "7003")
			require.NoError(t, err)
			assert.Equal(t, 1, code, "nc to a dropped port")
		}
	})
	// Teardown removed exactly what the bed made.
	require.NotEmpty(t, probe)
	for _, ns := range append(targets, probe) {
		assert.NoFileExists(t, filepath.Join(netnsDir, ns))
	}
	assert.NoDirExists(t, filepath.Join(etcNetnsDir, probe))
	out, err := exec.Command("ip", "-o", "link", "show", "type", "veth").CombinedOutput()
	require.NoError(t, err)
	assert.NotContains(t, string(out), probe)
}

func testBedChild(t *testing.T, env *Env) {
	t.Run("build_use_teardown", func(t *testing.T) {
		require.Len(t, env.Targets, 2)
		t1 := env.Target(1)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()

		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", "target1.test")
		require.NoError(t, err)
		for i := range addrs {
			addrs[i] = addrs[i].Unmap() // LookupNetIP gives IPv4 as ::ffff:a.b.c.d
		}
		assert.ElementsMatch(t, []netip.Addr{t1.V4, t1.V6}, addrs)

		for _, a := range []netip.Addr{env.Target(2).V6, t1.V6, t1.V4, env.Target(2).V4} {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(a, 7001).String(), 300*time.Millisecond)
			require.NoError(t, err, "tcp %s", a)
			_ = c.Close()
		}
		_, err = net.DialTimeout("tcp", netip.AddrPortFrom(t1.V4, 7005).String(), 2*time.Second)
		assert.True(t, errors.Is(err, syscall.ECONNREFUSED), "closed port: %v", err)
		_, err = net.DialTimeout("tcp", netip.AddrPortFrom(t1.V4, 7003).String(), 300*time.Millisecond)
		var ne net.Error
		assert.True(t, errors.As(err, &ne) && ne.Timeout(), "dropped port: %v", err)

		for _, a := range []netip.Addr{t1.V4, t1.V6} {
			c, err := net.Dial("udp", netip.AddrPortFrom(a, 7002).String())
			require.NoError(t, err)
			_, err = c.Write([]byte("hi"))
			require.NoError(t, err)
			require.NoError(t, c.SetReadDeadline(time.Now().Add(2*time.Second)))
			buf := make([]byte, 100)
			n, err := c.Read(buf)
			require.NoError(t, err)
			assert.Equal(t, "echo:hi", string(buf[:n]))
			_ = c.Close()
		}
	})
}

// TestRemoveStale: namespaces named for a dead PID go; those of a live
// one (this process) and foreign names stay.
func TestRemoveStale(t *testing.T) {
	Require(t)
	if _, ok := Child(); ok {
		t.Skip("not a child test")
	}
	dead := exec.Command("true")
	require.NoError(t, dead.Run())
	deadPID := dead.ProcessState.Pid()
	require.False(t, pidAlive(deadPID))
	require.True(t, pidAlive(os.Getpid()))

	mine := "obt-" + strconv.Itoa(os.Getpid()) + "-999-1"
	stale := "obt-" + strconv.Itoa(deadPID) + "-1-1"
	staleProbe := "obp-" + strconv.Itoa(deadPID) + "-1"
	foreign := "obx-" + strconv.Itoa(deadPID)
	for _, ns := range []string{mine, stale, staleProbe, foreign} {
		require.NoError(t, exec.Command("ip", "netns", "add", ns).Run())
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	require.NoError(t, os.MkdirAll(filepath.Join(etcNetnsDir, staleProbe), 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Join(etcNetnsDir, staleProbe)) })

	removeStale(t)
	assert.FileExists(t, filepath.Join(netnsDir, mine))
	assert.FileExists(t, filepath.Join(netnsDir, foreign))
	assert.NoFileExists(t, filepath.Join(netnsDir, stale))
	assert.NoFileExists(t, filepath.Join(netnsDir, staleProbe))
	assert.NoDirExists(t, filepath.Join(etcNetnsDir, staleProbe))
}

func TestRunPattern(t *testing.T) {
	for _, tc := range []struct{ name, parent, want string }{
		{"TestX", "", "^TestX$"},
		{"TestX", "TestX", "^TestX$"},
		{"TestX", "TestX/a_b/c", "^TestX$/a_b/c"},
		{"TestX/sub.1", "TestX|TestY/sub", "^TestX$/^sub\\.1$"},
		{"TestX", "Test(X|Y/z)/q[/]r", "^TestX$/q[/]r"},
	} {
		assert.Equal(t, tc.want, runPattern(tc.name, tc.parent), "%s with -run %q", tc.name, tc.parent)
	}
}
