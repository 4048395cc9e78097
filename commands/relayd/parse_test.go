package relayd

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	goldenfile "github.com/opsbot/opsbot/internal/golden"
)

// header and row print exactly what relayctl prints (FORMATS.md §2.1, §2.2).
const header = "Id  \tType    \tName                    \tAvlblty\tStatus\n"

func row(id int, typ, name, avail, status string) string {
	return fmt.Sprintf("%-4d\t%-8s\t%-24s\t%-7s\t%s\n", id, typ, name, avail, status)
}

func checkLine(rest string) string { return fmt.Sprintf("\t%8s\ttotal: %s\n", "", rest) }

func statsLines(total, last, avg string) string {
	return fmt.Sprintf("\t%8s\ttotal: %s sessions\n\t%8s\tlast: %s sessions\n\t%8s\taverage: %s sessions\n", "", total, "", last, "", avg)
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "fixtures", name))
	require.NoError(t, err)
	return b
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", "golden", name+".json"), got)
}

// errorJSON shows an error in a golden file: its fields and its message.
type errorJSON struct {
	Error   *Error `json:"error,omitempty"`
	Message string `json:"message,omitempty"`
}

func asErrorJSON(t *testing.T, err error) errorJSON {
	t.Helper()
	if err == nil {
		return errorJSON{}
	}
	var e *Error
	require.ErrorAs(t, err, &e)
	return errorJSON{Error: e, Message: err.Error()}
}

// fixtureParsers says how each fixture is read: the parser, which stream it
// was printed on and the exit status, per FORMATS.md §9. It returns the
// value for the golden file and the number of lines not understood.
func fixtureParsers(t *testing.T) map[string]func([]byte) (any, int) {
	show := func(parse func([]byte) Summary) func([]byte) (any, int) {
		return func(b []byte) (any, int) { s := parse(b); return s, len(s.Unknown) }
	}
	classify := func(stream string, exit int) func([]byte) (any, int) {
		return func(b []byte) (any, int) {
			var cond Condition
			var err error
			if stream == "stdout" {
				cond, err = Classify(b, nil, exit)
			} else {
				cond, err = Classify(nil, b, exit)
			}
			unknown := 0
			if cond == OtherError {
				unknown = 1
			}
			return struct {
				Condition Condition `json:"condition"`
				errorJSON
			}{cond, asErrorJSON(t, err)}, unknown
		}
	}
	check := func(exit int) func([]byte) (any, int) {
		return func(b []byte) (any, int) {
			r, err := ParseCheck(b, exit)
			return struct {
				Result CheckResult `json:"result"`
				errorJSON
			}{r, asErrorJSON(t, err)}, 0
		}
	}
	return map[string]func([]byte) (any, int){
		"show_summary.txt":   show(ParseSummary),
		"show_hosts.txt":     show(ParseHosts),
		"show_redirects.txt": show(ParseRedirects),
		"show_relays.txt":    show(ParseRelays),
		"show_sessions.txt": func(b []byte) (any, int) {
			s, u := ParseSessions(b)
			return struct {
				Sessions []Session `json:"sessions"`
				Unknown  []Line    `json:"unknown,omitempty"`
			}{s, u}, len(u)
		},
		"monitor.txt": func(b []byte) (any, int) {
			e, u := ParseMonitor(b)
			return struct {
				Events  []Event `json:"events"`
				Unknown []Line  `json:"unknown,omitempty"`
			}{e, u}, len(u)
		},
		"relayd_n_ok.txt":       check(0),
		"relayd_n_err.txt":      check(1),
		"relayd_n_notroot.txt":  check(1),
		"poll.txt":              classify("stdout", 0),
		"reload.txt":            classify("stdout", 0),
		"reload_legacy.txt":     classify("stdout", 0),
		"log_verbose.txt":       classify("stdout", 0),
		"command_failed.txt":    classify("stdout", 1),
		"socket_missing.txt":    classify("stderr", 1),
		"socket_refused.txt":    classify("stderr", 1),
		"socket_permission.txt": classify("stderr", 1),
		"usage_unknown_arg.txt": classify("stderr", 1),
	}
}

func TestFixtures_GoldenAndNoUnknownLines(t *testing.T) {
	parsers := fixtureParsers(t)
	files, err := filepath.Glob(filepath.Join("testdata", "fixtures", "*.txt"))
	require.NoError(t, err)
	require.Len(t, files, len(parsers), "every fixture has a parser, every parser a fixture")
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			parse, ok := parsers[name]
			require.True(t, ok, "no parser for fixture %s", name)
			v, unknown := parse(fixture(t, name))
			assert.Zero(t, unknown, "lines not understood in %s", name)
			checkGolden(t, strings.TrimSuffix(name, ".txt"), goldenfile.JSON(t, v))
		})
	}
	t.Run("digest", func(t *testing.T) {
		d := ParseSummary(fixture(t, "show_summary.txt")).Digest(ParseHosts(fixture(t, "show_hosts.txt")))
		checkGolden(t, "digest", goldenfile.JSON(t, d))
	})
}

