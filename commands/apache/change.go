package apache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/hostcmd"
)

// snapshot is what a host's Apache looks like at one moment.
type snapshot struct {
	Host      bot.Host
	Cfg       RunConfig
	CfgErr    error
	Parent    parent
	Status    Status
	StatusErr error
	Sites     []TLSSite  // the TLS virtual hosts of the config on disk
	SitesErr  error      // why they are unknown
	Certs     []siteCert // what each served, when the parent was alive
}

func (s snapshot) pidFile() string {
	if s.Cfg.PidFile != "" {
		return s.Cfg.PidFile
	}
	return DefaultPidFile
}

func (h hostIO) snapshot(ctx context.Context) snapshot {
	cfg, err := h.runConfig(ctx)
	return h.snapshotWith(ctx, cfg, err)
}

// snapshotWith takes the run config already read: a remote command costs
// a session, and over SSH the login shell's start-up with it.
func (h hostIO) snapshotWith(ctx context.Context, cfg RunConfig, cfgErr error) snapshot {
	s := snapshot{Host: h.Host, Cfg: cfg, CfgErr: cfgErr}
	s.Parent = h.parentState(ctx, s.pidFile())
	s.Status, s.StatusErr = h.status(ctx)
	s.Sites, s.SitesErr = h.tlsSites(ctx)
	if s.Parent.alive() && len(s.Sites) > 0 {
		s.Certs = h.certs(ctx, s.Sites)
	}
	return s
}

// checkConfig is configtest and the run config in one call: apache2ctl -t
// -D DUMP_RUN_CFG tests the config exactly as configtest does (same
// errors, same exit code) and, when it passes, says where the pid file
// and error log are.
func (h hostIO) checkConfig(ctx context.Context) (hostTest, RunConfig, error) {
	out, err := h.ctl(ctx, "-t", "-D", "DUMP_RUN_CFG")
	if err != nil {
		return hostTest{Host: h.Host, Err: err}, RunConfig{}, err
	}
	t := hostTest{Host: h.Host, Test: ParseConfigTest(out.Stdout, out.Stderr, out.ExitCode)}
	if !t.Test.OK {
		return t, RunConfig{}, errors.New("configtest failed")
	}
	cfg, err := ParseRunConfig(out.Stdout)
	return t, cfg, err
}

// errorLog is where to look for fatal entries: the inventory's setting,
// else what Apache says, else Debian's default. "" with a reason when the
// log is not a file (a pipe to rotatelogs, syslog).
func (h hostIO) errorLog(cfg RunConfig) (path, why string) {
	path = h.set.errorLog
	if path == "" {
		path = cfg.ErrorLog
	}
	if path == "" {
		path = DefaultErrorLog
	}
	if strings.HasPrefix(path, "|") || strings.HasPrefix(path, "syslog") {
		return "", "the error log goes to " + path + ", not a file: set apache.error_log for this host to check it"
	}
	return path, ""
}

// hostTest is one host's configtest.
type hostTest struct {
	Host bot.Host
	Test ConfigTest
	Err  error
}

func (h hostIO) configTest(ctx context.Context) hostTest {
	out, err := h.ctl(ctx, "configtest")
	if err != nil {
		return hostTest{Host: h.Host, Err: err}
	}
	return hostTest{Host: h.Host, Test: ParseConfigTest(out.Stdout, out.Stderr, out.ExitCode)}
}

// change is one host's reload or restart, from the checks before to the
// verdict after.
type change struct {
	Host    bot.Host
	Action  string // "reload" or "restart"
	Refused string // why nothing was done; "" when the action ran
	Test    hostTest
	Before  snapshot

	Ctl      bot.Output
	CtlErr   error
	GenAfter int
	NewGenIn time.Duration // from the command to the status page showing the new generation; 0 = never seen
	After    parent
	Probe    probe
	Fatal    []LogEntry
	LogNote  string     // the error log could not be checked, and why
	Certs    []siteCert // each TLS virtual host's certificate after the action
	Problems []string
	Took     time.Duration
}

func (c change) ok() bool { return c.Refused == "" && len(c.Problems) == 0 }

// OK implements hostcmd.Result: verified, the roll goes on.
func (c change) OK() bool { return c.ok() }

// Acted implements hostcmd.Result: apache2ctl ran (the action was not
// refused before it).
func (c change) Acted() bool { return c.Refused == "" }

// ctlWord is what apache2ctl calls each action.
var ctlWord = map[string]string{"reload": "graceful", "restart": "restart"}

