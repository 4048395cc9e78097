package bench

import (
	"testing"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These run under plain `go test` (no network, no tools): the parsers the
// benchmarks rely on, on outputs as the tools print them.

func TestParseOpsbotScan_TCPTableAndCounts(t *testing.T) {
	out := `127.0.0.1 tcp 1-65535: 2 open
PORT      STATE  SERVICE  EVIDENCE
22/tcp    open   ssh      handshake completed, 0.1 ms
2024/tcp  open   -        handshake completed, 0.5 ms
ports: 2 open, 65533 closed | duration: 612 ms | rate: 107000 ports/s
`
	r := ParseOpsbotScan(out)
	assert.Equal(t, NewPortSet(22, 2024), r.Open())
	assert.Equal(t, 65533, r.Counts[stClosed])
	assert.Equal(t, stClosed, r.StateOf(80))
	assert.Equal(t, "612 ms", opsbotDuration(out))
}

func TestParseOpsbotScan_UDPNotes(t *testing.T) {
	out := `10.213.3.2 udp 1-100: 2 open
PORT    STATE  SERVICE  EVIDENCE
37/udp  open   time     reply, 0.3 ms
53/udp  open   domain   DNS reply, 0.2 ms
ports: 2 open, 94 closed, 4 open|filtered | duration: 31.20 s | rate: 3 ports/s
open|filtered (no reply and no ICMP error, while a closed port of the same host did answer, so these are not closed: open or dropped by a firewall): 55
unconfirmed (silent, and the host's ICMP rate limit or a firewall kept opsbot from telling closed from open|filtered): 7, 9-10
The target rate-limits ICMP errors; opsbot paced its probes so that closed ports read closed.
`
	r := ParseOpsbotScan(out)
	assert.Equal(t, NewPortSet(37, 53), r.Open())
	assert.Equal(t, NewPortSet(7, 9, 10, 55), r.States[stOpenFiltered])
	assert.Equal(t, NewPortSet(7, 9, 10), r.Unconfirmed)
	assert.Equal(t, 4, r.Counts[stOpenFiltered])
	assert.Equal(t, 94, r.Counts[stClosed])
	assert.Equal(t, stOpenFiltered, r.StateOf(9))
	assert.Equal(t, stClosed, r.StateOf(8))
	assert.Equal(t, stOpen, r.StateOf(53))
}

func TestParseNmapGrepable_IgnoredStateIsTheRest(t *testing.T) {
	out := "# Nmap 7.93 scan initiated ... as: nmap -sU -n -Pn -p1-100 -oG - 10.213.3.2\n" +
		"Host: 10.213.3.2 ()\tStatus: Up\n" +
		"Host: 10.213.3.2 ()\tPorts: 37/open/udp//time///, 53/open/udp//domain///, 55/open|filtered/udp//isi-gl///\tIgnored State: closed (97)\n" +
		"# Nmap done at ... -- 1 IP address (1 host up) scanned in 97.12 seconds\n"
	r := ParseNmapGrepable(out)
	assert.Equal(t, NewPortSet(37, 53), r.Open())
	assert.Equal(t, stOpenFiltered, r.StateOf(55))
	assert.Equal(t, stClosed, r.StateOf(1))
	assert.Equal(t, 97, r.Counts[stClosed])
	assert.Equal(t, 1, r.Counts[stOpenFiltered])
}

func TestParseNmapGrepable_EveryPortListed(t *testing.T) {
	out := "Host: 127.0.0.1 ()\tPorts: 2023/closed/tcp//xinuexpansion3///, 2024/open/tcp//xinuexpansion4///\n# Nmap done\n"
	r := ParseNmapGrepable(out)
	assert.Equal(t, NewPortSet(2024), r.Open())
	assert.Equal(t, stClosed, r.StateOf(2023))
	assert.Empty(t, r.Rest)
}

func TestParseNcSucceeded_OnlySucceededLines(t *testing.T) {
	stderr := "nc: connect to 127.0.0.1 port 2023 (tcp) failed: Connection refused\n" +
		"Connection to 127.0.0.1 2024 port [tcp/*] succeeded!\n" +
		"Connection to 127.0.0.1 22 port [tcp/ssh] succeeded!\n" +
		"Connection to 10.213.3.2 53 port [udp/domain] succeeded!\n"
	assert.Equal(t, NewPortSet(22, 53, 2024), ParseNcSucceeded(stderr))
}

func TestPortSet_StringAndDiff(t *testing.T) {
	assert.Equal(t, "22, 80-82, 443", NewPortSet(443, 81, 22, 80, 82).String())
	assert.Equal(t, "none", PortSet{}.String())
	assert.Equal(t, "extra 40123; missing 80", diff(NewPortSet(22, 40123), NewPortSet(22, 80)))
}

func TestTimings_MedianAndQuantile(t *testing.T) {
	ms := func(v ...int) Timings {
		var out Timings
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	require.Equal(t, 3*time.Millisecond, ms(5, 1, 3).Median())
	require.Equal(t, 2500*time.Microsecond, ms(4, 1, 3, 2).Median())
	require.Equal(t, 100*time.Millisecond, ms(append(make([]int, 99), 100)...).Quantile(1))
	require.Equal(t, time.Duration(0), ms(append(make([]int, 99), 100)...).Quantile(0.99))
	require.Equal(t, time.Duration(0), Timings(nil).Median())
}

func TestParseHuman_ReadsWhatBotHumanWrites(t *testing.T) {
	for _, d := range []time.Duration{2500 * time.Microsecond, 660 * time.Millisecond, 1250 * time.Millisecond, 75 * time.Second} {
		got, ok := parseHuman(bot.Human(d))
		require.True(t, ok, bot.Human(d))
		assert.InDelta(t, float64(d), float64(got), float64(d)/100, bot.Human(d))
	}
	for _, bad := range []string{"", "fast", "1.5", "-1 s", "3 weeks"} {
		_, ok := parseHuman(bad)
		assert.False(t, ok, bad)
	}
}
