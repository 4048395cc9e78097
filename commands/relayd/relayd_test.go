package relayd

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
	goldenfile "github.com/opsbot/opsbot/internal/golden"
)

// render is a reply as plain text for golden files: every part of it,
// labelled, so that a change to any of them shows.
func render(r bot.Reply) string {
	var b strings.Builder
	fmt.Fprintf(&b, "status: %s\ntitle: %s\n", r.Status, r.Title)
	if len(r.Lines) > 0 {
		b.WriteString("lines:\n")
		for _, l := range r.Lines {
			b.WriteString("  " + l + "\n")
		}
	}
	if r.Table != nil {
		b.WriteString("table:\n")
		for _, l := range r.Table.Aligned() {
			b.WriteString("  " + strings.TrimRight(l, " ") + "\n")
		}
	}
	if len(r.Fields) > 0 {
		b.WriteString("fields:\n")
		for _, f := range r.Fields {
			b.WriteString("  " + f.Name + ": " + f.Value + "\n")
		}
	}
	if r.Text != "" {
		b.WriteString("text:\n")
		for _, l := range strings.Split(r.Text, "\n") {
			b.WriteString("  " + l + "\n")
		}
	}
	if len(r.Actions) > 0 {
		b.WriteString("actions:\n")
		for _, a := range r.Actions {
			fmt.Fprintf(&b, "  [%s] %s\n", a.Label, a.Command)
		}
	}
	return b.String()
}

// goldenText compares text with testdata/golden/replies/NAME.txt, the
// beds' directories written as $BED, $BED2, ...
func goldenText(t *testing.T, name, text string, beds ...*bed) {
	t.Helper()
	for i, b := range beds {
		v := "$BED"
		if i > 0 {
			v = fmt.Sprintf("$BED%d", i+1)
		}
		text = strings.ReplaceAll(text, b.Dir, v)
	}
	goldenfile.Check(t, filepath.Join("testdata", "golden", "replies", name+".txt"), []byte(text))
}

func golden(t *testing.T, name string, r bot.Reply, beds ...*bed) {
	t.Helper()
	goldenText(t, name, render(r), beds...)
}

// --- status and show --------------------------------------------------------

func TestStatus_DigestListsTablesAndHostsDownWithLastError(t *testing.T) {
	t.Parallel()
	b := newBed(t).Healthy()
	s := oneHost(t, b, nil)
	rep := s.run(t, "/relayd status lb1", nil)
	assert.Equal(t, bot.StatusNegative, rep.Status)
	assert.Equal(t, "relayd on lb1: 5 of 7 hosts up, 2 down", rep.Title)
	assert.Contains(t, render(rep), "tcp connect failed (15551/17280 checks up)")
	assert.Equal(t, []string{"relayctl show summary", "relayctl show hosts"}, b.Calls())
	golden(t, "status_digest", rep, b)

	// The only relayd host is the default.
	assert.Equal(t, rep.Title, s.run(t, "/relayd status", nil).Title)
}

func TestStatus_HealthyIsOK(t *testing.T) {
	t.Parallel()
	b := newBed(t).On("relayctl show summary", prints("show_summary_up.txt")).On("relayctl show hosts", prints("show_hosts_up.txt"))
	rep := oneHost(t, b, nil).run(t, "/relayd status lb1", nil)
	assert.Equal(t, bot.StatusOK, rep.Status)
	golden(t, "status_healthy", rep, b)
}

// A redirect on its backup table is active but degraded: the title counts
// it as degraded (not "not active", which its row contradicts) and the
// redirects field counts it active and says it is on its backup table.
func TestStatus_RedirectOnBackupTableIsDegradedInTitleAndField(t *testing.T) {
	t.Parallel()
	b := newBed(t).On("relayctl show summary", prints("show_summary_backup.txt")).On("relayctl show hosts", prints("show_hosts_backup.txt"))
	rep := oneHost(t, b, nil).run(t, "/relayd status lb1", nil)
	assert.Equal(t, bot.StatusNegative, rep.Status)
	assert.Equal(t, "relayd on lb1: 1 of 7 hosts up, 6 down; 1 of 2 redirects, relays and routers degraded", rep.Title)
	assert.NotContains(t, rep.Title, "not active")
	fields := map[string]string{}
	for _, f := range rep.Fields {
		fields[f.Name] = f.Value
	}
	assert.Equal(t, "1 of 1 active, 1 on its backup table", fields["redirects"])
	assert.Equal(t, "1 of 1 active", fields["relays"])
	golden(t, "status_backup", rep, b)
}

