package relayd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/relayd/relaydtest"
)

// Issue 19: /relayd as relayd really behaves (relayd.c parent_reload,
// config.c config_gethost, pfe.c disable_host/enable_host, hce.c). The
// stand-in keeps relayd's state: relayctl reload moves it (or, when relayd
// drops the reload, does not), and every read answers from the state.

// statefulReload is a bed in state "old" (the setup of FORMATS.md §9,
// relayd started with -f $BED/etc/relayd.conf) whose relayctl reload
// moves it to state to.
func statefulReload(t *testing.T, to string) *bed {
	t.Helper()
	b := newBed(t).Healthy().Start("old")
	b.RunsWith(b.Config("relayd.conf", "relayd_norelay.conf", "relayd_split.conf", "relays.conf") + "/relayd.conf")
	b.In("old").
		On("relayctl show summary", prints("show_summary.txt")).
		On("relayctl show hosts", prints("show_hosts.txt"))
	b.On("relayctl reload", silent.Then(to))
	return b
}

func TestReload_RenamedHostsAndRenumberedIDsReadAsReloaded(t *testing.T) {
	t.Parallel()
	// The edit moved the tables to port 8080, renamed every host and
	// added one: no host of before matches a host of after by name or id.
	b := statefulReload(t, "reloaded")
	b.In("reloaded").
		On("relayctl show hosts", prints("show_hosts_renamed_unknown.txt"), prints("show_hosts_renamed.txt")).
		On("relayctl show summary", prints("show_summary_renamed.txt"))
	rep := oneHost(t, b, nil).run(t, "/relayd reload lb1", nil)
	require.Equal(t, bot.StatusOK, rep.Status, render(rep))
	assert.Equal(t, "Reloaded relayd on lb1: verified, 7 of 9 hosts up", rep.Title)
	text := render(rep)
	assert.Contains(t, text, "reload took effect: yes: every host started again")
	assert.Contains(t, text, "declared objects: all 4 running")
	assert.Equal(t, "reloaded", b.State())
	assert.Equal(t, []string{"rcctl get relayd flags", "relayd -n -f " + b.Dir + "/etc/relayd.conf", "relayctl show summary", "relayctl show hosts",
		"relayctl reload", "relayctl show hosts (x2)", "relayctl show summary"}, b.Squeezed(), "done once every host is checked: no wait to the bound")
	golden(t, "reload_renamed", rep, b)
}

func TestReload_ASingleResetHostIsNoProofAndADroppedReloadIsExplained(t *testing.T) {
	t.Parallel()
	// relayd dropped the reload (another was still being applied), and
	// meanwhile someone disabled 10.0.0.13: two hosts reset, the others
	// kept counting.
	b := statefulReload(t, "disabled")
	b.In("disabled").
		On("relayctl show hosts", prints("show_hosts_disabled_other.txt")).
		On("relayctl show summary", prints("show_summary_host_disabled.txt"))
	rep := oneHost(t, b, func(c *Config) { c.Wait = 2 * time.Second }).run(t, "/relayd reload lb1", nil)
	require.Equal(t, bot.StatusFailed, rep.Status, render(rep))
	assert.Contains(t, rep.Title, "relayd did not reload within 2s")
	assert.Contains(t, rep.Text, "relayd drops a reload that arrives while another one is still being applied")
	assert.Contains(t, rep.Text, "run /relayd reload again")
	assert.NotContains(t, render(rep), "declared objects", "a reload that did not happen is not compared with the file")
	golden(t, "reload_dropped", rep, b)
}

