package relayd

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/hostcmd"
	"github.com/opsbot/opsbot/internal/text"
)

// Config is what /relayd uses.
type Config struct {
	Hosts  bot.HostResolver
	Runner bot.Runner
	// Wait bounds how long a reload or a restart waits for the hosts to be
	// up again; 0 = DefaultWait.
	Wait time.Duration
	// Timeout bounds each relayctl call; 0 = DefaultTimeout. relayctl
	// answers at once or not at all (monitor even waits forever for a
	// missing socket), so this is short.
	Timeout time.Duration
}

// Defaults for the zero fields of Config.
const (
	DefaultWait    = 60 * time.Second
	DefaultTimeout = 10 * time.Second
)

// Command is /relayd.
type Command struct {
	hostcmd.Spec
	cfg Config
	now func() time.Time
}

// New makes /relayd.
func New(cfg Config) *Command {
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultWait
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Command{Spec: spec, cfg: cfg, now: time.Now}
}

// spec: status, show and check (relayd -n) only look; poll, enable,
// disable, reload and restart act on relayd and are recorded as started
// before they do. Each subcommand is its own permission ("relayd show").
var spec = hostcmd.Spec{Command: "relayd", Synopsis: synopsis,
	Subs: []hostcmd.Sub{
		{Name: "status"}, {Name: "show", Args: "a view"}, {Name: "poll", Changes: true}, {Name: "check"},
		{Name: "host", Args: "enable|disable ID|NAME", Changes: true},
		{Name: "table", Args: "enable|disable ID|NAME", Changes: true},
		{Name: "redirect", Args: "enable|disable ID|NAME", Changes: true},
		{Name: "reload", Changes: true}, {Name: "restart", Changes: true},
	},
	Needs: "relayd", NeedsHint: "add relayd: {} to the host's entry to use OpenBSD's defaults",
}

var (
	_ bot.Command      = (*Command)(nil)
	_ bot.Subcommander = (*Command)(nil)
	_ bot.Preparer     = (*Command)(nil)
	_ bot.Changer      = (*Command)(nil)
)

const synopsis = `/relayd status [HOST|GROUP]
/relayd show summary|hosts|redirects|relays|sessions [HOST|GROUP]
/relayd poll|check [HOST|GROUP]
/relayd host|table|redirect enable|disable ID|NAME [HOST|GROUP]
/relayd reload|restart [HOST|GROUP]`

// Summary implements bot.Command.
func (*Command) Summary() string {
	return "OpenBSD relayd: status digest, show views, poll, config check, enable/disable, reload, restart runbook"
}

// Usage implements bot.Command.
func (c *Command) Usage() string {
	return synopsis + `
  status     the digest: redirects and relays with their state, tables with
             hosts down, and each host down with its last check error and
             availability (relayctl show summary and show hosts)
  show       relayctl's views as tables; sessions lists the relay sessions
  poll       relayctl poll: every host is checked now, not at the next interval
  check      relayd -n on the file relayd runs with: its -f file and -D
             macros from rcctl get relayd flags, or relayd.config; errors as
             FILE:LINE. relayd needs root even for that: give the host
             become: doas
  host|table|redirect enable|disable ID|NAME
             an id as show summary prints it (ids are unique per type only),
             or a name. A host NAME: relayd takes the first host of that name
             in its table order, then every other host of that name that has
             no parent; a host with a parent is refused (relayd would answer
             command failed): act on its parent, whose children follow it. A
             table or redirect NAME changes only the first of that name, so
             use the id to pick one. Table names carry their port
             (webhosts:80). Approval by default.
  reload     relayd -n first, refused if it fails. relayctl reload prints
             nothing and exits 0 whether or not the reload worked, so the bot
             reads relayd afterwards (at most ` + c.cfg.Wait.String() + `): the daemon alive; every
             host started again (check counters from zero: hosts renamed or
             renumbered by the edit count, one host someone reset does not;
             with no host checked before, the relays' session statistics);
             every redirect, relay, router and table the file and its includes
             declare running (relayd keeps what loaded when part of a reload
             fails); the hosts up again. It cannot know why relayd ignored a
             reload (a reload arriving while another is applied is dropped,
             logged at debug level only), nor objects it cannot read in the
             file (cat through become). A reload flushes state (hosts read
             unknown until checked again), interrupts service briefly, and can
             stop relayd: TLS relays have crashed it, and a check result for a
             host of the old configuration is fatal (invalid host id,
             desynchronized). restart is the safer way on a CARP pair.
             Approval by default.
  restart    the failover runbook, one step at a time: relayd -n; CARP
             demote (ifconfig -g carp carpdemote 50: the peer takes over);
             rcctl restart relayd; relayctl poll; wait until the hosts are
             up (at most ` + c.cfg.Wait.String() + `); undemote (ifconfig -g carp -carpdemote 50).
             A failed step stops the runbook; the reply says the state the
             host is left in and the commands that recover it. The CARP group
             and demote value are per host (relayd.carp_group, relayd.demote).
             Approval by default.

show hosts prints "N retries" under a host: the failed checks relayd still
allows before calling it down (reset after every good check), shown as
"N retries left".
HOST is an inventory host with relayd settings (relayd: {} in its entry
takes OpenBSD's defaults); without one, the only such host you may act on.
A GROUP is read in parallel and changed host by host, stopping at the first
failure. Every relayctl call is bounded by a ` + c.cfg.Timeout.String() + ` timeout.
/opsbot hosts lists the hosts you may act on.`
}