func TestStatus_DaemonMissingRefusedOrForbidden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ fixture, golden, want string }{
		{"socket_missing.txt", "status_not_running", "relayd is not running on lb1: its control socket /var/run/relayd.sock does not exist"},
		{"socket_refused.txt", "status_refused", "relayd is not running on lb1: nothing answers on /var/run/relayd.sock"},
		{"socket_permission.txt", "status_permission", "lb1: permission denied on /var/run/relayd.sock"},
	} {
		b := newBed(t).On("relayctl show summary", fail(tc.fixture))
		rep := oneHost(t, b, nil).run(t, "/relayd status lb1", nil)
		assert.Equal(t, bot.StatusNegative, rep.Status, tc.fixture)
		assert.Contains(t, rep.Title, tc.want)
		assert.NotContains(t, rep.Title, "relayctl: connect:", "the tool's own words are not stacked on the reply")
		assert.Equal(t, []string{"relayctl show summary"}, b.Calls(), "show hosts is not tried once summary failed")
		golden(t, tc.golden, rep, b)
	}
}

func TestStatus_LinesNotUnderstoodAreReported(t *testing.T) {
	t.Parallel()
	b := newBed(t).On("relayctl show summary", prints("show_summary_garbage.txt")).On("relayctl show hosts", prints("show_hosts_up.txt"))
	rep := oneHost(t, b, nil).run(t, "/relayd status lb1", nil)
	assert.Equal(t, bot.StatusNegative, rep.Status, "no all-clear when lines were not understood")
	assert.Contains(t, rep.Text, "show summary: 2 lines not understood:")
	assert.Contains(t, rep.Text, `line 4: "4   \thost    \t10.0.0.99               \t       \tsleeping"`)
	assert.Contains(t, rep.Text, "unknown type")
	golden(t, "status_unknown_lines", rep, b)
}

func TestStatus_GroupReadsEveryHost(t *testing.T) {
	t.Parallel()
	b1 := newBed(t).Healthy()
	b2 := newBed(t).On("relayctl show summary", fail("socket_missing.txt"))
	s := newSetup(t, "hosts:\n  lb1: {via: local, relayd: "+b1.Spec("")+"}\n  lb2: {via: local, relayd: "+b2.Spec("")+"}\ngroups:\n  lbs: [lb1, lb2]\n", nil, nil)
	rep := s.run(t, "/relayd status lbs", nil)
	assert.Equal(t, bot.StatusNegative, rep.Status)
	assert.Equal(t, "relayd on lbs: running on 1 of 2 hosts, 5 of 7 backend hosts up", rep.Title)
	golden(t, "status_group", rep, b1, b2)
}

func TestShow_EveryViewIsATable(t *testing.T) {
	t.Parallel()
	b := newBed(t).Healthy()
	s := oneHost(t, b, nil)
	for _, v := range views {
		rep := s.run(t, "/relayd show "+v+" lb1", nil)
		assert.Equal(t, bot.StatusInfo, rep.Status, v)
		require.NotNil(t, rep.Table, v)
		assert.Empty(t, rep.Text, "%s: every fixture line is understood", v)
		golden(t, "show_"+v, rep, b)
	}
	assert.Equal(t, []string{"relayctl show summary", "relayctl show hosts", "relayctl show redirects", "relayctl show relays", "relayctl show sessions"}, b.Calls())

	b.On("relayctl show sessions", prints("reload.txt")) // no sessions: relayctl prints nothing
	rep := s.run(t, "/relayd show sessions lb1", nil)
	assert.Equal(t, "relayd on lb1: no relay sessions", rep.Title)

	b.On("relayctl show summary", prints("show_summary_garbage.txt"))
	rep = s.run(t, "/relayd show summary lb1", nil)
	assert.Contains(t, rep.Text, "show summary: 2 lines not understood")
	golden(t, "show_summary_unknown_lines", rep, b)
}

func TestShow_SocketOtherThanDefaultIsPassedWithS(t *testing.T) {
	t.Parallel()
	b := newBed(t).Healthy()
	s := newSetup(t, "hosts:\n  lb1: {via: local, relayd: "+b.Spec(", socket: /var/run/relayd-lb.sock")+"}\n  lb2: {via: local, relayd: "+b.Spec(", socket: /var/run/relayd.sock")+"}\n", nil, nil)
	s.run(t, "/relayd show summary lb1", nil)
	s.run(t, "/relayd show summary lb2", nil)
	assert.Equal(t, []string{"relayctl -s /var/run/relayd-lb.sock show summary", "relayctl show summary"}, b.Calls())
}

