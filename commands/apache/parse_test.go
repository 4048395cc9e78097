package apache

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	goldenfile "github.com/opsbot/opsbot/internal/golden"
	"github.com/opsbot/opsbot/internal/testenv"
)

const parseDir = "testdata/parse"

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(parseDir, name))
	require.NoError(t, err)
	return b
}

// ctlFixture reads NAME.stdout, NAME.stderr and NAME.exit: one apache2ctl run.
func ctlFixture(t testing.TB, name string) (stdout, stderr []byte, exit int) {
	t.Helper()
	code, err := strconv.Atoi(strings.TrimSpace(string(readFixture(t, name+".exit"))))
	require.NoError(t, err)
	return readFixture(t, name+".stdout"), readFixture(t, name+".stderr"), code
}

func configFixture(t testing.TB, name string) ConfigTest {
	t.Helper()
	stdout, stderr, exit := ctlFixture(t, name)
	return ParseConfigTest(stdout, stderr, exit)
}

// The capture's config lived here; every path in the fixtures starts with it.
const capDir = "/tmp/opsbot-apache"

const ah00558 = "AH00558: apache2: Could not reliably determine the server's fully qualified domain name, using 127.0.0.1. Set the 'ServerName' directive globally to suppress this message"

// --- server-status?auto

func TestParseStatus_AfterStartHasNoReqPerSec(t *testing.T) {
	st, err := ParseStatus(readFixture(t, "status_auto_start.txt"))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", st.Host)
	assert.Equal(t, "Apache/2.4.71 (Debian)", st.ServerVersion)
	assert.Equal(t, "event", st.MPM)
	assert.Equal(t, "2026-11-12T08:58:41", st.Built)
	assert.Equal(t, "Wednesday, 25-Nov-2026 10:50:03 UTC", st.RestartTime)
	assert.True(t, st.HasGeneration)
	assert.Equal(t, 1, st.Generation)
	assert.Equal(t, 0, st.MPMGeneration)
	assert.True(t, st.HasUptime)
	assert.Equal(t, time.Duration(0), st.Uptime)
	assert.True(t, st.HasTotals)
	assert.Equal(t, int64(0), st.TotalAccesses)
	assert.False(t, st.HasReqPerSec, "Apache prints ReqPerSec only once the uptime is 1 s or more")
	assert.Equal(t, 1, st.BusyWorkers)
	assert.Equal(t, 49, st.IdleWorkers)
	assert.Equal(t, 2, st.Processes)
	assert.Len(t, st.Scoreboard, 150)
	assert.Equal(t, "", st.Fields["ServerUptime"], `"ServerUptime:" has no value at 0 s`)
	assert.Equal(t, "0.06", st.Fields["Load1"])
}

func TestParseStatus_Traffic(t *testing.T) {
	st, err := ParseStatus(readFixture(t, "status_auto_traffic.txt"))
	require.NoError(t, err)
	assert.Equal(t, int64(61), st.TotalAccesses)
	assert.Equal(t, int64(647), st.TotalKBytes)
	assert.True(t, st.HasReqPerSec)
	assert.InDelta(t, 61.0, st.ReqPerSec, 1e-9)
	assert.Equal(t, time.Second, st.Uptime)
}

func TestParseStatus_ReqPerSecWithoutLeadingZero(t *testing.T) {
	body := readFixture(t, "status_auto_fraction.txt")
	require.Contains(t, string(body), "\nReqPerSec: .272727\n")
	st, err := ParseStatus(body)
	require.NoError(t, err)
	assert.True(t, st.HasReqPerSec)
	assert.InDelta(t, 0.272727, st.ReqPerSec, 1e-9)
	assert.Equal(t, int64(3), st.TotalAccesses)
	assert.Equal(t, 11*time.Second, st.Uptime)
}

func TestParseStatus_GenerationCountsGracefulAndRestart(t *testing.T) {
	g, err := ParseStatus(readFixture(t, "status_auto_graceful.txt"))
	require.NoError(t, err)
	r, err := ParseStatus(readFixture(t, "status_auto_restart.txt"))
	require.NoError(t, err)
	assert.Equal(t, []int{2, 1}, []int{g.Generation, g.MPMGeneration})
	assert.Equal(t, []int{3, 2}, []int{r.Generation, r.MPMGeneration})
	// A graceful keeps the restart time and the counters; a restart resets them.
	assert.Equal(t, "Wednesday, 25-Nov-2026 10:50:03 UTC", g.RestartTime)
	assert.Equal(t, 11*time.Second, g.Uptime)
	assert.Equal(t, int64(71), g.TotalAccesses)
	assert.Equal(t, "Wednesday, 25-Nov-2026 10:50:14 UTC", r.RestartTime)
	assert.Equal(t, time.Duration(0), r.Uptime)
	assert.Equal(t, int64(0), r.TotalAccesses)
}

func TestParseStatus_ExtendedStatusOffHasNoTotals(t *testing.T) {
	st, err := ParseStatus(readFixture(t, "status_auto_extended_off.txt"))
	require.NoError(t, err)
	assert.False(t, st.HasTotals)
	assert.False(t, st.HasReqPerSec)
	assert.True(t, st.HasGeneration)
	assert.Equal(t, 4, st.Generation)
	assert.True(t, st.HasUptime, "ServerUptimeSeconds is printed whatever ExtendedStatus says")
	assert.Equal(t, 12*time.Second, st.Uptime)
	assert.Equal(t, 49, st.IdleWorkers)
}

