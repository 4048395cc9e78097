package apache

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/hostcmd"
)

// Config is what /apache uses.
type Config struct {
	Hosts     bot.HostResolver
	Runner    bot.Runner // should also be a bot.HostDialer, to read pages from the host itself
	RollBatch int        // hosts changed at once after a group's canary; 0 = 1
	// Verify bounds how long a reload or restart may take to show its new
	// generation; 0 = DefaultVerify.
	Verify time.Duration
}

// DefaultVerify is how long the new generation may take to serve. Without
// load it takes 72-132 ms (NOTES.md); under load, about a second.
const DefaultVerify = 20 * time.Second

// Command is /apache.
type Command struct {
	hostcmd.Spec
	cfg Config
	now func() time.Time
}

// New makes /apache.
func New(cfg Config) *Command {
	if cfg.RollBatch < 1 {
		cfg.RollBatch = 1
	}
	if cfg.Verify <= 0 {
		cfg.Verify = DefaultVerify
	}
	return &Command{Spec: spec, cfg: cfg, now: time.Now}
}

// spec: reload and restart change Apache and are recorded as started
// before they act; the views only look. Each subcommand is its own
// permission ("apache reload").
var spec = hostcmd.Spec{Command: "apache", Synopsis: synopsis, Subs: []hostcmd.Sub{
	{Name: "status"}, {Name: "configtest"}, {Name: "modules"}, {Name: "vhosts"},
	{Name: "reload", Changes: true}, {Name: "restart", Changes: true},
}}

var (
	_ bot.Command      = (*Command)(nil)
	_ bot.Subcommander = (*Command)(nil)
	_ bot.Preparer     = (*Command)(nil)
	_ bot.Changer      = (*Command)(nil)
)

const synopsis = "/apache status|configtest|modules|vhosts|reload|restart [HOST|GROUP]"

// Summary implements bot.Command.
func (*Command) Summary() string {
	return "Apache httpd: status, configtest, modules, vhosts, reload (graceful), restart"
}

// Usage implements bot.Command.
func (*Command) Usage() string {
	return synopsis + `
  status       server-status (generation, busy and idle workers, requests/s,
               uptime), whether the parent process is alive, and each TLS
               virtual host's certificate served (SHA-256, days left) and
               whether it is the one in its SSLCertificateFile on disk; a
               group has a row per host, with the days left of the
               certificate served that expires first
  configtest   apache2ctl configtest; a failure names the file and line
  modules      apache2ctl -M; vhosts: apache2ctl -S. Both read the config
               on disk, which may differ from what is loaded until a reload
  reload       graceful: no request is dropped; new connections may wait
               about a second while workers turn over
  restart      hard: every in-flight request and download is cut, and new
               connections wait 2-4 s (needs approval by default)

Reload and restart run configtest first and refuse a broken config (the
server keeps running the old one). A config can pass configtest and still
kill Apache (a Listen port in use, a certificate that does not match its
key), and apache2ctl exits 0 all the same; so afterwards the bot checks that
the parent process is alive, that server-status shows a new generation, that
the probe URL answers, and that the error log has no fatal entry since the
action. A reload does load newly enabled modules and replaced certificates
(Apache 2.4); one exception was seen: mod_cgid enabled for the first time
answered 503 until a second reload, which the probe URL check reports.

For each TLS virtual host (SSLEngine on in its <VirtualHost> block, as
apache2ctl -S lists it) reload and restart show the certificate served
before and after (one handshake from the host, ServerName as SNI), and a
served certificate that is not the one in its SSLCertificateFile after the
action is a failed check with both fingerprints. Not followed: Include
inside a vhost block, a certificate set outside the block.

A group rolls: its first host alone (the canary), then batches; each batch
is checked before the next, and the first failure stops the roll and says
which hosts changed. /opsbot hosts lists the hosts you may act on.`
}

// request is /apache's words, validated.
type request = hostcmd.Request

func (c *Command) parse(req bot.Request) (request, error) { return c.Parse(c.cfg.Hosts, req) }

func (c *Command) io(h bot.Host) hostIO {
	return hostIO{IO: hostcmd.IO{Runner: c.cfg.Runner, Host: h}, set: settingsOf(h)}
}

// Prepare implements bot.Preparer: the hosts a change is bound to, and for
// the approval prompt what it will do to them right now.
func (c *Command) Prepare(ctx context.Context, req bot.Request) (bot.Prepared, error) {
	r, err := c.parse(req)
	if err != nil {
		return bot.Prepared{}, err
	}
	var impact string
	switch r.Sub {
	case "restart":
		impact = c.restartImpact(ctx, r)
	case "reload":
		impact = "Graceful reload of Apache on " + r.Target + ": no request is dropped; new connections may wait about a second while workers turn over."
	}
	return bot.Prepared{Hosts: r.Labels(), Impact: impact}, nil
}

// restartImpact says what a hard restart will cut, from each host's
// server-status now.
func (c *Command) restartImpact(ctx context.Context, r request) string {
	ctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	lines := hostcmd.Read(r.Hosts, func(h bot.Host) string {
		st, err := c.io(h).status(ctx)
		if err != nil {
			return fmt.Sprintf("%s: busy workers unknown (%v)", h.Name, err)
		}
		// Our own status request keeps one worker busy.
		return fmt.Sprintf("%s: %s in flight now (%d workers idle)%s", h.Name, hostcmd.Plural(max(st.BusyWorkers-1, 0), "request"), st.IdleWorkers, reqRate(st))
	})
	return "Hard restart of Apache on " + r.Target + ": every in-flight request and download is cut, and new connections wait 2-4 s in the listen queue.\n" +
		strings.Join(lines, "\n")
}

func reqRate(st Status) string {
	if !st.HasReqPerSec {
		return ""
	}
	return fmt.Sprintf(", %.1f requests/s on average", st.ReqPerSec)
}

// Run implements bot.Command.
func (c *Command) Run(ctx context.Context, req bot.Request) (bot.Reply, error) {
	r, err := c.parse(req)
	if err != nil {
		return bot.Reply{}, err
	}
	switch r.Sub {
	case "status":
		read := func(h bot.Host) snapshot { return c.io(h).snapshot(ctx) }
		return hostcmd.View(r, read, hostStatusReply, func(snaps []snapshot) bot.Reply { return groupStatusReply(r, snaps) }), nil
	case "configtest":
		return configTestReply(r, hostcmd.Read(r.Hosts, func(h bot.Host) hostTest { return c.io(h).configTest(ctx) })), nil
	case "modules":
		return c.listing(ctx, r, "-M")
	case "vhosts":
		return c.listing(ctx, r, "-S")
	}
	return c.change(ctx, req, r), nil
}

// listing is modules and vhosts: apache2ctl -M or -S on each host.
func (c *Command) listing(ctx context.Context, r request, flag string) (bot.Reply, error) {
	outs := hostcmd.Read(r.Hosts, func(h bot.Host) listed {
		out, err := c.io(h).ctl(ctx, flag)
		return listed{host: h, out: out, err: err}
	})
	if flag == "-M" {
		return modulesReply(r, outs), nil
	}
	return vhostsReply(r, outs), nil
}

type listed struct {
	host bot.Host
	out  bot.Output
	err  error
}
