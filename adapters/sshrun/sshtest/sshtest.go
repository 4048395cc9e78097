// Package sshtest owns the real OpenSSH server that tests run commands
// against; only tests import it. Start runs Debian's /usr/sbin/sshd as a
// child of the test, on a free loopback port, with its own generated
// ed25519 host key, an authorized ed25519 user key for root and a
// known_hosts file that trusts the host key, all in a temporary directory;
// it kills the server (and the per-connection processes it forked) when
// the test ends. It needs root and openssh-server: without them it skips,
// naming the package to install, and with CI=true it fails instead.
package sshtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/opsbot/opsbot/internal/testenv"
)

const (
	sshd    = "/usr/sbin/sshd"
	install = "apt-get install openssh-server"
)

// Server is a running private sshd.
type Server struct {
	Host       string        // 127.0.0.1
	Port       int           // the loopback port it listens on
	HostKey    ssh.PublicKey // its host key
	KnownHosts string        // a known_hosts file trusting HostKey for [Host]:Port
	UserKey    string        // private key file authorized to log in as root
	LogFile    string        // sshd's log (-E)
	Dir        string        // where all of it lives

	config string
	cmd    *exec.Cmd
	exited chan struct{}

	netns  string   // network namespace it runs in; "" = the test's own
	hidden []string // executables hidden from its sessions (see Options.Hide)
	empty  string   // the empty file bound over them
	picked bool     // Port came from freePort: another may be picked if it is taken
	ran    bool     // it listened once (a restart keeps its port)
}

// Check skips t (fails it with CI=true) when no private sshd can run here.
func Check(t testing.TB) {
	t.Helper()
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "the private sshd (Debian package openssh-server) needs root"
	case !executable(sshd):
		why = sshd + " is missing: " + install
	default:
		if _, err := exec.LookPath("ssh-keygen"); err != nil {
			why = "ssh-keygen is missing: " + install
		}
	}
	if why == "" {
		return
	}
	testenv.Missing(t, "sshtest: no private sshd: %s", why)
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Start starts a private sshd and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	Check(t)
	// sshd wants its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { //nolint:gosec // sshd's own directory, as Debian makes it
		t.Fatalf("sshtest: %v", err)
	}
	dir := t.TempDir()
	s := &Server{
		Host:       "127.0.0.1",
		Port:       pickPort(t),
		picked:     true,
		KnownHosts: filepath.Join(dir, "known_hosts"),
		UserKey:    filepath.Join(dir, "id_ed25519"),
		LogFile:    filepath.Join(dir, "sshd.log"),
		Dir:        dir,
		config:     filepath.Join(dir, "sshd_config"),
	}
	s.HostKey = Keygen(t, filepath.Join(dir, "ssh_host_ed25519_key"))
	userKey := Keygen(t, s.UserKey)
	authorized := filepath.Join(dir, "authorized_keys")
	writeFile(t, authorized, ssh.MarshalAuthorizedKey(userKey))
	writeFile(t, s.KnownHosts, []byte(s.KnownHostsLine(s.HostKey)+"\n"))
	writeFile(t, s.config, []byte(strings.Join([]string{
		"Port " + strconv.Itoa(s.Port),
		"ListenAddress " + s.Host,
		"HostKey " + filepath.Join(dir, "ssh_host_ed25519_key"),
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"AuthorizedKeysFile " + authorized,
		"UsePAM no",
		"StrictModes no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"MaxSessions 16",
		"LogLevel VERBOSE",
		noDotfiles,
		"",
	}, "\n")))
	s.start(t)
	t.Cleanup(func() { s.stop() })
	return s
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// KnownHostsLine is the known_hosts line trusting key for this server.
func (s *Server) KnownHostsLine(key ssh.PublicKey) string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, key)
}

// Restart kills the server and everything it forked, so that every open
// connection breaks, and starts it again on the same port.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.stop()
	s.start(t)
}

// Accepted counts the logins the server has accepted: one per SSH
// connection the runner made.
func (s *Server) Accepted(t testing.TB) int {
	t.Helper()
	log, err := os.ReadFile(s.LogFile)
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	return bytes.Count(log, []byte("Accepted publickey for "))
}

// Log is what the server logged so far.
func (s *Server) Log() string {
	log, _ := os.ReadFile(s.LogFile)
	return string(log)
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		err := s.startOnce(t)
		if err == nil {
			s.ran = true
			return
		}
		// Between freePort and sshd's bind, another process (a scan's
		// source port, a parallel test) can take the port: pick another,
		// unless the port was given or a restart must keep it.
		if !s.picked || s.ran || attempt == 5 {
			t.Fatalf("sshtest: %v", err)
		}
		s.movePort(t, pickPort(t))
	}
}

// errPortTaken: sshd could not bind its port.
var errPortTaken = errors.New("port taken")