func TestParseStatus_DuringGracefulOldGenerationIsStopping(t *testing.T) {
	st, err := ParseStatus(readFixture(t, "status_auto_during_graceful.txt"))
	require.NoError(t, err)
	assert.Equal(t, "Apache/2.4.71 (Debian) OpenSSL/3.0.19", st.ServerVersion)
	assert.Equal(t, 4, st.Generation)
	assert.Equal(t, 3, st.Processes)
	assert.Equal(t, 1, st.Stopping)
	assert.Equal(t, 2, st.ConnsTotal)
	assert.Equal(t, 2, strings.Count(st.Scoreboard, "G"))
	assert.InDelta(t, 0.5, st.ReqPerSec, 1e-9)
	// The TLS session cache section after the scoreboard: a bare title line,
	// then fields of its own.
	assert.Equal(t, "SHMCB", st.Fields["CacheType"])
	assert.Equal(t, "127.0.0.1", st.Host, "the bare TLSSessionCacheStatus line is not the host")
}

func TestParseStatus_HTMLStatusPageIsAnError(t *testing.T) {
	_, err := ParseStatus(readFixture(t, "status_html.html"))
	require.ErrorIs(t, err, ErrNotAutoStatus)
	assert.Contains(t, err.Error(), "add ?auto to the status URL")
}

func TestParseStatus_OtherPagesAreErrorsNamingThePage(t *testing.T) {
	for file, title := range map[string]string{
		"status_notfound.html":   `"404 Not Found"`,
		"status_forbidden.html":  `"403 Forbidden"`,
		"status_site_index.html": `"Apache2 Debian Default Page: It works"`,
	} {
		t.Run(file, func(t *testing.T) {
			_, err := ParseStatus(readFixture(t, file))
			require.ErrorIs(t, err, ErrNotAutoStatus)
			assert.Contains(t, err.Error(), "got an HTML page titled "+title)
			assert.Contains(t, err.Error(), "/server-status?auto")
		})
	}
}

func TestParseStatus_BodiesThatAreNotStatus(t *testing.T) {
	for name, body := range map[string]string{
		"empty":       "",
		"blank":       "\n  \n",
		"plain text":  "It works!\n",
		"other keys":  "Hello: world\nFoo: bar\n",
		"json":        `{"status":"ok"}`,
		"no title":    "<p>nothing here</p>",
		"html inside": "\n\n<!DOCTYPE html>\n<html><title>x</title></html>",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseStatus([]byte(body))
			require.ErrorIs(t, err, ErrNotAutoStatus)
		})
	}
}

func TestParseStatus_BadNumberIsAnError(t *testing.T) {
	for _, body := range []string{
		"ParentServerConfigGeneration: two\n",
		"BusyWorkers: 1.5\n",
		"ReqPerSec: NaN\n",
		"ServerUptimeSeconds: -1\n",
		"Total Accesses: 99999999999999999999\n",
	} {
		_, err := ParseStatus([]byte("ServerVersion: Apache/2.4.71 (Debian)\n" + body))
		require.Error(t, err, body)
		assert.False(t, errors.Is(err, ErrNotAutoStatus), body)
		assert.Contains(t, err.Error(), "is not a number")
	}
}

func TestParseStatus_CRLFAndUptimeFallback(t *testing.T) {
	st, err := ParseStatus([]byte("web01\r\nServerVersion: Apache/2.4.7\r\nUptime: 90\r\nBusyWorkers: 3\r\n"))
	require.NoError(t, err)
	assert.Equal(t, "web01", st.Host)
	assert.Equal(t, 90*time.Second, st.Uptime)
	assert.Equal(t, 3, st.BusyWorkers)
	assert.False(t, st.HasGeneration, "Apache before 2.4.13 does not print the generation")
}

// --- apache2ctl -t -D DUMP_RUN_CFG

func TestParseRunConfig_Debian(t *testing.T) {
	rc, err := ParseRunConfig(readFixture(t, "runcfg.txt"))
	require.NoError(t, err)
	assert.Equal(t, RunConfig{
		ServerRoot:   capDir,
		DocumentRoot: "/var/www/html",
		ErrorLog:     capDir + "/log/error.log",
		PidFile:      capDir + "/run/apache2.pid",
		User:         "www-data",
		Group:        "www-data",
		Defines:      []string{"DUMP_RUN_CFG"},
	}, rc)
}

func TestParseRunConfig_StderrMixedInIsIgnored(t *testing.T) {
	out := append([]byte(ah00558+"\n"), readFixture(t, "runcfg_ssl.txt")...)
	rc, err := ParseRunConfig(out)
	require.NoError(t, err)
	assert.Equal(t, capDir+"/run/apache2.pid", rc.PidFile)
}

func TestParseRunConfig_OtherOutputIsAnError(t *testing.T) {
	_, stderr, _ := ctlFixture(t, "configtest_broken")
	_, err := ParseRunConfig(stderr)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "AH00526: Syntax error on line 3")
	_, err = ParseRunConfig(nil)
	require.Error(t, err)
}

// --- apache2ctl configtest

