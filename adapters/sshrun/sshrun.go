// Package sshrun owns running a fixed argv on inventory hosts over SSH: it
// implements bot.Runner with golang.org/x/crypto/ssh. It authenticates with
// a key file or ssh-agent, trusts a host only through a known_hosts file
// (an unknown or changed key is refused, never learnt), keeps one
// connection per user@host:port and reuses it, bounds the sessions open on
// each host, bounds output, and kills the remote command on timeout or
// cancel.
//
// The argv reaches the remote shell as one string of single-quoted words
// (see Quote), so no word typed in chat is ever parsed by a shell.
package sshrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/opsbot/opsbot/bot"
)

// Defaults for the zero fields of Config.
const (
	DefaultMaxOutput          = 1 << 20
	DefaultTimeout            = time.Minute
	DefaultDialTimeout        = 10 * time.Second
	DefaultPerHostConcurrency = 4 // below OpenSSH's MaxSessions (10)
)

// How long a cancelled command is given to die before its session is
// closed (see kill), and how long the session then has to close.
const (
	termGrace  = 300 * time.Millisecond
	closeGrace = time.Second
)

// Config is what the runner needs. KnownHosts is required; so is KeyFile
// or Agent (both may be set: the key file is tried first).
type Config struct {
	KeyFile            string        // private key (unencrypted; use Agent for a key with a passphrase)
	Agent              bool          // authenticate with the keys of the ssh-agent at $SSH_AUTH_SOCK
	KnownHosts         string        // known_hosts file; hosts not in it are refused
	MaxOutput          int           // bytes kept of stdout and of stderr, each; 0 = DefaultMaxOutput
	DefaultTimeout     time.Duration // per command, for hosts without a Timeout; 0 = DefaultTimeout
	DialTimeout        time.Duration // TCP connect plus SSH handshake; 0 = DefaultDialTimeout
	PerHostConcurrency int           // sessions at once per connection; 0 = DefaultPerHostConcurrency
	Log                *slog.Logger  // nil = discard

	// DialContext opens the TCP connection; nil = a net.Dialer. Tests count
	// connections through it; it could also reach hosts through a proxy.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Runner runs commands over SSH. Close it to close its connections.
type Runner struct {
	cfg     Config
	signers []ssh.Signer // from KeyFile

	mu     sync.Mutex
	hosts  map[string]*hostConn // by user@host:port
	closed bool
}

var _ bot.Runner = (*Runner)(nil)

// hostConn is the connection to one user@host:port and its session limit.
type hostConn struct {
	key  string
	sem  chan struct{} // one token per open session
	lock chan struct{} // held while reading or replacing client (a mutex that obeys ctx)

	client *ssh.Client // nil until dialled or after it broke
}

// New checks cfg and reads the key file. It connects to nothing.
func New(cfg Config) (*Runner, error) {
	if cfg.KnownHosts == "" {
		return nil, errors.New("sshrun: no known_hosts file: host keys are checked strictly")
	}
	if _, _, err := hostKeys(cfg.KnownHosts, "localhost:22"); err != nil {
		return nil, fmt.Errorf("sshrun: %w", err)
	}
	if cfg.KeyFile == "" && !cfg.Agent {
		return nil, errors.New("sshrun: no key file and no agent: nothing to authenticate with")
	}
	r := &Runner{cfg: cfg, hosts: map[string]*hostConn{}}
	if cfg.KeyFile != "" {
		pem, err := os.ReadFile(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("sshrun: key file: %w", err)
		}
		signer, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			var missing *ssh.PassphraseMissingError
			if errors.As(err, &missing) {
				return nil, fmt.Errorf("sshrun: key file %s has a passphrase: load it into ssh-agent and set Agent: %w", cfg.KeyFile, err)
			}
			return nil, fmt.Errorf("sshrun: key file %s: %w", cfg.KeyFile, err)
		}
		r.signers = append(r.signers, signer)
	}
	if cfg.Agent && os.Getenv("SSH_AUTH_SOCK") == "" {
		return nil, errors.New("sshrun: agent wanted but SSH_AUTH_SOCK is not set")
	}
	if r.cfg.MaxOutput <= 0 {
		r.cfg.MaxOutput = DefaultMaxOutput
	}
	if r.cfg.DefaultTimeout <= 0 {
		r.cfg.DefaultTimeout = DefaultTimeout
	}
	if r.cfg.DialTimeout <= 0 {
		r.cfg.DialTimeout = DefaultDialTimeout
	}
	if r.cfg.PerHostConcurrency <= 0 {
		r.cfg.PerHostConcurrency = DefaultPerHostConcurrency
	}
	if r.cfg.Log == nil {
		r.cfg.Log = slog.New(slog.DiscardHandler)
	}
	if r.cfg.DialContext == nil {
		r.cfg.DialContext = (&net.Dialer{}).DialContext
	}
	return r, nil
}