func TestShow_RelayctlIsBoundedByTheTimeout(t *testing.T) {
	t.Parallel()
	b := newBed(t).On("relayctl show summary", answer{Out: "show_summary.txt", Sleep: 20 * time.Second})
	s := oneHost(t, b, func(c *Config) { c.Timeout = 300 * time.Millisecond })
	start := time.Now()
	rep := s.run(t, "/relayd status lb1", nil)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Equal(t, bot.StatusNegative, rep.Status)
	assert.Contains(t, rep.Title, "relayctl show summary on lb1 did not finish within 300ms")
}

// --- poll and check ----------------------------------------------------------

func TestPoll(t *testing.T) {
	t.Parallel()
	b := newBed(t).Healthy()
	s := oneHost(t, b, nil)
	rep := s.run(t, "/relayd poll lb1", nil)
	assert.Equal(t, bot.StatusOK, rep.Status)
	golden(t, "poll", rep, b)

	b.On("relayctl poll", fail("socket_missing.txt"))
	rep = s.run(t, "/relayd poll lb1", nil)
	assert.Equal(t, bot.StatusFailed, rep.Status)
	golden(t, "poll_not_running", rep, b)
}

func TestCheck_ErrorsAsFileLineAndNeedRoot(t *testing.T) {
	t.Parallel()
	b := newBed(t).Healthy()
	s := oneHost(t, b, nil)
	rep := s.run(t, "/relayd check lb1", nil)
	assert.Equal(t, bot.StatusOK, rep.Status)
	golden(t, "check_ok", rep, b)

	b.On("relayd -n", answer{Err: "relayd_n_err.txt", Exit: 1})
	rep = s.run(t, "/relayd check lb1", nil)
	assert.Equal(t, bot.StatusNegative, rep.Status)
	assert.Equal(t, []string{
		"file: /etc/relayd.conf (from relayd_flags)",
		"/etc/relayd.conf:16: unknown table webhost",
		"/etc/relayd.conf:29: cannot load keypair www.example.com for relay wwwtls",
		"no actions, nothing to do",
	}, rep.Lines)
	golden(t, "check_errors", rep, b)

	b.On("relayd -n", answer{Err: "relayd_n_notroot.txt", Exit: 1})
	rep = s.run(t, "/relayd check lb1", nil)
	assert.Equal(t, bot.StatusFailed, rep.Status)
	assert.Contains(t, rep.Text, "set become: doas for lb1")
	golden(t, "check_need_root", rep, b)
	for i, c := range b.Calls() {
		assert.Equal(t, []string{"rcctl get relayd flags", "relayd -n"}[i%2], c)
	}
}

// --- enable / disable --------------------------------------------------------

func TestHostDisableByName_PromptListsEveryTableAndRunChangesThem(t *testing.T) {
	t.Parallel()
	b := newBed(t).Healthy().
		On("relayctl show summary", prints("show_summary.txt"), prints("show_summary.txt"), prints("show_summary_host_disabled.txt")).
		On("relayctl host disable 10.0.0.13", prints("poll.txt"))
	s := oneHost(t, b, nil)
	p := s.prepare(t, "/relayd host disable 10.0.0.13 lb1")
	assert.Equal(t, []string{"lb1"}, p.Hosts)
	assert.Contains(t, p.Impact, "then every other host of that name in every table, except hosts with a parent")
	assert.Contains(t, p.Impact, "On lb1 it changes 2 hosts:\n- host 10.0.0.13 (id 3) in webhosts:80 (id 1), used by redirect www, now down\n- host 10.0.0.13 (id 7) in webhosts:80 (id 3), used by relay wwwtls, now down")
	goldenText(t, "impact_host_disable_name", p.Impact+"\n", b)
	assert.Equal(t, []string{"relayctl show summary"}, b.Calls(), "preparing reads, never acts")

	rep := s.run(t, "/relayd host disable 10.0.0.13 lb1", nil)
	assert.Equal(t, bot.StatusOK, rep.Status, render(rep))
	assert.Equal(t, "Disabled host 10.0.0.13 on lb1: 2 hosts", rep.Title)
	golden(t, "host_disable_name", rep, b)
	assert.Equal(t, []string{"relayctl show summary", "relayctl show summary", "relayctl host disable 10.0.0.13", "relayctl show summary"}, b.Calls())
}

