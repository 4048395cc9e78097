package apache_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/local"
	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/apache"
	"github.com/opsbot/opsbot/commands/apache/apachetest"
	"github.com/opsbot/opsbot/commands/hostcmd/hostcmdtest"
)

// bed is /apache wired to real private Apaches on this host, each an
// inventory host reached via local, with the groups given.
type bed struct {
	cmd     *apache.Command
	servers map[string]*apachetest.Server
	runner  *hostcmdtest.Recorder
}

func hostYAML(name string, s *apachetest.Server) string {
	return fmt.Sprintf("  %s: {via: local, apache: {ctl: %s, status_url: %q, probe_url: %q}}\n", name, s.Ctl, s.StatusURL, s.ProbeURL)
}

func newBed(t *testing.T, names []string, groups string, batch int) *bed {
	t.Helper()
	b := &bed{servers: map[string]*apachetest.Server{}, runner: &hostcmdtest.Recorder{Runner: &local.Runner{}}}
	var y strings.Builder
	y.WriteString("hosts:\n")
	for _, n := range names {
		b.servers[n] = apachetest.Start(t) // in the test's goroutine: it may fail t
	}
	for _, n := range names {
		y.WriteString(hostYAML(n, b.servers[n]))
	}
	y.WriteString(groups)
	p, err := bot.ParsePolicy([]byte(y.String()), apache.Settings())
	require.NoError(t, err, y.String())
	b.cmd = apache.New(apache.Config{
		Hosts:     bot.HostAccess{Inventory: bot.NewInventory(p)},
		Runner:    bot.Runners{"local": b.runner},
		RollBatch: batch,
		Verify:    10 * time.Second,
	})
	return b
}

func (b *bed) run(t *testing.T, line string) bot.Reply {
	t.Helper()
	words, err := bot.SplitWords(line)
	require.NoError(t, err)
	req := bot.Request{Platform: "shell", User: "alice", Line: line, Command: "apache", Args: words[1:], Stream: bot.NopStream{}}
	rep, err := b.cmd.Run(context.Background(), req)
	if err != nil {
		return bot.ErrorReply(err, "test")
	}
	return rep
}

func text(r bot.Reply) string {
	var b strings.Builder
	b.WriteString(r.Title + "\n")
	for _, l := range r.Lines {
		b.WriteString(l + "\n")
	}
	for _, f := range r.Fields {
		b.WriteString(f.Name + ": " + f.Value + "\n")
	}
	if r.Table != nil {
		for _, l := range r.Table.Aligned() {
			b.WriteString(l + "\n")
		}
	}
	b.WriteString(r.Text)
	return b.String()
}

func TestStatus_ReadsServerStatusAndTheParent(t *testing.T) {
	t.Parallel()
	b := newBed(t, []string{"web1"}, "", 1)
	s := b.servers["web1"]
	rep := b.run(t, "/apache status web1")
	require.Equal(t, bot.StatusOK, rep.Status, text(rep))
	assert.Contains(t, rep.Title, "Apache on web1 is up: generation 1")
	assert.Contains(t, text(rep), fmt.Sprintf("parent: pid %d, running", s.PID()))
	assert.Contains(t, text(rep), "event MPM")

	// The only host is the default.
	rep = b.run(t, "/apache status")
	assert.Equal(t, bot.StatusOK, rep.Status, text(rep))

	s.Kill()
	rep = b.run(t, "/apache status web1")
	assert.Equal(t, bot.StatusNegative, rep.Status, text(rep))
	assert.Contains(t, rep.Title, "is down")
}

func TestConfigtest_BrokenDirectiveGivesFileAndLine(t *testing.T) {
	t.Parallel()
	b := newBed(t, []string{"web1"}, "", 1)
	s := b.servers["web1"]
	rep := b.run(t, "/apache configtest web1")
	require.Equal(t, bot.StatusOK, rep.Status, text(rep))
	assert.Equal(t, "configtest on web1: Syntax OK", rep.Title)

	s.WriteConf(t, "conf-enabled/zz-broken.conf", "# opsbot test\n\nNoSuchDirective on\n")
	rep = b.run(t, "/apache configtest web1")
	require.Equal(t, bot.StatusNegative, rep.Status, text(rep))
	want := filepath.Join(s.Dir, "conf-enabled/zz-broken.conf") + ":3: "
	require.NotEmpty(t, rep.Lines)
	assert.True(t, strings.HasPrefix(rep.Lines[0], want), "got %q, want prefix %q", rep.Lines[0], want)
	assert.Contains(t, rep.Lines[0], "NoSuchDirective")
}

