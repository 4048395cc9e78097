package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/commands/probe/testbed"
)

// These tests drive the built binary the way a user does (`opsbot run
// 'LINE'`), from a probe network namespace, against a target namespace with
// real listeners and an nftables firewall.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func opsbotBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "opsbot-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "opsbot")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

const e2eRules = `
table inet filter {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 81 drop
		udp dport 125 drop
		udp dport 126 reject with icmpx type admin-prohibited
		tcp dport 2500-3299 drop
	}
}
`

func TestE2E_RunFromAProbeNamespace(t *testing.T) {
	bed := testbed.New(t, testbed.Options{Targets: []testbed.TargetOptions{{}}})
	tg := bed.Target(1)
	tg.Nft(t, e2eRules)
	tg.ListenTCP(t, 80)
	tg.ListenTCP(t, 2222)
	tg.ListenUDP(t, 5000, func([]byte) []byte { return []byte("pong") })
	bin := opsbotBinary(t)
	v4 := tg.V4.String()
	t.Setenv("OPSBOT_DATABASE", filepath.Join(t.TempDir(), "opsbot.db"))
	t.Setenv("OPSBOT_CONFIG", "")

	run := func(line string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, errOut, code, err := bed.Exec(ctx, bin, "run", line)
		require.NoError(t, err, errOut)
		return out, code
	}

	t.Run("tcp_open_is_the_netcat_line", func(t *testing.T) {
		out, code := run("/portcheck " + v4 + " 80")
		assert.Equal(t, 0, code, out)
		assert.Regexp(t, regexp.QuoteMeta("Connection to "+v4+" 80 port [tcp/http] succeeded! (")+`\d+(\.\d)? ms\)`, out)
	})
	t.Run("tcp_drop_is_filtered_with_the_timeout", func(t *testing.T) {
		out, code := run("/portcheck " + v4 + " 81 timeout 300ms")
		assert.Equal(t, 1, code, out)
		assert.Contains(t, out, v4+" 81 port [tcp/*] filtered: no answer in 300ms (a firewall drops it)")
	})
	t.Run("udp_drop_is_open_filtered_and_explained", func(t *testing.T) {
		out, code := run("/portcheck -zuv -w 0.3 " + v4 + " 125")
		assert.Equal(t, 1, code, "silence is not success: "+out)
		assert.Contains(t, out, v4+" 125 port [udp/*] open|filtered: no reply and no ICMP error")
		assert.Contains(t, out, "UDP is connectionless: a firewall that drops packets looks the same as an open port.")
		assert.NotContains(t, out, "succeeded!")
	})
	t.Run("udp_admin_prohibited_is_filtered", func(t *testing.T) {
		out, code := run("/portcheck -zuv " + v4 + " 126")
		assert.Equal(t, 1, code, out)
		assert.Contains(t, out, v4+" 126 port [udp/*] filtered: ICMP administratively prohibited")
	})
	t.Run("udp_reply_is_open", func(t *testing.T) {
		out, code := run("/portcheck -zuv " + v4 + " 5000")
		assert.Equal(t, 0, code, out)
		assert.Contains(t, out, v4+" 5000 port [udp/*] open: reply received, 4 bytes")
	})
	t.Run("a_name_says_which_address_answered", func(t *testing.T) {
		out, code := run("/portcheck " + tg.Host + " 80")
		assert.Equal(t, 0, code, out)
		assert.Contains(t, out, "Connection to "+tg.Host+" ("+v4+") 80 port [tcp/http] succeeded!")
		assert.Contains(t, out, "Connection to "+tg.Host+" ("+tg.V6.String()+") 80 port [tcp/http] succeeded!")
	})
	t.Run("scan_lists_exactly_the_listeners", func(t *testing.T) {
		out, code := run("/scan " + v4 + " 1-3000 timeout 300ms")
		assert.Equal(t, 0, code, out)
		open := regexp.MustCompile(`(?m)^(\d+)/tcp\s+open`).FindAllStringSubmatch(out, -1)
		var ports []string
		for _, m := range open {
			ports = append(ports, m[1])
		}
		assert.Equal(t, []string{"80", "2222"}, ports, out)
		assert.Contains(t, out, "2 open, 2496 closed, 502 filtered")
	})
	t.Run("ipv6_scan", func(t *testing.T) {
		out, code := run("/scan " + tg.V6.String() + " 1-100,2222")
		assert.Equal(t, 0, code, out)
		assert.Regexp(t, `(?m)^80/tcp\s+open`, out)
		assert.Regexp(t, `(?m)^2222/tcp\s+open`, out)
	})
}
