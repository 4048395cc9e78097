package apache

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// seedFixtures adds every fixture whose name matches glob.
func seedFixtures(f *testing.F, glob string, add func(b []byte)) {
	f.Helper()
	names, err := filepath.Glob(filepath.Join(parseDir, glob))
	require.NoError(f, err)
	require.NotEmpty(f, names, glob)
	for _, n := range names {
		b, err := os.ReadFile(n)
		require.NoError(f, err)
		add(b)
	}
}

// renderStatus writes st as mod_status's ?auto page would, in canonical form.
func renderStatus(st Status) string {
	var b strings.Builder
	if st.Host != "" {
		b.WriteString(st.Host + "\n")
	}
	kv := func(k, v string) { fmt.Fprintf(&b, "%s: %s\n", k, v) }
	kv("ServerVersion", st.ServerVersion)
	kv("ServerMPM", st.MPM)
	kv("Server Built", st.Built)
	kv("CurrentTime", st.CurrentTime)
	kv("RestartTime", st.RestartTime)
	if st.HasGeneration {
		kv("ParentServerConfigGeneration", strconv.Itoa(st.Generation))
		kv("ParentServerMPMGeneration", strconv.Itoa(st.MPMGeneration))
	}
	if st.HasUptime {
		kv("ServerUptimeSeconds", strconv.FormatInt(int64(st.Uptime/time.Second), 10))
	}
	if st.HasTotals {
		kv("Total Accesses", strconv.FormatInt(st.TotalAccesses, 10))
		kv("Total kBytes", strconv.FormatInt(st.TotalKBytes, 10))
	}
	if st.HasReqPerSec {
		kv("ReqPerSec", strconv.FormatFloat(st.ReqPerSec, 'g', -1, 64))
	}
	kv("BusyWorkers", strconv.Itoa(st.BusyWorkers))
	kv("IdleWorkers", strconv.Itoa(st.IdleWorkers))
	kv("GracefulWorkers", strconv.Itoa(st.GracefulWorkers))
	kv("Processes", strconv.Itoa(st.Processes))
	kv("Stopping", strconv.Itoa(st.Stopping))
	kv("ConnsTotal", strconv.Itoa(st.ConnsTotal))
	kv("Scoreboard", st.Scoreboard)
	return b.String()
}

// FuzzParseStatus: what ParseStatus accepts, it reads back the same from its
// own rendering; what it refuses, it refuses with a reason.
func FuzzParseStatus(f *testing.F) {
	seedFixtures(f, "status_*", func(b []byte) { f.Add(string(b)) })
	f.Add("::1\nServerVersion: x\nReqPerSec: 1e+06\nUptime: 5\n")
	f.Fuzz(func(t *testing.T, body string) {
		st, err := ParseStatus([]byte(body))
		if err != nil {
			require.NotEmpty(t, err.Error())
			return
		}
		again, err := ParseStatus([]byte(renderStatus(st)))
		require.NoError(t, err, "rendering:\n%s", renderStatus(st))
		st.Fields, again.Fields = nil, nil
		require.Equal(t, st, again)
	})
}

// FuzzParseRunConfig: every value it returns was in the input.
func FuzzParseRunConfig(f *testing.F) {
	seedFixtures(f, "runcfg*.txt", func(b []byte) { f.Add(string(b)) })
	seedFixtures(f, "vhosts_*.txt", func(b []byte) { f.Add(string(b)) })
	f.Fuzz(func(t *testing.T, out string) {
		rc, err := ParseRunConfig([]byte(out))
		if err != nil {
			return
		}
		require.NotEmpty(t, rc.ServerRoot)
		for _, v := range append([]string{rc.ServerRoot, rc.DocumentRoot, rc.ErrorLog, rc.PidFile, rc.User, rc.Group}, rc.Defines...) {
			require.Contains(t, out, v)
		}
	})
}

