package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/sshrun/sshtest"
	"github.com/opsbot/opsbot/commands/vantage/vantagetest"
)

// Issue 9 end to end: `opsbot run '/portcheck TARGET PORT from GROUP'`
// with the built binary in the probe namespace (the bot's host), two
// vantage namespaces reached over SSH (Debian's sshd in each: web01 has a
// copy of this opsbot on its PATH, web02 only netcat), and a target whose
// firewall lets web01 in and drops web02.

const vantagePolicy = `
roles:
  oncall: {commands: [portcheck, scan]}
  viewer: {commands: [portcheck], hosts: [web01]}
users:
  "shell:alice": [oncall]
  "shell:vic":   [viewer]
hosts:
%sgroups:
  web: [web01, web02]
`

func TestVantageE2E_PortcheckFromAGroupShowsTheFirewall(t *testing.T) {
	lab := vantagetest.New(t, opsbotBinary(t))
	var servers [2]*sshtest.Server
	var wg sync.WaitGroup
	wg.Go(func() { servers[0] = lab.SSHD(t, 1, 22, vantagetest.Opsbot) })
	wg.Go(func() { servers[1] = lab.SSHD(t, 2, 22, vantagetest.Netcat) })
	wg.Wait()
	hosts := [2]string{vantagetest.HostYAML("web01", servers[0]), vantagetest.HostYAML("web02", servers[1])}
	logins := func() int { return servers[0].Accepted(t) + servers[1].Accepted(t) }
	dir := t.TempDir()
	cfg := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, vantagePolicy, hosts[0]+hosts[1]), 0o600))
	env := []string{"env", "OPSBOT_CONFIG=" + cfg, "OPSBOT_DATABASE=" + filepath.Join(dir, "opsbot.db"), "OPSBOT_LOG_LEVEL=error",
		"OPSBOT_SSH_KEY=" + lab.Key, "OPSBOT_SSH_KNOWN_HOSTS=" + lab.KnownHosts}
	bin := opsbotBinary(t)
	run := func(user, line string) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		start := time.Now()
		out, errOut, code, err := lab.Bed.Exec(ctx, append(env, bin, "run", "--as", user, line)...)
		require.NoError(t, err, errOut)
		t.Logf("$ opsbot run --as %s '%s'  (exit %d, %s)\n%s%s", user, line, code, time.Since(start).Round(time.Millisecond), out, errOut)
		return out + errOut, code
	}
	v4, v6 := lab.Target.V4.String(), lab.Target.V6.String()
	host := lab.Target.Host

	t.Run("tcp", func(t *testing.T) {
		out, code := run("alice", fmt.Sprintf("/portcheck -4 %s %d timeout 1s from web", host, vantagetest.TCPOpen))
		assert.Equal(t, 1, code, "not open from every vantage host")
		assert.Contains(t, out, host+" ("+v4+") 80/tcp open from web01, filtered from web02")
		assert.Regexp(t, `(?m)^web01\s+opsbot\s+open$`, out)
		assert.Regexp(t, `(?m)^web02\s+nc\s+filtered$`, out)
		assert.Contains(t, out, "Checked "+v4+": "+host+" was resolved on the bot and checked against its policy; the vantage hosts were given the address, never the name.")
		assert.Contains(t, out, "web01: opsbot probe (")
		assert.Contains(t, out, "web02: nc (/usr/bin/nc, OpenBSD netcat")
	})
	t.Run("a_name_with_two_addresses", func(t *testing.T) {
		out, _ := run("alice", fmt.Sprintf("/portcheck %s %d timeout 1s from web", host, vantagetest.TCPOpen))
		assert.Regexp(t, regexp.QuoteMeta(host)+` \((`+regexp.QuoteMeta(v4)+"|"+regexp.QuoteMeta(v6)+`)\) 80/tcp open from web01, filtered from web02`, out)
		assert.Regexp(t, regexp.QuoteMeta(host)+" has 2 addresses; checked ("+regexp.QuoteMeta(v4)+"|"+regexp.QuoteMeta(v6)+`) \(add -4 or -6 to choose\)\.`, out)
	})
	t.Run("tcp_ipv6", func(t *testing.T) {
		out, code := run("alice", fmt.Sprintf("/portcheck -6 %s %d timeout 1s from web", host, vantagetest.TCPOpen))
		assert.Equal(t, 1, code)
		assert.Contains(t, out, host+" ("+v6+") 80/tcp open from web01, filtered from web02")
	})
	t.Run("udp", func(t *testing.T) {
		out, code := run("alice", fmt.Sprintf("/portcheck -zuv -w 1 %s %d,%d from web", v4, vantagetest.UDPOpen, vantagetest.UDPClosed))
		assert.Equal(t, 1, code)
		assert.Contains(t, out, v4+" 5000/udp open from web01, open|filtered from web02; 5001/udp closed from web01, open|filtered from web02")
		assert.Regexp(t, `(?m)^web01\s+opsbot\s+open\s+closed$`, out)
		assert.Regexp(t, `(?m)^web02\s+nc\s+open\|filtered\s+open\|filtered$`, out, "netcat's UDP \"succeeded\" is never open")
		assert.Contains(t, out, "it never reads a reply, and says \"succeeded\"")
	})
	t.Run("scan", func(t *testing.T) {
		out, code := run("alice", fmt.Sprintf("/scan %s 75-85 timeout 1s from web", v4))
		assert.Equal(t, 0, code, "a port is open from some vantage host")
		assert.Contains(t, out, "Scan of "+v4+" tcp 75-85 from web: 80/tcp open from web01, filtered from web02; 81/tcp closed from web01, filtered from web02")
		assert.Regexp(t, `(?m)^web01\s+opsbot\s+open\s+closed\s+1 open, 10 closed$`, out)
		assert.Regexp(t, `(?m)^web02\s+nc\s+filtered\s+filtered\s+9 closed, 2 filtered$`, out)
	})
	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			user, line string
			code       int
			want       string
		}{
			{"alice", "/portcheck " + v4 + " 80 from", 2, "from needs a vantage point"},
			{"alice", "/portcheck " + v4 + " 80 from 'web;id'", 2, "not an inventory host or group name"},
			{"alice", "/portcheck " + v4 + " 80 from db", 2, `no host or group "db" in the inventory`},
			{"vic", "/portcheck " + v4 + " 80 from web", 3, "group web includes web02"},
			{"alice", "/portcheck 169.254.169.254 80 from web", 3, "link-local"},
		} {
			before := logins()
			out, code := run(tc.user, tc.line)
			assert.Equal(t, tc.code, code, out)
			assert.Contains(t, out, tc.want)
			assert.NotRegexp(t, regexp.MustCompile(`(?m)^web0[12]\s`), out)
			assert.Equal(t, before, logins(), "no SSH login on any vantage host")
		}
		before := logins()
		out, code := run("vic", fmt.Sprintf("/portcheck %s %d from web01", v4, vantagetest.TCPOpen))
		assert.Equal(t, 0, code, out)
		assert.Equal(t, before+1, logins(), "one SSH connection for detection and probe")
		assert.Contains(t, out, v4+" 80/tcp open from web01")
	})
}
