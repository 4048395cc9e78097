package sshrun_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/opsbot/opsbot/adapters/sshrun"
	"github.com/opsbot/opsbot/adapters/sshrun/sshtest"
	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/internal/testenv"
)

// fixture is a private sshd and a runner pointed at it that counts the TCP
// connections it opens.
type fixture struct {
	srv    *sshtest.Server
	runner *sshrun.Runner
	host   bot.Host
	dials  atomic.Int32
}

func newFixture(t *testing.T, edit func(*sshrun.Config)) *fixture {
	t.Helper()
	f := &fixture{srv: sshtest.Start(t)}
	cfg := sshrun.Config{
		KeyFile:     f.srv.UserKey,
		KnownHosts:  f.srv.KnownHosts,
		DialTimeout: 5 * time.Second,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			f.dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	if edit != nil {
		edit(&cfg)
	}
	r, err := sshrun.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	f.runner = r
	f.host = bot.Host{Name: "web01", Via: "ssh", Address: f.srv.Host, Port: f.srv.Port, User: "root", Timeout: 10 * time.Second}
	return f
}

func (f *fixture) run(t *testing.T, argv ...string) bot.Output {
	t.Helper()
	out, err := f.runner.Run(context.Background(), f.host, argv)
	require.NoError(t, err, "sshd log:\n%s", f.srv.Log())
	return out
}

func TestRun_ArgvWordsReachTheRemoteCommandLiterally(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	words := []string{"a b", `it's "quoted"`, "$(id)", "; touch /tmp/opsbot-pwned", "`id`", "*", "", "a\nb", `\'`, "$HOME", "|", "&&"}
	out := f.run(t, append([]string{"printf", `%s\n`}, words...)...)
	assert.Equal(t, strings.Join(words, "\n")+"\n", string(out.Stdout))
	assert.Empty(t, out.Stderr)
	assert.Equal(t, 0, out.ExitCode)
	assert.NoFileExists(t, "/tmp/opsbot-pwned")
}

func TestRun_ExitCodeAndStderrAreKeptApart(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	tests := []struct {
		name               string
		script             string
		wantOut, wantErr   string
		wantCode           int
		wantTruncated      bool
		maxOutputOverrides bool
	}{
		{name: "success", script: "echo ok", wantOut: "ok\n", wantCode: 0},
		{name: "non-zero exit is not an error", script: "echo out; exit 3", wantOut: "out\n", wantCode: 3},
		{name: "stderr apart from stdout", script: "echo out; echo err >&2; echo out2", wantOut: "out\nout2\n", wantErr: "err\n"},
		{name: "killed by a signal is -1", script: "kill -KILL $$", wantCode: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out := f.run(t, "sh", "-c", tt.script)
			assert.Equal(t, tt.wantOut, string(out.Stdout))
			assert.Equal(t, tt.wantErr, string(out.Stderr))
			assert.Equal(t, tt.wantCode, out.ExitCode)
			assert.False(t, out.Truncated)
		})
	}
}

func TestRun_OutputIsTruncatedAtMaxOutputEach(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *sshrun.Config) { c.MaxOutput = 1000 })
	out := f.run(t, "sh", "-c", "head -c 300000 /dev/zero; head -c 5000 /dev/zero >&2; echo done >&2")
	assert.Len(t, out.Stdout, 1000)
	assert.Len(t, out.Stderr, 1000)
	assert.True(t, out.Truncated)
	assert.Equal(t, 0, out.ExitCode, "the command is not blocked by a full buffer")
}

func TestRun_ReusesOneConnectionPerHost(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	for range 3 {
		f.run(t, "true")
	}
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			_, err := f.runner.Run(context.Background(), f.host, []string{"sleep", "0.1"})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.Equal(t, int32(1), f.dials.Load(), "TCP connections dialled")
	assert.Equal(t, 1, f.srv.Accepted(t), "logins sshd accepted")
}