// apply reloads or restarts Apache on one host and verifies the result.
func (c *Command) apply(ctx context.Context, h hostIO, action string) (ch change) {
	start := c.now()
	ch = change{Host: h.Host, Action: action}
	defer func() { ch.Took = c.now().Sub(start) }()

	var cfg RunConfig
	var cfgErr error
	ch.Test, cfg, cfgErr = h.checkConfig(ctx)
	switch {
	case ch.Test.Err != nil:
		ch.Refused = "configtest could not run: " + hostcmd.ErrText(ch.Test.Err)
		return ch
	case !ch.Test.Test.OK:
		ch.Refused = "configtest failed: the running server keeps its old config"
		return ch
	}
	ch.Before = h.snapshotWith(ctx, cfg, cfgErr)
	switch {
	case ch.Before.Parent.State == "unknown":
		ch.Refused = "cannot tell whether Apache runs (" + ch.Before.Parent.String() + "), so the result could not be verified"
		return ch
	case !ch.Before.Parent.alive() && action == "reload":
		ch.Refused = "Apache is not running (" + ch.Before.Parent.String() + "): a reload would start it; /apache restart starts it with the same checks"
		return ch
	}
	logPath, why := h.errorLog(ch.Before.Cfg)
	var offset int64
	if why != "" {
		ch.LogNote = why
	} else if n, err := h.logSize(ctx, logPath); err != nil {
		ch.LogNote = "error log not checked: " + hostcmd.ErrText(err)
		logPath = ""
	} else {
		offset = n
	}

	sent := c.now()
	ch.Ctl, ch.CtlErr = h.ctl(ctx, ctlWord[action])
	if ch.CtlErr != nil {
		ch.Problems = append(ch.Problems, fmt.Sprintf("%s %s did not finish: %s", strings.Join(h.set.ctl, " "), ctlWord[action], hostcmd.ErrText(ch.CtlErr)))
	} else if ch.Ctl.ExitCode != 0 {
		ch.Problems = append(ch.Problems, fmt.Sprintf("%s %s exited %d: %s", strings.Join(h.set.ctl, " "), ctlWord[action], ch.Ctl.ExitCode, firstLine(ch.Ctl.Stdout, ch.Ctl.Stderr)))
	}

	c.waitGeneration(ctx, h, &ch, sent)

	ch.After = h.parentState(ctx, ch.Before.pidFile())
	if !ch.After.alive() {
		ch.Problems = append(ch.Problems, "Apache is down: parent "+ch.After.String())
	}
	if ch.After.alive() && ch.NewGenIn == 0 {
		ch.Problems = append(ch.Problems, fmt.Sprintf("server-status never showed a new generation within %s (still %s)", c.cfg.Verify, genText(ch.Before)))
	}
	if ch.After.alive() {
		ch.Probe = h.probe(ctx)
		if !ch.Probe.ok() {
			ch.Problems = append(ch.Problems, "the probe URL "+probeText(ch.Probe))
		}
		if len(ch.Before.Sites) > 0 {
			ch.Certs = h.certs(ctx, ch.Before.Sites)
			ch.Problems = append(ch.Problems, certProblems(ch.Certs, action)...)
		}
	}
	if logPath != "" {
		entries, err := h.logSince(ctx, logPath, offset)
		if err != nil {
			ch.LogNote = "error log not checked: " + hostcmd.ErrText(err)
		}
		for _, e := range entries {
			if e.Fatal() {
				ch.Fatal = append(ch.Fatal, e)
			}
		}
		if len(ch.Fatal) > 0 {
			ch.Problems = append(ch.Problems, fmt.Sprintf("%d fatal entries in %s since the %s (%s)", len(ch.Fatal), logPath, action, strings.Join(codes(ch.Fatal), ", ")))
		}
	}
	return ch
}

// waitGeneration polls server-status until it shows a generation above the
// one before (the new config serving), the parent dies, or time is up.
func (c *Command) waitGeneration(ctx context.Context, h hostIO, ch *change, sent time.Time) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Verify)
	defer cancel()
	before := ch.Before.Status.Generation
	known := ch.Before.StatusErr == nil && ch.Before.Status.HasGeneration
	delay := 20 * time.Millisecond
	for {
		st, err := h.status(ctx)
		if err == nil && st.HasGeneration && (!known || st.Generation > before) {
			ch.GenAfter, ch.NewGenIn = st.Generation, c.now().Sub(sent)
			return
		}
		if err != nil {
			// No answer: either the new generation is starting, or
			// Apache died. Only the parent can tell.
			if p := h.parentState(ctx, ch.Before.pidFile()); p.State == "zombie" || p.State == "gone" || p.State == "no pid file" {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 250*time.Millisecond)
	}
}

func genText(s snapshot) string {
	if s.StatusErr != nil || !s.Status.HasGeneration {
		return "unknown"
	}
	return fmt.Sprintf("generation %d", s.Status.Generation)
}

func probeText(p probe) string {
	switch {
	case p.Err != nil:
		return p.URL + " did not answer: " + hostcmd.ErrText(p.Err)
	case p.Code >= 500:
		return fmt.Sprintf("%s answered HTTP %d", p.URL, p.Code)
	}
	return fmt.Sprintf("%s answered HTTP %d in %s", p.URL, p.Code, bot.Human(p.Took))
}

func codes(entries []LogEntry) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range entries {
		for _, c := range e.Codes {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	if len(out) == 0 {
		out = []string{"no AH code"}
	}
	return out
}

// roll is a change across hosts: the first alone (the canary), then
// batches; it stops after the first batch with a failure.
type roll = hostcmd.Roll[change]

func (c *Command) change(ctx context.Context, req bot.Request, r request) bot.Reply {
	ro := hostcmd.Rollout[change]{
		Batch:  c.cfg.RollBatch,
		Change: func(ctx context.Context, _ int, h bot.Host) change { return c.apply(ctx, c.io(h), r.Sub) },
	}
	if r.Group {
		ro.Next = func(done []change, next []bot.Host, canary bool) {
			req.Stream.Progress(rollProgress(r, done, next, canary))
		}
	}
	return changeReply(r, ro.Run(ctx, r.Hosts))
}