// FuzzParseConfigTest: the exit code decides OK, a failure always has a
// reason, and a location has a file.
func FuzzParseConfigTest(f *testing.F) {
	names, err := filepath.Glob(filepath.Join(parseDir, "*.exit"))
	require.NoError(f, err)
	require.NotEmpty(f, names)
	for _, n := range names {
		stdout, stderr, exit := ctlFixture(f, strings.TrimSuffix(filepath.Base(n), ".exit"))
		f.Add(string(stdout), string(stderr), exit)
	}
	f.Fuzz(func(t *testing.T, stdout, stderr string, exit int) {
		ct := ParseConfigTest([]byte(stdout), []byte(stderr), exit)
		require.Equal(t, exit == 0, ct.OK)
		if !ct.OK {
			require.NotEmpty(t, ct.Errors)
		}
		both := stdout + "\n" + stderr
		for _, e := range ct.Errors {
			if e.Line != 0 {
				require.NotEmpty(t, e.File)
			}
			require.Contains(t, both, e.File)
			require.Contains(t, both, e.Code)
		}
		for _, w := range append(ct.Warnings, ct.Notes...) {
			require.Contains(t, both, w)
		}
	})
}

// FuzzParseModules: every line is a module, the header, blank, or reported.
func FuzzParseModules(f *testing.F) {
	seedFixtures(f, "modules*.txt", func(b []byte) { f.Add(string(b)) })
	f.Fuzz(func(t *testing.T, out string) {
		mods, unknown := ParseModules([]byte(out))
		lines := 0
		for l := range strings.Lines(out) {
			if l = strings.TrimSpace(l); l != "" && l != "Loaded Modules:" {
				lines++
			}
		}
		require.Equal(t, lines, len(mods)+len(unknown))
		for _, m := range mods {
			require.NotEmpty(t, m.Name)
			require.NotEmpty(t, m.Kind)
			require.Contains(t, out, m.Name+" ("+m.Kind+")")
		}
	})
}

// FuzzParseVHosts: all that comes out was in the input, and ports are ports.
func FuzzParseVHosts(f *testing.F) {
	seedFixtures(f, "vhosts_*", func(b []byte) { f.Add(string(b)) })
	f.Fuzz(func(t *testing.T, out string) {
		vh, unknown := ParseVHosts([]byte(out))
		for _, v := range vh.VHosts {
			require.NotEmpty(t, v.Address)
			require.Contains(t, out, v.ServerName)
			require.Contains(t, out, v.File+":")
			require.True(t, v.Port >= 0 && v.Port <= 65535, v.Port)
			for _, a := range v.Aliases {
				require.Contains(t, out, "alias "+a)
			}
		}
		for _, s := range vh.Settings {
			require.Contains(t, out, s.Key+":")
		}
		for _, u := range unknown {
			require.NotEmpty(t, u)
			require.Contains(t, out, u)
		}
	})
}

var wholeCode = regexp.MustCompile(`^AH\d{5}$`)

// FuzzParseErrorLog: no line is lost. Each line that is not blank gives
// entries whose Raws, in order, make up exactly that line.
func FuzzParseErrorLog(f *testing.F) {
	seedFixtures(f, "errorlog_*.txt", func(b []byte) { f.Add(string(b)) })
	seedFixtures(f, "*.stderr", func(b []byte) { f.Add(string(b)) })
	f.Add("[Wed Nov 25 10:50:14.009794 2026] [core:notice] [pid 1:tid 1] AH00094: Command line: 'x'" + ah00558 + "\n")
	f.Add("x(98)Address already in use: AH00072: y[Wed Nov 25 10:50:14 2026] [:emerg] [pid 1] AH00019: z\r\n")
	f.Fuzz(func(t *testing.T, data string) {
		entries := ParseErrorLog([]byte(data))
		byLine := map[int]string{}
		prev := 0
		for _, e := range entries {
			require.GreaterOrEqual(t, e.Line, prev)
			prev = e.Line
			require.NotEmpty(t, e.Raw)
			byLine[e.Line] += e.Raw
			for _, c := range e.Codes {
				require.Regexp(t, wholeCode, c)
				require.Contains(t, e.Raw, c)
			}
			_ = e.Fatal()
		}
		n := 0
		for line := range strings.Lines(data) {
			n++
			line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
			if strings.TrimSpace(line) == "" {
				require.NotContains(t, byLine, n)
				continue
			}
			require.Equal(t, line, byLine[n], "line %d", n)
		}
	})
}