func TestRun_RedialsAfterSshdRestart(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.run(t, "true")
	f.srv.Restart(t)
	out := f.run(t, "echo", "again")
	assert.Equal(t, "again\n", string(out.Stdout))
	assert.Equal(t, int32(2), f.dials.Load(), "TCP connections dialled")
	f.run(t, "true")
	assert.Equal(t, int32(2), f.dials.Load(), "the new connection is reused")
}

func TestRun_RefusesUnknownHostKeyWithTheLineToAdd(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	empty := filepath.Join(t.TempDir(), "known_hosts")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	r, err := sshrun.New(sshrun.Config{KeyFile: f.srv.UserKey, KnownHosts: empty})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })

	_, err = r.Run(context.Background(), f.host, []string{"true"})
	t.Log(err)
	var unknown *sshrun.UnknownHostKeyError
	require.ErrorAs(t, err, &unknown)
	fp := ssh.FingerprintSHA256(f.srv.HostKey)
	assert.Equal(t, fp, unknown.Fingerprint)
	assert.Equal(t, f.srv.KnownHostsLine(f.srv.HostKey), unknown.Line)
	assert.Contains(t, err.Error(), "unknown")
	assert.Contains(t, err.Error(), "ssh-keyscan -p "+strconv.Itoa(f.srv.Port)+" 127.0.0.1")
	assert.Contains(t, err.Error(), fp)
	assert.Contains(t, err.Error(), "[127.0.0.1]:"+strconv.Itoa(f.srv.Port)+" ssh-ed25519 ")
	assert.Equal(t, 0, f.srv.Accepted(t), "no login happened")
}

func TestRun_RefusesChangedHostKeyLoudly(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	other := sshtest.Keygen(t, filepath.Join(t.TempDir(), "other"))
	changed := filepath.Join(t.TempDir(), "known_hosts")
	require.NoError(t, os.WriteFile(changed, []byte(f.srv.KnownHostsLine(other)+"\n"), 0o600))
	r, err := sshrun.New(sshrun.Config{KeyFile: f.srv.UserKey, KnownHosts: changed})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })

	_, err = r.Run(context.Background(), f.host, []string{"true"})
	t.Log(err)
	var changedErr *sshrun.HostKeyChangedError
	require.ErrorAs(t, err, &changedErr)
	var unknown *sshrun.UnknownHostKeyError
	assert.False(t, errors.As(err, &unknown), "a changed key is not reported as unknown")
	want, got := ssh.FingerprintSHA256(other), ssh.FingerprintSHA256(f.srv.HostKey)
	assert.Equal(t, []string{want}, changedErr.Expected)
	assert.Equal(t, got, changedErr.Got)
	assert.Contains(t, err.Error(), "host key for 127.0.0.1:"+strconv.Itoa(f.srv.Port)+" changed: possible man-in-the-middle; expected "+want+", got "+got)
	assert.Equal(t, 0, f.srv.Accepted(t), "no login happened")
}

func TestRun_RefusesWrongUserKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	wrong := filepath.Join(t.TempDir(), "id_wrong")
	sshtest.Keygen(t, wrong)
	r, err := sshrun.New(sshrun.Config{KeyFile: wrong, KnownHosts: f.srv.KnownHosts})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })

	_, err = r.Run(context.Background(), f.host, []string{"true"})
	require.ErrorContains(t, err, "unable to authenticate")
	assert.Equal(t, 0, f.srv.Accepted(t))
}