func TestParseSummary_FixtureKeysTablesAndHostsByTypeAndID(t *testing.T) {
	s := ParseSummary(fixture(t, "show_summary.txt"))
	require.Empty(t, s.Unknown)
	require.Len(t, s.Redirects, 1)
	require.Len(t, s.Relays, 1)
	www := s.Redirects[0]
	assert.Equal(t, Ref{TypeRedirect, 1, "www"}, www.Ref)
	require.Len(t, www.Tables, 2, "main and backup table")
	assert.Equal(t, Ref{TypeTable, 1, "webhosts:80"}, www.Tables[0].Ref)
	assert.Equal(t, 2, www.Tables[0].HostsUp)
	assert.Equal(t, Ref{TypeTable, 2, "fallback:80"}, www.Tables[1].Ref)

	// The relay's copy of webhosts:80 has its own ids: same names, table 3,
	// hosts 5-7.
	rt := s.Relays[0].Tables
	require.Len(t, rt, 1)
	assert.Equal(t, Ref{TypeTable, 3, "webhosts:80"}, rt[0].Ref)
	var ids []uint32
	for _, h := range rt[0].Hosts {
		ids = append(ids, h.ID)
	}
	assert.Equal(t, []uint32{5, 6, 7}, ids)
	down := rt[0].Hosts[2]
	assert.Equal(t, "10.0.0.13", down.Name)
	assert.Equal(t, StateDown, down.State)
	require.NotNil(t, down.Availability)
	assert.InDelta(t, 89.99, *down.Availability, 1e-9)
	assert.Nil(t, down.Checks, "show summary prints no check lines")
}

func TestParseSummary_TableUnderTwoRelaysIsKeptUnderEach(t *testing.T) {
	out := header +
		row(1, "relay", "one", "", "active") +
		row(4, "table", "shared:80", "", "active (1 hosts)") +
		row(9, "host", "10.0.0.9", "100.00%", "up") +
		row(2, "relay", "two", "", "active") +
		row(4, "table", "shared:80", "", "active (1 hosts)") +
		row(9, "host", "10.0.0.9", "100.00%", "up")
	s := ParseSummary([]byte(out))
	require.Empty(t, s.Unknown)
	require.Len(t, s.Relays, 2)
	for _, r := range s.Relays {
		require.Len(t, r.Tables, 1, r.Name)
		assert.Equal(t, uint32(4), r.Tables[0].ID)
		require.Len(t, r.Tables[0].Hosts, 1)
		assert.Equal(t, uint32(9), r.Tables[0].Hosts[0].ID)
	}
	assert.Equal(t, 3, s.Relays[0].Tables[0].Line)
	assert.Equal(t, 6, s.Relays[1].Tables[0].Line)

	d := s.Digest(Summary{})
	assert.Equal(t, 1, d.Tables, "one table, printed twice")
	assert.Equal(t, 1, d.Hosts)
	assert.True(t, d.Healthy())
}

func TestParseSummary_NamesWithSpacesAndTabs(t *testing.T) {
	out := header +
		row(1, "redirect", "front end www", "", "active") +
		row(1, "table", "web pool:80", "", "active (1 hosts)") +
		row(1, "host", "10.0.0.5 parent 3", "99.90%", "up") +
		"2   \trelay   \tname\twith tab\t       \tdisabled\n"
	s := ParseSummary([]byte(out))
	require.Empty(t, s.Unknown)
	assert.Equal(t, "front end www", s.Redirects[0].Name)
	assert.Equal(t, "web pool:80", s.Redirects[0].Tables[0].Name)
	h := s.Redirects[0].Tables[0].Hosts[0]
	assert.Equal(t, "10.0.0.5", h.Name, "the parent is not part of the name")
	assert.Equal(t, uint32(3), h.ParentID)
	assert.Equal(t, "name\twith tab", s.Relays[0].Name)
	assert.Equal(t, StateDisabled, s.Relays[0].State)
}

func TestParseSummary_TrailingWhitespaceAndCRAreIgnored(t *testing.T) {
	clean := fixture(t, "show_summary.txt")
	messy := strings.ReplaceAll(string(clean), "\n", "  \t \r\n") + "\n   \n"
	a, b := ParseSummary(clean), ParseSummary([]byte(messy))
	require.Empty(t, b.Unknown)
	assert.Equal(t, a, b)
}

func TestParseSummary_EmptyOutputAndHeaderOnly(t *testing.T) {
	for name, out := range map[string]string{"empty": "", "newline": "\n", "header only": header} {
		t.Run(name, func(t *testing.T) {
			s := ParseSummary([]byte(out))
			assert.Equal(t, Summary{}, s)
			d := s.Digest(Summary{})
			assert.True(t, d.Healthy())
			assert.Zero(t, d.Hosts)
		})
	}
}

