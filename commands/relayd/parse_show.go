package relayd

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Summary is what one show view printed, as a tree: each table under the
// redirect, relay or router row above it, each host under its table.
// `show summary` fills Redirects, Relays and Routers with their tables and
// hosts; `show hosts` prints tables without their users, so it fills Tables;
// `show redirects` and `show relays` fill only their own kind, with Stats.
//
// A table used by several redirects or relays is printed once per user with
// the same Id, and it appears once per user here too: the tree is what
// relayctl printed. Digest merges such copies by (type, id).
type Summary struct {
	Redirects []Redirect `json:"redirects,omitempty"`
	Relays    []Relay    `json:"relays,omitempty"`
	Routers   []Router   `json:"routers,omitempty"`
	Tables    []Table    `json:"tables,omitempty"` // only from show hosts
	Unknown   []Line     `json:"unknown,omitempty"`
}

// Row is one object line of a show view: the five TAB-separated columns
// Id, Type, Name, Avlblty and Status, each trimmed.
type Row struct {
	Ref
	Line   int    `json:"line"`
	Status string `json:"status"` // as printed: "active (2 hosts)"
	State  State  `json:"state"`
}

// Redirect is a redirect row (pf rdr rules) with what follows it.
type Redirect struct {
	Row
	UsingBackup bool    `json:"using_backup,omitempty"` // "active (using backup table)": every host of the main table is down
	Stats       *Stats  `json:"stats,omitempty"`        // show redirects, once it has counted a session
	Tables      []Table `json:"tables,omitempty"`       // the main table, then the backup table
}

// Relay is a relay row (relayd's layer 7 proxy) with what follows it.
type Relay struct {
	Row
	Stats  *Stats  `json:"stats,omitempty"` // show relays, once it has counted a session
	Tables []Table `json:"tables,omitempty"`
}

// Router is a router row with its gateway tables.
type Router struct {
	Row
	Tables []Table `json:"tables,omitempty"`
}

// Table is a table row with its hosts. Its Name carries the port
// ("webhosts:80"); the same name can belong to two tables with different
// ids when the table is used with different options.
type Table struct {
	Row
	HostsUp int    `json:"hosts_up"` // from "active (N hosts)"; 0 when empty or disabled
	Hosts   []Host `json:"hosts,omitempty"`
}

// Host is a host row.
type Host struct {
	Row
	ParentID     uint32   `json:"parent_id,omitempty"`    // "10.0.0.5 parent 3": the state of host 3 is inherited
	Availability *float64 `json:"availability,omitempty"` // percent of checks up; nil before the first check and after host disable
	Checks       *Checks  `json:"checks,omitempty"`       // show hosts only
}

// Checks is the line under a host in show hosts.
type Checks struct {
	Line    int    `json:"line"`
	Up      uint64 `json:"up"`
	Total   uint64 `json:"total"`
	Retries uint64 `json:"retries,omitempty"` // retries left before the host is called down (hce.c resets it after every good check), not failures
	Error   string `json:"error,omitempty"`   // the last check's failure, printed only while the host is down
}

// Stats are the three statistics lines under a redirect or relay in show
// redirects or show relays, printed once it has counted a session. Relay
// counts are summed over the preforked relay processes; redirect counts are
// pf states. For redirects Last.Day never resets (pfe.c resets the hour
// counter in its place), so it counts since relayd started.
type Stats struct {
	Line    int    `json:"line"` // of the total line; last and average follow it
	Total   uint64 `json:"total"`
	Last    Rate   `json:"last"`    // the last interval, the current hour, the current day
	Average Rate   `json:"average"` // running averages per interval, hour and day
}

// Rate is one "last:" or "average:" statistics line.
type Rate struct {
	Interval time.Duration `json:"interval"` // the stats interval, 60 s in relayd
	Sessions uint64        `json:"sessions"` // per interval
	Hour     uint64        `json:"hour"`
	Day      uint64        `json:"day"`
}

// ParseSummary parses `relayctl show summary`: redirects, relays and
// routers with their tables and hosts.
func ParseSummary(out []byte) Summary { return parseShow(viewSummary, out) }

// ParseHosts parses `relayctl show hosts`: tables with their hosts and each
// host's check counts and last error.
func ParseHosts(out []byte) Summary { return parseShow(viewHosts, out) }