// A cancel or a timeout returns at once and leaves no remote process behind,
// also when the remote command has children of its own.
func TestRun_CancelAndTimeoutKillTheRemoteCommand(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	tests := []struct {
		name    string
		argv    []string
		marker  string // in the command line of every remote process
		stop    func(bot.Host) (context.Context, bot.Host, context.CancelFunc)
		wantErr string
	}{
		{
			name:   "cancel of sleep",
			argv:   []string{"sleep", "30.101"},
			marker: "30.101",
			stop: func(h bot.Host) (context.Context, bot.Host, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(300*time.Millisecond, cancel)
				return ctx, h, cancel
			},
			wantErr: "canceled",
		},
		{
			name:   "timeout of sleep",
			argv:   []string{"sleep", "30.102"},
			marker: "30.102",
			stop: func(h bot.Host) (context.Context, bot.Host, context.CancelFunc) {
				h.Timeout = 300 * time.Millisecond
				return context.Background(), h, func() {}
			},
			wantErr: "timed out after 300ms",
		},
		{
			name:   "timeout of a shell with children",
			argv:   []string{"sh", "-c", "sleep 30.103 & sleep 30.103; echo never"},
			marker: "30.103",
			stop: func(h bot.Host) (context.Context, bot.Host, context.CancelFunc) {
				h.Timeout = 300 * time.Millisecond
				return context.Background(), h, func() {}
			},
			wantErr: "timed out after 300ms",
		},
	}
	// Connected first: under load, a 300 ms budget can end inside the SSH
	// handshake, and a connection never made is no connection killed.
	f.run(t, "true")
	t.Run("group", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				ctx, h, cancel := tt.stop(f.host)
				defer cancel()
				start := time.Now()
				out, err := f.runner.Run(ctx, h, tt.argv)
				elapsed := time.Since(start)
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Equal(t, -1, out.ExitCode)
				assert.Less(t, elapsed, 15*time.Second, "the command sleeps 30 s: it was not stopped")
				assert.NotContains(t, string(out.Stdout), "never")
				// The sshd is on this machine: its processes are ours to see.
				assert.Eventually(t, func() bool { return len(processesWith(tt.marker)) == 0 },
					3*time.Second, 20*time.Millisecond, "remote processes left: %v\n%s", processesWith(tt.marker), f.srv.Log())
			})
		}
	})
	// The connection survives a killed command.
	f.run(t, "true")
	assert.Equal(t, int32(1), f.dials.Load())
}

// processesWith lists the pids whose command line holds word: the remote
// command, its children and the runner's watchdog beside them.
func processesWith(word string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(cmdline) == 0 {
			continue // gone, or a zombie
		}
		if strings.Contains(string(cmdline), word) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// After a normal exit nothing of the command is left behind either (the
// watchdog leaves with it), and a background job the command left in its
// process group is not killed.
func TestRun_NormalExitLeavesNoWatchdogAndKillsNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	marker := filepath.Join(t.TempDir(), "survived")
	out := f.run(t, "sh", "-c", `(sleep 0.5; touch "$1") >/dev/null 2>&1 & echo started`, "opsbot-normal-exit", marker)
	assert.Equal(t, "started\n", string(out.Stdout))
	assert.Eventually(t, func() bool {
		_, err := os.Stat(marker)
		return err == nil
	}, 3*time.Second, 20*time.Millisecond, "the background job was killed")
	assert.Eventually(t, func() bool { return len(processesWith("opsbot-normal-exit")) == 0 },
		2*time.Second, 20*time.Millisecond, "processes left: %v", processesWith("opsbot-normal-exit"))
}