func TestReload_PartialLoadNamesWhatDoesNotRunAndTheRestartRunbook(t *testing.T) {
	t.Parallel()
	// relayd -n passed, but the reload's load failed part way (a name
	// that did not resolve): relayd runs the redirect, not the relay.
	b := statefulReload(t, "partial")
	b.In("partial").
		On("relayctl show hosts", prints("show_hosts_unknown.txt"), prints("show_hosts_partial.txt")).
		On("relayctl show summary", prints("show_summary_norelay.txt"))
	rep := oneHost(t, b, nil).run(t, "/relayd reload lb1", nil)
	require.Equal(t, bot.StatusFailed, rep.Status, render(rep))
	text := strings.ReplaceAll(render(rep), b.Dir, "$BED")
	assert.Contains(t, text, "FAILED: relayd runs only part of $BED/etc/relayd.conf after the reload: 1 object declared there is not running (relay wwwtls ($BED/etc/relayd.conf:25))")
	assert.Contains(t, text, "reload took effect: yes", "restarted is not the same as the new configuration running")
	assert.Contains(t, text, "declared objects: 3 of 4 running")
	assert.Contains(t, text, "Recover with /relayd restart lb1")
	golden(t, "reload_partial", rep, b)

	// The same reads with a file that declares no relay: verified.
	b2 := statefulReload(t, "partial")
	b2.In("partial").
		On("relayctl show hosts", prints("show_hosts_unknown.txt"), prints("show_hosts_partial.txt")).
		On("relayctl show summary", prints("show_summary_norelay.txt"))
	b2.Config("relayd_norelay.conf")
	b2.RunsWith(b2.Dir + "/etc/relayd_norelay.conf")
	rep = oneHost(t, b2, nil).run(t, "/relayd reload lb1", nil)
	assert.Equal(t, bot.StatusOK, rep.Status, render(rep))
}

func TestReload_FileAndMacrosFromTheDaemonFlagsIncludesFollowed(t *testing.T) {
	t.Parallel()
	b := statefulReload(t, "reloaded")
	b.RunsWith(b.Dir+"/etc/relayd_split.conf", "rdr=www", "ext=192.0.2.10")
	b.In("reloaded").
		On("relayctl show hosts", prints("show_hosts_unknown.txt"), prints("show_hosts_reloaded.txt")).
		On("relayctl show summary", prints("show_summary_reloaded.txt"))
	rep := oneHost(t, b, nil).run(t, "/relayd reload lb1", nil)
	require.Equal(t, bot.StatusOK, rep.Status, render(rep))
	text := strings.ReplaceAll(render(rep), b.Dir, "$BED")
	assert.Contains(t, text, "config: relayd -n: configuration OK, $BED/etc/relayd_split.conf with -D rdr=www -D ext=192.0.2.10 (from relayd_flags)")
	assert.Contains(t, text, "declared objects: all 4 running ($BED/etc/relayd_split.conf, $BED/etc/relays.conf)")
	assert.Contains(t, b.Calls(), "relayd -n -f "+b.Dir+"/etc/relayd_split.conf -D rdr=www -D ext=192.0.2.10")
}