func TestParseSummary_OlderHostsUpWording(t *testing.T) {
	// pfSense's capture, relayd of about 2008 (FORMATS.md §8).
	out := header +
		row(1, "redirect", "testvs2", "", "active") +
		row(5, "table", "test2:80", "", "active (3 hosts up)") +
		row(11, "host", "192.168.1.2", "91.55%", "up")
	s := ParseSummary([]byte(out))
	require.Empty(t, s.Unknown)
	tb := s.Redirects[0].Tables[0]
	assert.Equal(t, StateActive, tb.State)
	assert.Equal(t, 3, tb.HostsUp)
	assert.Equal(t, "active (3 hosts up)", tb.Status)
}

func TestParseSummary_StatusMustBeOneTheTypeHas(t *testing.T) {
	tests := []struct {
		typ, avail, status string
		state              State
		ok                 bool
	}{
		{"redirect", "", "active (using backup table)", StateActive, true},
		{"redirect", "", "down", StateDown, true},
		{"redirect", "", "up", "", false},
		{"table", "", "empty", StateEmpty, true},
		{"table", "", "active (0 hosts)", StateActive, true},
		{"table", "", "active", "", false},
		{"table", "", "active (x hosts)", "", false},
		{"host", "", "unknown", StateUnknown, true},
		{"host", "0.00%", "down", StateDown, true},
		{"host", "100%", "up", "", false},
		{"host", "", "active", "", false},
		{"relay", "", "active", StateActive, true},
		{"relay", "", "down", "", false},
		{"router", "", "disabled", StateDisabled, true},
		{"relay", "50.00%", "active", "", false},
		{"service", "", "active", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.typ+" "+tt.status, func(t *testing.T) {
			out := header + row(1, "redirect", "r", "", "active") + row(1, "table", "t:80", "", "active (1 hosts)") +
				row(7, tt.typ, "x", tt.avail, tt.status)
			s := ParseSummary([]byte(out))
			if !tt.ok {
				require.Len(t, s.Unknown, 1)
				assert.Equal(t, 4, s.Unknown[0].N)
				assert.NotEmpty(t, s.Unknown[0].Reason)
				return
			}
			require.Empty(t, s.Unknown)
			var got Row
			s.walk(func(_ Ref, tb *Table, h *Host) {
				if h != nil && h.ID == 7 {
					got = h.Row
				} else if h == nil && tb.ID == 7 {
					got = tb.Row
				}
			})
			for _, r := range s.parents() {
				if r.ID == 7 {
					got = r
				}
			}
			assert.Equal(t, tt.state, got.State)
			assert.Equal(t, tt.status, got.Status)
		})
	}
}

func TestParseSummary_UnknownLinesInTheMiddleAreKept(t *testing.T) {
	out := header +
		row(1, "redirect", "www", "", "active") +
		row(1, "table", "webhosts:80", "", "active (2 hosts)") +
		row(1, "host", "10.0.0.11", "100.00%", "up") +
		"relayctl: something odd\n" +
		row(2, "host", "10.0.0.12", "100.00%", "up")
	s := ParseSummary([]byte(out))
	require.Len(t, s.Unknown, 1)
	assert.Equal(t, Line{N: 5, Text: "relayctl: something odd", Reason: "not a line show summary prints"}, s.Unknown[0])
	// Free text says nothing about the tree, so host 2 stays in its table.
	assert.Len(t, s.Redirects[0].Tables[0].Hosts, 2)
}

func TestParseSummary_BrokenRowIsNotAParentForTheRowsBelow(t *testing.T) {
	out := header +
		row(1, "redirect", "www", "", "active") +
		row(1, "table", "webhosts:80", "", "active (1 hosts)") +
		row(1, "host", "10.0.0.11", "100.00%", "up") +
		row(2, "table", "fallback:80", "", "half alive") +
		row(4, "host", "10.0.0.20", "100.00%", "up") +
		row(3, "table", "other:80", "", "active (1 hosts)") +
		row(5, "host", "10.0.0.30", "100.00%", "up") +
		row(9, "service", "old", "", "active") +
		row(6, "table", "orphan:80", "", "empty")
	s := ParseSummary([]byte(out))
	var got []string
	for _, u := range s.Unknown {
		got = append(got, fmt.Sprintf("%d %s", u.N, u.Reason))
	}
	assert.Equal(t, []string{
		`5 status "half alive" is not one a table has`,
		"6 host row without a table row above it",
		`9 unknown type "service"`,
		"10 table row without a redirect, relay or router row above it",
	}, got)
	tables := s.Redirects[0].Tables
	require.Len(t, tables, 2)
	assert.Len(t, tables[0].Hosts, 1, "host 4 is not hung under webhosts:80")
	assert.Equal(t, "other:80", tables[1].Name, "the next good table opens again")
	assert.Len(t, tables[1].Hosts, 1)
}

