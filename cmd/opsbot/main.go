// Command opsbot is the ChatOps bot: `opsbot` (terminal when no chat is
// configured), `opsbot shell`, `opsbot run 'LINE'`, `opsbot serve`,
// `opsbot config check`, `opsbot backup FILE`. Main wires the adapters to the core as plain
// struct fields: NewMain, then Run, then Close.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/opsbot/opsbot/adapters/local"
	"github.com/opsbot/opsbot/adapters/metrics"
	"github.com/opsbot/opsbot/adapters/postgres"
	"github.com/opsbot/opsbot/adapters/shell"
	"github.com/opsbot/opsbot/adapters/sqlite"
	"github.com/opsbot/opsbot/adapters/sshrun"
	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands"
	"github.com/opsbot/opsbot/commands/apache"
	"github.com/opsbot/opsbot/commands/probe"
	"github.com/opsbot/opsbot/commands/relayd"
	"github.com/opsbot/opsbot/commands/vantage"
	"golang.org/x/term"
)

// version is stamped by the Makefile: -ldflags "-X main.version=...".
var version = "dev"

const usage = `opsbot: check ports, scan hosts, and operate Apache and relayd from chat.

Usage:
  opsbot                          the terminal bot when no chat credentials are set, else serve
  opsbot shell [--as USER] [--config FILE]
  opsbot run [--as USER] [--config FILE] 'LINE'
                                  one command; exit 0 success, 1 negative result,
                                  2 usage or config error, 3 denied, 4 waiting for approval
  opsbot serve                    the chat adapters (Slack, Mattermost); SIGHUP reloads the policy
  opsbot config check [--config FILE]
  opsbot audit export [--since TIME]
                                  the audit log as JSON lines (TIME: RFC 3339, a date, or a
                                  duration ago such as 24h)
  opsbot audit prune [--config FILE]
                                  apply the policy's audit.retain now: export, then remove
  opsbot mattermost register --team NAME [--single] [--url URL]
                                  create or update the slash commands in a Mattermost team
                                  through its API; their tokens go to the store
  opsbot backup FILE              an online copy of the SQLite store (PostgreSQL: pg_dump)
  opsbot version

Environment: OPSBOT_CONFIG (policy file), OPSBOT_DATABASE (SQLite path or postgres:// URL),
  OPSBOT_LOG_LEVEL (debug, info, warn, error; default warn in the terminal, info for serve),
  OPSBOT_LOG_FORMAT (text, the default, or json),
  OPSBOT_SSH_KEY, OPSBOT_SSH_AGENT, OPSBOT_SSH_KNOWN_HOSTS (for inventory hosts reached over ssh),
  OPSBOT_SHUTDOWN_GRACE (serve: how long running commands may finish after SIGTERM; default 20s;
    the process ends at most 10s later), OPSBOT_METRICS_ADDR (serve: /metrics on its own address),
  OPSBOT_MATTERMOST_REGISTER (serve: teams whose slash commands it registers at start,
    such as ops,infra:single; needs OPSBOT_PUBLIC_URL),
  OPSBOT_APPROVAL_LEASE (how long a process's claim on a running action lasts unrenewed; default 1m).
`