func TestCheck_TheFileRelaydRunsWith(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		flags  *answer // rcctl get relayd flags; nil: no answer (exit 127)
		config string  // relayd.config
		argv   string  // relayd -n as run
		file   string
		note   string
	}{
		{name: "flags name the file and macros", flags: &answer{Text: "-f /etc/relayd-lb.conf -D ext=192.0.2.10\n"},
			argv: "relayd -n -f /etc/relayd-lb.conf -D ext=192.0.2.10", file: "file: /etc/relayd-lb.conf with -D ext=192.0.2.10 (from relayd_flags)"},
		{name: "attached getopt forms", flags: &answer{Text: "-dvf/etc/r.conf -Dx=1\n"},
			argv: "relayd -n -f /etc/r.conf -D x=1", file: "file: /etc/r.conf with -D x=1 (from relayd_flags)"},
		{name: "empty flags are relayd's default", flags: &answer{Text: "\n"},
			argv: "relayd -n", file: "file: /etc/relayd.conf (from relayd_flags)"},
		{name: "flags win over relayd.config and the reply says so", flags: &answer{Text: "\n"}, config: "/etc/relayd-lb.conf",
			argv: "relayd -n", file: "file: /etc/relayd.conf (from relayd_flags)", note: "relayd.config says /etc/relayd-lb.conf, but relayd_flags start relayd with /etc/relayd.conf"},
		{name: "rcctl fails: relayd.config", flags: &answer{Err: "rcctl_restart_failed.txt", Exit: 1}, config: "/etc/relayd-lb.conf",
			argv: "relayd -n -f /etc/relayd-lb.conf", file: "file: /etc/relayd-lb.conf (relayd.config)", note: "rcctl get relayd flags: exited 1"},
		{name: "no rcctl: the default", argv: "relayd -n", file: "file: /etc/relayd.conf (relayd's default)", note: "exited 127"},
		{name: "relayd not enabled", flags: &answer{Text: "NO\n"}, config: "/etc/relayd-lb.conf",
			argv: "relayd -n -f /etc/relayd-lb.conf", file: "file: /etc/relayd-lb.conf (relayd.config)", note: "relayd is not enabled in rc.conf.local"},
		{name: "shell expansion is not interpreted", flags: &answer{Text: "-f $(cat /x)\n"},
			argv: "relayd -n", file: "file: /etc/relayd.conf (relayd's default)", note: "hold shell quoting or expansion"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t).On("relayd -n", answer{Err: "relayd_n_ok.txt"})
			if tc.flags != nil {
				b.On("rcctl get relayd flags", *tc.flags)
			}
			b.OnArgv(strings.Fields(tc.argv), answer{Err: "relayd_n_ok.txt"})
			extra := ""
			if tc.config != "" {
				extra = ", config: " + tc.config
			}
			s := newSetup(t, "hosts:\n  lb1: {via: local, become: '', relayd: "+b.Spec(extra)+"}\n", nil, nil)
			rep := s.run(t, "/relayd check lb1", nil)
			require.Equal(t, bot.StatusOK, rep.Status, render(rep))
			assert.Equal(t, []string{"rcctl get relayd flags", tc.argv}, b.Calls())
			assert.Contains(t, rep.Lines, tc.file)
			if tc.note != "" {
				assert.Contains(t, rep.Text, tc.note)
			} else {
				assert.Empty(t, rep.Text)
			}
		})
	}
}