func TestParseSummary_LinesOtherViewsPrintAreUnknown(t *testing.T) {
	out := header +
		row(1, "redirect", "www", "", "active") +
		statsLines("5", "1/60s 1/h 1/d", "1/60s 1/h 1/d") +
		row(1, "table", "webhosts:80", "", "active (1 hosts)") +
		row(1, "host", "10.0.0.11", "100.00%", "up") +
		checkLine("10/10 checks") +
		header
	s := ParseSummary([]byte(out))
	var got []string
	for _, u := range s.Unknown {
		got = append(got, fmt.Sprintf("%d %s", u.N, u.Reason))
	}
	assert.Equal(t, []string{
		"3 show summary does not print statistics lines",
		"4 show summary does not print statistics lines",
		"5 show summary does not print statistics lines",
		"8 show summary does not print check lines",
		"9 a second header",
	}, got)
	assert.Len(t, s.Redirects[0].Tables[0].Hosts, 1)
}

func TestParseHosts_ChecksRetriesAndLastError(t *testing.T) {
	out := header +
		row(1, "table", "webhosts:80", "", "active (1 hosts)") +
		row(1, "host", "10.0.0.11", "100.00%", "up") +
		checkLine("17280/17280 checks") +
		row(2, "host", "10.0.0.12", "50.00%", "down") +
		checkLine("5/10 checks, 2 retries, error: http code mismatch") +
		row(3, "host", "10.0.0.13", "", "unknown") +
		row(2, "table", "off:80", "", "disabled")
	s := ParseHosts([]byte(out))
	require.Empty(t, s.Unknown)
	require.Len(t, s.Tables, 2, "show hosts has no parents: tables are the top level")
	hosts := s.Tables[0].Hosts
	require.Len(t, hosts, 3)
	assert.Equal(t, &Checks{Line: 4, Up: 17280, Total: 17280}, hosts[0].Checks)
	assert.Equal(t, &Checks{Line: 6, Up: 5, Total: 10, Retries: 2, Error: "http code mismatch"}, hosts[1].Checks)
	assert.Nil(t, hosts[2].Checks, "no check has completed")
	assert.Nil(t, hosts[2].Availability)
	assert.Equal(t, StateDisabled, s.Tables[1].State)
}

func TestParseHosts_CheckLineNotUnderAHostIsUnknown(t *testing.T) {
	out := header +
		row(1, "table", "webhosts:80", "", "active (1 hosts)") +
		checkLine("1/1 checks") +
		row(1, "host", "10.0.0.11", "100.00%", "up") +
		checkLine("1/1 checks") +
		checkLine("2/2 checks") +
		row(1, "redirect", "www", "", "active") +
		row(2, "host", "10.0.0.12", "100.00%", "up")
	s := ParseHosts([]byte(out))
	var got []string
	for _, u := range s.Unknown {
		got = append(got, fmt.Sprintf("%d %s", u.N, u.Reason))
	}
	assert.Equal(t, []string{
		"3 check line not right after a host row",
		"6 check line not right after a host row",
		"7 show hosts does not print redirect rows",
		"8 host row without a table row above it",
	}, got)
	assert.Equal(t, uint64(1), s.Tables[0].Hosts[0].Checks.Total)
}

func TestParseRedirects_StatsBlockBelongsToTheRowAbove(t *testing.T) {
	out := header +
		row(1, "redirect", "www", "", "active") +
		statsLines("1283377", "412/60s 23554/h 601213/d", "398/60s 23120/h 574880/d") +
		row(2, "redirect", "fresh", "", "active") +
		row(3, "redirect", "off", "", "disabled")
	s := ParseRedirects([]byte(out))
	require.Empty(t, s.Unknown)
	require.Len(t, s.Redirects, 3)
	assert.Equal(t, &Stats{
		Line:    3,
		Total:   1283377,
		Last:    Rate{Interval: time.Minute, Sessions: 412, Hour: 23554, Day: 601213},
		Average: Rate{Interval: time.Minute, Sessions: 398, Hour: 23120, Day: 574880},
	}, s.Redirects[0].Stats)
	assert.Nil(t, s.Redirects[1].Stats, "no session counted yet: no block")
	assert.Nil(t, s.Redirects[2].Stats)
}

func TestParseRelays_IncompleteStatsBlockIsUnknown(t *testing.T) {
	out := header +
		row(1, "relay", "wwwtls", "", "active") +
		fmt.Sprintf("\t%8s\ttotal: 5 sessions\n", "") +
		fmt.Sprintf("\t%8s\taverage: 1/60s 1/h 1/d sessions\n", "") +
		row(2, "relay", "other", "", "active")
	s := ParseRelays([]byte(out))
	require.Len(t, s.Relays, 2)
	assert.Nil(t, s.Relays[0].Stats)
	require.Len(t, s.Unknown, 2)
	assert.Equal(t, 3, s.Unknown[0].N)
	assert.Equal(t, "statistics line outside a complete block right after a redirect or relay row", s.Unknown[1].Reason)
}