func TestParseConfigTest_OKKeepsAH00558AsAWarning(t *testing.T) {
	ct := configFixture(t, "configtest_ok")
	assert.Equal(t, ConfigTest{OK: true, Warnings: []string{ah00558}}, ct)
}

func TestParseConfigTest_AH00526GivesFileAndLine(t *testing.T) {
	ct := configFixture(t, "configtest_broken")
	assert.False(t, ct.OK)
	assert.Equal(t, []ConfigError{{
		File:    capDir + "/conf-enabled/zz-broken.conf",
		Line:    3,
		Message: "Invalid command 'ServerTokns', perhaps misspelled or defined by a module not included in the server configuration",
		Code:    "AH00526",
	}}, ct.Errors)
	assert.Empty(t, ct.Warnings)
	assert.Empty(t, ct.Notes, "apache2ctl's failure boilerplate is not a note")
}

func TestParseConfigTest_AH00526Reasons(t *testing.T) {
	zz := capDir + "/conf-enabled/zz-broken.conf"
	for name, want := range map[string]ConfigError{
		"configtest_unknownmodule": {File: zz, Line: 3, Code: "AH00526", Message: "Invalid command 'ProxyPass', perhaps misspelled or defined by a module not included in the server configuration"},
		"configtest_badarg":        {File: zz, Line: 3, Code: "AH00526", Message: "KeepAlive must be On or Off"},
		"configtest_vhostnoargs":   {File: zz, Line: 3, Code: "AH00526", Message: "<VirtualHost> directive requires additional arguments"},
		"configtest_nestedvhost":   {File: zz, Line: 3, Code: "AH00526", Message: "<VirtualHost> cannot occur within <VirtualHost> section"},
		"configtest_missingcert":   {File: zz, Line: 4, Code: "AH00526", Message: "SSLCertificateFile: file '/etc/ssl/certs/missing.pem' does not exist or is empty"},
		"configtest_badlisten":     {File: zz, Line: 3, Code: "AH00526", Message: "Invalid address or port"},
	} {
		t.Run(name, func(t *testing.T) {
			ct := configFixture(t, name)
			assert.False(t, ct.OK)
			assert.Equal(t, []ConfigError{want}, ct.Errors)
		})
	}
}

func TestParseConfigTest_IncludeChainGivesTheInnermostFile(t *testing.T) {
	zz := capDir + "/conf-enabled/zz-broken.conf"
	from := []string{capDir + "/apache2.conf:222"}
	for name, want := range map[string]ConfigError{
		"configtest_missinginclude": {File: zz, Line: 3, IncludedFrom: from, Message: "Could not open configuration file /etc/apache2/snippets/missing.conf: No such file or directory"},
		"configtest_unclosedvhost":  {File: zz, Line: 3, IncludedFrom: from, Message: "<VirtualHost> was not closed."},
		"configtest_strayclose":     {File: zz, Line: 3, IncludedFrom: from, Message: "</VirtualHost> without matching <VirtualHost> section"},
		"configtest_missingso": {
			File: capDir + "/mods-enabled/nope.load", Line: 1, IncludedFrom: []string{capDir + "/apache2.conf:146"},
			Message: "Cannot load /usr/lib/apache2/modules/mod_nope.so into server: /usr/lib/apache2/modules/mod_nope.so: cannot open shared object file: No such file or directory",
		},
		"configtest_noenvvars": {File: capDir + "/apache2.conf", Line: 80, Message: "DefaultRuntimeDir must be a valid directory, absolute or relative to ServerRoot"},
	} {
		t.Run(name, func(t *testing.T) {
			ct := configFixture(t, name)
			assert.False(t, ct.OK)
			assert.Equal(t, []ConfigError{want}, ct.Errors)
		})
	}
}

func TestParseConfigTest_ErrorWithoutFileKeepsTheMessage(t *testing.T) {
	ct := configFixture(t, "configtest_nompm")
	assert.Equal(t, []ConfigError{{Code: "AH00534", Message: "apache2: Configuration error: No MPM loaded."}}, ct.Errors)

	ct = configFixture(t, "configtest_noconfdir")
	assert.Equal(t, []ConfigError{{Message: "apache2: Could not open configuration file /tmp/opsbot-apache-missing/apache2.conf: No such file or directory"}}, ct.Errors)
}

func TestParseConfigTest_LogFormatLinesAreSortedByLevel(t *testing.T) {
	ct := configFixture(t, "configtest_undefvar")
	assert.False(t, ct.OK)
	require.Len(t, ct.Warnings, 2)
	assert.Contains(t, ct.Warnings[0], "[core:warn]")
	assert.Contains(t, ct.Warnings[0], "AH00111: Config variable ${OPSBOT_UNDEFINED} is not defined")
	assert.Equal(t, ah00558, ct.Warnings[1])
	assert.Equal(t, []ConfigError{
		{
			File: capDir + "/conf-enabled/zz-broken.conf", Line: 3, Code: "AH02297",
			Message: "(2)No such file or directory: AH02297: Cannot access directory '" + capDir + "/${OPSBOT_UNDEFINED}/' for log file '${OPSBOT_UNDEFINED}/x.log' defined at " + capDir + "/conf-enabled/zz-broken.conf:3",
		},
		{Code: "AH00014", Message: "Configuration check failed"},
	}, ct.Errors)
}