func TestHostEnableByID(t *testing.T) {
	t.Parallel()
	b := newBed(t).
		On("relayctl show summary", prints("show_summary_host_disabled.txt"), prints("show_summary_unknown.txt")).
		On("relayctl host enable 3", prints("poll.txt"))
	s := oneHost(t, b, nil)
	rep := s.run(t, "/relayd host enable 3 lb1", nil)
	assert.Equal(t, bot.StatusOK, rep.Status, render(rep))
	assert.Equal(t, []string{"host 10.0.0.13 (id 3) in webhosts:80 (id 1), used by redirect www: disabled -> unknown"}, rep.Lines)
	golden(t, "host_enable_id", rep, b)
}

func TestTableAndRedirect_PromptsSayWhatChanges(t *testing.T) {
	t.Parallel()
	b := newBed(t).Healthy()
	s := oneHost(t, b, nil)
	p := s.prepare(t, "/relayd table disable webhosts:80 lb1")
	assert.Contains(t, p.Impact, "only the first table of that name")
	assert.Contains(t, p.Impact, "Not changed: the other tables of that name (id 3).")
	goldenText(t, "impact_table_disable_name", p.Impact+"\n", b)

	p = s.prepare(t, "/relayd table disable webhosts lb1")
	assert.Contains(t, p.Impact, "did you mean webhosts:80?")

	p = s.prepare(t, "/relayd redirect disable www lb1")
	goldenText(t, "impact_redirect_disable", p.Impact+"\n", b)

	p = s.prepare(t, "/relayd reload lb1")
	for _, want := range []string{"flushes relayd's state", "interrupted briefly", "crashed relayd with TLS relays"} {
		assert.Contains(t, p.Impact, want)
	}
	goldenText(t, "impact_reload", p.Impact+"\n", b)
	p = s.prepare(t, "/relayd restart lb1")
	goldenText(t, "impact_restart", p.Impact+"\n", b)
	for _, c := range b.Calls() {
		assert.Equal(t, "relayctl show summary", c, "preparing reads, never acts")
	}
}

func TestTableDisableWithoutPort_CommandFailedWithHint(t *testing.T) {
	t.Parallel()
	b := newBed(t).Healthy().On("relayctl table disable webhosts", answer{Out: "command_failed.txt", Exit: 1})
	rep := oneHost(t, b, nil).run(t, "/relayd table disable webhosts lb1", nil)
	assert.Equal(t, bot.StatusFailed, rep.Status)
	assert.Contains(t, rep.Title, "relayd answered command failed")
	assert.Contains(t, rep.Text, "Did you mean webhosts:80?")
	golden(t, "table_disable_failed", rep, b)
}

// --- bad input ------------------------------------------------------------------

func TestBadInputNeverReachesTheRunner(t *testing.T) {
	t.Parallel()
	b := newBed(t).Healthy()
	s := newSetup(t, "hosts:\n  lb1: {via: local, relayd: "+b.Spec("")+"}\n  lb2: {via: local, relayd: {}}\n  web1: {via: local}\ngroups:\n  lbs: [lb1, lb2]\n", nil, nil)
	for _, args := range [][]string{
		{}, {"reboot", "lb1"}, {"status", "lb1;id"}, {"status", "$(id)"}, {"status", "`id`"}, {"status", "lb1", "lb2"},
		{"status", "nosuchhost"}, {"status", "../etc"}, {"status", "-rf"}, {"status"}, {"status", "web1"},
		{"show"}, {"show", "routers", "lb1"}, {"show", "summary;id", "lb1"}, {"show", "summary", "lb1", "x"},
		{"host"}, {"host", "disable"}, {"host", "stop", "3", "lb1"}, {"host", "disable", "10.0.0.13;reboot", "lb1"},
		{"host", "disable", "$(reboot)", "lb1"}, {"host", "disable", "-x", "lb1"}, {"host", "disable", "a|b", "lb1"},
		{"host", "disable", "a\nb", "lb1"}, {"table", "disable", "web'hosts", "lb1"}, {"table", "disable", "web hosts ", "lb1"},
		{"table", "disable", "web  hosts", "lb1"}, {"host", "disable", "4294967295", "lb1"}, {"host", "disable", "99999999999", "lb1"},
		{"redirect", "enable", strings.Repeat("w", 64), "lb1"}, {"redirect", "enable", "www", "lb1", "lb2"},
		{"redirect", "enable", "www", "web1"}, {"reload", "lb1 lb2"}, {"restart", strings.Repeat("a", 300)},
	} {
		req := bot.Request{Command: "relayd", Args: args, Stream: bot.NopStream{}}
		_, err := s.cmd.Run(context.Background(), req)
		require.Error(t, err, "%q", args)
		assert.Contains(t, []string{bot.EINVALID, bot.ENOTFOUND}, bot.ErrorCode(err), "%q: %v", args, err)
		assert.NotEmpty(t, bot.ErrorMessage(err))
		_, err = s.cmd.Prepare(context.Background(), req)
		require.Error(t, err, "%q", args)
	}
	assert.Zero(t, s.runner.Count(), "no argv reached a runner")
	assert.Empty(t, b.Calls())

	_, err := s.cmd.Run(context.Background(), bot.Request{Command: "relayd", Args: []string{"host", "disable", "a;b", "lb1"}})
	assert.Contains(t, bot.ErrorMessage(err), "names are letters, digits, '.', '_', '-', ':', '@', '+' and inner spaces")
	_, err = s.cmd.Run(context.Background(), bot.Request{Command: "relayd", Args: []string{"status", "web1"}})
	assert.Contains(t, bot.ErrorMessage(err), "add relayd: {} to the host's entry")
	_, err = s.cmd.Run(context.Background(), bot.Request{Command: "relayd", Args: []string{"status"}})
	assert.Contains(t, bot.ErrorMessage(err), "you may run it on lb1, lb2")
}