func TestParseSessions_Fixture(t *testing.T) {
	ss, unknown := ParseSessions(fixture(t, "show_sessions.txt"))
	require.Empty(t, unknown)
	require.Len(t, ss, 2)
	assert.Equal(t, Session{
		Line: 1, PeerID: 0, ID: 3119,
		ClientAddr: netip.MustParseAddr("198.51.100.23"), ClientPort: 51532,
		ServerAddr: netip.MustParseAddr("10.0.0.11"), ServerPort: 80,
		Age: 4 * time.Second, Idle: time.Second, Relay: 1, PID: 48213,
	}, ss[0])
	assert.Equal(t, 97*time.Second, ss[1].Age)
}

func TestParseSessions_IPv6SplitsPortAtLastColon(t *testing.T) {
	out := "session 0:7 2001:db8::1:51532 -> 2001:db8::2:443\tRUNNING\n" +
		"\tage 00:00:01, idle 00:00:00, relay 2, pid 100\n" +
		"session 0:8 fe80::1%em0:1024 -> ::ffff:10.0.0.1:80\tDONE\n" +
		"\tage 00:00:01, idle 00:00:00, relay 2, pid 100\n"
	ss, unknown := ParseSessions([]byte(out))
	require.Empty(t, unknown)
	require.Len(t, ss, 2)
	assert.Equal(t, netip.MustParseAddr("2001:db8::1"), ss[0].ClientAddr)
	assert.Equal(t, uint16(51532), ss[0].ClientPort)
	assert.Equal(t, netip.MustParseAddr("2001:db8::2"), ss[0].ServerAddr)
	assert.Equal(t, uint16(443), ss[0].ServerPort)
	assert.Equal(t, "em0", ss[1].ClientAddr.Zone())
	assert.Equal(t, netip.MustParseAddr("::ffff:10.0.0.1"), ss[1].ServerAddr)
	assert.True(t, ss[1].Done)
}

func TestParseSessions_BackendNotConnectedHasNoServerAddress(t *testing.T) {
	out := "session 0:1 192.0.2.1:5000 -> :80\tRUNNING\n\tage 00:00:00, idle 00:00:00, relay 1, pid 7\n"
	ss, unknown := ParseSessions([]byte(out))
	require.Empty(t, unknown)
	require.Len(t, ss, 1)
	assert.False(t, ss[0].ServerAddr.IsValid())
	assert.Equal(t, uint16(80), ss[0].ServerPort)
}

func TestParseSessions_TagOldFormatsAndLongAges(t *testing.T) {
	tests := []struct {
		name, age string
		want      Session
	}{
		{"tag", "\tage 123:04:05, idle 00:00:09, relay 3, pid 42, tag (id) 5",
			Session{Age: 123*time.Hour + 4*time.Minute + 5*time.Second, Idle: 9 * time.Second, Relay: 3, PID: 42, Tag: 5}},
		{"2011 mark, no pid", "\tage 00:00:01, idle 00:00:01, relay 3, mark 8",
			Session{Age: time.Second, Idle: time.Second, Relay: 3, Mark: 8}},
		{"2007 relay only", "\tage 00:00:01, idle 00:00:01, relay 3",
			Session{Age: time.Second, Idle: time.Second, Relay: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := "session 0:1 192.0.2.1:5000 -> 10.0.0.1:80\tRUNNING\n" + tt.age + "\n"
			ss, unknown := ParseSessions([]byte(out))
			require.Empty(t, unknown)
			require.Len(t, ss, 1)
			got := ss[0]
			assert.Equal(t, tt.want.Age, got.Age)
			assert.Equal(t, tt.want.Idle, got.Idle)
			assert.Equal(t, tt.want.Relay, got.Relay)
			assert.Equal(t, tt.want.PID, got.PID)
			assert.Equal(t, tt.want.Tag, got.Tag)
			assert.Equal(t, tt.want.Mark, got.Mark)
		})
	}
}

func TestParseSessions_UnpairedAndBadLinesAreUnknown(t *testing.T) {
	out := "session 0:1 192.0.2.1:5000 -> 10.0.0.1:80\tRUNNING\n" +
		"session 0:2 192.0.2.1:5001 -> 10.0.0.1:80\tRUNNING\n" +
		"\tage 00:00:01, idle 00:00:01, relay 1, pid 9\n" +
		"\tage 00:00:01, idle 00:00:01, relay 1, pid 9\n" +
		"session 0:3 192.0.2.999:5002 -> 10.0.0.1:80\tRUNNING\n" +
		"\tage 00:00:01, idle 00:00:01, relay 1, pid 9\n" +
		"session 0:4 192.0.2.1:70000 -> 10.0.0.1:80\tRUNNING\n" +
		"\tage 00:00:01, idle 00:00:01, relay 1, pid 9\n"
	ss, unknown := ParseSessions([]byte(out))
	require.Len(t, ss, 1)
	assert.Equal(t, uint32(2), ss[0].ID)
	var got []string
	for _, u := range unknown {
		got = append(got, fmt.Sprintf("%d %s", u.N, u.Reason))
	}
	assert.Equal(t, []string{
		"1 session line without its age line",
		"4 age line without its session line",
		`5 address "192.0.2.999" is not an IP address`,
		"6 the session line above was not understood",
		`7 number "70000" out of range`,
		"8 the session line above was not understood",
	}, got)
}