func TestPolicy_RelaydBlockIsDecodedStrictlyAndValidatedHere(t *testing.T) {
	t.Parallel()
	p, err := bot.ParsePolicy([]byte("hosts:\n  lb1: {via: local, relayd: {config: /etc/relayd-lb.conf, demote: 20}}\n  lb2: {via: local, relayd: {}}\n  web1: {via: local}\n"), Settings())
	require.NoError(t, err)
	inv := bot.NewInventory(p)
	lb1, _ := inv.Host("lb1")
	assert.Equal(t, "/etc/relayd-lb.conf", settingsOf(lb1).config)
	assert.True(t, settingsOf(lb1).configSet)
	assert.Equal(t, 20, settingsOf(lb1).demote)
	lb2, _ := inv.Host("lb2")
	assert.True(t, lb2.HasSettings("relayd"), "relayd: {} makes a relayd host with OpenBSD's defaults")
	assert.Equal(t, DefaultConfig, settingsOf(lb2).config)
	assert.False(t, settingsOf(lb2).configSet)
	assert.Equal(t, DefaultDemote, settingsOf(lb2).demote)
	web1, _ := inv.Host("web1")
	assert.False(t, web1.HasSettings("relayd"))

	_, err = bot.ParsePolicy([]byte("hosts:\n  lb1:\n    via: local\n    relayd:\n      conf: /etc/relayd.conf\n"), Settings())
	require.Error(t, err, "an unknown key fails")
	assert.Contains(t, bot.ErrorMessage(err), `5:7: unknown field "conf"`, "with its line")

	for _, tc := range []struct{ yaml, want string }{
		{"hosts:\n  lb1: {via: local, relayd: {config: relayd.conf}}\n", `2:38: hosts: "lb1" has relayd.config "relayd.conf": write an absolute path`},
		{"hosts:\n  lb01: {via: local, relayd: {socket: \"relayd.sock\"}}\n", "relayd.socket"},
		{"hosts:\n  lb01: {via: local, relayd: {carp_group: \"carp;x\"}}\n", "relayd.carp_group"},
		{"hosts:\n  lb01: {via: local, relayd: {demote: 5000}}\n", "relayd.demote 5000: accepted 1 to 1024"},
	} {
		_, err := bot.ParsePolicy([]byte(tc.yaml), Settings())
		require.Error(t, err, tc.yaml)
		assert.Equal(t, bot.ECONFIG, bot.ErrorCode(err))
		assert.Contains(t, bot.ErrorMessage(err), tc.want, tc.yaml)
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		flags, path string
		macros      []string
		err         string
	}{
		{flags: ""},
		{flags: "-v", path: ""},
		{flags: "-f /etc/relayd-a.conf", path: "/etc/relayd-a.conf"},
		{flags: "-f/etc/a.conf -D a=1 -Db=2", path: "/etc/a.conf", macros: []string{"a=1", "b=2"}},
		{flags: "-vdf /etc/a.conf", path: "/etc/a.conf"},
		{flags: "-f relayd.conf", err: "not an absolute path"},
		{flags: "-f", err: "needs an argument"},
		{flags: "-x", err: "-x is not a relayd option"},
		{flags: "extra", err: "is not an option"},
		{flags: `-D "a=b c"`, err: "shell quoting"},
		{flags: "-D a=b;reboot", err: "shell quoting"},
		{flags: "-D =1", err: "not a macro"},
	} {
		path, macros, err := parseFlags(tc.flags)
		if tc.err != "" {
			require.Error(t, err, tc.flags)
			assert.Contains(t, err.Error(), tc.err, tc.flags)
			continue
		}
		require.NoError(t, err, tc.flags)
		assert.Equal(t, tc.path, path, tc.flags)
		assert.Equal(t, tc.macros, macros, tc.flags)
	}
}

// files is a read func over a map, for ReadConf.
func files(m map[string]string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		s, ok := m[p]
		if !ok {
			return nil, errors.New("no such file")
		}
		return []byte(s), nil
	}
}

func TestReadConf_TopLevelDeclarationsIncludesAndMacros(t *testing.T) {
	t.Parallel()
	main := `# comment: redirect "nope" {
ext = "192.0.2.10"
name = www
tbl="pool"
table <$tbl> { 10.0.0.1 }   # a macro is not expanded inside <...>? it is: $tbl is a word
table <webhosts> disable { 10.0.0.11, \
	10.0.0.12 }
redirect $name {
	listen on $ext port 80
	forward to <webhosts> check icmp
	relay "inner"       # not top level
}
relay 'tls one' { listen on $ext port 443 }
router "gw" {
	route 0.0.0.0/0
	forward to <webhosts> port 65535
}
http protocol "p" { match request header "relay" }
include "/etc/relayd.d/a.conf"
include "/etc/relayd.d/missing.conf"
include "/etc/relayd.conf"
`
	c, err := ReadConf("/etc/relayd.conf", []string{"name=cmdline"}, files(map[string]string{
		"/etc/relayd.conf":         main,
		"/etc/relayd.d/a.conf":     "redirect \"from-include\" {\n}\ninclude \"/etc/relayd.d/b.conf\"\n",
		"/etc/relayd.d/b.conf":     "relay nested { }\n",
		"/etc/relayd.d/other.conf": "",
	}))
	require.NoError(t, err)
	var got []string
	for _, d := range c.Objects {
		got = append(got, d.String())
	}
	assert.Equal(t, []string{
		"table <pool> (/etc/relayd.conf:5)",
		"table <webhosts> (/etc/relayd.conf:6)",
		"redirect cmdline (/etc/relayd.conf:8)",
		"relay tls one (/etc/relayd.conf:13)",
		"router gw (/etc/relayd.conf:14)",
		"redirect from-include (/etc/relayd.d/a.conf:1)",
		"relay nested (/etc/relayd.d/b.conf:1)",
	}, got, "a -D macro wins over the file's own")
	assert.Equal(t, []string{"/etc/relayd.conf", "/etc/relayd.d/a.conf", "/etc/relayd.d/b.conf"}, c.Files)
	require.Len(t, c.Missed, 2)
	assert.Contains(t, c.Missed[0], "/etc/relayd.d/missing.conf (included at /etc/relayd.conf:20): no such file")
	assert.Contains(t, c.Missed[1], "included already")

	_, err = ReadConf("/etc/none.conf", nil, files(nil))
	require.Error(t, err, "the main file's error is the error")

	// A chain of includes ends.
	chain := map[string]string{}
	for i := 0; i < 20; i++ {
		chain["/c/"+string(rune('a'+i))] = "include \"/c/" + string(rune('a'+i+1)) + "\"\nrelay r" + string(rune('a'+i)) + " { }\n"
	}
	c, err = ReadConf("/c/a", nil, files(chain))
	require.NoError(t, err)
	assert.Len(t, c.Files, maxIncludeDepth+1)
	assert.Contains(t, c.Missed[0], "nested deeper than 8")
}