func TestParseConfigTest_PassingWithWarnings(t *testing.T) {
	ct := configFixture(t, "configtest_docroot")
	assert.True(t, ct.OK)
	assert.Empty(t, ct.Errors)
	assert.Equal(t, []string{"AH00112: Warning: DocumentRoot [/srv/www/missing] does not exist", ah00558}, ct.Warnings)

	// configtest cannot see a busy Listen port: it passes.
	assert.True(t, configFixture(t, "configtest_busyport").OK)
}

func TestParseConfigTest_ExitCodeIsAuthoritative(t *testing.T) {
	ct := ParseConfigTest(nil, []byte("Syntax OK\n"), 1)
	assert.False(t, ct.OK)
	assert.Equal(t, []ConfigError{{Message: "exit status 1 and no error message"}}, ct.Errors)

	ct = ParseConfigTest([]byte("Action 'configtest' failed.\nThe Apache error log may have more information.\n"), nil, 1)
	assert.Equal(t, []ConfigError{{Message: "Action 'configtest' failed."}}, ct.Errors)

	ct = ParseConfigTest(nil, []byte("something odd\n"), 0)
	assert.True(t, ct.OK)
	assert.Equal(t, []string{"something odd"}, ct.Warnings, "on exit 0 an unknown line cannot be an error")

	ct = ParseConfigTest(nil, []byte("AH00558: apache2: Could not reliably ...\n"), 1)
	assert.False(t, ct.OK)
	assert.Equal(t, []ConfigError{{Message: "exit status 1 and no error message"}}, ct.Errors)
}

func TestParseConfigTest_MergedOutputOnStdout(t *testing.T) {
	stdout, stderr, exit := ctlFixture(t, "configtest_broken")
	merged := ParseConfigTest(append(append([]byte{}, stderr...), stdout...), nil, exit)
	assert.Equal(t, configFixture(t, "configtest_broken"), merged)
}

func TestParseConfigTest_ApacheCtlActions(t *testing.T) {
	zz := capDir + "/conf-enabled/zz-broken.conf"
	t.Run("graceful and restart refuse a broken config", func(t *testing.T) {
		for _, name := range []string{"ctl_graceful_broken", "ctl_restart_broken"} {
			ct := configFixture(t, name)
			assert.False(t, ct.OK)
			require.Len(t, ct.Errors, 1)
			assert.Equal(t, zz, ct.Errors[0].File)
			assert.Equal(t, 3, ct.Errors[0].Line)
		}
	})
	t.Run("start on a busy port fails with codes but no file", func(t *testing.T) {
		ct := configFixture(t, "ctl_start_busyport")
		assert.False(t, ct.OK)
		assert.Equal(t, []string{ah00558}, ct.Warnings)
		assert.Equal(t, []ConfigError{
			{Code: "AH00072", Message: "(98)Address already in use: AH00072: make_sock: could not bind to address 127.0.0.1:18515"},
			{Message: "no listening sockets available, shutting down"},
			{Code: "AH00015", Message: "Unable to open logs"},
		}, ct.Errors)
	})
	t.Run("exit 0 with apache2ctl's own words", func(t *testing.T) {
		ct := configFixture(t, "ctl_start_running")
		assert.True(t, ct.OK)
		assert.Equal(t, []string{"httpd (pid 4916) already running"}, ct.Notes)
		ct = configFixture(t, "ctl_graceful_stopped")
		assert.True(t, ct.OK)
		assert.Equal(t, []string{"httpd not running, trying to start", "httpd not running, trying to start"}, ct.Notes)
	})
	t.Run("graceful that will kill Apache passes", func(t *testing.T) {
		ct := configFixture(t, "ctl_graceful_busyport")
		assert.Equal(t, ConfigTest{OK: true, Warnings: []string{ah00558}}, ct)
	})
}

// --- apache2ctl -M

func TestParseModules_StaticAndShared(t *testing.T) {
	mods, unknown := ParseModules(readFixture(t, "modules.txt"))
	assert.Empty(t, unknown)
	require.Len(t, mods, 27)
	assert.Equal(t, Module{Name: "core_module", Kind: "static"}, mods[0])
	assert.Equal(t, Module{Name: "status_module", Kind: "shared"}, mods[26])
	kinds := map[string]int{}
	for _, m := range mods {
		kinds[m.Kind]++
	}
	assert.Equal(t, map[string]int{"static": 8, "shared": 19}, kinds)

	mods, _ = ParseModules(readFixture(t, "modules_ssl.txt"))
	assert.Len(t, mods, 29)
	assert.Contains(t, mods, Module{Name: "ssl_module", Kind: "shared"})
	assert.Contains(t, mods, Module{Name: "socache_shmcb_module", Kind: "shared"})
}

func TestParseModules_OtherLinesAreUnknown(t *testing.T) {
	out := append([]byte(ah00558+"\n"), readFixture(t, "modules.txt")...)
	out = append(out, "Syntax OK\n"...)
	mods, unknown := ParseModules(out)
	assert.Len(t, mods, 27)
	assert.Equal(t, []string{ah00558, "Syntax OK"}, unknown)
}

// --- apache2ctl -S