func TestParseSessions_NoSessionsIsEmptyOutput(t *testing.T) {
	ss, unknown := ParseSessions(fixture(t, "reload.txt")) // 0 bytes, as show sessions prints with no session
	assert.Empty(t, ss)
	assert.Empty(t, unknown)
}

func TestParseMonitor_HostStatusAndTableChanged(t *testing.T) {
	events, unknown := ParseMonitor(fixture(t, "monitor.txt"))
	require.Empty(t, unknown)
	require.Len(t, events, 3)
	assert.Equal(t, Event{Line: 5, Name: "host_status", Type: 37, Len: 48, PeerID: 0, PID: 1,
		Time: time.Date(2025, 11, 25, 10, 11, 11, 0, time.UTC), ID: 3, State: StateDown}, events[1])
	assert.Equal(t, "ctl_table_changed", events[2].Name)
	assert.Empty(t, events[2].State)
}

func TestParseMonitor_CutShortAndStrayLinesAreUnknown(t *testing.T) {
	out := "\tid: 1\n" +
		"ctl_host_disable: imsg type 22 len 84 peerid 0 pid 1\n" +
		"\ttimestamp: 1764065471, Tue Nov 25 10:11:11 2025\n" +
		"\tid: 4\n\tname: 10.0.0.20\n\tid: 5\n" +
		"host_status: imsg type 37 len 48 pe"
	events, unknown := ParseMonitor([]byte(out))
	require.Len(t, events, 1)
	assert.Equal(t, uint32(4), events[0].ID)
	assert.Equal(t, "10.0.0.20", events[0].Object)
	var got []int
	for _, u := range unknown {
		got = append(got, u.N)
	}
	assert.Equal(t, []int{1, 6, 7}, got)
}

func TestParseCheck_Outcomes(t *testing.T) {
	tests := []struct {
		name     string
		stderr   string
		exit     int
		ok       bool
		errors   []ConfigError
		messages []string
		cond     Condition // of the error; "" for none
	}{
		{name: "ok", stderr: "configuration OK\n", ok: true},
		{name: "errors", exit: 1, stderr: "/etc/relayd.conf:16: unknown table webhost\n" +
			"/etc/relayd.d/inc.conf:3: syntax error\nno actions, nothing to do\n",
			errors:   []ConfigError{{"/etc/relayd.conf", 16, "unknown table webhost"}, {"/etc/relayd.d/inc.conf", 3, "syntax error"}},
			messages: []string{"no actions, nothing to do"}},
		{name: "need root", exit: 1, stderr: "relayd: need root privileges\n",
			messages: []string{"relayd: need root privileges"}, cond: NeedRoot},
		{name: "unreadable file before the root check", exit: 1, stderr: "pushfile: /etc/relayd.conf: Permission denied\n",
			messages: []string{"pushfile: /etc/relayd.conf: Permission denied"}, cond: NeedRoot},
		{name: "a macro error comes before the root check", exit: 1, stderr: "/etc/relayd.conf:7: macro 'web1' not defined\n",
			errors: []ConfigError{{"/etc/relayd.conf", 7, "macro 'web1' not defined"}}},
		{name: "warning then ok", stderr: "warning: macro 'web9' not used\nconfiguration OK\n", ok: true,
			messages: []string{"warning: macro 'web9' not used"}},
		{name: "exit 0 without ok", stderr: "", cond: OtherError},
		{name: "killed without a word", exit: -1, cond: OtherError},
		{name: "doas refused", exit: 1, stderr: "doas: Operation not permitted\n",
			messages: []string{"doas: Operation not permitted"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseCheck([]byte(tt.stderr), tt.exit)
			assert.Equal(t, tt.ok, r.OK)
			assert.Equal(t, tt.errors, r.Errors)
			var msgs []string
			for _, m := range r.Messages {
				msgs = append(msgs, m.Text)
			}
			assert.Equal(t, tt.messages, msgs)
			if tt.cond == "" {
				require.NoError(t, err)
				return
			}
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tt.cond, e.Condition)
			assert.Equal(t, "relayd -n", e.Tool)
		})
	}
}

func TestConfigError_PrintsAsFileLineMessage(t *testing.T) {
	r, err := ParseCheck(fixture(t, "relayd_n_err.txt"), 1)
	require.NoError(t, err)
	require.Len(t, r.Errors, 2)
	assert.Equal(t, "/etc/relayd.conf:29: cannot load keypair www.example.com for relay wwwtls", r.Errors[1].String())
}