// Words quoted back in an error are cut on a rune boundary: a multi-byte
// character across the cut is dropped whole, never split into invalid UTF-8.
func TestBadInput_QuotedWordIsCutOnARuneBoundary(t *testing.T) {
	t.Parallel()
	s := oneHost(t, newBed(t).Healthy(), nil)
	word := strings.Repeat("a", 39) + "éé"
	for _, args := range [][]string{{word, "lb1"}, {"show", word, "lb1"}, {"host", "disable", word + ";", "lb1"}} {
		_, err := s.cmd.Run(context.Background(), bot.Request{Command: "relayd", Args: args, Stream: bot.NopStream{}})
		require.Error(t, err, "%q", args)
		msg := bot.ErrorMessage(err)
		assert.True(t, utf8.ValidString(msg), "%q: %q", args, msg)
		assert.Contains(t, msg, `"`+strings.Repeat("a", 39)+`..."`, "%q", args)
	}
}

func TestNamesRelaydUses_AreAccepted(t *testing.T) {
	t.Parallel()
	for _, w := range []string{"10.0.0.13", "webhosts:80", "www", "my redirect", "fe80::1", "host.example.com", "wwwtls2:8443", "a_b-c"} {
		o, err := parseObject(TypeHost, w)
		require.NoError(t, err, w)
		assert.False(t, o.ByID)
		assert.Equal(t, w, o.word())
	}
	o, err := parseObject(TypeHost, "007")
	require.NoError(t, err)
	assert.True(t, o.ByID)
	assert.Equal(t, "7", o.word(), "an id is sent as relayctl's strtonum reads it")
}

// --- reload -------------------------------------------------------------------------

// reloadBed answers a reload that works: relayctl reload prints nothing,
// the first read after it is still the old state (the reload is not done
// yet), then every host reads unknown, then the counters run again. relayd
// runs with -f $BED/etc/relayd.conf, the file of FORMATS.md section 9.
func reloadBed(t *testing.T) *bed {
	b := newBed(t).Healthy()
	return b.RunsWith(b.Config("relayd.conf")+"/relayd.conf").
		On("relayctl reload", prints("reload.txt")).
		On("relayctl show summary", prints("show_summary.txt"), prints("show_summary_reloaded.txt")).
		On("relayctl show hosts", prints("show_hosts.txt"), prints("show_hosts.txt"), prints("show_hosts_unknown.txt"), prints("show_hosts_reloaded.txt"))
}

func TestReload_VerifiedByCountersSameObjectsAndHostsUp(t *testing.T) {
	t.Parallel()
	b := reloadBed(t)
	st := &progress{}
	rep := oneHost(t, b, nil).run(t, "/relayd reload lb1", st)
	require.Equal(t, bot.StatusOK, rep.Status, render(rep))
	assert.Equal(t, "Reloaded relayd on lb1: verified, 5 of 7 hosts up", rep.Title)
	golden(t, "reload_verified", rep, b)
	assert.Equal(t, []string{"rcctl get relayd flags", "relayd -n -f " + b.Dir + "/etc/relayd.conf", "relayctl show summary", "relayctl show hosts", "relayctl reload", "relayctl show hosts (x3)", "relayctl show summary"}, b.Squeezed())
	assert.Equal(t, []string{"reload of relayd on lb1: relayd -n", "reload of relayd on lb1: relayctl reload", "reload of relayd on lb1: waiting up to 3s for the hosts"}, st.titles())
}