// Run runs argv on host. A non-zero exit is not an error; an unreachable
// host, a refused host key, a timeout or a cancel is. A timeout or cancel
// kills the remote command and closes its session (ExitCode -1).
func (r *Runner) Run(ctx context.Context, host bot.Host, argv []string) (bot.Output, error) {
	failed := bot.Output{ExitCode: -1}
	if host.Via != "" && host.Via != "ssh" {
		return failed, fmt.Errorf("ssh %s: host is reached via %q, not ssh", host.Name, host.Via)
	}
	if host.Address == "" || host.User == "" {
		return failed, fmt.Errorf("ssh %s: host needs an address and a user", host.Name)
	}
	command, err := RemoteCommand(host.Become, argv)
	if err != nil {
		return failed, fmt.Errorf("ssh %s: %w", host.Name, err)
	}
	port := host.Port
	if port == 0 {
		port = 22
	}
	addr := net.JoinHostPort(host.Address, strconv.Itoa(port))

	timeout := host.Timeout
	if timeout <= 0 {
		timeout = r.cfg.DefaultTimeout
	}
	// The timeout covers everything, waiting for a session slot included:
	// a runner never hangs.
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errTimedOut{timeout})
	defer cancel()

	hc, err := r.host(host.User + "@" + addr)
	if err != nil {
		return failed, fmt.Errorf("ssh %s: %w", host.Name, err)
	}
	select {
	case hc.sem <- struct{}{}:
		defer func() { <-hc.sem }()
	case <-ctx.Done():
		return failed, fmt.Errorf("ssh %s: waiting for a session slot: %w", host.Name, ctxErr(ctx))
	}

	start := time.Now()
	sess, err := r.session(ctx, hc, host.User, addr)
	if err != nil {
		return failed, fmt.Errorf("ssh %s: %w", host.Name, err)
	}
	defer func() { _ = sess.Close() }() // after Wait it has nothing more to say

	stdout := &bot.LimitedBuffer{Limit: r.cfg.MaxOutput}
	stderr := &bot.LimitedBuffer{Limit: r.cfg.MaxOutput}
	sess.Stdout, sess.Stderr = stdout, stderr
	// Stdin stays open while the command runs: its end is what tells the
	// remote watchdog (see watched) to kill the command.
	stdin, err := sess.StdinPipe()
	if err != nil {
		return failed, fmt.Errorf("ssh %s: %w", host.Name, err)
	}
	if err := sess.Start(watched(command)); err != nil {
		return failed, fmt.Errorf("ssh %s: start: %w", host.Name, err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()

	var waitErr error
	select {
	case waitErr = <-done:
	case <-ctx.Done():
		r.kill(hc, sess, stdin, done)
		return bot.Output{
			Stdout:    stdout.Bytes(),
			Stderr:    stderr.Bytes(),
			ExitCode:  -1,
			Truncated: stdout.Truncated() || stderr.Truncated(),
			Duration:  time.Since(start),
		}, fmt.Errorf("ssh %s: %s: %w", host.Name, argv[0], ctxErr(ctx))
	}

	out := bot.Output{
		Stdout:    stdout.Bytes(),
		Stderr:    stderr.Bytes(),
		Truncated: stdout.Truncated() || stderr.Truncated(),
		Duration:  time.Since(start),
	}
	var exitErr *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case waitErr == nil:
	case errors.As(waitErr, &exitErr):
		out.ExitCode = exitErr.ExitStatus()
		if exitErr.Signal() != "" {
			out.ExitCode = -1 // killed by a signal: no exit status
		}
	case errors.As(waitErr, &missing):
		// The session ended without an exit status (the connection or
		// the remote end died): nobody knows whether the command ran to
		// the end, and bot.Runner calls that an error.
		out.ExitCode = -1
		return out, fmt.Errorf("ssh %s: %s ended without an exit status (connection lost?): %w", host.Name, argv[0], waitErr)
	default:
		out.ExitCode = -1
		return out, fmt.Errorf("ssh %s: %w", host.Name, waitErr)
	}
	return out, nil
}