func TestClassify_Conditions(t *testing.T) {
	tests := []struct {
		name           string
		stdout, stderr string
		exit           int
		cond           Condition
		socket         string
		msg            string // part of the error message
	}{
		{name: "show output", stdout: header, cond: Done},
		{name: "reload prints nothing", cond: Done},
		{name: "poll", stdout: "command succeeded\n", cond: Succeeded},
		{name: "log verbose", stdout: "logging request sent.\n", cond: LogSent},
		{name: "no such host", stdout: "command failed\n", exit: 1, cond: CommandFailed, msg: "command failed"},
		{name: "not running", stderr: "relayctl: connect: /var/run/relayd.sock: No such file or directory\n", exit: 1,
			cond: NotRunning, socket: "/var/run/relayd.sock", msg: "relayd is not running"},
		{name: "socket moved by -s", stderr: "relayctl: connect: /tmp/my relay: sock: Connection refused\n", exit: 1,
			cond: ConnectionRefused, socket: "/tmp/my relay: sock", msg: "connection refused"},
		{name: "permission", stderr: "relayctl: connect: /var/run/relayd.sock: Permission denied\n", exit: 1,
			cond: PermissionDenied, socket: "/var/run/relayd.sock", msg: "group of its directory"},
		{name: "unknown argument", stderr: "unknown argument: foo\nvalid commands/args:\n  summary\n", exit: 1,
			cond: UsageError, msg: "unknown argument: foo"},
		{name: "ambiguous", stderr: "ambiguous argument: s\nvalid commands/args:\n", exit: 1, cond: UsageError},
		{name: "usage line", stderr: "usage: relayctl [-s socket] command [argument ...]\n", exit: 1, cond: UsageError},
		{name: "pipe closed", stderr: "relayctl: pipe closed\n", exit: 1, cond: OtherError,
			msg: "relayctl failed with exit status 1: relayctl: pipe closed"},
		{name: "timeout", exit: -1, cond: OtherError, msg: "did not finish"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cond, err := Classify([]byte(tt.stdout), []byte(tt.stderr), tt.exit)
			assert.Equal(t, tt.cond, cond)
			if tt.exit == 0 {
				require.NoError(t, err)
				return
			}
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tt.cond, e.Condition)
			assert.Equal(t, tt.socket, e.Socket)
			assert.Contains(t, err.Error(), tt.msg)
			assert.Equal(t, strings.ToLower(err.Error()[:1]), err.Error()[:1], "errors start in lower case")
		})
	}
}

func TestDigest_HostsDownCarryLastErrorAndAvailability(t *testing.T) {
	s := ParseSummary(fixture(t, "show_summary.txt"))
	d := s.Digest(ParseHosts(fixture(t, "show_hosts.txt")))
	assert.Equal(t, 1, d.Redirects)
	assert.Equal(t, 1, d.Relays)
	assert.Equal(t, 3, d.Tables)
	assert.Equal(t, 7, d.Hosts)
	assert.Equal(t, 5, d.HostsUp)
	assert.Empty(t, d.NotActive)
	require.Len(t, d.TablesDown, 2)
	assert.Equal(t, []uint32{1, 3}, []uint32{d.TablesDown[0].ID, d.TablesDown[1].ID})
	assert.Equal(t, []Ref{{TypeRelay, 1, "wwwtls"}}, d.TablesDown[1].Parents)
	require.Len(t, d.HostsDown, 2)
	h := d.HostsDown[0]
	assert.Equal(t, Ref{TypeHost, 3, "10.0.0.13"}, h.Ref)
	require.NotNil(t, h.Checks)
	assert.Equal(t, "tcp connect failed", h.Checks.Error)
	assert.InDelta(t, 89.99, *h.Availability, 1e-9)
	assert.Equal(t, Ref{TypeTable, 1, "webhosts:80"}, h.Table)
	assert.Equal(t, []Ref{{TypeRedirect, 1, "www"}}, h.Parents)
	assert.False(t, d.Healthy())
}

func TestDigest_WithoutShowHostsHasNoChecks(t *testing.T) {
	d := ParseSummary(fixture(t, "show_summary.txt")).Digest(Summary{})
	require.Len(t, d.HostsDown, 2)
	assert.Nil(t, d.HostsDown[0].Checks)
}

func TestDigest_NotActiveAndSharedTableDown(t *testing.T) {
	out := header +
		row(1, "redirect", "a", "", "active (using backup table)") +
		row(1, "table", "pool:80", "", "empty") +
		row(1, "host", "10.0.0.1", "0.00%", "down") +
		row(2, "table", "spare:80", "", "active (1 hosts)") +
		row(2, "host", "10.0.0.2", "100.00%", "up") +
		row(2, "redirect", "b", "", "down") +
		row(1, "table", "pool:80", "", "empty") +
		row(1, "host", "10.0.0.1", "0.00%", "down") +
		row(3, "redirect", "c", "", "disabled") +
		row(1, "relay", "r", "", "active")
	d := ParseSummary([]byte(out)).Digest(Summary{})
	var names []string
	for _, r := range d.NotActive {
		names = append(names, r.Name+" "+r.Status)
	}
	assert.Equal(t, []string{"a active (using backup table)", "b down", "c disabled"}, names)
	require.Len(t, d.TablesDown, 1)
	assert.Equal(t, []Ref{{TypeRedirect, 1, "a"}, {TypeRedirect, 2, "b"}}, d.TablesDown[0].Parents)
	assert.Equal(t, 1, d.TablesDown[0].Hosts)
	require.Len(t, d.HostsDown, 1, "host 1 is one host, printed twice")
	assert.Len(t, d.HostsDown[0].Parents, 2)
	assert.Equal(t, 2, d.Hosts)
}