func TestReload_BrokenConfigIsRefusedAndNothingElseRuns(t *testing.T) {
	t.Parallel()
	b := reloadBed(t)
	b.OnArgv(b.CheckArgv(), answer{Err: "relayd_n_err.txt", Exit: 1})
	rep := oneHost(t, b, nil).run(t, "/relayd reload lb1", nil)
	assert.Equal(t, bot.StatusFailed, rep.Status)
	golden(t, "reload_refused", rep, b)
	assert.Equal(t, []string{"rcctl get relayd flags", "relayd -n -f " + b.Dir + "/etc/relayd.conf"}, b.Calls())
}

func TestReload_NotRunningIsRefused(t *testing.T) {
	t.Parallel()
	b := reloadBed(t).On("relayctl show summary", fail("socket_missing.txt"))
	rep := oneHost(t, b, nil).run(t, "/relayd reload lb1", nil)
	assert.Equal(t, bot.StatusFailed, rep.Status)
	assert.Contains(t, rep.Title, "relayd is not running on lb1")
	assert.Contains(t, rep.Title, "/relayd restart lb1 starts it")
	assert.Equal(t, []string{"rcctl get relayd flags", "relayd -n -f " + b.Dir + "/etc/relayd.conf", "relayctl show summary"}, b.Calls())
}

func TestReload_DaemonDeadAfterwardsIsReported(t *testing.T) {
	t.Parallel()
	b := reloadBed(t).On("relayctl show hosts", prints("show_hosts.txt"), fail("socket_refused.txt"))
	rep := oneHost(t, b, nil).run(t, "/relayd reload lb1", nil)
	assert.Equal(t, bot.StatusFailed, rep.Status)
	assert.Contains(t, rep.Title, "relayd died on reload")
	assert.Contains(t, rep.Text, "printed nothing and exited 0")
	golden(t, "reload_died", rep, b)
	assert.Equal(t, []string{"rcctl get relayd flags", "relayd -n -f " + b.Dir + "/etc/relayd.conf", "relayctl show summary", "relayctl show hosts", "relayctl reload", "relayctl show hosts"}, b.Calls())
}

func TestReload_CountersThatNeverRestartMeanNoReload(t *testing.T) {
	t.Parallel()
	b := reloadBed(t).On("relayctl show hosts", prints("show_hosts.txt")).On("relayctl show summary", prints("show_summary.txt"))
	rep := oneHost(t, b, func(c *Config) { c.Wait = 500 * time.Millisecond }).run(t, "/relayd reload lb1", nil)
	assert.Equal(t, bot.StatusFailed, rep.Status)
	assert.Contains(t, rep.Title, "relayd did not reload within 500ms")
	golden(t, "reload_not_taken", rep, b)
}

func TestReload_ChangedObjectsAreShown(t *testing.T) {
	t.Parallel()
	b := reloadBed(t).On("relayctl show summary", prints("show_summary.txt"), prints("show_summary_norelay.txt"))
	b.Config("relayd_norelay.conf")
	b.RunsWith(b.Dir + "/etc/relayd_norelay.conf")
	rep := oneHost(t, b, nil).run(t, "/relayd reload lb1", nil)
	assert.Equal(t, bot.StatusOK, rep.Status, render(rep))
	assert.Contains(t, render(rep), "redirects and relays: removed relay wwwtls")
	golden(t, "reload_changed_objects", rep, b)
}

// --- restart: the runbook -------------------------------------------------------

// restartBed answers a restart that works: relayd is starting when first
// asked (no socket yet), then its hosts read unknown, then up.
func restartBed(t *testing.T) *bed {
	return newBed(t).Healthy().
		On("ifconfig -g carp carpdemote 50", silent).
		On("rcctl restart relayd", prints("rcctl_restart_ok.txt")).
		On("relayctl poll", fail("socket_missing.txt"), prints("poll.txt")).
		On("relayctl show hosts", prints("show_hosts.txt"), fail("socket_missing.txt"), prints("show_hosts_unknown.txt"), prints("show_hosts_reloaded.txt")).
		On("ifconfig -g carp -carpdemote 50", silent)
}