// startOnce starts sshd and waits until it listens. It returns an error
// wrapping errPortTaken when sshd exited because its port was in use.
func (s *Server) startOnce(t testing.TB) error {
	t.Helper()
	s.cmd = s.command()
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("sshtest: start %s: %v", sshd, err)
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(s.cmd, s.exited)
	deadline := time.Now().Add(5 * time.Second)
	for {
		select {
		case <-s.exited:
			if strings.Contains(s.Log(), "Address already in use") {
				return fmt.Errorf("sshd could not bind %s (%w); its log:\n%s", s.Addr(), errPortTaken, s.Log())
			}
			t.Fatalf("sshtest: sshd exited at start; its log:\n%s", s.Log())
		default:
		}
		err := s.ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.stop()
			t.Fatalf("sshtest: sshd not listening on %s after 5s: %v; its log:\n%s", s.Addr(), err, s.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// movePort rewrites the server's files for port p: its config's Port line
// and the known_hosts line for its address.
func (s *Server) movePort(t testing.TB, p int) {
	t.Helper()
	oldAddr := knownhosts.Normalize(s.Addr())
	old := s.Port
	s.Port = p
	replace := func(path, from, to string) {
		b, err := os.ReadFile(path) //nolint:gosec // the server's own file in its temporary directory
		if err != nil {
			t.Fatalf("sshtest: %v", err)
		}
		writeFile(t, path, []byte(strings.ReplaceAll(string(b), from, to)))
	}
	replace(s.config, "Port "+strconv.Itoa(old)+"\n", "Port "+strconv.Itoa(p)+"\n")
	replace(s.KnownHosts, oldAddr+" ", knownhosts.Normalize(s.Addr())+" ")
	_ = os.Remove(s.LogFile)
}

// stop kills the listener and the processes it forked for connections
// (which outlive it otherwise), and waits for the listener to exit.
func (s *Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	// TERM first, so that what the sessions run can clean up: a login
	// shell killed outright can leave a lock behind (pyenv's rehash lock
	// in root's .bashrc here) that makes every later session wait a minute.
	pids := append(descendants(s.cmd.Process.Pid), s.cmd.Process.Pid)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) && anyAlive(pids[:len(pids)-1]) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
	}
	s.cmd = nil
}

// anyAlive reports whether one of pids still runs (zombies do not count).
func anyAlive(pids []int) bool {
	for _, pid := range pids {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] != 'Z' {
			return true
		}
	}
	return false
}