// watched wraps the quoted command in a fixed prelude that makes it die
// with its session. Signals sent over SSH are not enough: OpenSSH refuses
// them for root logins ("session signalling requires privilege
// separation"), and a session that is merely closed leaves a command
// without a terminal running. So a watchdog runs beside the command in its
// process group (sshd makes the command a session leader), reading the
// session's stdin, which the runner keeps open and never writes. When stdin
// ends (the runner closed it on cancel or timeout, or the connection died)
// and the command is still running, the watchdog sends the whole process
// group TERM (sudo passes that on to its command; a KILL would orphan it),
// then KILL a second later. After a normal exit sshd has reaped the command
// before it closes stdin, so the watchdog finds it gone and leaves
// everything alone. The command itself reads /dev/null and is exec'd, so
// its exit status is the session's. No word of the prelude comes from a
// request; the command is the single-quoted words of RemoteCommand.
func watched(command string) string {
	return `exec 3<&0; { trap '' TERM; cat >/dev/null; kill -0 $$ 2>/dev/null || exit 0; ` +
		`kill -TERM 0; sleep 1; kill -KILL 0; } <&3 >/dev/null 2>&1 3<&- & ` +
		`exec ` + command + ` </dev/null 3<&-`
}

// kill ends a command whose context is done. Closing stdin sets off the
// remote watchdog (see watched); the TERM and KILL signals do the same
// where sshd accepts them (non-root logins). Then the session is closed.
// If it does not end even then, the connection is presumed dead and
// closed, so that nothing waits on it.
func (r *Runner) kill(hc *hostConn, sess *ssh.Session, stdin io.Closer, done <-chan error) {
	_ = stdin.Close()
	_ = sess.Signal(ssh.SIGTERM)
	select {
	case err := <-done:
		_ = err // the command was killed: how it ended adds nothing
		return
	case <-time.After(termGrace):
	}
	_ = sess.Signal(ssh.SIGKILL)
	_ = sess.Close()
	select {
	case err := <-done:
		_ = err
	case <-time.After(closeGrace):
		r.cfg.Log.Warn("ssh session did not close after kill; dropping the connection", "host", hc.key)
		r.drop(hc, nil)
	}
}

var _ bot.HostDialer = (*Runner)(nil)

