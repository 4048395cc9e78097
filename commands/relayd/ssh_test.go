package relayd

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/sshrun"
	"github.com/opsbot/opsbot/adapters/sshrun/sshtest"
	"github.com/opsbot/opsbot/bot"
)

// overSSH is /relayd with lb1 reached over SSH: a private Debian sshd on
// loopback, logged into as root, running the same stand-ins. Without
// sshd it skips (fails with CI=true).
func overSSH(t *testing.T, b *bed, edit func(*Config)) *setup {
	t.Helper()
	srv := sshtest.Start(t)
	r, err := sshrun.New(sshrun.Config{KeyFile: srv.UserKey, KnownHosts: srv.KnownHosts, DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	policy := "hosts:\n  lb1: {address: " + srv.Host + ", port: " + strconv.Itoa(srv.Port) + ", user: root, relayd: " + b.Spec("") + "}\n"
	return newSetup(t, policy, bot.Runners{"ssh": r}, edit)
}

// sameAsLocal checks an SSH reply against the golden of the same reply
// on a local host: only the host's label differs.
func sameAsLocal(t *testing.T, name string, rep bot.Reply, b *bed) {
	t.Helper()
	goldenText(t, name, strings.ReplaceAll(render(rep), "lb1 (127.0.0.1)", "lb1"), b)
}

func TestSSH_StatusShowAndCheckMatchTheLocalHost(t *testing.T) {
	t.Parallel()
	b := newBed(t).Healthy()
	s := overSSH(t, b, nil)
	sameAsLocal(t, "status_digest", s.run(t, "/relayd status lb1", nil), b)
	for _, v := range views {
		sameAsLocal(t, "show_"+v, s.run(t, "/relayd show "+v+" lb1", nil), b)
	}
	b.On("relayd -n", answer{Err: "relayd_n_err.txt", Exit: 1})
	sameAsLocal(t, "check_errors", s.run(t, "/relayd check lb1", nil), b)
	b.On("relayctl show summary", fail("socket_missing.txt"))
	sameAsLocal(t, "status_not_running", s.run(t, "/relayd status lb1", nil), b)
}

func TestSSH_RestartRunbookAndAFailure(t *testing.T) {
	t.Parallel()
	b := restartBed(t)
	s := overSSH(t, b, nil)
	rep := s.run(t, "/relayd restart lb1", nil)
	assert.Equal(t, bot.StatusOK, rep.Status, render(rep))
	sameAsLocal(t, "restart_ok", rep, b)
	assert.Equal(t, runbookCalls, b.Squeezed())

	b2 := restartBed(t).On("rcctl restart relayd", answer{Out: "rcctl_restart_failed.txt", Exit: 1}).On("relayctl show summary", fail("socket_missing.txt"))
	s2 := overSSH(t, b2, func(c *Config) { c.Wait = 2 * time.Second })
	sameAsLocal(t, "restart_failed_rcctl", s2.run(t, "/relayd restart lb1", nil), b2)
}

func TestSSH_ReloadVerified(t *testing.T) {
	t.Parallel()
	b := reloadBed(t)
	s := overSSH(t, b, nil)
	sameAsLocal(t, "reload_verified", s.run(t, "/relayd reload lb1", nil), b)
}
