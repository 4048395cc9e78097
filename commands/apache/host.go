package apache

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/hostcmd"
)

// Bounds on what one step may take. A runner call is also bounded by the
// host's timeout.
const (
	httpTimeout   = 5 * time.Second
	stepTimeout   = 30 * time.Second
	maxStatusBody = 256 << 10
	maxLogRead    = 4 << 20 // bytes of error log read after an action
)

// hostIO runs the fixed commands /apache needs on one host and fetches
// its pages from the host itself.
type hostIO struct {
	hostcmd.IO
	set settings
}

func (h hostIO) run(ctx context.Context, argv ...string) (bot.Output, error) {
	return h.Run(ctx, stepTimeout, argv)
}

// runUnprivileged runs argv as the login user, without the host's sudo or
// doas: reading the pid file and asking ps need no privilege, and every
// command that does not escalate is one less line in sudoers.
func (h hostIO) runUnprivileged(ctx context.Context, argv ...string) (bot.Output, error) {
	plain := h
	plain.IO = h.Unprivileged()
	return plain.run(ctx, argv...)
}

// ctl runs the control command with args.
func (h hostIO) ctl(ctx context.Context, args ...string) (bot.Output, error) {
	return h.run(ctx, append(append([]string(nil), h.set.ctl...), args...)...)
}

// runConfig asks Apache where its pid file and error log are
// (apache2ctl -t -D DUMP_RUN_CFG): the answer follows envvars and the
// config, which a guess would not.
func (h hostIO) runConfig(ctx context.Context) (RunConfig, error) {
	out, err := h.ctl(ctx, "-t", "-D", "DUMP_RUN_CFG")
	if err != nil {
		return RunConfig{}, err
	}
	if out.ExitCode != 0 {
		return RunConfig{}, fmt.Errorf("%s -t -D DUMP_RUN_CFG exited %d: %s", strings.Join(h.set.ctl, " "), out.ExitCode, firstLine(out.Stderr, out.Stdout))
	}
	return ParseRunConfig(out.Stdout)
}

// parent is the state of Apache's parent process.
type parent struct {
	PID   int
	State string // "running", "zombie", "gone" (no such process), "no pid file", "unknown"
	Err   error  // why the state is unknown
}

func (p parent) alive() bool { return p.State == "running" }

func (p parent) String() string {
	switch p.State {
	case "running":
		return fmt.Sprintf("pid %d, running", p.PID)
	case "zombie":
		return fmt.Sprintf("pid %d is a zombie: Apache exited", p.PID)
	case "gone":
		return fmt.Sprintf("pid %d is gone: Apache is not running", p.PID)
	case "no pid file":
		return "no pid file: Apache is not running"
	}
	if p.Err != nil {
		return "unknown: " + p.Err.Error()
	}
	return "unknown"
}

// parentState reads the pid file and asks ps about the process. A zombie
// counts as dead: the parent exited and nobody reaped it yet.
func (h hostIO) parentState(ctx context.Context, pidFile string) parent {
	out, err := h.runUnprivileged(ctx, "cat", "--", pidFile)
	if err == nil && out.ExitCode != 0 && h.Host.Become != "" && bytes.Contains(out.Stderr, []byte("Permission denied")) {
		out, err = h.run(ctx, "cat", "--", pidFile)
	}
	if err != nil {
		return parent{State: "unknown", Err: err}
	}
	if out.ExitCode != 0 {
		if bytes.Contains(out.Stderr, []byte("No such file")) {
			return parent{State: "no pid file"}
		}
		return parent{State: "unknown", Err: fmt.Errorf("cannot read %s: %s", pidFile, firstLine(out.Stderr))}
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out.Stdout)))
	if err != nil || pid < 1 {
		return parent{State: "unknown", Err: fmt.Errorf("%s does not hold a pid", pidFile)}
	}
	out, err = h.runUnprivileged(ctx, "ps", "-o", "stat=", "-p", strconv.Itoa(pid))
	if err != nil {
		return parent{PID: pid, State: "unknown", Err: err}
	}
	stat := strings.TrimSpace(string(out.Stdout))
	switch {
	case out.ExitCode != 0 || stat == "":
		return parent{PID: pid, State: "gone"}
	case strings.HasPrefix(stat, "Z"):
		return parent{PID: pid, State: "zombie"}
	}
	return parent{PID: pid, State: "running"}
}

// page is one HTTP answer fetched from the host.
type page struct {
	Code int
	Body []byte
	Took time.Duration
	Via  string // "connection from the host" or "curl on the host"
}

// fetch GETs raw from the host itself: through a connection the runner
// opens from the host (an SSH direct-tcpip channel, or a plain dial for
// the bot's own host), or, when the host forbids forwarding, with curl run
// there. Either way the request comes from the host, so a status page
// limited to localhost answers.
func (h hostIO) fetch(ctx context.Context, raw string) (page, error) {
	ctx, cancel := context.WithTimeout(ctx, httpTimeout)
	defer cancel()
	start := time.Now()
	p, err := h.fetchDial(ctx, raw)
	var dialErr *hostDialError
	if err != nil && errors.As(err, &dialErr) && h.Host.Via == "ssh" {
		if cp, cerr := h.fetchCurl(ctx, raw); cerr == nil {
			cp.Took = time.Since(start)
			return cp, nil
		}
	}
	p.Took = time.Since(start)
	return p, err
}

type hostDialError struct{ err error }

func (e *hostDialError) Error() string { return e.err.Error() }
func (e *hostDialError) Unwrap() error { return e.err }