var views = []string{"summary", "hosts", "redirects", "relays", "sessions"}

// object is the ID|NAME of host|table|redirect enable|disable.
type object struct {
	Type Type
	ByID bool
	ID   uint32
	Name string
}

// word is what relayctl gets: it sends anything strtonum() reads as an
// id, and anything else as a name.
func (o object) word() string {
	if o.ByID {
		return strconv.FormatUint(uint64(o.ID), 10)
	}
	return o.Name
}

func (o object) String() string {
	if o.ByID {
		return fmt.Sprintf("%s id %d", o.Type, o.ID)
	}
	return fmt.Sprintf("%s %s", o.Type, o.Name)
}

// request is /relayd's words, validated.
type request struct {
	hostcmd.Request
	view   string // show
	action string // enable or disable
	obj    object
}

// objectName is what /relayd accepts as a relayd name: what relayd.conf
// names hold in practice (redirect and relay names, "table:port", host
// names and addresses, IPv6 included), with inner spaces for a quoted
// name. relayctl copies the name into a 64-byte field, so 63 at most.
var objectName = regexp.MustCompile(`^[A-Za-z0-9_:][A-Za-z0-9._:@+ -]*$`)

const nameRule = "ids are digits, as /relayd show summary prints them; names are letters, digits, '.', '_', '-', ':', '@', '+' and inner spaces (quote a name with spaces), at most 63 bytes, not starting with '-'"

func parseObject(t Type, word string) (object, error) {
	o := object{Type: t}
	if isDigits(word) {
		id, err := strconv.ParseUint(word, 10, 32)
		// UINT_MAX is relayd's EMPTY_ID: "look it up by name".
		if err != nil || id == 1<<32-1 {
			return o, bot.Errorf(bot.EINVALID, "%s id %s is out of range: relayd ids go up to 4294967294", t, text.Truncate(word, 20))
		}
		o.ByID, o.ID = true, uint32(id)
		return o, nil
	}
	if len(word) > 63 || !objectName.MatchString(word) || strings.HasSuffix(word, " ") || strings.Contains(word, "  ") {
		return o, bot.Errorf(bot.EINVALID, "%q is not a relayd %s id or name: %s", text.Truncate(word, 40), t, nameRule)
	}
	o.Name = word
	return o, nil
}

func (c *Command) parse(req bot.Request) (request, error) {
	sub, rest, err := c.Sub(req.Args)
	if err != nil {
		return request{}, err
	}
	var r request
	switch sub {
	case "show":
		if len(rest) == 0 {
			return request{}, bot.Errorf(bot.EINVALID, "/relayd show needs a view: %s", strings.Join(views, ", "))
		}
		r.view = strings.ToLower(rest[0])
		if !slices.Contains(views, r.view) {
			return request{}, bot.Errorf(bot.EINVALID, "unknown view %q: /relayd show takes %s", text.Truncate(rest[0], 40), strings.Join(views, ", "))
		}
		rest = rest[1:]
	case "host", "table", "redirect":
		if len(rest) < 2 {
			return request{}, bot.Errorf(bot.EINVALID, "usage: /relayd %s enable|disable ID|NAME [HOST|GROUP]", sub)
		}
		r.action = strings.ToLower(rest[0])
		if r.action != "enable" && r.action != "disable" {
			return request{}, bot.Errorf(bot.EINVALID, "/relayd %s takes enable or disable, not %q", sub, text.Truncate(rest[0], 40))
		}
		if r.obj, err = parseObject(Type(sub), rest[1]); err != nil {
			return request{}, err
		}
		rest = rest[2:]
	}
	r.Request, err = c.Select(c.cfg.Hosts, req, sub, rest)
	return r, err
}