func TestReload_BrokenConfigIsRefusedAndTheServerUntouched(t *testing.T) {
	t.Parallel()
	b := newBed(t, []string{"web1"}, "", 1)
	s := b.servers["web1"]
	pid := s.PID()
	s.WriteConf(t, "conf-enabled/zz-broken.conf", "<VirtualHost\n")
	rep := b.run(t, "/apache reload web1")
	require.Equal(t, bot.StatusFailed, rep.Status, text(rep))
	assert.Contains(t, rep.Title, "reload refused on web1: configtest failed")
	assert.Contains(t, text(rep), filepath.Join(s.Dir, "conf-enabled/zz-broken.conf")+":1:")
	assert.Contains(t, rep.Text, "Apache was not touched")
	gen, err := s.Generation()
	require.NoError(t, err)
	assert.Equal(t, 1, gen, "no reload happened")
	assert.Equal(t, pid, s.PID())
	for _, c := range b.runner.Calls() {
		assert.NotContains(t, c, "graceful", "the runner was never asked to reload")
	}
}

func TestReload_GoodConfigIsVerified(t *testing.T) {
	t.Parallel()
	b := newBed(t, []string{"web1"}, "", 1)
	s := b.servers["web1"]
	rep := b.run(t, "/apache reload web1")
	require.Equal(t, bot.StatusOK, rep.Status, text(rep))
	assert.Contains(t, rep.Title, "Reloaded Apache on web1: generation 1 -> 2, verified")
	assert.Contains(t, text(rep), "new generation serving after")
	assert.Contains(t, text(rep), "answered HTTP 200")
	assert.Contains(t, text(rep), "error log: no fatal entries since the reload")
	gen, err := s.Generation()
	require.NoError(t, err)
	assert.Equal(t, 2, gen)
}

func TestReload_BusyListenPortPassesConfigtestButIsReportedDead(t *testing.T) {
	t.Parallel()
	b := newBed(t, []string{"web1"}, "", 1)
	s := b.servers["web1"]
	port := apachetest.HoldPort(t)
	s.WriteConf(t, "conf-enabled/zz-busy.conf", fmt.Sprintf("Listen 127.0.0.1:%d\n", port))
	require.Equal(t, bot.StatusOK, b.run(t, "/apache configtest web1").Status, "configtest cannot see a busy port")

	rep := b.run(t, "/apache reload web1")
	require.Equal(t, bot.StatusFailed, rep.Status, text(rep))
	assert.Contains(t, rep.Title, "reload of Apache on web1 FAILED")
	out := text(rep)
	assert.Contains(t, out, "AH00072")
	assert.Contains(t, out, "Apache is down")
	assert.Contains(t, out, "itself exited 0")
	assert.False(t, s.Alive())
}

func TestReload_CertificateKeyMismatchIsReportedDead(t *testing.T) {
	t.Parallel()
	b := newBed(t, []string{"web1"}, "", 1)
	s := b.servers["web1"]
	s.EnableModule(t, "socache_shmcb", "ssl")
	certA, _ := s.SelfSigned(t, "a")
	_, keyB := s.SelfSigned(t, "b")
	sslPort := freePort(t)
	s.WriteConf(t, "sites-enabled/tls.conf", fmt.Sprintf(`Listen 127.0.0.1:%d
<VirtualHost 127.0.0.1:%d>
	SSLEngine on
	SSLCertificateFile %s
	SSLCertificateKeyFile %s
</VirtualHost>
`, sslPort, sslPort, certA, keyB))
	require.Equal(t, bot.StatusOK, b.run(t, "/apache configtest web1").Status, "configtest does not load certificates")

	rep := b.run(t, "/apache reload web1")
	require.Equal(t, bot.StatusFailed, rep.Status, text(rep))
	out := text(rep)
	assert.Contains(t, out, "AH02565")
	assert.Contains(t, out, "Apache is down")
	assert.False(t, s.Alive())
}