// DialHost opens a TCP connection from host to address through a
// direct-tcpip channel on the host's SSH connection (sshd's
// AllowTcpForwarding must allow it, as Debian's default does). The
// connection reaches what only the host may see, such as a status page
// limited to localhost, with no tool needed on the host.
func (r *Runner) DialHost(ctx context.Context, host bot.Host, address string) (net.Conn, error) {
	if host.Via != "" && host.Via != "ssh" {
		return nil, fmt.Errorf("ssh %s: host is reached via %q, not ssh", host.Name, host.Via)
	}
	if host.Address == "" || host.User == "" {
		return nil, fmt.Errorf("ssh %s: host needs an address and a user", host.Name)
	}
	port := host.Port
	if port == 0 {
		port = 22
	}
	addr := net.JoinHostPort(host.Address, strconv.Itoa(port))
	hc, err := r.host(host.User + "@" + addr)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", host.Name, err)
	}
	for attempt := 0; ; attempt++ {
		client, fresh, err := r.client(ctx, hc, host.User, addr)
		if err != nil {
			return nil, fmt.Errorf("ssh %s: %w", host.Name, err)
		}
		conn, err := client.DialContext(ctx, "tcp", address)
		if err == nil {
			return conn, nil
		}
		var refused *ssh.OpenChannelError
		if errors.As(err, &refused) || ctx.Err() != nil || fresh || attempt > 0 {
			if errors.As(err, &refused) && refused.Reason == ssh.Prohibited {
				return nil, fmt.Errorf("ssh %s: sshd refuses to forward to %s (AllowTcpForwarding or PermitOpen forbids it for %s): %w", host.Name, address, host.User, err)
			}
			return nil, fmt.Errorf("ssh %s: connect to %s from the host: %w", host.Name, address, err)
		}
		r.drop(hc, client)
	}
}

// host returns the connection slot for key, creating it.
func (r *Runner) host(key string) (*hostConn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errors.New("runner closed")
	}
	hc := r.hosts[key]
	if hc == nil {
		hc = &hostConn{
			key:  key,
			sem:  make(chan struct{}, r.cfg.PerHostConcurrency),
			lock: make(chan struct{}, 1),
		}
		r.hosts[key] = hc
	}
	return hc, nil
}

// session opens a session on hc's connection, dialling when there is none.
// If a reused connection turns out to be broken, it is dropped and the
// session is tried once more on a fresh one.
func (r *Runner) session(ctx context.Context, hc *hostConn, user, addr string) (*ssh.Session, error) {
	for attempt := 0; ; attempt++ {
		client, fresh, err := r.client(ctx, hc, user, addr)
		if err != nil {
			return nil, err
		}
		sess, err := r.newSession(ctx, client)
		if err == nil {
			return sess, nil
		}
		var refused *ssh.OpenChannelError
		if errors.As(err, &refused) || ctx.Err() != nil {
			// The server said no (MaxSessions, say), or time is up:
			// the connection itself is fine.
			return nil, fmt.Errorf("open session: %w", err)
		}
		r.drop(hc, client)
		if fresh || attempt > 0 {
			return nil, fmt.Errorf("open session: %w", err)
		}
		r.cfg.Log.Info("ssh connection broken; redialling", "host", hc.key, "err", err)
	}
}

// newSession opens a session, bounded by ctx and the dial timeout: on a
// connection that died silently (no RST) it would otherwise wait for TCP to
// give up.
func (r *Runner) newSession(ctx context.Context, client *ssh.Client) (*ssh.Session, error) {
	type result struct {
		sess *ssh.Session
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := client.NewSession()
		ch <- result{s, err}
	}()
	timer := time.NewTimer(r.cfg.DialTimeout)
	defer timer.Stop()
	select {
	case res := <-ch:
		return res.sess, res.err
	case <-ctx.Done():
		// The asker is gone, not the connection: other commands share it.
		// The session is closed when the server opens it.
		go func() {
			if res := <-ch; res.sess != nil {
				_ = res.sess.Close()
			}
		}()
		return nil, ctxErr(ctx)
	case <-timer.C:
	}
	// No answer at all: the connection died silently. Closing it unblocks
	// NewSession; the caller drops it.
	_ = client.Close()
	if res := <-ch; res.sess != nil {
		_ = res.sess.Close()
	}
	return nil, fmt.Errorf("no answer within %s", r.cfg.DialTimeout)
}

