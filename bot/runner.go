package bot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// Host is one inventory host, as the runners need it.
type Host struct {
	Name    string        // the inventory name ("web01")
	Address string        // address or DNS name; "" for via local
	Via     string        // "local" or "ssh"
	User    string        // ssh user
	Port    int           // ssh port; 0 = 22
	Become  string        // "", "sudo" or "doas": privilege escalation, prefixed as argv
	Timeout time.Duration // per command; 0 = the runner's default
	Tags    []string      // from the inventory, for role host limits

	// Settings are the blocks of the commands that act on the host, by
	// command ("apache"), as each command decoded and validated its own
	// (HostBlock); a command without a block here takes its defaults.
	Settings map[string]any
}

// HasSettings reports whether the inventory gives the host a settings
// block for the command named key ("relayd").
func (h Host) HasSettings(key string) bool {
	_, ok := h.Settings[key]
	return ok
}

// Output is what a command printed and how it ended. Stdout and Stderr are
// kept apart and bounded; Truncated says a bound was hit.
type Output struct {
	Stdout, Stderr []byte
	ExitCode       int // -1 when the command did not exit normally (signal, timeout)
	Truncated      bool
	Duration       time.Duration
}

// Runner runs a fixed argv on an inventory host: never a shell string built
// from chat text. A non-zero exit is not an error (Output.ExitCode says
// it); an error means the command could not be run or did not finish
// (unreachable host, unknown host key, timeout, cancel).
type Runner interface {
	Run(ctx context.Context, host Host, argv []string) (Output, error)
}

// BecomeArgv checks argv and puts the privilege escalation in front of it:
// both prefixes are non-interactive (-n), so a missing sudoers or doas.conf
// rule fails at once instead of waiting for a password nobody will type,
// and end with "--", so argv[0] is never read as an option. Every runner
// builds its command line here.
func BecomeArgv(become string, argv []string) ([]string, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("empty command")
	}
	for i, w := range argv {
		if strings.IndexByte(w, 0) >= 0 {
			return nil, fmt.Errorf("argument %d contains a NUL byte", i)
		}
	}
	var prefix []string
	switch become {
	case "":
	case "sudo":
		prefix = []string{"sudo", "-n", "--"}
	case "doas":
		prefix = []string{"doas", "-n", "--"}
	default:
		return nil, fmt.Errorf("unknown privilege escalation %q (want sudo, doas or none)", become)
	}
	return append(prefix, argv...), nil
}

// LimitedBuffer keeps the first Limit bytes written to it and drops the
// rest, still reporting success, so a command with a lot of output never
// blocks on us. Runners collect stdout and stderr in one each. It may be
// read while still being written (after a cancel), so it locks.
type LimitedBuffer struct {
	Limit int

	mu        sync.Mutex
	buf       bytes.Buffer
	truncated bool
}

var _ io.Writer = (*LimitedBuffer)(nil)

// Write keeps what fits.
func (b *LimitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.Limit - b.buf.Len(); room < len(p) {
		b.truncated = true
		b.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	b.buf.Write(p)
	return len(p), nil
}

// Bytes returns a copy of what was kept.
func (b *LimitedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// Truncated reports whether anything was dropped.
func (b *LimitedBuffer) Truncated() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.truncated
}

// HostDialer is implemented by runners that can open a TCP connection from
// the host itself, so that the bot can read a page only the host may see
// (Apache's server-status is allowed from localhost alone). Over SSH it is
// a direct-tcpip channel on the connection the runner already holds.
type HostDialer interface {
	DialHost(ctx context.Context, host Host, address string) (net.Conn, error)
}

// Runners picks the runner for each host by how it is reached (Host.Via).
type Runners map[string]Runner

var (
	_ Runner     = Runners(nil)
	_ HostDialer = Runners(nil)
)

func (rs Runners) pick(host Host) (Runner, error) {
	via := host.Via
	if via == "" {
		via = "local"
	}
	r, ok := rs[via]
	if !ok || r == nil {
		if via == "ssh" {
			return nil, Errorf(ECONFIG, "host %s is reached over ssh, but no SSH key is configured: set OPSBOT_SSH_KEY (or run an ssh-agent) and OPSBOT_SSH_KNOWN_HOSTS", host.Name)
		}
		return nil, Errorf(ECONFIG, "host %s: no runner for via %q", host.Name, via)
	}
	return r, nil
}

// Run runs argv with the host's runner.
func (rs Runners) Run(ctx context.Context, host Host, argv []string) (Output, error) {
	r, err := rs.pick(host)
	if err != nil {
		return Output{ExitCode: -1}, err
	}
	return r.Run(ctx, host, argv)
}

// DialHost dials from the host, when its runner can.
func (rs Runners) DialHost(ctx context.Context, host Host, address string) (net.Conn, error) {
	r, err := rs.pick(host)
	if err != nil {
		return nil, err
	}
	d, ok := r.(HostDialer)
	if !ok {
		return nil, Errorf(ECONFIG, "host %s: its runner cannot open connections from the host", host.Name)
	}
	return d.DialHost(ctx, host, address)
}

// WaitContext waits for wg, or until ctx ends: how adapters let a
// shutdown wait for the deliveries they still have in flight.
func WaitContext(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