func (h hostIO) fetchDial(ctx context.Context, raw string) (page, error) {
	dialer, ok := h.Runner.(bot.HostDialer)
	if !ok {
		return page{}, &hostDialError{errors.New("the runner cannot open connections from the host")}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return page{}, fmt.Errorf("bad URL %q: %w", raw, err)
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			c, err := dialer.DialHost(ctx, h.Host, addr)
			if err != nil {
				return nil, &hostDialError{err}
			}
			return c, nil
		},
		DisableKeepAlives: true,
		// A check of the host's own loopback cannot verify a certificate
		// issued for the site's name; it checks that Apache answers, not
		// who it is. Other hosts are verified as usual.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: loopbackURL(u)}, //nolint:gosec // loopback only, see above
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return page{}, fmt.Errorf("bad URL %q: %w", raw, err)
	}
	req.Header.Set("User-Agent", "opsbot")
	resp, err := (&http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		var de *hostDialError
		if errors.As(err, &de) {
			return page{}, de
		}
		return page{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStatusBody))
	if err != nil {
		return page{Code: resp.StatusCode}, fmt.Errorf("reading %s: %w", raw, err)
	}
	return page{Code: resp.StatusCode, Body: body, Via: "connection from the host"}, nil
}

func loopbackURL(u *url.URL) bool {
	host := u.Hostname()
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// fetchCurl is the fallback for hosts whose sshd forbids forwarding.
func (h hostIO) fetchCurl(ctx context.Context, raw string) (page, error) {
	out, err := h.run(ctx, "curl", "-sS", "-k", "--max-time", "5", "-w", "\n%{http_code}", "--", raw)
	if err != nil {
		return page{}, err
	}
	if out.ExitCode != 0 {
		return page{}, fmt.Errorf("curl on the host: %s", firstLine(out.Stderr))
	}
	i := bytes.LastIndexByte(out.Stdout, '\n')
	if i < 0 {
		return page{}, errors.New("curl on the host printed no status code")
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(out.Stdout[i+1:])))
	if err != nil {
		return page{}, errors.New("curl on the host printed no status code")
	}
	return page{Code: code, Body: out.Stdout[:i], Via: "curl on the host"}, nil
}

// status reads server-status?auto.
func (h hostIO) status(ctx context.Context) (Status, error) {
	p, err := h.fetch(ctx, h.set.statusURL)
	if err != nil {
		return Status{}, fmt.Errorf("server-status (%s): %w", h.set.statusURL, err)
	}
	if p.Code != http.StatusOK {
		hint := ""
		if p.Code == http.StatusForbidden || p.Code == http.StatusNotFound {
			hint = " (is mod_status enabled, and does it allow requests from localhost?)"
		}
		return Status{}, fmt.Errorf("server-status (%s) answered HTTP %d%s", h.set.statusURL, p.Code, hint)
	}
	st, err := ParseStatus(p.Body)
	if err != nil {
		return Status{}, fmt.Errorf("server-status (%s): %w", h.set.statusURL, err)
	}
	return st, nil
}

// probe is the answer of the probe URL.
type probe struct {
	URL  string
	Code int
	Took time.Duration
	Err  error
}

// ok: Apache answered with anything but a server error. A 404 still
// proves a worker took the request; a 503 (mod_cgid's first reload) does
// not prove the site works.
func (p probe) ok() bool { return p.Err == nil && p.Code > 0 && p.Code < 500 }

func (h hostIO) probe(ctx context.Context) probe {
	p, err := h.fetch(ctx, h.set.probeURL)
	return probe{URL: h.set.probeURL, Code: p.Code, Took: p.Took, Err: err}
}

// logSize is the error log's size now, the offset an action is read from.
func (h hostIO) logSize(ctx context.Context, path string) (int64, error) {
	out, err := h.run(ctx, "wc", "-c", path)
	if err != nil {
		return 0, err
	}
	if out.ExitCode != 0 {
		if bytes.Contains(out.Stderr, []byte("No such file")) {
			return 0, nil // created by the action, read from its start
		}
		return 0, fmt.Errorf("cannot read %s: %s", path, firstLine(out.Stderr))
	}
	f := strings.Fields(string(out.Stdout))
	if len(f) == 0 {
		return 0, fmt.Errorf("wc -c %s printed nothing", path)
	}
	return strconv.ParseInt(f[0], 10, 64)
}

// logSince reads what the error log gained after offset (all of it when
// it shrank: rotated in between), bounded.
func (h hostIO) logSince(ctx context.Context, path string, offset int64) ([]LogEntry, error) {
	size, err := h.logSize(ctx, path)
	if err != nil {
		return nil, err
	}
	if size < offset {
		offset = 0
	}
	if size == offset {
		return nil, nil
	}
	from := offset
	if size-from > maxLogRead {
		from = size - maxLogRead
	}
	out, err := h.run(ctx, "tail", "-c", "+"+strconv.FormatInt(from+1, 10), path)
	if err != nil {
		return nil, err
	}
	if out.ExitCode != 0 {
		return nil, fmt.Errorf("cannot read %s: %s", path, firstLine(out.Stderr))
	}
	return ParseErrorLog(out.Stdout), nil
}

// firstLine is the first non-empty line of the first output that has one.
func firstLine(outs ...[]byte) string {
	for _, o := range outs {
		sc := bufio.NewScanner(bytes.NewReader(o))
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" {
				return l
			}
		}
	}
	return "(no output)"
}