// descendants lists the processes below pid, from /proc.
func descendants(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parens.
		rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
		fields := strings.Fields(rest)
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// Keygen makes an ed25519 key pair with ssh-keygen (no passphrase) at path
// and path.pub and returns the public key.
func Keygen(t testing.TB, path string) ssh.PublicKey {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	keygen := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "opsbot-test", "-f", path) //nolint:gosec // path is the test's own file
	out, err := keygen.CombinedOutput()
	if err != nil {
		t.Fatalf("sshtest: ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(path + ".pub") //nolint:gosec // the key ssh-keygen just wrote
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil {
		t.Fatalf("sshtest: %s.pub: %v", path, err)
	}
	return key
}

// pickPort is where a server's port comes from: freePort, or a test's
// choice of a port already taken.
var pickPort = freePort

// freePort returns a loopback port nothing listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
}

// String names the server in test output.
func (s *Server) String() string { return fmt.Sprintf("sshd on %s", s.Addr()) }

// Options describe a server started by StartWith. The zero value is what
// Start makes.
type Options struct {
	// Netns is the network namespace (a name under /run/netns, as ip
	// netns makes them) the server runs in: sshd is started through `ip
	// netns exec`, so it listens there and every command a session runs,
	// runs there. "" is the test's own namespace.
	Netns string
	// Addr is the address to listen on; "" = 127.0.0.1.
	Addr string
	// Port is the port to listen on; 0 = a free loopback port, or 22 in
	// a namespace of its own.
	Port int
	// UserKey is a private key file (with its .pub beside it) to authorize
	// for root instead of a new one, so that one client key opens several
	// servers.
	UserKey string
	// Env is set in every session (sshd's SetEnv, applied after sshd's own
	// PATH): "PATH=/dir:/usr/bin:/bin" puts tools there. Root's login shell
	// may still add to PATH in its startup files.
	Env []string
	// Hide makes these executables unavailable to sessions: each (after
	// symlinks) has an empty, non-executable file bound over it in the
	// server's private mount namespace, as if the package were not
	// installed. Only with Netns (ip netns exec gives the server a mount
	// namespace of its own); the rest of the machine is not affected.
	Hide []string
}

// StartIn starts a private sshd inside the network namespace netns,
// listening on addr port 22, and stops it when t ends.
func StartIn(t testing.TB, netns, addr string) *Server {
	t.Helper()
	return StartWith(t, Options{Netns: netns, Addr: addr})
}

// StartWith starts a private sshd as opts say and stops it when t ends.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	Check(t)
	if opts.Netns == "" && len(opts.Hide) > 0 {
		t.Fatal("sshtest: Hide needs Netns: only a server in a namespace of its own has a private mount namespace")
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { //nolint:gosec // sshd's own directory, as Debian makes it
		t.Fatalf("sshtest: %v", err)
	}
	dir := t.TempDir()
	s := &Server{
		Host:       "127.0.0.1",
		KnownHosts: filepath.Join(dir, "known_hosts"),
		UserKey:    filepath.Join(dir, "id_ed25519"),
		LogFile:    filepath.Join(dir, "sshd.log"),
		Dir:        dir,
		config:     filepath.Join(dir, "sshd_config"),
		netns:      opts.Netns,
	}
	if opts.Addr != "" {
		s.Host = opts.Addr
	}
	switch {
	case opts.Port != 0:
		s.Port = opts.Port
	case opts.Netns != "":
		s.Port = 22
	default:
		s.Port, s.picked = pickPort(t), true
	}
	for _, h := range opts.Hide {
		target, err := filepath.EvalSymlinks(h)
		if err != nil {
			t.Fatalf("sshtest: hide %s: %v", h, err)
		}
		s.hidden = append(s.hidden, target)
	}
	if len(s.hidden) > 0 {
		s.empty = filepath.Join(dir, "hidden")
		writeFile(t, s.empty, nil)
	}
	s.HostKey = Keygen(t, filepath.Join(dir, "ssh_host_ed25519_key"))
	var userKey ssh.PublicKey
	if opts.UserKey != "" {
		s.UserKey = opts.UserKey
		pub, err := os.ReadFile(opts.UserKey + ".pub")
		if err != nil {
			t.Fatalf("sshtest: %v", err)
		}
		if userKey, _, _, _, err = ssh.ParseAuthorizedKey(pub); err != nil {
			t.Fatalf("sshtest: %s.pub: %v", opts.UserKey, err)
		}
	} else {
		userKey = Keygen(t, s.UserKey)
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(userKey), 0o600); err != nil { //nolint:gosec // our temporary directory; the key is the test's own
		t.Fatalf("sshtest: %v", err)
	}
	writeFile(t, s.KnownHosts, []byte(s.KnownHostsLine(s.HostKey)+"\n"))
	config := []string{
		"Port " + strconv.Itoa(s.Port),
		"ListenAddress " + s.Host,
		"HostKey " + filepath.Join(dir, "ssh_host_ed25519_key"),
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"AuthorizedKeysFile " + authorized,
		"UsePAM no",
		"StrictModes no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"MaxSessions 16",
		"LogLevel VERBOSE",
	}
	// sshd keeps only the first SetEnv line: every variable goes on one.
	setenv := noDotfiles
	for _, e := range opts.Env {
		if strings.ContainsAny(e, "\n\"") || !strings.Contains(e, "=") {
			t.Fatalf("sshtest: Env entry %q: want NAME=VALUE on one line, without double quotes", e)
		}
		setenv += ` "` + e + `"`
	}
	config = append(config, setenv)
	writeFile(t, s.config, []byte(strings.Join(append(config, ""), "\n")))
	s.start(t)
	t.Cleanup(func() { s.stop() })
	return s
}

// noDotfiles keeps the login shell of the test's user (root, bash) from
// reading ~/.bashrc: bash reads it for a command run by sshd only as a
// top-level shell (SHLVL below 2), and a machine's root dotfiles (a pyenv
// init costs 0.5-2 s a session here, 60 s behind a stale lock) must not
// set the pace of the tests. Deployments are unaffected: this is the
// private test sshd's config.
const noDotfiles = "SetEnv SHLVL=1"

// command is how start runs sshd: directly, or through ip netns exec with
// the hidden executables bound over first (a fixed script; the paths are
// its arguments).
func (s *Server) command() *exec.Cmd {
	args := []string{"-D", "-f", s.config, "-E", s.LogFile}
	if s.netns == "" {
		return exec.Command(sshd, args...) //nolint:gosec // Debian's sshd, files in our temporary directory
	}
	const hide = `empty=$1; n=$2; shift 2
while [ "$n" -gt 0 ]; do mount --bind "$empty" "$1" || exit 1; shift; n=$((n-1)); done
exec "$@"`
	argv := []string{"netns", "exec", s.netns, "sh", "-c", hide, "sh", s.empty, strconv.Itoa(len(s.hidden))}
	argv = append(argv, s.hidden...)
	argv = append(argv, sshd)
	argv = append(argv, args...)
	return exec.Command(ipCommand(), argv...) //nolint:gosec // iproute2 running Debian's sshd with our files
}

// ready reports whether the server accepts connections: its pid file
// names this very process, which sshd writes once it listens (a restart
// leaves the old pid in it until then), and, in the test's own namespace,
// a dial from here is answered.
func (s *Server) ready() error {
	if s.netns == "" {
		conn, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err != nil {
			return err
		}
		_ = conn.Close()
		// Something answers; the pid file says whether it is this sshd
		// (another test's may hold the port this one failed to bind).
	}
	pid, err := os.ReadFile(filepath.Join(s.Dir, "sshd.pid"))
	if err == nil && strings.TrimSpace(string(pid)) == strconv.Itoa(s.cmd.Process.Pid) {
		return nil
	}
	return fmt.Errorf("pid file does not name pid %d yet", s.cmd.Process.Pid)
}

// ipCommand finds iproute2's ip, also where PATH lacks /usr/sbin.
func ipCommand() string {
	if p, err := exec.LookPath("ip"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"} {
		if executable(p) {
			return p
		}
	}
	return "ip"
}