func TestReload_NotRunningIsRefused(t *testing.T) {
	t.Parallel()
	b := newBed(t, []string{"web1"}, "", 1)
	b.servers["web1"].Kill()
	rep := b.run(t, "/apache reload web1")
	require.Equal(t, bot.StatusFailed, rep.Status, text(rep))
	assert.Contains(t, rep.Title, "Apache is not running")
	assert.False(t, b.servers["web1"].Alive(), "a reload never starts a stopped server")
}

func TestRestart_StartsAStoppedServerAndVerifies(t *testing.T) {
	t.Parallel()
	b := newBed(t, []string{"web1"}, "", 1)
	s := b.servers["web1"]
	s.Kill()
	rep := b.run(t, "/apache restart web1")
	require.Equal(t, bot.StatusOK, rep.Status, text(rep))
	assert.Contains(t, rep.Text, "was not running before")
	assert.True(t, s.Alive())
}

func TestRoll_CanaryThenBatchesStopsAtFirstFailure(t *testing.T) {
	t.Parallel()
	b := newBed(t, []string{"web1", "web2", "web3", "web4"}, "groups:\n  web: [web1, web2, web3, web4]\n", 2)
	// web3 will die on reload; web2 shares its batch, web4 comes after.
	port := apachetest.HoldPort(t)
	b.servers["web3"].WriteConf(t, "conf-enabled/zz-busy.conf", fmt.Sprintf("Listen 127.0.0.1:%d\n", port))

	var progress []bot.Reply
	var mu sync.Mutex
	req := bot.Request{Platform: "shell", User: "alice", Command: "apache", Args: []string{"reload", "web"},
		Stream: streamFunc(func(r bot.Reply) { mu.Lock(); progress = append(progress, r); mu.Unlock() })}
	rep, err := b.cmd.Run(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, bot.StatusFailed, rep.Status, text(rep))
	assert.Contains(t, rep.Title, "reload of web stopped at web3")
	assert.Contains(t, rep.Text, "Changed: web1, web2, web3.")
	assert.Contains(t, rep.Text, "Not touched: web4.")
	for name, want := range map[string]int{"web1": 2, "web2": 2, "web4": 1} {
		gen, err := b.servers[name].Generation()
		require.NoError(t, err, name)
		assert.Equal(t, want, gen, name)
	}
	assert.False(t, b.servers["web3"].Alive())
	require.Len(t, progress, 2, "one progress message per batch: canary, then web2+web3")
	assert.Contains(t, progress[0].Title, "canary web1")
	assert.Contains(t, progress[1].Title, "batch web2, web3")
}

func TestRoll_AllVerified(t *testing.T) {
	t.Parallel()
	b := newBed(t, []string{"a1", "a2", "a3"}, "groups:\n  all: [a1, a2, a3]\n", 1)
	rep := b.run(t, "/apache reload all")
	require.Equal(t, bot.StatusOK, rep.Status, text(rep))
	assert.Equal(t, "Reloaded Apache on all: all 3 hosts verified", rep.Title)
	require.Len(t, rep.Table.Rows, 3)
	for _, row := range rep.Table.Rows {
		assert.Equal(t, "verified", row[1])
		assert.Equal(t, "1 -> 2", row[2])
	}
	rep = b.run(t, "/apache status all")
	assert.Equal(t, bot.StatusOK, rep.Status)
	assert.Equal(t, "Apache on all: 3 of 3 hosts up", rep.Title)
}

func TestModulesAndVhosts_ReadTheConfigOnDisk(t *testing.T) {
	t.Parallel()
	b := newBed(t, []string{"web1"}, "", 1)
	rep := b.run(t, "/apache modules web1")
	require.Equal(t, bot.StatusInfo, rep.Status, text(rep))
	assert.Contains(t, text(rep), "status_module")
	assert.Contains(t, text(rep), "mpm_event_module")
	assert.Contains(t, rep.Text, "config on disk")

	rep = b.run(t, "/apache vhosts web1")
	require.Equal(t, bot.StatusInfo, rep.Status, text(rep))
	assert.Contains(t, text(rep), fmt.Sprintf("127.0.0.1:%d", b.servers["web1"].Port))
	assert.Contains(t, text(rep), "000-default.conf:1")
}