func TestDropped_ComparesDeclaredWithRunning(t *testing.T) {
	t.Parallel()
	c := Conf{Objects: []Declared{
		{Type: TypeTable, Name: "webhosts"}, {Type: TypeTable, Name: "fallback"}, {Type: TypeRedirect, Name: "www"},
		{Type: TypeRelay, Name: "wwwtls"}, {Type: TypeRouter, Name: "gw"},
	}}
	sum := ParseSummary(fixture(t, "show_summary.txt"))
	var names []string
	for _, d := range Dropped(c, sum) {
		names = append(names, string(d.Type)+" "+d.Name)
	}
	assert.Equal(t, []string{"router gw"}, names)

	// A disabled redirect is printed without its tables: a table is not
	// called missing then.
	sum.Redirects[0].Tables = nil
	sum.Redirects[0].State = StateDisabled
	sum.Relays = nil
	names = nil
	for _, d := range Dropped(c, sum) {
		names = append(names, string(d.Type)+" "+d.Name)
	}
	assert.Equal(t, []string{"relay wwwtls", "router gw"}, names)
}

func TestHostToggle_PreviewFollowsRelaydLookupByName(t *testing.T) {
	t.Parallel()
	b := newBed(t).Healthy().On("relayctl show summary", prints("show_summary_parents.txt"))
	s := oneHost(t, b, nil)

	// The first 10.0.0.11 in table order is host 1; host 5 is its child;
	// host 8 has that name but another parent: relayd skips it.
	p := s.prepare(t, "/relayd host disable 10.0.0.11 lb1")
	assert.Contains(t, p.Impact, "On lb1 it changes 2 hosts:\n- host 10.0.0.11 (id 1) in webhosts:80 (id 1), used by redirect www, now up\n- host 10.0.0.11 (id 5) in webhosts:80 (id 3), used by relay wwwtls, child of host id 1, now up")
	assert.Contains(t, p.Impact, "Not changed: the hosts of that name with a parent (id 8).")
	goldenText(t, "impact_host_disable_parents", p.Impact+"\n", b)

	// 10.0.0.12: host 2 first, then host 6 (same name, no parent), and
	// host 8, the child of host 6.
	p = s.prepare(t, "/relayd host enable 10.0.0.12 lb1")
	assert.Contains(t, p.Impact, "it changes 3 hosts:")
	assert.Contains(t, p.Impact, "(id 2)")
	assert.Contains(t, p.Impact, "(id 6)")
	assert.Contains(t, p.Impact, "10.0.0.11 (id 8) in alt:8080 (id 4), used by relay wwwalt, child of host id 6")

	// By id: that host and its children.
	p = s.prepare(t, "/relayd host disable 7 lb1")
	assert.Contains(t, p.Impact, "it changes 2 hosts:\n- host 10.0.0.13 (id 7)")
	assert.Contains(t, p.Impact, "host 10.0.0.13 (id 3) in webhosts:80 (id 1), used by redirect www, child of host id 7")
	for _, c := range b.Calls() {
		assert.Equal(t, "relayctl show summary", c, "preparing reads, never acts")
	}
}