var runbookCalls = []string{
	"rcctl get relayd flags",
	"relayd -n",
	"relayctl show hosts",
	"ifconfig -g carp carpdemote 50",
	"rcctl restart relayd",
	"relayctl poll (x2)",
	"relayctl show hosts (x3)",
	"ifconfig -g carp -carpdemote 50",
}

func TestRestart_RunbookStepByStep(t *testing.T) {
	t.Parallel()
	b := restartBed(t)
	st := &progress{}
	rep := oneHost(t, b, nil).run(t, "/relayd restart lb1", st)
	require.Equal(t, bot.StatusOK, rep.Status, render(rep))
	assert.Equal(t, "Restarted relayd on lb1: 5 of 7 hosts up, CARP undemoted", rep.Title)
	assert.Equal(t, runbookCalls, b.Squeezed())
	golden(t, "restart_ok", rep, b)

	assert.Equal(t, []string{
		"restart of relayd on lb1: step 1 of 6, config check",
		"restart of relayd on lb1: step 2 of 6, CARP demote by 50 (the peer takes over)",
		"restart of relayd on lb1: step 3 of 6, restart relayd",
		"restart of relayd on lb1: step 4 of 6, poll (check every host now)",
		"restart of relayd on lb1: step 5 of 6, wait until the hosts are up",
		"restart of relayd on lb1: step 6 of 6, CARP undemote",
	}, st.titles(), "one progress message per step, edited in place")
	last := st.replies[len(st.replies)-1]
	for i, l := range last.Lines[:5] {
		assert.True(t, strings.HasPrefix(l, "✓ "), "step %d done: %s", i+1, l)
	}
	assert.True(t, strings.HasPrefix(last.Lines[5], "… 6. CARP undemote"), last.Lines[5])
}

func TestRestart_AFailedStepStopsAndSaysHowToRecover(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		edit  func(b *bed)
		calls []string
		title string
		left  string
		text  []string
	}{{
		name:  "check",
		edit:  func(b *bed) { b.On("relayd -n", answer{Err: "relayd_n_err.txt", Exit: 1}) },
		calls: runbookCalls[:2],
		title: "stopped at step 1 of 6, config check: 2 errors in the configuration, the first /etc/relayd.conf:16: unknown table webhost",
		left:  "CARP group carp not demoted; relayd untouched",
		text:  []string{"Nothing was changed"},
	}, {
		name:  "demote",
		edit:  func(b *bed) { b.On("ifconfig -g carp carpdemote 50", fail("ifconfig_not_permitted.txt")) },
		calls: runbookCalls[:4],
		title: "stopped at step 2 of 6, CARP demote by 50 (the peer takes over): $BED/ifconfig -g carp carpdemote 50 exited 1: ifconfig: SIOCSIFGATTR: Operation not permitted",
		left:  "most likely not demoted",
		text:  []string{"relayd was not touched", "$BED/ifconfig -g carp shows it"},
	}, {
		name: "rcctl",
		edit: func(b *bed) {
			b.On("rcctl restart relayd", answer{Out: "rcctl_restart_failed.txt", Exit: 1}).On("relayctl show summary", fail("socket_missing.txt"))
		},
		calls: append(append([]string(nil), runbookCalls[:5]...), "relayctl show summary"),
		title: "stopped at step 3 of 6, restart relayd: $BED/rcctl restart relayd exited 1: relayd(ok); relayd(failed)",
		left:  "CARP group carp still demoted by 50 on lb1: the peer holds the addresses",
		text:  []string{"relayd: relayd is not running on lb1", "Start it once relayd -n passes", "$BED/relayd -n", "$BED/rcctl start relayd", "$BED/ifconfig -g carp -carpdemote 50"},
	}, {
		name:  "poll",
		edit:  func(b *bed) { b.On("relayctl poll", fail("socket_permission.txt")) },
		calls: append(append([]string(nil), runbookCalls[:5]...), "relayctl poll"),
		title: "stopped at step 4 of 6, poll (check every host now): lb1: permission denied on /var/run/relayd.sock",
		left:  "still demoted by 50",
		text:  []string{"once the hosts are up, undemote", "$BED/ifconfig -g carp -carpdemote 50"},
	}, {
		name:  "wait",
		edit:  func(b *bed) { b.On("relayctl show hosts", prints("show_hosts.txt"), prints("show_hosts_unknown.txt")) },
		title: "stopped at step 5 of 6, wait until the hosts are up: 0 of 7 hosts up after 2s, still waiting for 10.0.0.11 in webhosts:80 (id 1): unknown",
		left:  "still demoted by 50",
		text:  []string{"$BED/ifconfig -g carp -carpdemote 50"},
	}, {
		name:  "undemote",
		edit:  func(b *bed) { b.On("ifconfig -g carp -carpdemote 50", fail("ifconfig_not_permitted.txt")) },
		calls: runbookCalls,
		title: "stopped at step 6 of 6, CARP undemote: $BED/ifconfig -g carp -carpdemote 50 exited 1: ifconfig: SIOCSIFGATTR: Operation not permitted",
		left:  "still demoted by 50",
		text:  []string{"stays backup until it is undemoted", "$BED/ifconfig -g carp -carpdemote 50"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := restartBed(t)
			tc.edit(b)
			rep := oneHost(t, b, func(c *Config) { c.Wait = 2 * time.Second }).run(t, "/relayd restart lb1", nil)
			require.Equal(t, bot.StatusFailed, rep.Status, render(rep))
			text := strings.ReplaceAll(render(rep), b.Dir, "$BED")
			assert.Contains(t, strings.ReplaceAll(rep.Title, b.Dir, "$BED"), tc.title)
			assert.Contains(t, text, "left in: ")
			assert.Contains(t, text, tc.left)
			for _, want := range tc.text {
				assert.Contains(t, text, want)
			}
			if tc.calls != nil {
				assert.Equal(t, tc.calls, b.Squeezed())
			} else {
				calls := b.Squeezed()
				require.Len(t, calls, 7, "%q", calls)
				assert.Equal(t, runbookCalls[:6], calls[:6])
				assert.Regexp(t, `^relayctl show hosts \(x\d+\)$`, calls[6], "the wait polls until its bound, and nothing runs after it")
			}
			golden(t, "restart_failed_"+tc.name, rep, b)
		})
	}
}