func TestParse_BadInputNeverReachesTheRunner(t *testing.T) {
	t.Parallel()
	p, err := bot.ParsePolicy([]byte("hosts:\n  web1: {via: local}\n  web2: {via: local}\ngroups:\n  web: [web1, web2]\n"))
	require.NoError(t, err)
	r := &hostcmdtest.Recorder{Runner: &local.Runner{}}
	cmd := apache.New(apache.Config{Hosts: bot.HostAccess{Inventory: bot.NewInventory(p)}, Runner: r})
	for _, tt := range []struct{ args []string }{
		{[]string{"status", "web1;id"}}, {[]string{"status", "$(id)"}}, {[]string{"status", "`id`"}},
		{[]string{"status", "web1 web2"}}, {[]string{"status", "../etc"}}, {[]string{"status", "-rf"}},
		{[]string{"status", "nosuchhost"}}, {[]string{"reboot", "web1"}}, {[]string{"status", "web1", "web2"}},
		{[]string{"status"}}, {[]string{}}, {[]string{"status", strings.Repeat("a", 300)}},
	} {
		_, err := cmd.Run(context.Background(), bot.Request{Command: "apache", Args: tt.args, Stream: bot.NopStream{}})
		require.Error(t, err, "%q", tt.args)
		assert.Contains(t, []string{bot.EINVALID, bot.ENOTFOUND}, bot.ErrorCode(err), "%q: %v", tt.args, err)
		assert.NotEmpty(t, bot.ErrorMessage(err))
	}
	assert.Zero(t, r.Count(), "no argv reached a runner")
}

func TestPrepare_RestartImpactCountsBusyWorkers(t *testing.T) {
	t.Parallel()
	b := newBed(t, []string{"web1"}, "", 1)
	req := bot.Request{Command: "apache", Args: []string{"restart", "web1"}}
	p, err := b.cmd.Prepare(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, []string{"web1"}, p.Hosts)
	assert.Contains(t, p.Impact, "every in-flight request and download is cut")
	assert.Regexp(t, `web1: (0 requests|1 request|\d+ requests) in flight now \(\d+ workers idle\)`, p.Impact)
	gen, err := b.servers["web1"].Generation()
	require.NoError(t, err)
	assert.Equal(t, 1, gen, "preparing does not act")
}

type streamFunc func(bot.Reply)

func (f streamFunc) Progress(r bot.Reply) { f(r) }
func (f streamFunc) Post(bot.Reply)       {}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestPolicy_ApacheBlockIsDecodedStrictlyAndValidatedHere(t *testing.T) {
	t.Parallel()
	_, err := bot.ParsePolicy([]byte("hosts:\n  web01:\n    via: local\n    apache:\n      ctl: apache2ctl\n      status: x\n"), apache.Settings())
	require.Error(t, err, "an unknown key fails")
	assert.Contains(t, bot.ErrorMessage(err), `6:7: unknown field "status"`, "with its line")
	for _, tc := range []struct{ yaml, want string }{
		{"hosts:\n  web01: {via: local, apache: {ctl: \"apache2ctl; reboot\"}}\n", `2:37: hosts: "web01" has apache.ctl word "apache2ctl;": a command and its arguments`},
		{"hosts:\n  web01: {via: local, apache: {status_url: \"file:///etc/shadow\"}}\n", "apache.status_url \"file:///etc/shadow\": write an http:// or https:// URL"},
		{"hosts:\n  web01: {via: local, apache: {probe_url: \"gopher://x\"}}\n", "apache.probe_url"},
		{"hosts:\n  web01: {via: local, apache: {error_log: \"logs/error.log\"}}\n", "apache.error_log \"logs/error.log\": write an absolute path"},
		{"hosts:\n  web01: {via: local, apache: {ctl: [env, \"A=1\", apache2ctl], bogus: 1}}\n", `unknown field "bogus"`},
	} {
		_, err := bot.ParsePolicy([]byte(tc.yaml), apache.Settings())
		require.Error(t, err, tc.yaml)
		assert.Equal(t, bot.ECONFIG, bot.ErrorCode(err))
		assert.Contains(t, bot.ErrorMessage(err), tc.want, tc.yaml)
	}
}