func main() {
	os.Exit(Run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Main holds what one process wires together.
type Main struct {
	Env    Env
	Policy *bot.Policy
	Store  bot.Store
	Router *bot.Router
	// Handler is the Router as the adapters see it: every command also
	// answers under /opsbot (/opsbot portcheck ...).
	Handler bot.Handler
	Log     *slog.Logger
	// Notifiers is filled by serve as chat adapters start; the Router holds
	// the same map, so approval outcomes reach the requester's platform.
	Notifiers bot.Notifiers
	// StoreName says which store is in use, for config check.
	StoreName string
	// Runners run commands on inventory hosts; SSHProblem says why there
	// is no ssh runner when the inventory has ssh hosts.
	Runners    bot.Runners
	SSHProblem string
	// Metrics counts requests, approvals and adapter errors for /metrics.
	Metrics *metrics.Metrics
	ssh     *sshrun.Runner
	// jobs caps the commands running at once; every Router of the
	// process shares it, so a reload keeps counting the jobs still
	// running under the old policy.
	jobs *bot.Jobs

	// live is the Router in force: Router until a SIGHUP loads a new
	// policy (Reload). routers are every Router that may still run a
	// request, for the shutdown's Drain.
	live     *liveRouter
	reloadMu sync.Mutex
	routers  []*bot.Router
	lease    time.Duration
	// policyProblem says why the last reload failed ("" after a success),
	// for /readyz.
	policyProblem atomic.Value
	// auditPolicy is the audit key of the policy in force (retention).
	auditPolicy atomic.Pointer[bot.AuditPolicy]
}

// NewMain loads the environment, opens the store, loads the policy
// (configPath overrides OPSBOT_CONFIG) and wires the commands. A policy that
// does not load is audited as rejected before the error is returned.
func NewMain(ctx context.Context, configPath string, logOut io.Writer) (*Main, error) {
	env, err := loadEnv()
	if err != nil {
		return nil, err
	}
	if configPath != "" {
		env.Config = configPath
	}
	log, err := newLogger(logOut, env.LogLevel, env.LogFormat, slog.LevelWarn)
	if err != nil {
		return nil, err
	}
	m := &Main{Env: env, Log: log, Notifiers: bot.Notifiers{}, Metrics: metrics.New(version), jobs: bot.NewJobs(0, 0)}
	if m.Store, m.StoreName, err = openStore(ctx, env.Database); err != nil {
		return nil, err
	}
	if env.Config == "" {
		m.Policy = bot.DefaultPolicy()
	} else if m.Policy, err = bot.LoadPolicy(env.Config, hostSettings()...); err != nil {
		m.auditRejected(ctx, err)
		m.Close()
		return nil, err
	}
	if m.Router, err = m.buildRouter(m.Policy); err != nil {
		m.Close()
		return nil, err
	}
	lease, _, err := approvalLease(env)
	if err != nil {
		m.Close()
		return nil, err
	}
	m.lease = lease
	m.auditPolicy.Store(&m.Policy.Audit)
	m.Router.SetLease("", lease)
	m.live = &liveRouter{}
	m.live.Store(m.Router)
	m.routers = []*bot.Router{m.Router}
	m.Handler = m.live
	var names []string
	for _, c := range m.Router.Commands() {
		names = append(names, c.Name())
	}
	m.Metrics.Init(names, nil)
	return m, nil
}

// hostSettings are the settings blocks a host's entry in the policy may
// hold: one for each command that acts on hosts, which decodes and
// validates its own.
func hostSettings() []bot.HostBlock {
	return []bot.HostBlock{apache.Settings(), relayd.Settings()}
}

// buildRouter wires the commands for policy p: its targets, limits,
// permissions and inventory. The runners are made once (a reload keeps the
// SSH connections) unless the first policy needed no SSH and this one does.
func (m *Main) buildRouter(p *bot.Policy) (*bot.Router, error) {
	targets, err := bot.NewTargets(p.Targets, net.DefaultResolver, bot.NewRateLimiter(p.Limits.TargetPerMinute))
	if err != nil {
		return nil, err
	}
	if m.Runners == nil || m.ssh == nil {
		rs, ssh, problem, err := newRunners(m.Env, p, m.Log)
		if err != nil {
			return nil, err
		}
		m.Runners, m.ssh, m.SSHProblem = rs, ssh, problem
	}
	l := p.Limits
	perms := bot.NewPermissions(p)
	hosts := bot.HostAccess{Inventory: bot.NewInventory(p), Perms: perms}
	vantages := commands.Vantages{Hosts: hosts, Runner: m.Runners}
	roots, err := p.TLS.Roots()
	if err != nil {
		return nil, &bot.Error{Code: bot.ECONFIG, Message: err.Error(), Err: err}
	}
	tlsCmd := commands.NewTLS(targets, commands.TLSConfig{Roots: roots, CABundle: p.TLS.CABundle, WarnDays: p.TLS.ExpiryWarnDays})
	r := bot.NewRouter(bot.RouterConfig{
		Commands: []bot.Command{
			commands.NewPortcheck(targets, l.PortcheckPorts).WithAddresses(l.AddressesPerRequest).WithVantages(vantages).WithTLS(tlsCmd),
			tlsCmd,
			commands.NewScan(targets, l).WithVantages(vantages),
			commands.NewListen(l.ListenFor.D),
			apache.New(apache.Config{Hosts: hosts, Runner: m.Runners, RollBatch: l.RollBatch}),
			relayd.New(relayd.Config{Hosts: hosts, Runner: m.Runners}),
		},
		Users:    bot.NewRateLimiter(l.UserPerMinute),
		Log:      m.Log,
		Perms:    perms,
		Approval: p.Approval,
		Store:    m.Store,
		Notifier: m.Notifiers,
		Observer: m.Metrics,
		Jobs:     m.jobs,
	})
	r.Add(commands.NewOpsbot(r, hosts))
	m.jobs.SetLimits(l.JobsPerUser, l.JobsTotal)
	return r, nil
}

// terminal readies a terminal process: what it learns about requests from
// the terminal goes to stderr, and as it starts it records and reports
// the terminal's actions that an earlier process started and never
// finished (killed, out of memory). Chat requests are left to serve,
// which can tell their channels.
func (m *Main) terminal(ctx context.Context, stderr io.Writer) {
	m.Notifiers["shell"] = &shell.Notifier{W: stderr}
	m.Router.SweepPlatforms([]string{"shell"})
	m.Router.SweepInterrupted(ctx)
}

// newRunners makes the local runner, and the ssh runner when the inventory
// reaches a host over ssh. Missing SSH settings are not an error here
// (the terminal and the network checks work without them): problem says
// what is missing, config check reports it, and a command on such a host
// answers with it. SSH settings that are present but wrong are an error.
func newRunners(env Env, p *bot.Policy, log *slog.Logger) (rs bot.Runners, ssh *sshrun.Runner, problem string, err error) {
	rs = bot.Runners{"local": &local.Runner{}}
	needSSH := false
	for _, h := range bot.NewInventory(p).Hosts() {
		needSSH = needSSH || h.Via == "ssh"
	}
	if !needSSH {
		return rs, nil, "", nil
	}
	known := env.SSHKnownHosts
	if known == "" {
		if home, herr := os.UserHomeDir(); herr == nil {
			known = filepath.Join(home, ".ssh", "known_hosts")
		}
	}
	if env.SSHKey == "" && !env.SSHAgent {
		return rs, nil, "the inventory has ssh hosts, but no SSH key is configured: set OPSBOT_SSH_KEY to a private key file (or OPSBOT_SSH_AGENT=true with an ssh-agent)", nil
	}
	if _, serr := os.Stat(known); serr != nil {
		return rs, nil, "the inventory has ssh hosts, but the known_hosts file " + known + " cannot be read: set OPSBOT_SSH_KNOWN_HOSTS (host keys are checked strictly, never learnt)", nil
	}
	ssh, err = sshrun.New(sshrun.Config{KeyFile: env.SSHKey, Agent: env.SSHAgent, KnownHosts: known, Log: log})
	if err != nil {
		return nil, nil, "", &bot.Error{Code: bot.ECONFIG, Message: err.Error() + " (OPSBOT_SSH_KEY, OPSBOT_SSH_AGENT, OPSBOT_SSH_KNOWN_HOSTS)", Err: err}
	}
	rs["ssh"] = ssh
	return rs, ssh, "", nil
}

// openStore opens PostgreSQL for a postgres:// URL, else the SQLite file
// at dsn (default: a per-user state file).
func openStore(ctx context.Context, dsn string) (bot.Store, string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		st, err := postgres.Open(ctx, dsn)
		if err != nil {
			return nil, "", &bot.Error{Code: bot.ECONFIG, Message: "cannot open the PostgreSQL store (OPSBOT_DATABASE): " + err.Error(), Err: err}
		}
		return st, "postgresql", nil
	}
	path := dsn
	if path == "" {
		path = sqlite.DefaultPath()
	} else if dir := filepath.Dir(path); dir != "" {
		// Only the default per-user directory is created: a mistyped
		// OPSBOT_DATABASE must not grow a tree of directories and a new,
		// empty store that silently forgets every approval and audit record.
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, "", bot.Errorf(bot.ECONFIG, "cannot open the SQLite store %s (OPSBOT_DATABASE): the directory %s does not exist; create it (the bot creates only the file), or correct the path", path, dir)
		}
	}
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, "", &bot.Error{Code: bot.ECONFIG, Message: "cannot open the SQLite store " + path + " (OPSBOT_DATABASE): " + err.Error(), Err: err}
	}
	return st, "sqlite " + path, nil
}