func TestParseVHosts_OnlyTheDefaultSite(t *testing.T) {
	vh, unknown := ParseVHosts(readFixture(t, "vhosts_default.txt"))
	assert.Empty(t, unknown)
	assert.Equal(t, []VHost{{
		Address: "127.0.0.1", Port: 18510, ServerName: "localhost", Default: true,
		File: capDir + "/sites-enabled/000-default.conf", Line: 1,
	}}, vh.VHosts)
	assert.Equal(t, []Setting{
		{Key: "ServerRoot", Value: capDir},
		{Key: "Main DocumentRoot", Value: "/var/www/html"},
		{Key: "Main ErrorLog", Value: capDir + "/log/error.log"},
		{Key: "Mutex default", Value: `dir="` + capDir + `/run/" mechanism=default`},
		{Key: "Mutex watchdog-callback", Value: "using_defaults"},
		{Key: "PidFile", Value: capDir + "/run/apache2.pid"},
		{Key: "Define", Value: "DUMP_VHOSTS"},
		{Key: "Define", Value: "DUMP_RUN_CFG"},
		{Key: "User", Value: `name="www-data" id=33`},
		{Key: "Group", Value: `name="www-data" id=33`},
	}, vh.Settings)
}

func TestParseVHosts_NameBasedWithAliasesAndSSL(t *testing.T) {
	vh, unknown := ParseVHosts(readFixture(t, "vhosts_named.txt"))
	assert.Empty(t, unknown)
	site := func(f string) string { return capDir + "/sites-enabled/" + f }
	assert.Equal(t, []VHost{
		{Address: "127.0.0.1", Port: 18510, ServerName: "localhost", Default: true, NameBased: true, File: site("000-default.conf"), Line: 1},
		{Address: "127.0.0.1", Port: 18510, ServerName: "shop.example.com", Aliases: []string{"www.shop.example.com", "shop.example.net"}, NameBased: true, File: site("010-shop.conf"), Line: 1},
		{Address: "127.0.0.1", Port: 18510, ServerName: "blog.example.com", Aliases: []string{"*.blog.example.com"}, NameBased: true, File: site("020-blog.conf"), Line: 2},
		{Address: "127.0.0.1", Port: 18511, ServerName: "blog.example.com", Default: true, File: site("020-blog.conf"), Line: 8},
	}, vh.VHosts)
	assert.Len(t, vh.Settings, 13, "with mod_ssl, three more Mutex lines")
}

func TestParseVHosts_MixedAddresses(t *testing.T) {
	vh, unknown := ParseVHosts(readFixture(t, "vhosts_mixed.txt"))
	assert.Empty(t, unknown)
	mixed := capDir + "/sites-enabled/030-mixed.conf"
	require.Len(t, vh.VHosts, 9)
	assert.Equal(t, VHost{Address: "::1", Port: 18513, ServerName: "bogus_host_without_reverse_dns", Default: true, File: mixed, Line: 12}, vh.VHosts[0])
	assert.Equal(t, VHost{Address: "127.0.0.1", Port: 18513, ServerName: "bogus_host_without_reverse_dns", Default: true, File: mixed, Line: 12}, vh.VHosts[5])
	assert.Equal(t, VHost{Address: "*", Port: 18512, ServerName: "api.example.com", Default: true, NameBased: true, File: mixed, Line: 3}, vh.VHosts[6])
	assert.Equal(t, VHost{Address: "*", Port: 18512, ServerName: "static.example.com", Aliases: []string{"cdn.example.com"}, NameBased: true, File: mixed, Line: 7}, vh.VHosts[7])
	// <VirtualHost _default_:18514> is listed as *:18514, named after the main server.
	assert.Equal(t, VHost{Address: "*", Port: 18514, ServerName: "127.0.0.1", Default: true, File: mixed, Line: 15}, vh.VHosts[8])
}

func TestParseVHosts_StderrLinesAreUnknown(t *testing.T) {
	out := append(readFixture(t, "vhosts_mixed.stderr"), readFixture(t, "vhosts_mixed.txt")...)
	vh, unknown := ParseVHosts(out)
	assert.Len(t, vh.VHosts, 9)
	require.Len(t, unknown, 2)
	assert.Equal(t, ah00558, unknown[0])
	assert.Contains(t, unknown[1], "AH00549: Failed to resolve server name for ::1")
}

func TestParseVHosts_DefaultWithoutItsNameVHostLineIsKept(t *testing.T) {
	vh, unknown := ParseVHosts([]byte("VirtualHost configuration:\n*:80                   is a NameVirtualHost\n         default server www (/etc/apache2/sites-enabled/a.conf:1)\n         port 80 namevhost other (/etc/apache2/sites-enabled/b.conf:1)\n                 alias with space\n"))
	assert.Equal(t, []string{"alias with space"}, unknown)
	assert.Equal(t, []VHost{
		{Address: "*", Port: 80, ServerName: "www", Default: true, NameBased: true, File: "/etc/apache2/sites-enabled/a.conf", Line: 1},
		{Address: "*", Port: 80, ServerName: "other", NameBased: true, File: "/etc/apache2/sites-enabled/b.conf", Line: 1},
	}, vh.VHosts)
}

// --- the error log

func at(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse("2006-01-02 15:04:05.999999", s)
	require.NoError(t, err)
	return tm
}