// ParseRedirects parses `relayctl show redirects`: redirects with Stats.
func ParseRedirects(out []byte) Summary { return parseShow(viewRedirects, out) }

// ParseRelays parses `relayctl show relays`: relays with Stats.
func ParseRelays(out []byte) Summary { return parseShow(viewRelays, out) }

// view is the show subcommand whose output is parsed. Each prints only some
// kinds of lines (FORMATS.md §2.3); a line of another kind is kept as
// unknown, because it means the output is not what the caller thinks.
type view int

const (
	viewSummary view = iota
	viewHosts
	viewRedirects
	viewRelays
)

func (v view) String() string {
	switch v {
	case viewHosts:
		return "show hosts"
	case viewRedirects:
		return "show redirects"
	case viewRelays:
		return "show relays"
	}
	return "show summary"
}

func (v view) prints(t Type) bool {
	switch v {
	case viewHosts:
		return t == TypeTable || t == TypeHost
	case viewRedirects:
		return t == TypeRedirect
	case viewRelays:
		return t == TypeRelay
	}
	return true
}

// level is a row's depth in the tree: closing a level closes the ones
// below it, so that a host is never hung under a table it was not printed
// under.
func level(t Type) int {
	switch t {
	case TypeTable:
		return 1
	case TypeHost:
		return 2
	}
	return 0
}

var (
	// The detail lines start with TAB, padding, TAB (FORMATS.md §2.5, §2.6).
	checksRE     = regexp.MustCompile(`^\t *\ttotal: (\d+)/(\d+) checks(?:, (\d+) retries)?(?:, error: (.+))?$`)
	statTotalRE  = regexp.MustCompile(`^\t *\ttotal: (\d+) sessions$`)
	statRateRE   = regexp.MustCompile(`^\t *\t(last|average): (\d+)/(\d+)s (\d+)/h (\d+)/d sessions$`)
	tableUpRE    = regexp.MustCompile(`^active \((\d+) hosts(?: up)?\)$`) // " up": relayctl of about 2008
	availRE      = regexp.MustCompile(`^\d{1,3}\.\d\d%$`)
	hostParentRE = regexp.MustCompile(`^(.*) parent (\d+)$`)
)

type showParser struct {
	v     view
	lines []string
	out   Summary

	// tables is where a table row goes: the Tables of the redirect, relay
	// or router row above it, or the top level in show hosts. nil when no
	// such row is open.
	tables *[]Table
	// table is the open table, for host rows.
	table *Table
}

func parseShow(v view, out []byte) Summary {
	p := &showParser{v: v, lines: splitLines(out)}
	if v == viewHosts {
		p.tables = &p.out.Tables
	}
	first := true
	for i := 0; i < len(p.lines); i++ {
		line := rtrim(p.lines[i])
		if blank(line) {
			continue
		}
		if isHeader(line) {
			if !first {
				p.unknown(i, "a second header")
			}
			first = false
			continue
		}
		first = false
		fields := strings.Split(line, "\t")
		if !strings.HasPrefix(line, "\t") && (len(fields) >= 5 || isDigits(strings.TrimSpace(fields[0]))) {
			i += p.row(i, fields)
			continue
		}
		p.unknown(i, p.whyNotDetail(line))
	}
	return p.out
}