func (m *Main) auditRejected(ctx context.Context, err error) {
	msg := bot.ErrorMessage(err)
	if msg == "" {
		msg = err.Error()
	}
	_, _ = m.Store.AppendAudit(ctx, bot.AuditRecord{Time: time.Now().UTC(), Kind: bot.AuditRejected, Platform: "config", Line: m.Env.Config, Result: "usage", Message: msg})
}

// Close releases the store and the SSH connections.
func (m *Main) Close() {
	if m.ssh != nil {
		_ = m.ssh.Close()
	}
	if m.Store != nil {
		if err := m.Store.Close(); err != nil {
			m.Log.Error("closing the store", "err", err)
		}
	}
}

// Run is main without os.Exit, for tests: it returns the exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	sub := ""
	if len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "", "shell":
		return runShell(ctx, args, stdin, stdout, stderr, sub == "")
	case "run":
		return runOnce(ctx, args, stdout, stderr)
	case "serve":
		return serveCmd(ctx, args, stderr)
	case "config":
		return configCmd(args, stdout, stderr)
	case "audit":
		return auditCmd(ctx, args, stdout, stderr)
	case "backup":
		return backupCmd(ctx, args, stdout, stderr)
	case "mattermost":
		return mattermostCmd(ctx, args, stdout, stderr)
	case "probe":
		// Hidden: what a bot runs on a vantage host over SSH (/portcheck
		// ... from HOST). No policy, no config, no store: the calling bot
		// has checked everything, and it passes an address, not a name.
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		return vantage.ProbeMain(ctx, args, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "opsbot", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "opsbot: unknown subcommand %q\n\n%s", sub, usage)
	return 2
}