// Eight commands at once with a limit of two: a remote counter (under
// flock) of the commands running at the same time never passes two, and
// reaches it. Each command runs long enough (1 s) that two of them
// overlap even when a session takes a second to start (a login shell that
// runs pyenv init on a loaded machine does).
func TestRun_PerHostConcurrencyIsBounded(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *sshrun.Config) { c.PerHostConcurrency = 2 })
	f.host.Timeout = time.Minute // four rounds of two, each a session start plus the sleep
	dir := t.TempDir()
	count, peak, lock := filepath.Join(dir, "count"), filepath.Join(dir, "peak"), filepath.Join(dir, "lock")
	require.NoError(t, os.WriteFile(count, []byte("0\n"), 0o600))
	require.NoError(t, os.WriteFile(peak, []byte("0\n"), 0o600))
	// The paths travel as arguments ($1..$3), not inside the script.
	script := `count=$1 peak=$2 lock=$3
exec 9>"$lock"
flock 9; n=$(( $(cat "$count") + 1 )); echo $n >"$count"
[ $n -gt $(cat "$peak") ] && echo $n >"$peak"; flock -u 9
sleep 1
flock 9; echo $(( $(cat "$count") - 1 )) >"$count"; flock -u 9`

	var wg sync.WaitGroup
	var ok atomic.Int32
	for range 8 {
		wg.Go(func() {
			out, err := f.runner.Run(context.Background(), f.host, []string{"sh", "-c", script, "counter", count, peak, lock})
			if assert.NoError(t, err) && assert.Equal(t, 0, out.ExitCode, "stderr: %s", out.Stderr) {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(8), ok.Load())
	got, err := os.ReadFile(peak)
	require.NoError(t, err)
	assert.Equal(t, "2", strings.TrimSpace(string(got)), "most commands running at once")
	got, err = os.ReadFile(count)
	require.NoError(t, err)
	assert.Equal(t, "0", strings.TrimSpace(string(got)))
}

func TestRun_RefusesWhatItCannotRunSafely(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	require.NoError(t, os.WriteFile(kh, nil, 0o600))
	key := filepath.Join(dir, "id")
	writeKey(t, key)
	r, err := sshrun.New(sshrun.Config{KeyFile: key, KnownHosts: kh, DialContext: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("must not dial")
	}})
	require.NoError(t, err)
	h := bot.Host{Name: "web01", Via: "ssh", Address: "127.0.0.1", User: "root"}
	tests := []struct {
		name    string
		host    func(bot.Host) bot.Host
		argv    []string
		wantErr string
	}{
		{"empty argv", nil, nil, "empty command"},
		{"NUL in a word", nil, []string{"echo", "a\x00b"}, "NUL byte"},
		{"unknown become", func(h bot.Host) bot.Host { h.Become = "su"; return h }, []string{"true"}, `unknown privilege escalation "su"`},
		{"local host", func(h bot.Host) bot.Host { h.Via = "local"; return h }, []string{"true"}, `via "local"`},
		{"no user", func(h bot.Host) bot.Host { h.User = ""; return h }, []string{"true"}, "needs an address and a user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			host := h
			if tt.host != nil {
				host = tt.host(h)
			}
			out, err := r.Run(context.Background(), host, tt.argv)
			require.ErrorContains(t, err, tt.wantErr)
			assert.Equal(t, -1, out.ExitCode)
		})
	}
	require.NoError(t, r.Close())
	_, err = r.Run(context.Background(), h, []string{"true"})
	require.ErrorContains(t, err, "runner closed")
}

func TestNew_RefusesIncompleteConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	require.NoError(t, os.WriteFile(kh, nil, 0o600))
	key := filepath.Join(dir, "id")
	writeKey(t, key)
	tests := []struct {
		name    string
		cfg     sshrun.Config
		wantErr string
	}{
		{"no known_hosts", sshrun.Config{KeyFile: key}, "no known_hosts file"},
		{"missing known_hosts", sshrun.Config{KeyFile: key, KnownHosts: filepath.Join(dir, "nope")}, "known_hosts"},
		{"no key and no agent", sshrun.Config{KnownHosts: kh}, "nothing to authenticate with"},
		{"missing key file", sshrun.Config{KnownHosts: kh, KeyFile: filepath.Join(dir, "nope")}, "key file"},
		{"not a key", sshrun.Config{KnownHosts: kh, KeyFile: kh}, "key file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := sshrun.New(tt.cfg)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// writeKey writes a fresh unencrypted ed25519 private key to path.
func writeKey(t *testing.T, path string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	block, err := ssh.MarshalPrivateKey(priv, "opsbot test")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(block), 0o600))
}