func TestRestart_GroupGoesHostByHostAndStopsAtTheFirstFailure(t *testing.T) {
	t.Parallel()
	b1 := restartBed(t).On("rcctl restart relayd", answer{Out: "rcctl_restart_failed.txt", Exit: 1}).On("relayctl show summary", fail("socket_missing.txt"))
	b2 := restartBed(t)
	s := newSetup(t, "hosts:\n  lb1: {via: local, relayd: "+b1.Spec("")+"}\n  lb2: {via: local, relayd: "+b2.Spec("")+"}\ngroups:\n  lbs: [lb1, lb2]\n", nil, nil)
	p := s.prepare(t, "/relayd restart lbs")
	assert.Equal(t, []string{"lb1", "lb2"}, p.Hosts)
	assert.Contains(t, p.Impact, "hosts are restarted one after another")
	rep := s.run(t, "/relayd restart lbs", nil)
	assert.Equal(t, bot.StatusFailed, rep.Status)
	assert.Equal(t, "restart of relayd on lbs stopped at lb1", rep.Title)
	assert.Contains(t, rep.Text, "Not touched: lb2.")
	assert.Empty(t, b2.Calls(), "the second host of the pair is not touched")
	golden(t, "restart_group_failed", rep, b1, b2)

	b1.Reset()
	b1.On("rcctl restart relayd", prints("rcctl_restart_ok.txt")).
		On("relayctl poll", prints("poll.txt")).
		On("relayctl show hosts", prints("show_hosts.txt"), prints("show_hosts_reloaded.txt"))
	rep = s.run(t, "/relayd restart lbs", nil)
	assert.Equal(t, bot.StatusOK, rep.Status, render(rep))
	assert.Equal(t, "restart of relayd on lbs: done on all 2 hosts", rep.Title)
	assert.NotEmpty(t, b2.Calls())
}

func TestUsage_SaysWhatIsTrue(t *testing.T) {
	t.Parallel()
	u := New(Config{}).Usage()
	for _, want := range []string{
		"relayctl reload prints\n             nothing and exits 0 whether or not the reload worked",
		"needs root even for that: give the host\n             become: doas",
		"relayd takes the first host of that name\n             in its table order",
		"every\n             host started again",
		"a reload arriving while another is applied is dropped",
		"invalid host id",
		`shown as
"N retries left"`,
		"(at most 1m0s)",
	} {
		assert.Contains(t, u, want)
	}
	assert.Equal(t, []string{"status", "show", "poll", "check", "host", "table", "redirect", "reload", "restart"}, New(Config{}).Subcommands())
}
