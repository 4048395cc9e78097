package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/sshrun/sshtest"
	"github.com/opsbot/opsbot/commands/relayd/relaydtest"
)

// Issue 7 end to end: `opsbot run` against stand-in relayd tools (relayd
// runs only on OpenBSD) on a local host and on a host reached over a
// private Debian sshd, with the approval flow between two people.

const relaydPolicy = `
roles:
  oncall:   {commands: ["relayd status", "relayd show", "relayd poll", "relayd check", "relayd reload", "relayd restart"]}
  approver: {commands: ["relayd status"], approve: ["relayd reload", "relayd restart"]}
  viewer:   {commands: ["relayd status"], hosts: [lb-local]}
users:
  "shell:alice": [oncall]
  "shell:carol": [approver]
  "shell:vic":   [viewer]
hosts:
  lb-local: {via: local, relayd: %[1]s}
  lb-ssh:   {address: 127.0.0.1, port: %[2]d, user: root, relayd: %[3]s}
  web1:     {via: local}
`

type relaydE2E struct {
	*cli
	local, remote *relaydtest.Bed
}

func newRelaydE2E(t *testing.T) *relaydE2E {
	t.Helper()
	e := &relaydE2E{local: relaydtest.New(t), remote: relaydtest.New(t)}
	sshd := sshtest.Start(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, relaydPolicy, e.local.Spec(""), sshd.Port, e.remote.Spec("")), 0o600))
	env := append(os.Environ(), "OPSBOT_CONFIG="+cfg, "OPSBOT_DATABASE="+filepath.Join(dir, "opsbot.db"), "OPSBOT_LOG_LEVEL=error",
		"OPSBOT_SSH_KEY="+sshd.UserKey, "OPSBOT_SSH_KNOWN_HOSTS="+sshd.KnownHosts)
	e.cli = &cli{t: t, bin: opsbotBinary(t), env: env}
	return e
}

func TestRelaydE2E_StatusExitCodesLocalAndSSH(t *testing.T) {
	t.Parallel()
	e := newRelaydE2E(t)
	e.local.Healthy()
	e.remote.Healthy()

	// Hosts down: a negative answer, exit 1, with the digest.
	for _, host := range []string{"lb-local", "lb-ssh"} {
		out, code := e.run("run", "--as", "alice", "/relayd status "+host)
		require.Equal(t, 1, code, out)
		assert.Contains(t, out, "5 of 7 hosts up, 2 down")
		assert.Contains(t, out, "tcp connect failed (15551/17280 checks up)")
		assert.Contains(t, out, "[Hosts] /relayd show hosts "+host)
	}
	assert.Equal(t, []string{"relayctl show summary", "relayctl show hosts"}, e.remote.Calls(), "over ssh, the same argv")

	// All up: exit 0.
	e.local.On("relayctl show summary", relaydtest.Prints("show_summary_up.txt")).On("relayctl show hosts", relaydtest.Prints("show_hosts_up.txt"))
	out, code := e.run("run", "--as", "alice", "/relayd status lb-local")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "relayd on lb-local: all 7 hosts up, 1 redirect, 1 relay active")

	// A view is a listing: exit 0.
	out, code = e.run("run", "--as", "alice", "/relayd show sessions lb-ssh")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "198.51.100.23:51532")

	// No daemon: exit 1 and one sentence.
	e.local.On("relayctl show summary", relaydtest.Fails("socket_missing.txt"))
	out, code = e.run("run", "--as", "alice", "/relayd status lb-local")
	require.Equal(t, 1, code, out)
	assert.Contains(t, out, "relayd is not running on lb-local: its control socket /var/run/relayd.sock does not exist")

	// Usage errors: exit 2, nothing run.
	before := len(e.local.Calls())
	for _, line := range []string{"/relayd status 'lb-local;id'", "/relayd status web1", "/relayd show everything lb-local", "/relayd status"} {
		out, code = e.run("run", "--as", "alice", line)
		assert.Equal(t, 2, code, "%s: %s", line, out)
	}
	assert.Len(t, e.local.Calls(), before, "bad input never reaches a host")

	// Denied: exit 3.
	out, code = e.run("run", "--as", "vic", "/relayd status lb-ssh")
	require.Equal(t, 3, code, out)
	out, code = e.run("run", "--as", "vic", "/relayd poll lb-local")
	require.Equal(t, 3, code, out)
}

func TestRelaydE2E_ReloadWaitsForApprovalThenVerifies(t *testing.T) {
	t.Parallel()
	e := newRelaydE2E(t)
	e.remote.Healthy().
		On("relayctl reload", relaydtest.Prints("reload.txt")).
		On("relayctl show summary", relaydtest.Prints("show_summary.txt"), relaydtest.Prints("show_summary_reloaded.txt")).
		On("relayctl show hosts", relaydtest.Prints("show_hosts.txt"), relaydtest.Prints("show_hosts_unknown.txt"), relaydtest.Prints("show_hosts_reloaded.txt"))

	out, code := e.run("run", "--as", "alice", "/relayd reload lb-ssh")
	require.Equal(t, 4, code, out)
	m := approvalIDLine.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	assert.Contains(t, out, "flushes relayd's state")
	assert.Contains(t, out, "crashed relayd with TLS relays")
	assert.Empty(t, e.remote.Calls(), "nothing ran before the approval")

	out, code = e.run("run", "--as", "alice", "/opsbot approve "+m[1])
	require.Equal(t, 3, code, "the requester cannot approve: %s", out)

	out, code = e.run("run", "--as", "carol", "/opsbot approve "+m[1])
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "Reloaded relayd on lb-ssh (127.0.0.1): verified, 5 of 7 hosts up")
	assert.Contains(t, out, "reload took effect: yes: every host started again")
	assert.Contains(t, out, "Approved by shell:carol")
	assert.Equal(t, []string{"rcctl get relayd flags", "relayd -n", "relayctl show summary", "relayctl show hosts", "relayctl reload", "relayctl show hosts (x2)", "relayctl show summary"}, e.remote.Squeezed())

	kinds := map[string]int{}
	for _, r := range e.audit() {
		if r["approval_id"] == m[1] {
			kinds[r["kind"].(string)]++
		}
	}
	assert.Equal(t, 1, kinds["execution"], "%v", kinds)
}

func TestRelaydE2E_RestartRunbookAfterApproval(t *testing.T) {
	t.Parallel()
	e := newRelaydE2E(t)
	e.local.Healthy().
		On("ifconfig -g carp carpdemote 50", relaydtest.Silent).
		On("rcctl restart relayd", relaydtest.Prints("rcctl_restart_ok.txt")).
		On("relayctl show hosts", relaydtest.Prints("show_hosts.txt"), relaydtest.Prints("show_hosts_reloaded.txt")).
		On("ifconfig -g carp -carpdemote 50", relaydtest.Silent)

	out, code := e.run("run", "--as", "alice", "/relayd restart lb-local")
	require.Equal(t, 4, code, out)
	m := approvalIDLine.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	assert.Contains(t, out, "ifconfig -g carp carpdemote 50 (the CARP peer takes over the addresses)")

	out, code = e.run("run", "--as", "carol", "/opsbot approve "+m[1])
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "Restarted relayd on lb-local: 5 of 7 hosts up, CARP undemoted")
	assert.Equal(t, []string{"rcctl get relayd flags", "relayd -n", "relayctl show hosts", "ifconfig -g carp carpdemote 50", "rcctl restart relayd", "relayctl poll", "relayctl show hosts", "ifconfig -g carp -carpdemote 50"}, e.local.Calls())
}