func TestCompare_SameSummaryHasNoChanges(t *testing.T) {
	s := ParseSummary(fixture(t, "show_summary.txt"))
	d := Compare(s, s)
	assert.Equal(t, Diff{}, d)
	assert.True(t, d.SameObjects())
}

func TestCompare_ReloadThatRenumbersIsNoChange(t *testing.T) {
	before := header + row(1, "redirect", "www", "", "active") + row(1, "table", "w:80", "", "active (1 hosts)") +
		row(1, "host", "10.0.0.1", "100.00%", "up") + row(1, "relay", "tls", "", "active")
	after := header + row(5, "redirect", "www", "", "active") + row(7, "table", "w:80", "", "active (1 hosts)") +
		row(9, "host", "10.0.0.1", "100.00%", "up") + row(2, "relay", "tls", "", "active")
	assert.Equal(t, Diff{}, Compare(ParseSummary([]byte(before)), ParseSummary([]byte(after))))
}

func TestCompare_ReloadVerification(t *testing.T) {
	before := header +
		row(1, "redirect", "www", "", "active") +
		row(1, "table", "web:80", "", "active (2 hosts)") +
		row(1, "host", "10.0.0.1", "100.00%", "up") +
		row(2, "host", "10.0.0.2", "100.00%", "up") +
		row(3, "host", "10.0.0.3", "0.00%", "down") +
		row(4, "host", "10.0.0.4", "100.00%", "up") +
		row(2, "redirect", "old", "", "active") +
		row(1, "relay", "tls", "", "active")
	after := header +
		row(1, "redirect", "www", "", "active") +
		row(1, "table", "web:80", "", "active (1 hosts)") +
		row(1, "host", "10.0.0.1", "", "unknown") +
		row(2, "host", "10.0.0.2", "0.00%", "down") +
		row(3, "host", "10.0.0.3", "100.00%", "up") +
		row(4, "host", "10.0.0.5", "", "unknown") +
		row(1, "relay", "tls", "", "disabled") +
		row(2, "relay", "new", "", "active")
	d := Compare(ParseSummary([]byte(before)), ParseSummary([]byte(after)))
	assert.False(t, d.SameObjects())
	assert.Equal(t, []Ref{{TypeRelay, 2, "new"}}, d.Added)
	assert.Equal(t, []Ref{{TypeRedirect, 2, "old"}}, d.Removed)
	assert.Equal(t, []Change{{Ref: Ref{TypeRelay, 1, "tls"}, Before: "active", After: "disabled"}}, d.Changed)

	hostStates := func(cs []HostChange) []string {
		var out []string
		for _, c := range cs {
			out = append(out, fmt.Sprintf("%s %s->%s", c.Host.Name, c.Before, c.After))
		}
		return out
	}
	assert.Equal(t, []string{
		"10.0.0.1 up->unknown", "10.0.0.2 up->down", "10.0.0.3 down->up", "10.0.0.5 ->unknown", "10.0.0.4 up->",
	}, hostStates(d.Hosts))
	assert.Equal(t, []string{"10.0.0.3 down->up"}, hostStates(d.CameUp()))
	assert.Equal(t, []string{"10.0.0.2 up->down"}, hostStates(d.WentDown()))
	assert.Equal(t, Ref{TypeRedirect, 1, "www"}, d.Hosts[0].Parent)
}

func TestCompare_TablePrintedTwiceIsMatchedPerParent(t *testing.T) {
	mk := func(second string) Summary {
		return ParseSummary([]byte(header +
			row(1, "relay", "one", "", "active") + row(4, "table", "shared:80", "", "active (1 hosts)") +
			row(9, "host", "10.0.0.9", "100.00%", "up") +
			row(2, "relay", "two", "", "active") + row(4, "table", "shared:80", "", "active (1 hosts)") +
			row(9, "host", "10.0.0.9", "100.00%", second)))
	}
	d := Compare(mk("up"), mk("down"))
	require.Len(t, d.Hosts, 1, "a contradiction in one copy shows once, under its parent")
	assert.Equal(t, "two", d.Hosts[0].Parent.Name)
}

func TestRef_String(t *testing.T) {
	assert.Equal(t, "table webhosts:80 (id 3)", Ref{TypeTable, 3, "webhosts:80"}.String())
}