// commonFlags are --as and --config, shared by shell and run.
func commonFlags(name string, stderr io.Writer) (*flag.FlagSet, *string, *string) {
	fs := flag.NewFlagSet("opsbot "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	as := fs.String("as", defaultUser(), "act as this user (policy names it shell:USER)")
	cfg := fs.String("config", "", "policy file (default $OPSBOT_CONFIG, or the built-in policy)")
	return fs, as, cfg
}

// given reports whether the flag was on the command line.
func given(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

func defaultUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "shell"
}

func runOnce(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, as, cfg := commonFlags("run", stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "opsbot run: give a command line, e.g. opsbot run '/portcheck 127.0.0.1 22'")
		return 2
	}
	m, err := NewMain(ctx, *cfg, stderr)
	if err != nil {
		return configError(stderr, err)
	}
	defer m.Close()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	m.terminal(ctx, stderr)
	sh := &shell.Shell{Handler: m.Handler, User: *as, Out: stdout, Err: stderr, ShowProgress: isTerminal(stderr), SelfAsserted: given(fs, "as")}
	return sh.RunLine(ctx, strings.Join(fs.Args(), " "))
}

func runShell(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, implicit bool) int {
	fs, as, cfg := commonFlags("shell", stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if env, err := loadEnv(); implicit && err == nil && env.HasChat() {
		return serve(ctx, *cfg, stderr) // chat credentials: the bot serves chat
	}
	m, err := NewMain(ctx, *cfg, stderr)
	if err != nil {
		return configError(stderr, err)
	}
	defer m.Close()
	m.terminal(ctx, stderr)
	ints := make(chan os.Signal, 1)
	signal.Notify(ints, os.Interrupt)
	defer signal.Stop(ints)
	sh := &shell.Shell{Handler: m.Handler, User: *as, Out: stdout, Err: stderr, ShowProgress: isTerminal(stderr), SelfAsserted: given(fs, "as")}
	if err := sh.Loop(ctx, stdin, ints); err != nil {
		fmt.Fprintln(stderr, "opsbot:", err)
		return 1
	}
	return 0
}

func configCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(stderr, "usage: opsbot config check [--config FILE]")
		return 2
	}
	fs := flag.NewFlagSet("opsbot config check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := fs.String("config", "", "policy file (default $OPSBOT_CONFIG)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	m, err := NewMain(context.Background(), *cfg, io.Discard)
	if err != nil {
		return configError(stderr, err)
	}
	defer m.Close()
	// The environment as serve reads it, through the same function: what
	// serve would refuse, config check refuses.
	setup, err := m.checkServe(false)
	if err != nil {
		return configError(stderr, err)
	}
	p := m.Policy
	src := p.Source
	if src == "" {
		src = "built-in default policy (no file: set OPSBOT_CONFIG or --config)"
	}
	fmt.Fprintf(stdout, "policy OK: %s\n", src)
	fmt.Fprintf(stdout, "  targets: allow %s", strings.Join(p.Targets.Allow, ", "))
	if len(p.Targets.Deny) > 0 {
		fmt.Fprintf(stdout, "; deny %s", strings.Join(p.Targets.Deny, ", "))
	}
	fmt.Fprintln(stdout, "; link-local and metadata addresses denied unless named")
	l := p.Limits
	fmt.Fprintf(stdout, "  limits: scan_ports %d, scan_concurrency %d, scan_rate %d/s (0 = none), portcheck_ports %d, listen_for %s, user_per_minute %d, target_per_minute %d, jobs_per_user %d, jobs_total %d\n",
		l.ScanPorts, l.ScanConcurrency, l.ScanRate, l.PortcheckPorts, l.ListenFor.D, l.UserPerMinute, l.TargetPerMinute, l.JobsPerUser, l.JobsTotal)
	fmt.Fprintf(stdout, "  sockets: %d for probes, shared by every scan, check, listener and vantage run (the descriptor limit less a reserve for the bot's own connections)\n", probe.Sockets().Total())
	if len(p.Roles)+len(p.Users) == 0 {
		fmt.Fprintf(stdout, "  permissions: no roles or users, so everyone may run the read-only commands (%s) and nobody may approve\n", strings.Join(bot.ReadOnlyGrants, ", "))
	} else {
		fmt.Fprintf(stdout, "  permissions: %d roles, %d users\n", len(p.Roles), len(p.Users))
	}
	if len(p.Approval.Required) > 0 {
		fmt.Fprintf(stdout, "  approval required for: %s; %d approval(s), expiring after %s, self-approval %s\n",
			strings.Join(p.Approval.Required, ", "), p.Approval.Approvals, p.Approval.TTL.D, map[bool]string{true: "allowed", false: "refused"}[p.Approval.SelfApprove])
	}
	if len(p.Hosts)+len(p.Groups) > 0 {
		via := map[string]int{}
		for _, h := range bot.NewInventory(p).Hosts() {
			via[h.Via]++
		}
		fmt.Fprintf(stdout, "  inventory: %d hosts (%d local, %d over ssh), %d groups, roll batch %d after the canary\n",
			len(p.Hosts), via["local"], via["ssh"], len(p.Groups), l.RollBatch)
	}
	if m.ssh != nil {
		fmt.Fprintln(stdout, "  ssh: key and known_hosts loaded (host keys are checked strictly)")
	}
	fmt.Fprintf(stdout, "  store: %s\n", m.StoreName)
	if a := p.Audit; a.Retain.D > 0 {
		fmt.Fprintf(stdout, "  audit: records older than %s are written to %s, then removed (serve: at start and hourly; opsbot audit prune)\n", formatAge(a.Retain.D), a.Export)
		if fi, err := os.Stat(a.Export); err != nil || !fi.IsDir() {
			fmt.Fprintf(stderr, "opsbot: warning: audit.export %s is not a directory here: retention will remove nothing until it exists\n", a.Export)
		}
	} else {
		fmt.Fprintln(stdout, "  audit: records are kept forever (policy audit.retain sets a retention)")
	}
	chat := "none (terminal only; opsbot serve needs a platform)"
	if len(setup.names) > 0 {
		chat = strings.Join(setup.names, ", ")
	}
	fmt.Fprintf(stdout, "  chat: %s\n", chat)
	if line := m.mattermostCommandsLine(context.Background()); line != "" {
		fmt.Fprintln(stdout, line)
	}
	metricsAt := "beside the chat endpoints"
	if m.Env.MetricsAddr != "" {
		metricsAt = "on " + m.Env.MetricsAddr
	}
	fmt.Fprintf(stdout, "  serve: listens on %s (/metrics %s), approval lease %s, shutdown grace %s (at most %s after SIGTERM)\n",
		m.Env.HTTPAddr, metricsAt, setup.lease, setup.grace, setup.grace+shutdownTail)
	if m.SSHProblem != "" {
		// The policy is valid; this environment cannot reach the ssh
		// hosts yet. Commands on them answer with the same sentence.
		fmt.Fprintln(stderr, "opsbot: warning:", m.SSHProblem)
	}
	return 0
}

func configError(stderr io.Writer, err error) int {
	msg := bot.ErrorMessage(err)
	if msg == "" {
		msg = err.Error()
	}
	fmt.Fprintln(stderr, "opsbot: config:", msg)
	return 2
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