// client returns hc's connection, dialling one if there is none; fresh
// says it was just dialled.
func (r *Runner) client(ctx context.Context, hc *hostConn, user, addr string) (client *ssh.Client, fresh bool, err error) {
	select {
	case hc.lock <- struct{}{}:
		defer func() { <-hc.lock }()
	case <-ctx.Done():
		return nil, false, fmt.Errorf("waiting for the connection: %w", ctxErr(ctx))
	}
	if hc.client != nil {
		return hc.client, false, nil
	}
	client, err = r.dial(ctx, user, addr)
	if err != nil {
		return nil, false, err
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		_ = client.Close()
		return nil, false, errors.New("runner closed")
	}
	hc.client = client
	r.cfg.Log.Info("ssh connected", "host", hc.key)
	go func() {
		// Notice a connection that the other end closed (sshd
		// restarted, host rebooted) before the next command trips on it.
		err := client.Wait()
		r.cfg.Log.Info("ssh connection closed", "host", hc.key, "err", err)
		r.drop(hc, client)
	}()
	return client, true, nil
}

// drop forgets hc's connection and closes it, if it still is client (nil:
// whatever it is).
func (r *Runner) drop(hc *hostConn, client *ssh.Client) {
	hc.lock <- struct{}{}
	if client == nil {
		client = hc.client
	}
	if hc.client == client {
		hc.client = nil
	}
	<-hc.lock
	if client != nil {
		_ = client.Close()
	}
}

// dial connects and authenticates to addr, all within the dial timeout.
func (r *Runner) dial(ctx context.Context, user, addr string) (*ssh.Client, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, r.cfg.DialTimeout, errTimedOut{r.cfg.DialTimeout})
	defer cancel()

	callback, algos, err := hostKeys(r.cfg.KnownHosts, addr)
	if err != nil {
		return nil, err
	}
	auth := []ssh.AuthMethod{}
	if len(r.signers) > 0 {
		auth = append(auth, ssh.PublicKeys(r.signers...))
	}
	if r.cfg.Agent {
		// A connection to the agent per handshake: a long-lived one
		// would break when the agent restarts.
		sock, err := (&net.Dialer{}).DialContext(ctx, "unix", os.Getenv("SSH_AUTH_SOCK"))
		if err != nil {
			return nil, fmt.Errorf("ssh-agent: %w", err)
		}
		defer func() { _ = sock.Close() }()
		auth = append(auth, ssh.PublicKeysCallback(agent.NewClient(sock).Signers))
	}
	config := &ssh.ClientConfig{
		User:              user,
		Auth:              auth,
		HostKeyCallback:   callback,
		HostKeyAlgorithms: algos,
	}

	conn, err := r.cfg.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	// The handshake knows nothing of ctx: closing the connection when ctx
	// ends is what bounds it.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, config)
	if !stop() {
		if err == nil {
			_ = c.Close()
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", addr, ctxErr(ctx))
	}
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("ssh handshake with %s: %w", addr, err)
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// Close closes every connection. Commands running on them fail.
func (r *Runner) Close() error {
	r.mu.Lock()
	r.closed = true
	hosts := r.hosts
	r.hosts = map[string]*hostConn{}
	r.mu.Unlock()
	for _, hc := range hosts {
		r.drop(hc, nil)
	}
	return nil
}

// errTimedOut is the cause of a context that ran out of time.
type errTimedOut struct{ after time.Duration }

func (e errTimedOut) Error() string { return fmt.Sprintf("timed out after %s", e.after) }

func (e errTimedOut) Is(target error) bool { return target == context.DeadlineExceeded }

// ctxErr says why ctx ended: "timed out after 5s", or "canceled: ...".
func ctxErr(ctx context.Context) error {
	cause := context.Cause(ctx)
	if errors.As(cause, new(errTimedOut)) {
		return cause
	}
	return fmt.Errorf("canceled: %w", cause)
}