func TestParseErrorLog_Start(t *testing.T) {
	es := ParseErrorLog(readFixture(t, "errorlog_start.txt"))
	require.Len(t, es, 2)
	assert.Equal(t, LogEntry{
		Time: at(t, "2026-11-25 10:50:03.023577"), Module: "mpm_event", Level: "notice", PID: 29725,
		Codes:   []string{"AH00489"},
		Message: "AH00489: Apache/2.4.71 (Debian) configured -- resuming normal operations",
		Raw:     "[Wed Nov 25 10:50:03.023577 2026] [mpm_event:notice] [pid 29725:tid 29725] AH00489: Apache/2.4.71 (Debian) configured -- resuming normal operations",
		Line:    1,
	}, es[0])
	assert.Equal(t, "core", es[1].Module)
	assert.Equal(t, []string{"AH00094"}, es[1].Codes)
	assert.Equal(t, "AH00094: Command line: '/usr/sbin/apache2 -d /tmp/opsbot-apache'", es[1].Message)
	for _, e := range es {
		assert.False(t, e.Fatal())
	}
}

func TestParseErrorLog_GracefulAndRestart(t *testing.T) {
	g := ParseErrorLog(readFixture(t, "errorlog_graceful.txt"))
	require.Len(t, g, 4)
	assert.Equal(t, []string{"AH00493"}, g[0].Codes)
	assert.Equal(t, "AH00493: SIGUSR1 received.  Doing graceful restart", g[0].Message, "two spaces, as Apache writes it")
	assert.Equal(t, LogEntry{Codes: []string{"AH00558"}, Message: ah00558, Raw: ah00558, Line: 2}, g[1],
		"on a graceful the parent's stderr is the error log: AH00558 lands there without a prefix")

	r := ParseErrorLog(readFixture(t, "errorlog_restart.txt"))
	require.Len(t, r, 4)
	assert.Equal(t, []string{"AH00494"}, r[0].Codes)

	stop := ParseErrorLog(readFixture(t, "errorlog_stop.txt"))
	require.Len(t, stop, 1)
	assert.Equal(t, "AH00491: caught SIGTERM, shutting down", stop[0].Message)
	gs := ParseErrorLog(readFixture(t, "errorlog_graceful_stop.txt"))
	require.Len(t, gs, 1)
	assert.Equal(t, "AH00492: caught SIGWINCH, shutting down gracefully", gs[0].Message)
	for _, e := range append(append(append(g, r...), stop...), gs...) {
		assert.False(t, e.Fatal(), e.Raw)
	}
}

func TestParseErrorLog_BusyListenPortKillsAGraceful(t *testing.T) {
	es := ParseErrorLog(readFixture(t, "errorlog_busyport.txt"))
	require.Len(t, es, 5)
	assert.Equal(t, LogEntry{
		Codes:   []string{"AH00072"},
		Message: "(98)Address already in use: AH00072: make_sock: could not bind to address 127.0.0.1:18515",
		Raw:     "(98)Address already in use: AH00072: make_sock: could not bind to address 127.0.0.1:18515",
		Line:    3,
	}, es[2])
	assert.Equal(t, "alert", es[3].Level)
	assert.Equal(t, "mpm_event", es[3].Module)
	assert.Empty(t, es[3].Codes, "2.4.71 prints no code on this line")
	assert.Equal(t, "no listening sockets available, shutting down", es[3].Message)
	assert.Equal(t, "", es[4].Module, "[:emerg] has an empty module")
	assert.Equal(t, "emerg", es[4].Level)
	assert.Equal(t, []string{"AH00019"}, es[4].Codes)
	assert.Equal(t, at(t, "2026-11-25 10:50:46.062647"), es[4].Time)
	assert.Equal(t, []bool{false, false, true, true, true}, fatalFlags(es))
}

func TestParseErrorLog_CertificateKeyMismatchIsFatal(t *testing.T) {
	es := ParseErrorLog(readFixture(t, "errorlog_certmismatch.txt"))
	require.Len(t, es, 5)
	assert.Equal(t, []bool{false, false, false, true, true}, fatalFlags(es))
	assert.Equal(t, "ssl", es[3].Module)
	assert.Equal(t, []string{"AH02565"}, es[3].Codes)
	assert.Contains(t, es[3].Message, "from /tmp/opsbot-apache/ssl/a.pem and /tmp/opsbot-apache/ssl/b.key do not match")
	assert.Equal(t, "AH00020: Configuration Failed, exiting", es[4].Message)
}

func TestParseErrorLog_WarningsAreNotFatal(t *testing.T) {
	es := ParseErrorLog(readFixture(t, "errorlog_start_stalepid.txt"))
	require.Len(t, es, 7)
	assert.Equal(t, []string{"AH00098"}, es[4].Codes)
	assert.Equal(t, "warn", es[4].Level)
	assert.Equal(t, []int{30806, 30806, 30807, 30807, 30807, 30807, 30807}, pids(es), "the first config pass runs in the process that then forks the parent")
	for _, e := range es {
		assert.False(t, e.Fatal(), e.Raw)
	}
}

func TestParseErrorLog_SessionFatalEntriesAreTheTwoDeaths(t *testing.T) {
	es := ParseErrorLog(readFixture(t, "errorlog_session.txt"))
	require.Len(t, es, 45)
	var fatal []string
	for _, e := range es {
		if e.Fatal() {
			fatal = append(fatal, strconv.Itoa(e.Line)+" "+strings.Join(e.Codes, ","))
		}
	}
	assert.Equal(t, []string{"24 AH00072", "25 ", "26 AH00019", "37 AH02565", "38 AH00020"}, fatal)
}