// The key can come from ssh-agent instead of a file.
func TestRun_AuthenticatesWithAgent(t *testing.T) {
	srv := sshtest.Start(t)
	agentBin, err := exec.LookPath("ssh-agent")
	if err != nil {
		testenv.Missing(t, "ssh-agent missing: apt-get install openssh-client")
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := exec.Command(agentBin, "-D", "-a", sock)
	require.NoError(t, agent.Start())
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	require.Eventually(t, func() bool { _, err := os.Stat(sock); return err == nil }, 5*time.Second, 10*time.Millisecond)
	t.Setenv("SSH_AUTH_SOCK", sock)
	out, err := exec.Command("ssh-add", "-q", srv.UserKey).CombinedOutput()
	require.NoError(t, err, "ssh-add: %s", out)

	r, err := sshrun.New(sshrun.Config{Agent: true, KnownHosts: srv.KnownHosts})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	host := bot.Host{Name: "web01", Address: srv.Host, Port: srv.Port, User: "root"}
	got, err := r.Run(context.Background(), host, []string{"echo", "via agent"})
	require.NoError(t, err)
	assert.Equal(t, "via agent\n", string(got.Stdout))
}

// A connection lost while a command runs is an error (nobody knows whether
// the command finished), and the next command redials.
func TestRun_ConnectionLostMidCommandIsAnError(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	type result struct {
		out bot.Output
		err error
	}
	ch := make(chan result, 1)
	start := time.Now()
	go func() {
		out, err := f.runner.Run(context.Background(), f.host, []string{"sleep", "5.201"})
		ch <- result{out, err}
	}()
	time.Sleep(300 * time.Millisecond)
	f.srv.Restart(t)
	res := <-ch
	out, err := res.out, res.err
	require.Error(t, err)
	t.Log(err)
	assert.Equal(t, -1, out.ExitCode)
	assert.Less(t, time.Since(start), 3*time.Second)
	// Restart killed sshd and all it forked, the command included.
	assert.Eventually(t, func() bool { return len(processesWith("5.201")) == 0 },
		3*time.Second, 20*time.Millisecond, "remote processes left: %v", processesWith("5.201"))
	f.run(t, "true")
	assert.Equal(t, int32(2), f.dials.Load())
}

func TestDialHost_ReachesLoopbackOfTheHostOnTheSameConnection(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	// A page only the host itself may see: a listener on its loopback.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hello from " + c.RemoteAddr().(*net.TCPAddr).IP.String()))
			_ = c.Close()
		}
	}()
	f.run(t, "true")
	for range 3 {
		conn, err := f.runner.DialHost(context.Background(), f.host, ln.Addr().String())
		require.NoError(t, err, "sshd log:\n%s", f.srv.Log())
		got, err := io.ReadAll(conn)
		require.NoError(t, err)
		_ = conn.Close()
		assert.Equal(t, "hello from 127.0.0.1", string(got))
	}
	assert.Equal(t, int32(1), f.dials.Load(), "the forwarded connections ride on the command's SSH connection")
	assert.Equal(t, 1, f.srv.Accepted(t))

	_, err = f.runner.DialHost(context.Background(), f.host, "127.0.0.1:1")
	require.Error(t, err, "a closed port on the host is an error")
	assert.Contains(t, err.Error(), "web01")
}

// slowConn holds back what the server sends by delay after each read: a
// loaded server (or machine) that is slow to open a session.
type slowConn struct {
	net.Conn
	delay *atomic.Int64
}

func (c slowConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if d := time.Duration(c.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	return n, err
}

// A command canceled while its session is still opening leaves the
// connection to the host alone: other commands share it.
func TestRun_CancelWhileTheSessionOpensKeepsTheConnection(t *testing.T) {
	t.Parallel()
	var delay atomic.Int64
	f := newFixture(t, func(c *sshrun.Config) {
		dial := c.DialContext
		c.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return slowConn{conn, &delay}, nil
		}
	})
	f.run(t, "true") // connected
	delay.Store(int64(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := f.runner.Run(ctx, f.host, []string{"true"})
	require.Error(t, err, "canceled while the session opened")
	delay.Store(0)
	out := f.run(t, "echo", "still here")
	assert.Equal(t, "still here\n", string(out.Stdout))
	assert.Equal(t, int32(1), f.dials.Load(), "the canceled command closed the shared connection")
}