func TestHostToggle_AHostWithAParentIsRefusedBeforeRelaydIs(t *testing.T) {
	t.Parallel()
	b := newBed(t).Healthy().On("relayctl show summary", prints("show_summary_parents.txt")).
		On("relayctl host disable 10.0.0.13", answer{Out: "command_failed.txt", Exit: 1})
	s := oneHost(t, b, nil)
	// By name, relayd finds host 3 first (table 1), which has a parent,
	// and fails outright, although host 7 of that name has none.
	for _, line := range []string{"/relayd host disable 10.0.0.13 lb1", "/relayd host enable 3 lb1"} {
		_, err := s.cmd.Prepare(context.Background(), s.request(t, line, nil))
		require.Error(t, err, line)
		assert.Equal(t, bot.EINVALID, bot.ErrorCode(err))
		assert.Contains(t, bot.ErrorMessage(err), "host 10.0.0.13 (id 3) in webhosts:80 takes its state from host id 7 (parent 7), and relayd refuses to")
		assert.Contains(t, bot.ErrorMessage(err), "host id 7 instead, which changes its children with it")
		assert.NotContains(t, bot.ErrorMessage(err), "\n", "one line")
	}
	rep := s.run(t, "/relayd host disable 10.0.0.13 lb1", nil)
	assert.Equal(t, bot.StatusFailed, rep.Status)
	assert.Contains(t, rep.Title, "takes its state from host id 7")
	for _, c := range b.Calls() {
		assert.Equal(t, "relayctl show summary", c, "relayctl host disable never ran")
	}
}

func TestRetries_AreShownAsRetriesLeft(t *testing.T) {
	t.Parallel()
	b := newBed(t).Healthy().On("relayctl show hosts", prints("show_hosts_retries.txt"))
	s := oneHost(t, b, nil)
	rep := s.run(t, "/relayd show hosts lb1", nil)
	text := render(rep)
	assert.Contains(t, text, "17280/17280, 2 retries left")
	assert.Contains(t, text, "17262/17280, 1 retry left")
	assert.NotRegexp(t, `(?m)\d retries(,|$)`, text, "never bare retries, which read as failures")
	rep = s.run(t, "/relayd status lb1", nil)
	assert.Contains(t, render(rep), "tcp connect failed (15551/17280 checks up, 2 retries left)")
}

func TestReload_WarningCoversTheNonTLSFailures(t *testing.T) {
	t.Parallel()
	b := newBed(t).Healthy()
	p := oneHost(t, b, nil).prepare(t, "/relayd reload lb1")
	for _, want := range []string{"crashed relayd with TLS relays", "invalid host id", "desynchronized", "every host started again", "what the file declares runs"} {
		assert.Contains(t, p.Impact, want)
	}
}