func (c *Command) io(h bot.Host) hostIO {
	return hostIO{IO: hostcmd.IO{Runner: c.cfg.Runner, Host: h}, set: settingsOf(h), timeout: c.cfg.Timeout}
}

// Prepare implements bot.Preparer: the hosts an action is bound to, and
// for the approval prompt what it will change.
func (c *Command) Prepare(ctx context.Context, req bot.Request) (bot.Prepared, error) {
	r, err := c.parse(req)
	if err != nil {
		return bot.Prepared{}, err
	}
	p := bot.Prepared{Hosts: r.Labels()}
	switch r.Sub {
	case "reload":
		p.Impact = reloadImpact(r, c.cfg.Wait)
	case "restart":
		p.Impact = restartImpact(r, c.cfg.Wait)
	case "host", "table", "redirect":
		ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout+time.Second)
		defer cancel()
		found := hostcmd.Read(r.Hosts, func(h bot.Host) lookup { return c.lookup(ctx, c.io(h), r.obj) })
		for i, l := range found {
			if l.Parent != nil {
				return bot.Prepared{}, parentRefusal(r.Hosts[i], r, *l.Parent)
			}
		}
		p.Impact = toggleImpact(r, found)
	}
	return p, nil
}

// Run implements bot.Command.
func (c *Command) Run(ctx context.Context, req bot.Request) (bot.Reply, error) {
	r, err := c.parse(req)
	if err != nil {
		return bot.Reply{}, err
	}
	switch r.Sub {
	case "status":
		digest := func(h bot.Host) snapshot { return c.snapshot(ctx, c.io(h)) }
		return hostcmd.View(r.Request, digest, hostStatusReply, func(snaps []snapshot) bot.Reply { return groupStatusReply(r, snaps) }), nil
	case "show":
		return showReply(r, hostcmd.Read(r.Hosts, func(h bot.Host) viewed { return c.view(ctx, c.io(h), r.view) })), nil
	case "poll":
		return pollReply(r, hostcmd.Read(r.Hosts, func(h bot.Host) polled {
			_, _, err := c.io(h).relayctl(ctx, "poll")
			return polled{Host: h, Err: err}
		})), nil
	case "check":
		return checkReply(r, hostcmd.Read(r.Hosts, func(h bot.Host) checked {
			io := c.io(h)
			cf := io.confFile(ctx)
			res, err := io.check(ctx, cf)
			return checked{Host: h, Conf: cf, Result: res, Err: err}
		})), nil
	}
	return c.change(ctx, req, r), nil
}

// snapshot is what relayd on one host says for /relayd status.
type snapshot struct {
	Host     bot.Host
	Summary  Summary
	Hosts    Summary
	Err      error // show summary failed: nothing to digest
	HostsErr error // show hosts failed: the digest has no check counts
	Notes    []string
}

func (c *Command) snapshot(ctx context.Context, h hostIO) snapshot {
	s := snapshot{Host: h.Host}
	sum, err := h.show(ctx, viewSummary)
	if err != nil {
		s.Err = err
		return s
	}
	s.Summary = sum.Summary
	hosts, err := h.show(ctx, viewHosts)
	s.Hosts, s.HostsErr = hosts.Summary, err
	s.Notes = append(s.Notes, truncNote(sum.Output, "show summary")...)
	s.Notes = append(s.Notes, truncNote(hosts.Output, "show hosts")...)
	return s
}

func truncNote(out bot.Output, what string) []string {
	if !out.Truncated {
		return nil
	}
	return []string{"relayctl " + what + " printed more than the runner keeps: the end is missing"}
}

// viewed is one host's show view.
type viewed struct {
	Host     bot.Host
	View     string
	Summary  Summary
	Sessions []Session
	Unknown  []Line
	Err      error
	Notes    []string
}

func (c *Command) view(ctx context.Context, h hostIO, name string) viewed {
	v := viewed{Host: h.Host, View: name}
	if name == "sessions" {
		out, _, err := h.relayctl(ctx, "show", "sessions")
		if err != nil {
			v.Err = err
			return v
		}
		v.Sessions, v.Unknown = ParseSessions(out.Stdout)
		v.Notes = truncNote(out, "show sessions")
		return v
	}
	vw := map[string]view{"summary": viewSummary, "hosts": viewHosts, "redirects": viewRedirects, "relays": viewRelays}[name]
	out, err := h.show(ctx, vw)
	v.Summary, v.Err = out.Summary, err
	v.Unknown = out.Summary.Unknown
	v.Notes = truncNote(out.Output, "show "+name)
	return v
}

type polled struct {
	Host bot.Host
	Err  error
}

type checked struct {
	Host   bot.Host
	Conf   confFile
	Result CheckResult
	Err    error
}
