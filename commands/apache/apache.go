package apache

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"

	"github.com/opsbot/opsbot/internal/text"
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
	return &Command{cfg: cfg, now: time.Now}
}

var (
	_ bot.Command      = (*Command)(nil)
	_ bot.Subcommander = (*Command)(nil)
	_ bot.Preparer     = (*Command)(nil)
)

const synopsis = "/apache status|configtest|modules|vhosts|reload|restart [HOST|GROUP]"

// Name implements bot.Command.
func (*Command) Name() string { return "apache" }

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
               whether it is the one in its SSLCertificateFile on disk
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

var subcommands = []string{"status", "configtest", "modules", "vhosts", "reload", "restart"}

// Subcommands implements bot.Subcommander: each is its own permission.
func (*Command) Subcommands() []string { return subcommands }

// request is /apache's words, validated.
type request struct {
	sub    string
	target string // the host or group word as typed ("" = the only host)
	hosts  []bot.Host
	group  bool
}

func (c *Command) parse(req bot.Request) (request, error) {
	if len(req.Args) == 0 {
		return request{}, bot.Errorf(bot.EINVALID, "usage: %s", synopsis)
	}
	r := request{sub: strings.ToLower(req.Args[0])}
	known := false
	for _, s := range subcommands {
		known = known || s == r.sub
	}
	if !known {
		return request{}, bot.Errorf(bot.EINVALID, "unknown subcommand %q: accepted are %s", text.Truncate(req.Args[0], 40), strings.Join(subcommands, ", "))
	}
	if len(req.Args) > 2 {
		return request{}, bot.Errorf(bot.EINVALID, "/apache %s takes one host or group, got %d words: usage %s", r.sub, len(req.Args)-1, synopsis)
	}
	key := "apache " + r.sub
	if c.cfg.Hosts == nil {
		return request{}, bot.Errorf(bot.ECONFIG, "no inventory: define hosts in the policy file")
	}
	if len(req.Args) == 1 {
		allowed := c.cfg.Hosts.Allowed(req, key)
		switch len(allowed) {
		case 1:
			r.target, r.hosts = allowed[0].Name, allowed
			return r, nil
		case 0:
			return request{}, bot.Errorf(bot.EINVALID, "/apache %s needs a host, and you may run it on no inventory host (see /opsbot hosts)", r.sub)
		}
		names := make([]string, len(allowed))
		for i, h := range allowed {
			names[i] = h.Name
		}
		return request{}, bot.Errorf(bot.EINVALID, "/apache %s needs a host or group: you may run it on %s", r.sub, strings.Join(names, ", "))
	}
	r.target = req.Args[1]
	hosts, group, err := c.cfg.Hosts.Resolve(req, key, r.target)
	if err != nil {
		return request{}, err
	}
	r.hosts, r.group = hosts, group
	return r, nil
}

func (c *Command) io(h bot.Host) hostIO {
	return hostIO{runner: c.cfg.Runner, host: h, set: settingsOf(h)}
}

// Prepare implements bot.Preparer: the hosts a change is bound to, and for
// the approval prompt what it will do to them right now.
func (c *Command) Prepare(ctx context.Context, req bot.Request) (bot.Prepared, error) {
	r, err := c.parse(req)
	if err != nil {
		return bot.Prepared{}, err
	}
	p := bot.Prepared{}
	for _, h := range r.hosts {
		p.Hosts = append(p.Hosts, h.Label())
	}
	switch r.sub {
	case "restart":
		p.Impact = c.restartImpact(ctx, r)
	case "reload":
		p.Impact = "Graceful reload of Apache on " + r.target + ": no request is dropped; new connections may wait about a second while workers turn over."
	}
	return p, nil
}

// restartImpact says what a hard restart will cut, from each host's
// server-status now.
func (c *Command) restartImpact(ctx context.Context, r request) string {
	ctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	lines := make([]string, len(r.hosts))
	bot.EachHost(r.hosts, func(i int, h bot.Host) {
		st, err := c.io(h).status(ctx)
		if err != nil {
			lines[i] = fmt.Sprintf("%s: busy workers unknown (%v)", h.Name, err)
			return
		}
		// Our own status request keeps one worker busy.
		lines[i] = fmt.Sprintf("%s: %s in flight now (%d workers idle)%s", h.Name, plural(max(st.BusyWorkers-1, 0), "request"), st.IdleWorkers, reqRate(st))
	})
	return "Hard restart of Apache on " + r.target + ": every in-flight request and download is cut, and new connections wait 2-4 s in the listen queue.\n" +
		strings.Join(lines, "\n")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
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
	switch r.sub {
	case "status":
		snaps := make([]snapshot, len(r.hosts))
		bot.EachHost(r.hosts, func(i int, h bot.Host) { snaps[i] = c.io(h).snapshot(ctx) })
		return statusReply(r, snaps), nil
	case "configtest":
		tests := make([]hostTest, len(r.hosts))
		bot.EachHost(r.hosts, func(i int, h bot.Host) { tests[i] = c.io(h).configTest(ctx) })
		return configTestReply(r, tests), nil
	case "modules":
		return c.listing(ctx, r, "-M")
	case "vhosts":
		return c.listing(ctx, r, "-S")
	}
	return c.change(ctx, req, r), nil
}

// listing is modules and vhosts: apache2ctl -M or -S on each host.
func (c *Command) listing(ctx context.Context, r request, flag string) (bot.Reply, error) {
	outs := make([]listed, len(r.hosts))
	bot.EachHost(r.hosts, func(i int, h bot.Host) {
		out, err := c.io(h).ctl(ctx, flag)
		outs[i] = listed{host: h, out: out, err: err}
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