// The scenario files are printed with relayctl's own format strings
// (FORMATS.md §2.1, §2.2, §2.5): each line, parsed and printed again with
// them, is the line as it is, so the stand-in never shows relayd output
// relayctl could not print.
func TestScenarios_PrintedWithRelayctlsFormatStrings(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "scenarios", "show_*.txt"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		name := filepath.Base(f)
		if name == "show_summary_garbage.txt" {
			continue // rows relayctl does not print, on purpose
		}
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		parse := ParseSummary
		switch {
		case strings.HasPrefix(name, "show_hosts"):
			parse = ParseHosts
		case strings.HasPrefix(name, "show_relays"):
			parse = ParseRelays
		}
		assert.Empty(t, parse(data).Unknown, "%s: lines not understood", name)
		for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			var want string
			switch fields := strings.Split(line, "\t"); {
			case i == 0:
				want = fmt.Sprintf("%-4s\t%-8s\t%-24s\t%-7s\tStatus", "Id", "Type", "Name", "Avlblty")
			case fields[0] == "":
				want = fmt.Sprintf("\t%8s\ttotal: %s", "", strings.TrimPrefix(fields[2], "total: "))
			default:
				require.Len(t, fields, 5, "%s:%d", name, i+1)
				id, err := strconv.ParseUint(strings.TrimSpace(fields[0]), 10, 32)
				require.NoError(t, err)
				want = fmt.Sprintf("%-4d\t%-8s\t%-24s\t%-7s\t%s", id, strings.TrimSpace(fields[1]), strings.TrimSpace(fields[2]), strings.TrimSpace(fields[3]), fields[4])
			}
			assert.Equal(t, want, line, "%s:%d", name, i+1)
		}
	}
}

func TestRestarted_TheWholeSetNotOneHost(t *testing.T) {
	t.Parallel()
	hosts := func(name string) Summary {
		data, err := os.ReadFile(relaydtest.Fixture(t, name))
		require.NoError(t, err)
		return ParseHosts(data)
	}
	before := hosts("show_hosts.txt")
	for _, tc := range []struct {
		name         string
		now          Summary
		yes, counted bool
	}{
		{"every host unknown: restarted", hosts("show_hosts_unknown.txt"), true, true},
		{"every host counting from zero", hosts("show_hosts_reloaded.txt"), true, true},
		{"renamed and renumbered hosts", hosts("show_hosts_renamed.txt"), true, true},
		{"the same counters a moment later", before, false, true},
		{"one host disabled by someone, the others counting on", hosts("show_hosts_disabled_other.txt"), false, true},
		{"nothing printed", Summary{}, false, true},
	} {
		yes, counted := restarted(before, tc.now)
		assert.Equal(t, tc.yes, yes, tc.name)
		assert.Equal(t, tc.counted, counted, tc.name)
	}
	// Every host disabled is no proof either: none is live.
	all := hosts("show_hosts_unknown.txt")
	for i := range all.Tables {
		for j := range all.Tables[i].Hosts {
			all.Tables[i].Hosts[j].State = StateDisabled
		}
	}
	yes, _ := restarted(before, all)
	assert.False(t, yes, "every host disabled")
	_, counted := restarted(hosts("show_hosts_unknown.txt"), before)
	assert.False(t, counted, "no host checked before: the counters cannot tell")
}

func TestReload_NoHostCheckedBeforeRelayStatisticsTell(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, relaysAfter, took string
	}{
		{"the relay's sessions started again", "show_relays_reloaded.txt", "reload took effect: yes: no host had been checked before, and the relays' session counts started again (98231 before, 0 after)"},
		{"the same sessions", "show_relays.txt", "reload took effect: cannot tell: no host had been checked before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := statefulReload(t, "reloaded")
			b.In("old").On("relayctl show hosts", prints("show_hosts_unknown.txt")).On("relayctl show relays", prints("show_relays.txt"))
			b.In("reloaded").
				On("relayctl show hosts", prints("show_hosts_unknown.txt"), prints("show_hosts_reloaded.txt")).
				On("relayctl show summary", prints("show_summary_reloaded.txt")).
				On("relayctl show relays", prints(tc.relaysAfter))
			rep := oneHost(t, b, nil).run(t, "/relayd reload lb1", nil)
			require.Equal(t, bot.StatusOK, rep.Status, render(rep))
			assert.Contains(t, render(rep), tc.took)
			assert.Equal(t, []string{"rcctl get relayd flags", "relayd -n -f " + b.Dir + "/etc/relayd.conf", "relayctl show summary", "relayctl show hosts", "relayctl show relays",
				"relayctl reload", "relayctl show hosts (x2)", "relayctl show relays", "relayctl show summary"}, b.Squeezed())
		})
	}
}