func TestParseErrorLog_ClientIsTaken(t *testing.T) {
	es := ParseErrorLog(readFixture(t, "errorlog_client_denied.txt"))
	require.Len(t, es, 2)
	assert.Equal(t, "127.0.0.1:48512", es[0].Client)
	assert.Equal(t, "authz_core", es[0].Module)
	assert.Equal(t, "error", es[0].Level)
	assert.Equal(t, 5207, es[0].PID)
	assert.Equal(t, "AH01630: client denied by server configuration: /var/www/html/denied", es[0].Message)
	assert.False(t, es[0].Fatal())
}

// The AH00094 line and the AH00558 that follows it have been seen written
// onto one line. This input is built from the two real lines.
func TestParseErrorLog_GluedLinesYieldBothEntries(t *testing.T) {
	l94 := "[Wed Nov 25 10:50:14.009794 2026] [core:notice] [pid 29725:tid 29725] AH00094: Command line: '/usr/sbin/apache2 -d /tmp/opsbot-apache'"
	l89 := "[Wed Nov 25 10:50:14.009787 2026] [mpm_event:notice] [pid 29725:tid 29725] AH00489: Apache/2.4.71 (Debian) configured -- resuming normal operations"
	l72 := "(98)Address already in use: AH00072: make_sock: could not bind to address 127.0.0.1:18515"
	for name, tc := range map[string]struct {
		parts  []string
		levels []string
	}{
		"AH00094 then AH00558":  {[]string{l94, ah00558}, []string{"notice", ""}},
		"two prefixed entries":  {[]string{l89, l94}, []string{"notice", "notice"}},
		"errno form glued":      {[]string{l94, l72}, []string{"notice", ""}},
		"three on a line":       {[]string{l89, l94, ah00558}, []string{"notice", "notice", ""}},
		"bare then prefixed":    {[]string{ah00558, l89}, []string{"", "notice"}},
		"no glue: one AH00558":  {[]string{ah00558}, []string{""}},
		"no glue: one AH00072 ": {[]string{l72}, []string{""}},
	} {
		t.Run(name, func(t *testing.T) {
			line := strings.Join(tc.parts, "")
			es := ParseErrorLog([]byte("first\n" + line + "\n"))
			require.Len(t, es, 1+len(tc.parts))
			for i, p := range tc.parts {
				e := es[1+i]
				assert.Equal(t, p, e.Raw)
				assert.Equal(t, 2, e.Line)
				assert.Equal(t, tc.levels[i], e.Level)
				assert.Len(t, e.Codes, 1)
			}
		})
	}
}

func TestParseErrorLog_CodesInsideAMessageDoNotSplitIt(t *testing.T) {
	for _, line := range []string{
		"[Wed Nov 25 10:50:14.009794 2026] [proxy:error] [pid 1:tid 2] (111)Connection refused: AH00957: http: attempt to connect to 127.0.0.1:8080 (127.0.0.1:8080) failed",
		"[Wed Nov 25 10:50:14.009794 2026] [core:error] [pid 1] see (AH00558: x) and [AH00094: y]",
		"AH00526: Syntax error on line 3 of /etc/apache2/conf-enabled/zz.conf:",
	} {
		es := ParseErrorLog([]byte(line))
		require.Len(t, es, 1, line)
		assert.Equal(t, line, es[0].Raw)
	}
}

func TestParseErrorLog_Variants(t *testing.T) {
	t.Run("no microseconds, space-padded day, prefork pid", func(t *testing.T) {
		es := ParseErrorLog([]byte("[Thu Nov  5 09:01:02 2026] [mpm_prefork:notice] [pid 812] AH00163: Apache/2.4.71 (Debian) configured\r\n"))
		require.Len(t, es, 1)
		assert.Equal(t, time.Date(2026, 11, 5, 9, 1, 2, 0, time.UTC), es[0].Time)
		assert.Equal(t, 812, es[0].PID)
		assert.Equal(t, "mpm_prefork", es[0].Module)
		assert.NotContains(t, es[0].Raw, "\r")
	})
	t.Run("2.2 style level only", func(t *testing.T) {
		es := ParseErrorLog([]byte("[Thu Nov 05 09:01:02 2026] [error] [client 10.0.0.1] File does not exist: /var/www/favicon.ico\n"))
		require.Len(t, es, 1)
		assert.Equal(t, "error", es[0].Level)
		assert.Equal(t, "", es[0].Module)
		assert.Equal(t, "10.0.0.1", es[0].Client)
		assert.Equal(t, "File does not exist: /var/www/favicon.ico", es[0].Message)
	})
	t.Run("unknown bracket stays in the message", func(t *testing.T) {
		es := ParseErrorLog([]byte("[Thu Nov 05 09:01:02 2026] [php:error] [pid 3:tid 4] [remote 10.0.0.1:5] PHP Fatal error: x\n"))
		require.Len(t, es, 1)
		assert.Equal(t, "[remote 10.0.0.1:5] PHP Fatal error: x", es[0].Message)
		assert.False(t, es[0].Fatal())
	})
	t.Run("lines that are not log lines are entries", func(t *testing.T) {
		es := ParseErrorLog([]byte("\n  \nTraceback (most recent call last):\n[not a time] x\n"))
		require.Len(t, es, 2)
		assert.Equal(t, 3, es[0].Line)
		assert.Equal(t, "[not a time] x", es[1].Message)
		assert.True(t, es[1].Time.IsZero())
	})
	t.Run("zone", func(t *testing.T) {
		berlin, err := time.LoadLocation("Europe/Berlin")
		if err != nil {
			testenv.Missing(t, "no tzdata (Debian package tzdata): %v", err)
		}
		es := ParseErrorLogIn(readFixture(t, "errorlog_stop.txt"), berlin)
		require.Len(t, es, 1)
		assert.Equal(t, "2026-11-25T09:53:07.255267Z", es[0].Time.UTC().Format(time.RFC3339Nano))
	})
}