func isHeader(line string) bool {
	f := strings.Split(line, "\t")
	if len(f) != 5 {
		return false
	}
	for i, want := range []string{"Id", "Type", "Name", "Avlblty", "Status"} {
		if strings.TrimSpace(f[i]) != want {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (p *showParser) unknown(i int, reason string) {
	p.out.Unknown = append(p.out.Unknown, Line{N: i + 1, Text: p.lines[i], Reason: reason})
}

// whyNotDetail explains a line that is not a row. Check and statistics
// lines are taken only right after their row, so one found here is out of
// place.
func (p *showParser) whyNotDetail(line string) string {
	switch {
	case checksRE.MatchString(line) && p.v != viewHosts:
		return p.v.String() + " does not print check lines"
	case checksRE.MatchString(line):
		return "check line not right after a host row"
	case (statTotalRE.MatchString(line) || statRateRE.MatchString(line)) && p.v != viewRedirects && p.v != viewRelays:
		return p.v.String() + " does not print statistics lines"
	case statTotalRE.MatchString(line) || statRateRE.MatchString(line):
		return "statistics line outside a complete block right after a redirect or relay row"
	}
	return "not a line " + p.v.String() + " prints"
}

// close forgets the open rows from level down, after a row that could not
// be placed, so that the rows under it are reported rather than hung under
// the wrong parent.
func (p *showParser) close(from int) {
	if from <= 0 && p.v != viewHosts {
		p.tables = nil
	}
	if from <= 1 {
		p.table = nil
	}
}

// row places the object row at line i and returns how many following lines
// it took (its check line or statistics block).
func (p *showParser) row(i int, fields []string) int {
	row, extra, reason := parseRow(fields)
	row.Line = i + 1
	lvl := 0 // a row of no known type closes everything
	if len(fields) > 1 {
		if t := Type(strings.TrimSpace(fields[1])); isType(t) {
			lvl = level(t)
		}
	}
	if reason == "" && !p.v.prints(row.Type) {
		reason = fmt.Sprintf("%s does not print %s rows", p.v, row.Type)
	}
	if reason != "" {
		p.unknown(i, reason)
		p.close(lvl)
		return 0
	}
	switch row.Type {
	case TypeRedirect:
		r := Redirect{Row: row, UsingBackup: extra.backup}
		took := 0
		if p.v == viewRedirects {
			r.Stats, took = p.stats(i)
		}
		p.out.Redirects = append(p.out.Redirects, r)
		p.tables, p.table = &p.out.Redirects[len(p.out.Redirects)-1].Tables, nil
		return took
	case TypeRelay:
		r := Relay{Row: row}
		took := 0
		if p.v == viewRelays {
			r.Stats, took = p.stats(i)
		}
		p.out.Relays = append(p.out.Relays, r)
		p.tables, p.table = &p.out.Relays[len(p.out.Relays)-1].Tables, nil
		return took
	case TypeRouter:
		p.out.Routers = append(p.out.Routers, Router{Row: row})
		p.tables, p.table = &p.out.Routers[len(p.out.Routers)-1].Tables, nil
		return 0
	case TypeTable:
		if p.tables == nil {
			p.unknown(i, "table row without a redirect, relay or router row above it")
			p.close(1)
			return 0
		}
		*p.tables = append(*p.tables, Table{Row: row, HostsUp: extra.hostsUp})
		p.table = &(*p.tables)[len(*p.tables)-1]
		return 0
	default: // TypeHost
		if p.table == nil {
			p.unknown(i, "host row without a table row above it")
			return 0
		}
		h := Host{Row: row, ParentID: extra.parent, Availability: extra.avail}
		took := 0
		if p.v == viewHosts {
			h.Checks, took = p.checks(i)
		}
		p.table.Hosts = append(p.table.Hosts, h)
		return took
	}
}

func isType(t Type) bool {
	switch t {
	case TypeRedirect, TypeTable, TypeHost, TypeRelay, TypeRouter:
		return true
	}
	return false
}

// rowExtra is what a status or name says beyond the Row itself.
type rowExtra struct {
	backup  bool
	hostsUp int
	parent  uint32
	avail   *float64
}

// parseRow reads the columns of one object row. It returns a reason when
// the row is not one relayctl prints: a status the type does not have,
// availability on anything but a host.
func parseRow(fields []string) (Row, rowExtra, string) {
	var row Row
	var x rowExtra
	if len(fields) < 5 {
		return row, x, fmt.Sprintf("row with %d columns, not 5", len(fields))
	}
	id, err := strconv.ParseUint(strings.TrimSpace(fields[0]), 10, 32)
	if err != nil {
		return row, x, fmt.Sprintf("id %q is not a number", strings.TrimSpace(fields[0]))
	}
	row.ID = uint32(id)
	row.Type = Type(strings.TrimSpace(fields[1]))
	if !isType(row.Type) {
		return row, x, fmt.Sprintf("unknown type %q", row.Type)
	}
	last := len(fields) - 1
	// A name containing a TAB would add columns; Status and Avlblty never
	// contain one, so they are counted from the end.
	row.Name = strings.TrimSpace(strings.Join(fields[2:last-1], "\t"))
	avail := strings.TrimSpace(fields[last-1])
	row.Status = strings.TrimSpace(fields[last])

	if avail != "" && row.Type != TypeHost {
		return row, x, fmt.Sprintf("availability %q on a %s", avail, row.Type)
	}
	if avail != "" {
		if !availRE.MatchString(avail) {
			return row, x, fmt.Sprintf("availability %q is not a percentage", avail)
		}
		f, err := strconv.ParseFloat(strings.TrimSuffix(avail, "%"), 64)
		if err != nil {
			return row, x, fmt.Sprintf("availability %q is not a percentage", avail)
		}
		x.avail = &f
	}

	ok := false
	switch row.Type {
	case TypeRedirect:
		switch row.Status {
		case "active", "down", "disabled":
			row.State, ok = State(row.Status), true
		case "active (using backup table)":
			row.State, x.backup, ok = StateActive, true, true
		}
	case TypeTable:
		switch row.Status {
		case "empty", "disabled":
			row.State, ok = State(row.Status), true
		default:
			if m := tableUpRE.FindStringSubmatch(row.Status); m != nil {
				n, err := strconv.Atoi(m[1])
				if err == nil {
					row.State, x.hostsUp, ok = StateActive, n, true
				}
			}
		}
	case TypeHost:
		switch row.Status {
		case "up", "down", "unknown", "disabled":
			row.State, ok = State(row.Status), true
		}
		if m := hostParentRE.FindStringSubmatch(row.Name); m != nil {
			parent, err := strconv.ParseUint(m[2], 10, 32)
			if err != nil {
				return row, x, fmt.Sprintf("parent id %q is not a number", m[2])
			}
			row.Name, x.parent = m[1], uint32(parent)
		}
	default: // relays and routers
		switch row.Status {
		case "active", "disabled":
			row.State, ok = State(row.Status), true
		}
	}
	if !ok {
		return row, x, fmt.Sprintf("status %q is not one a %s has", row.Status, row.Type)
	}
	return row, x, ""
}

// checks takes the check line right after the host row at line i, if there
// is one: relayctl prints it only once a check has completed.
func (p *showParser) checks(i int) (*Checks, int) {
	if i+1 >= len(p.lines) {
		return nil, 0
	}
	m := checksRE.FindStringSubmatch(rtrim(p.lines[i+1]))
	if m == nil {
		return nil, 0
	}
	c := &Checks{Line: i + 2, Error: m[4]}
	var err error
	if c.Up, err = strconv.ParseUint(m[1], 10, 64); err != nil {
		return nil, 0
	}
	if c.Total, err = strconv.ParseUint(m[2], 10, 64); err != nil {
		return nil, 0
	}
	if m[3] != "" {
		if c.Retries, err = strconv.ParseUint(m[3], 10, 64); err != nil {
			return nil, 0
		}
	}
	return c, 1
}

// stats takes the three statistics lines right after the row at line i.
// relayctl prints them with one printf, so a block that is not complete
// and in order is not taken, and its lines are reported one by one.
func (p *showParser) stats(i int) (*Stats, int) {
	if i+3 >= len(p.lines) {
		return nil, 0
	}
	m := statTotalRE.FindStringSubmatch(rtrim(p.lines[i+1]))
	if m == nil {
		return nil, 0
	}
	total, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		return nil, 0
	}
	last, ok := parseRate(rtrim(p.lines[i+2]), "last")
	if !ok {
		return nil, 0
	}
	avg, ok := parseRate(rtrim(p.lines[i+3]), "average")
	if !ok {
		return nil, 0
	}
	return &Stats{Line: i + 2, Total: total, Last: last, Average: avg}, 3
}

func parseRate(line, label string) (Rate, bool) {
	m := statRateRE.FindStringSubmatch(line)
	if m == nil || m[1] != label {
		return Rate{}, false
	}
	sessions, err1 := strconv.ParseUint(m[2], 10, 64)
	interval, err2 := strconv.ParseInt(m[3], 10, 64) // whole seconds
	hour, err3 := strconv.ParseUint(m[4], 10, 64)
	day, err4 := strconv.ParseUint(m[5], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || interval > maxSeconds {
		return Rate{}, false
	}
	return Rate{Sessions: sessions, Interval: time.Duration(interval) * time.Second, Hour: hour, Day: day}, true
}

// maxSeconds is the longest time.Duration in whole seconds.
const maxSeconds = int64(1<<63-1) / int64(time.Second)