func TestLogEntry_Fatal(t *testing.T) {
	for _, tc := range []struct {
		e    LogEntry
		want bool
	}{
		{LogEntry{Level: "emerg"}, true},
		{LogEntry{Level: "alert"}, true},
		{LogEntry{Level: "crit"}, true},
		{LogEntry{Level: "error"}, false},
		{LogEntry{Level: "warn", Codes: []string{"AH00098"}}, false},
		{LogEntry{Codes: []string{"AH00558"}}, false},
		{LogEntry{Codes: []string{"AH00072"}}, true},
		{LogEntry{Codes: []string{"AH00015"}}, true},
		{LogEntry{Codes: []string{"AH00019"}}, true},
		{LogEntry{Codes: []string{"AH00020"}}, true},
		{LogEntry{Codes: []string{"AH02565"}}, true},
		{LogEntry{Codes: []string{"AH00016"}}, true},
		{LogEntry{Codes: []string{"AH02312"}}, true},
		{LogEntry{Codes: []string{"AH00526"}}, true},
		{LogEntry{Message: "no listening sockets available, shutting down"}, true},
		{LogEntry{Level: "notice", Codes: []string{"AH00493"}}, false},
	} {
		assert.Equal(t, tc.want, tc.e.Fatal(), "%+v", tc.e)
	}
}

func fatalFlags(es []LogEntry) []bool {
	out := make([]bool, len(es))
	for i, e := range es {
		out[i] = e.Fatal()
	}
	return out
}

func pids(es []LogEntry) []int {
	out := make([]int, len(es))
	for i, e := range es {
		out[i] = e.PID
	}
	return out
}

// --- golden files: every fixture parsed

type goldenEntry struct {
	LogEntry
	Fatal bool
}

// parsedFixture parses one fixture with the parser its name calls for; ok is
// false for files that belong to another (NAME.stdout, NAME.stderr of an
// apache2ctl run) or are not fixtures.
func parsedFixture(t *testing.T, name string) (any, bool) {
	t.Helper()
	base := strings.TrimSuffix(name, filepath.Ext(name))
	switch ext := filepath.Ext(name); {
	case name == "README.md":
		return nil, false
	case ext == ".exit":
		stdout, stderr, exit := ctlFixture(t, base)
		return ParseConfigTest(stdout, stderr, exit), true
	case ext == ".stdout", ext == ".stderr":
		if _, err := os.Stat(filepath.Join(parseDir, base+".exit")); err == nil {
			return nil, false
		}
	}
	data := readFixture(t, name)
	switch {
	case strings.HasPrefix(name, "status_"):
		st, err := ParseStatus(data)
		out := struct {
			Status *Status `json:",omitempty"`
			Error  string  `json:",omitempty"`
		}{}
		if err != nil {
			out.Error = err.Error()
		} else {
			out.Status = &st
		}
		return out, true
	case strings.HasPrefix(name, "modules"):
		mods, unknown := ParseModules(data)
		return struct {
			Modules []Module
			Unknown []string
		}{mods, unknown}, true
	case strings.HasPrefix(name, "runcfg"):
		rc, err := ParseRunConfig(data)
		require.NoError(t, err)
		return rc, true
	case strings.HasPrefix(name, "vhosts_") && strings.HasSuffix(name, ".txt"):
		vh, unknown := ParseVHosts(data)
		return struct {
			VHosts  VHosts
			Unknown []string
		}{vh, unknown}, true
	case strings.HasPrefix(name, "errorlog_"), strings.HasSuffix(name, ".stderr"):
		var out []goldenEntry
		for _, e := range ParseErrorLog(data) {
			out = append(out, goldenEntry{e, e.Fatal()})
		}
		return out, true
	}
	t.Fatalf("%s: no parser for this fixture name", name)
	return nil, false
}

func TestGolden(t *testing.T) {
	files, err := os.ReadDir(parseDir)
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, f := range files {
		if f.IsDir() {
			continue
		}
		name := f.Name()
		v, ok := parsedFixture(t, name)
		if !ok {
			continue
		}
		golden := strings.TrimSuffix(name, filepath.Ext(name)) + ".json"
		if strings.HasSuffix(name, ".stderr") {
			golden = strings.TrimSuffix(name, ".stderr") + ".stderr.json"
		}
		seen[golden] = true
		t.Run(name, func(t *testing.T) {
			goldenfile.Check(t, filepath.Join(parseDir, "golden", golden), goldenfile.JSON(t, v))
		})
	}
	goldens, err := os.ReadDir(filepath.Join(parseDir, "golden"))
	require.NoError(t, err)
	for _, g := range goldens {
		assert.True(t, seen[g.Name()], "golden/%s has no fixture", g.Name())
	}
}
