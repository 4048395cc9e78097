package apache

// Pure parsers for what Apache httpd 2.4 prints: server-status?auto,
// apache2ctl configtest, -M, -S, -t -D DUMP_RUN_CFG and the error log. Every
// format here was captured from Debian's apache2 2.4.71; the samples and how
// they were made are in testdata/parse (README.md there).

import (
	"errors"
	"fmt"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/opsbot/opsbot/internal/text"
)

// ErrNotAutoStatus is wrapped by ParseStatus when the body is not mod_status's
// machine-readable page: the HTML status page (the URL lacks ?auto), a 403 or
// 404 page, or the site itself (the URL points at the wrong path).
var ErrNotAutoStatus = errors.New("not a server-status?auto page")

// Status is what mod_status reports on server-status?auto. Fields that a page
// may leave out have a Has flag, so that absent is not read as zero.
type Status struct {
	// Host is the bare first line of the page: the name the server answered
	// as (its ServerName, or the address it was asked on).
	Host          string
	ServerVersion string // "Apache/2.4.71 (Debian) OpenSSL/3.0.19"
	MPM           string // "event", "worker" or "prefork"
	Built         string // "Server Built: 2026-11-12T08:58:41"
	CurrentTime   string // as printed: "Wednesday, 25-Nov-2026 10:50:03 UTC"
	RestartTime   string // the last start or hard restart (a graceful keeps it); same format

	// Generation is ParentServerConfigGeneration: one more after every
	// graceful or restart that loaded a config. It starts at 1.
	Generation    int
	MPMGeneration int // ParentServerMPMGeneration
	HasGeneration bool

	Uptime    time.Duration // ServerUptimeSeconds (or Uptime): since RestartTime
	HasUptime bool

	// TotalAccesses and TotalKBytes count since RestartTime (a graceful
	// keeps counting); ExtendedStatus Off leaves them out (HasTotals false).
	TotalAccesses int64
	TotalKBytes   int64
	HasTotals     bool

	// ReqPerSec is TotalAccesses over the uptime. Apache prints it only when
	// the uptime is at least a second, and without a leading zero (".272727").
	ReqPerSec    float64
	HasReqPerSec bool

	BusyWorkers     int
	IdleWorkers     int
	GracefulWorkers int
	Processes       int
	Stopping        int // processes of an older generation still finishing requests
	ConnsTotal      int
	Scoreboard      string

	// Fields holds every "Key: value" line as printed, including those with
	// no field above (Load1, CPULoad, the TLS session cache's Cache* lines).
	Fields map[string]string
}

// statusKey matches a "Key: value" line of the ?auto page; keys are words
// and spaces ("Total Accesses", "Server Built"). An IPv6 Host line ("::1")
// does not match.
var statusKey = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9 ]*):(?: |$)`)

// ParseStatus reads the body of server-status?auto. It fails, wrapping
// ErrNotAutoStatus and saying what it got instead, when the body is not that
// page; and when a known numeric field does not hold a number.
func ParseStatus(body []byte) (Status, error) {
	text := string(body)
	trimmed := strings.TrimSpace(text)
	if trimmed == "" {
		return Status{}, fmt.Errorf("%w: the body is empty", ErrNotAutoStatus)
	}
	if looksHTML(trimmed) {
		return Status{}, htmlPageError(trimmed)
	}
	st := Status{Fields: map[string]string{}}
	known, first := 0, true
	var haveServerUptime bool
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		m := statusKey.FindStringSubmatchIndex(line)
		if m == nil {
			// The Host line comes first; later bare lines are section
			// titles such as "TLSSessionCacheStatus".
			if first {
				st.Host = line
			}
			first = false
			continue
		}
		first = false
		key, val := line[:m[3]], strings.TrimSpace(line[m[1]:])
		st.Fields[key] = val
		isKnown, err := st.set(key, val, &haveServerUptime)
		if err != nil {
			return Status{}, err
		}
		if isKnown {
			known++
		}
	}
	if known == 0 {
		return Status{}, fmt.Errorf("%w: no server-status field in a body that starts %q", ErrNotAutoStatus, firstLineOf(trimmed, 80))
	}
	return st, nil
}

// set stores one field; it reports whether the key is one mod_status prints.
func (st *Status) set(key, val string, haveServerUptime *bool) (bool, error) {
	var err error
	switch key {
	case "ServerVersion":
		st.ServerVersion = val
	case "ServerMPM":
		st.MPM = val
	case "Server Built":
		st.Built = val
	case "CurrentTime":
		st.CurrentTime = val
	case "RestartTime":
		st.RestartTime = val
	case "Scoreboard":
		st.Scoreboard = val
	case "ParentServerConfigGeneration":
		st.Generation, err = statusInt(key, val)
		st.HasGeneration = true
	case "ParentServerMPMGeneration":
		st.MPMGeneration, err = statusInt(key, val)
		st.HasGeneration = true
	case "ServerUptimeSeconds", "Uptime":
		if key == "Uptime" && *haveServerUptime {
			return true, nil // the same number; ServerUptimeSeconds wins
		}
		*haveServerUptime = *haveServerUptime || key == "ServerUptimeSeconds"
		st.Uptime, err = statusSeconds(key, val)
		st.HasUptime = true
	case "Total Accesses":
		st.TotalAccesses, err = statusInt64(key, val)
		st.HasTotals = true
	case "Total kBytes":
		st.TotalKBytes, err = statusInt64(key, val)
		st.HasTotals = true
	case "ReqPerSec":
		st.ReqPerSec, err = statusFloat(key, val)
		st.HasReqPerSec = true
	case "BusyWorkers":
		st.BusyWorkers, err = statusInt(key, val)
	case "IdleWorkers":
		st.IdleWorkers, err = statusInt(key, val)
	case "GracefulWorkers":
		st.GracefulWorkers, err = statusInt(key, val)
	case "Processes":
		st.Processes, err = statusInt(key, val)
	case "Stopping":
		st.Stopping, err = statusInt(key, val)
	case "ConnsTotal":
		st.ConnsTotal, err = statusInt(key, val)
	default:
		return false, nil
	}
	return true, err
}

func statusNumberError(key, val string) error {
	return fmt.Errorf("server-status?auto: %s: %q is not a number", key, val)
}

func statusInt(key, val string) (int, error) {
	n, err := strconv.Atoi(val)
	if err != nil {
		return 0, statusNumberError(key, val)
	}
	return n, nil
}

func statusInt64(key, val string) (int64, error) {
	n, err := strconv.ParseInt(val, 10, 64)
	if err != nil {
		return 0, statusNumberError(key, val)
	}
	return n, nil
}

func statusSeconds(key, val string) (time.Duration, error) {
	n, err := strconv.ParseInt(val, 10, 64)
	if err != nil || n < 0 || n > int64(math.MaxInt64/time.Second) {
		return 0, statusNumberError(key, val)
	}
	return time.Duration(n) * time.Second, nil
}

// statusFloat reads Apache's %g, which drops the leading zero (".333333").
func statusFloat(key, val string) (float64, error) {
	f, err := strconv.ParseFloat(val, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, statusNumberError(key, val)
	}
	return f, nil
}

func looksHTML(s string) bool {
	head := strings.ToLower(s[:min(len(s), 512)])
	return strings.HasPrefix(head, "<") || strings.Contains(head, "<html") || strings.Contains(head, "<!doctype")
}

var htmlTitle = regexp.MustCompile(`(?is)<title>\s*(.*?)\s*</title>`)

func htmlPageError(page string) error {
	m := htmlTitle.FindStringSubmatch(page)
	if m == nil {
		return fmt.Errorf("%w: got an HTML page; the status URL should end in /server-status?auto", ErrNotAutoStatus)
	}
	title := strings.Join(strings.Fields(m[1]), " ")
	if title == "Apache Status" {
		return fmt.Errorf("%w: got mod_status's HTML page; add ?auto to the status URL", ErrNotAutoStatus)
	}
	return fmt.Errorf("%w: got an HTML page titled %q; the status URL should end in /server-status?auto", ErrNotAutoStatus, text.Truncate(title, 80))
}

// RunConfig is what apache2ctl -t -D DUMP_RUN_CFG prints: where the running
// configuration keeps its files, and whom the children run as.
type RunConfig struct {
	ServerRoot   string
	DocumentRoot string // the main server's ("Main DocumentRoot")
	// ErrorLog is the main server's error log as configured: a path, or
	// "syslog:..." or "|program" when the log is not a file.
	ErrorLog string
	PidFile  string
	User     string   // the user the children run as, by name
	Group    string   // the group, by name
	Defines  []string // -D names in effect, NAME or NAME=value
}

// ParseRunConfig reads the output of apache2ctl -t -D DUMP_RUN_CFG. It fails
// when there is no ServerRoot line, the one line the dump always has. Other
// lines (an AH00558 warning when stderr is mixed in) are ignored.
func ParseRunConfig(out []byte) (RunConfig, error) {
	var rc RunConfig
	for line := range strings.Lines(string(out)) {
		s, ok := parseSetting(line)
		if !ok {
			continue
		}
		switch s.Key {
		case "ServerRoot":
			rc.ServerRoot = s.Value
		case "Main DocumentRoot":
			rc.DocumentRoot = s.Value
		case "Main ErrorLog":
			rc.ErrorLog = s.Value
		case "PidFile":
			rc.PidFile = s.Value
		case "User":
			rc.User = idName(s.Value)
		case "Group":
			rc.Group = idName(s.Value)
		case "Define":
			rc.Defines = append(rc.Defines, s.Value)
		}
	}
	if rc.ServerRoot == "" {
		return RunConfig{}, fmt.Errorf("no ServerRoot line in the output of -t -D DUMP_RUN_CFG, which starts %q", firstLineOf(strings.TrimSpace(string(out)), 80))
	}
	return rc, nil
}

// Setting is one "Key: value" line that -S and DUMP_RUN_CFG print after the
// virtual hosts: ServerRoot, Main DocumentRoot, Main ErrorLog, Mutex NAME,
// PidFile, Define, User, Group. Value loses the quotes Apache puts around
// paths; User and Group keep their form, name="www-data" id=33.
type Setting struct {
	Key   string
	Value string
}

var settingLine = regexp.MustCompile(`^(ServerRoot|Main DocumentRoot|Main ErrorLog|Mutex [^\s:]+|PidFile|Define|User|Group):(?:\s+(.*))?$`)

func parseSetting(line string) (Setting, bool) {
	m := settingLine.FindStringSubmatch(strings.TrimSpace(line))
	if m == nil {
		return Setting{}, false
	}
	return Setting{Key: m[1], Value: unquote(strings.TrimSpace(m[2]))}, true
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

var nameField = regexp.MustCompile(`(?:^|\s)name="([^"]*)"`)

// idName takes the name out of `name="www-data" id=33`.
func idName(v string) string {
	if m := nameField.FindStringSubmatch(v); m != nil {
		return m[1]
	}
	return v
}

// ConfigError is one reason apache2ctl configtest (or graceful, restart,
// start, which test first) refused the configuration.
type ConfigError struct {
	// File and Line locate the directive; for an error in an included file,
	// the included file (IncludedFrom says how it got there). Empty and 0
	// when Apache gave no place (AH00534 "No MPM loaded").
	File string
	Line int
	// Message is Apache's reason without a leading AH code: "Invalid command
	// 'ServerTokns', perhaps misspelled or defined by a module not included
	// in the server configuration".
	Message string
	Code    string // the AH code of the line, "AH00526"; "" when it has none
	// IncludedFrom lists, outermost first, the FILE:LINE of each Include
	// that led to File, when Apache printed the chain ("apache2: Syntax
	// error on line 222 of /etc/apache2/apache2.conf: Syntax error on line
	// 3 of ...").
	IncludedFrom []string
}

// ConfigTest is the outcome of apache2ctl configtest, or of any apache2ctl
// action that tests the config first.
type ConfigTest struct {
	OK       bool          // the exit code was 0
	Errors   []ConfigError // never empty when !OK
	Warnings []string      // lines that do not fail the test, as printed: AH00558, AH00112, AH00111
	// Notes are apache2ctl's own words on stdout other than its failure
	// boilerplate: "httpd (pid 4916) already running", "httpd not running,
	// trying to start".
	Notes []string
}

var (
	ahCode       = regexp.MustCompile(`\bAH\d{5}\b`)
	leadingCode  = regexp.MustCompile(`^(AH\d{5}): ?`)
	syntaxError  = regexp.MustCompile(`^(?:[\w.-]+: )?Syntax error on line (\d+) of (.+?):(?: (.*))?$`)
	definedAt    = regexp.MustCompile(`defined at (.+):(\d+)$`)
	ctlFailed    = regexp.MustCompile(`^Action '[^']*' failed\.$`)
	warningCodes = map[string]bool{
		"AH00558": true, // Could not reliably determine the server's fully qualified domain name
		"AH00112": true, // Warning: DocumentRoot [...] does not exist
		"AH00111": true, // Config variable ${X} is not defined
		"AH01909": true, // server certificate does NOT include an ID which matches the server name
		"AH01906": true, // server certificate is a CA certificate
		"AH01882": true, // mod_ssl compiled against a newer OpenSSL
		"AH00098": true, // pid file overwritten -- Unclean shutdown of previous Apache run?
	}
)

// ParseConfigTest reads what apache2ctl configtest printed. The exit code
// decides OK; the text gives the reasons. AH00526 "Syntax error on line N
// of FILE:" takes its reason from the next line; a chain of includes on one
// line gives the innermost file; lines in the error log's format are sorted
// by level; other stderr lines are errors when the test failed and warnings
// when it passed. stdout and stderr may also be the same merged text.
func ParseConfigTest(stdout, stderr []byte, exitCode int) ConfigTest {
	ct := ConfigTest{OK: exitCode == 0}
	var fallback string
	classify := func(lines []string, fromStdout bool) {
		for i := 0; i < len(lines); i++ {
			line := strings.TrimSpace(lines[i])
			switch {
			case line == "", line == "Syntax OK", line == "The Apache error log may have more information.":
				continue
			case ctlFailed.MatchString(line):
				if fallback == "" {
					fallback = line
				}
				continue
			}
			if e, ok := parseSyntaxError(line); ok {
				if e.Message == "" && i+1 < len(lines) {
					// AH00526 puts the reason on the next line, which may
					// itself be a chain of includes.
					i++
					e = withReason(e, strings.TrimSpace(lines[i]))
				}
				ct.Errors = append(ct.Errors, e)
				continue
			}
			if entry, ok := parsePrefixed(line, time.UTC); ok {
				switch {
				case !severe(entry.Level) || ct.OK:
					ct.Warnings = append(ct.Warnings, line)
				default:
					ct.Errors = append(ct.Errors, lineError(entry.Message))
				}
				continue
			}
			codes := ahCode.FindAllString(line, -1)
			switch {
			case fromStdout && len(codes) == 0:
				ct.Notes = append(ct.Notes, line)
			case ct.OK || isWarning(line, codes):
				ct.Warnings = append(ct.Warnings, line)
			default:
				ct.Errors = append(ct.Errors, lineError(line))
			}
		}
	}
	classify(splitLines(stderr), false)
	classify(splitLines(stdout), true)
	if !ct.OK && len(ct.Errors) == 0 {
		msg := fallback
		if msg == "" {
			msg = fmt.Sprintf("exit status %d and no error message", exitCode)
		}
		ct.Errors = []ConfigError{{Message: msg}}
	}
	return ct
}

func splitLines(b []byte) []string {
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func severe(level string) bool {
	switch level {
	case "emerg", "alert", "crit", "error":
		return true
	}
	return false
}

func isWarning(line string, codes []string) bool {
	for _, c := range codes {
		if warningCodes[c] {
			return true
		}
	}
	return strings.Contains(line, "Warning:")
}

// parseSyntaxError reads "[AHnnnnn: |apache2: ]Syntax error on line N of
// FILE: ..." with any depth of includes; Message is empty when the reason
// is on the next line.
func parseSyntaxError(line string) (ConfigError, bool) {
	var e ConfigError
	if m := leadingCode.FindStringSubmatch(line); m != nil {
		e.Code, line = m[1], line[len(m[0]):]
	}
	if !syntaxError.MatchString(line) {
		return ConfigError{}, false
	}
	return withReason(e, line), true
}

// withReason follows a chain of "Syntax error on line N of FILE: " to the
// innermost file and takes the rest as the message.
func withReason(e ConfigError, text string) ConfigError {
	for {
		m := syntaxError.FindStringSubmatch(text)
		if m == nil {
			break
		}
		n, err := strconv.Atoi(m[1])
		if err != nil {
			break
		}
		if e.File != "" {
			e.IncludedFrom = append(e.IncludedFrom, e.File+":"+strconv.Itoa(e.Line))
		}
		e.File, e.Line, text = m[2], n, m[3]
	}
	// "<VirtualHost> was not closed." comes as "FILE:3: <VirtualHost> ...".
	text = strings.TrimPrefix(text, e.File+":"+strconv.Itoa(e.Line)+": ")
	if m := leadingCode.FindStringSubmatch(text); m != nil {
		if e.Code == "" {
			e.Code = m[1]
		}
		text = text[len(m[0]):]
	}
	if e.Code == "" {
		e.Code = ahCode.FindString(text)
	}
	e.Message = text
	return e
}

// lineError makes an error of a line with no "Syntax error on line": the
// code comes off the front, and "defined at FILE:N" (AH02297) gives a place.
func lineError(text string) ConfigError {
	e := ConfigError{Code: ahCode.FindString(text), Message: text}
	if m := leadingCode.FindStringSubmatch(text); m != nil {
		e.Message = text[len(m[0]):]
	}
	if m := definedAt.FindStringSubmatch(text); m != nil {
		if n, err := strconv.Atoi(m[2]); err == nil {
			e.File, e.Line = m[1], n
		}
	}
	return e
}

// Module is one line of apache2ctl -M.
type Module struct {
	Name string // "ssl_module"
	Kind string // "static" (built in) or "shared" (LoadModule)
}

var moduleLine = regexp.MustCompile(`^(\S+) \(([a-z]+)\)$`)

// ParseModules reads apache2ctl -M. Lines that are neither the "Loaded
// Modules:" header nor a module come back in unknown, trimmed.
func ParseModules(out []byte) (mods []Module, unknown []string) {
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		switch m := moduleLine.FindStringSubmatch(line); {
		case line == "", line == "Loaded Modules:":
		case m != nil:
			mods = append(mods, Module{Name: m[1], Kind: m[2]})
		default:
			unknown = append(unknown, line)
		}
	}
	return mods, unknown
}

// VHost is one virtual host as apache2ctl -S lists it.
type VHost struct {
	// Address is the IP address it binds to ("127.0.0.1", "::1" without
	// brackets) or "*"; -S shows _default_ as "*" too. Join it with the
	// port by net.JoinHostPort.
	Address string
	Port    int // 0 for any port ("*")
	// ServerName as Apache resolved it: a vhost without one takes the main
	// server's name, or "bogus_host_without_reverse_dns" when an IPv6
	// address has no reverse DNS.
	ServerName string
	Aliases    []string // ServerAlias names, wildcards as written ("*.blog.example.com")
	// Default marks the vhost that answers requests for its address and
	// port whose Host matches no name: the first one of a name-based set,
	// or the only vhost on its address.
	Default   bool
	NameBased bool // one of several vhosts sharing the address and port
	File      string
	Line      int
}

// VHosts is apache2ctl -S: the virtual hosts, then the same lines as
// DUMP_RUN_CFG.
type VHosts struct {
	VHosts   []VHost
	Settings []Setting // in order; Define and Mutex come several times
}

var (
	vhostPlace  = regexp.MustCompile(`^(\S+) \((.+):(\d+)\)$`)
	vhostSingle = regexp.MustCompile(`^(\S+)\s+(.+)$`)
	nameVHost   = regexp.MustCompile(`^port (\S+) namevhost (.+)$`)
)

// ParseVHosts reads apache2ctl -S. Lines it does not know come back in
// unknown, trimmed, so that a caller can show them rather than lose them.
func ParseVHosts(out []byte) (vh VHosts, unknown []string) {
	var (
		group      *VHost // address and port of the current "is a NameVirtualHost" set
		lastIdx    = -1   // the vhost that "alias" lines belong to
		defaultIdx = -1   // the "default server" entry, until its namevhost line comes
	)
	for raw := range strings.Lines(string(out)) {
		indented := strings.HasPrefix(raw, " ") || strings.HasPrefix(raw, "\t")
		line := strings.TrimSpace(raw)
		if line == "" || line == "VirtualHost configuration:" {
			continue
		}
		if !indented {
			group, lastIdx, defaultIdx = nil, -1, -1
			if s, ok := parseSetting(line); ok {
				vh.Settings = append(vh.Settings, s)
				continue
			}
			if v, isGroup, ok := vhostHead(line); ok {
				if isGroup {
					group = &v
					continue
				}
				vh.VHosts = append(vh.VHosts, v)
				lastIdx = len(vh.VHosts) - 1
				continue
			}
			unknown = append(unknown, line)
			continue
		}
		if group != nil {
			if name, ok := strings.CutPrefix(line, "default server "); ok {
				if v, ok := placed(name); ok {
					v.Address, v.Port, v.NameBased, v.Default = group.Address, group.Port, true, true
					vh.VHosts = append(vh.VHosts, v)
					lastIdx, defaultIdx = len(vh.VHosts)-1, len(vh.VHosts)-1
					continue
				}
			}
			if m := nameVHost.FindStringSubmatch(line); m != nil {
				port, okPort := parsePort(m[1])
				v, ok := placed(m[2])
				if ok && okPort {
					v.Address, v.Port, v.NameBased = group.Address, port, true
					if d := defaultIdx; d >= 0 && vh.VHosts[d].ServerName == v.ServerName && vh.VHosts[d].File == v.File && vh.VHosts[d].Line == v.Line && vh.VHosts[d].Port == v.Port {
						// The default server is listed twice: once as the
						// default, once among the names.
						lastIdx, defaultIdx = d, -1
						continue
					}
					vh.VHosts = append(vh.VHosts, v)
					lastIdx = len(vh.VHosts) - 1
					continue
				}
			}
		}
		if lastIdx >= 0 {
			alias, ok := strings.CutPrefix(line, "alias ")
			if !ok {
				alias, ok = strings.CutPrefix(line, "wild alias ")
			}
			if ok && alias != "" && !strings.ContainsAny(alias, " \t") {
				vh.VHosts[lastIdx].Aliases = append(vh.VHosts[lastIdx].Aliases, alias)
				continue
			}
		}
		unknown = append(unknown, line)
	}
	return vh, unknown
}

// vhostHead reads an unindented line: "ADDR:PORT is a NameVirtualHost"
// (isGroup) or "ADDR:PORT NAME (FILE:LINE)", the only vhost on ADDR:PORT.
func vhostHead(line string) (v VHost, isGroup, ok bool) {
	m := vhostSingle.FindStringSubmatch(line)
	if m == nil {
		return VHost{}, false, false
	}
	addr, port, ok := splitVHostAddr(m[1])
	if !ok {
		return VHost{}, false, false
	}
	if m[2] == "is a NameVirtualHost" {
		return VHost{Address: addr, Port: port}, true, true
	}
	v, ok = placed(m[2])
	v.Address, v.Port, v.Default = addr, port, true
	return v, false, ok
}

// placed reads "NAME (FILE:LINE)".
func placed(s string) (VHost, bool) {
	m := vhostPlace.FindStringSubmatch(s)
	if m == nil {
		return VHost{}, false
	}
	n, err := strconv.Atoi(m[3])
	if err != nil {
		return VHost{}, false
	}
	return VHost{ServerName: m[1], File: m[2], Line: n}, true
}

// splitVHostAddr reads "127.0.0.1:80", "[::1]:443", "*:8080" or "*:*".
func splitVHostAddr(s string) (string, int, bool) {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return "", 0, false
	}
	p, ok := parsePort(port)
	return host, p, ok
}

func parsePort(s string) (int, bool) {
	if s == "*" {
		return 0, true
	}
	p, err := strconv.Atoi(s)
	if err != nil || p < 0 || p > 65535 {
		return 0, false
	}
	return p, true
}

// LogEntry is one entry of Apache's error log, in the default
// ErrorLogFormat: "[Wed Nov 25 10:50:46.062642 2026] [mpm_event:alert]
// [pid 29725:tid 29725] no listening sockets available, shutting down".
// Startup messages come without that prefix: "(98)Address already in use:
// AH00072: make_sock: could not bind to address 127.0.0.1:18515".
type LogEntry struct {
	// Time is the wall clock of the Apache host: the log gives no zone.
	// Zero for lines without the prefix.
	Time   time.Time
	Module string // "mpm_event", "ssl"; "" for "[:emerg]" and lines without the prefix
	Level  string // emerg alert crit error warn notice info debug trace1..8; "" without the prefix
	PID    int
	Client string // "127.0.0.1:48512" from "[client 127.0.0.1:48512]"
	// Codes holds every AHnnnnn in the entry, in order.
	Codes   []string
	Message string // the text after the prefix, trimmed
	// Raw is the entry's exact text. Two entries written onto one line
	// share it: their Raws, in order, make up the line.
	Raw  string
	Line int // the 1-based line of the input it came from
}

// fatalCodes are AH codes after which Apache exits (or refuses to start)
// whatever level they carry: startup messages are written without a level.
var fatalCodes = map[string]bool{
	"AH00012": true, // main: "apache2: <error>" from the command line or config read, exit 1
	"AH00013": true, // Pre-configuration failed
	"AH00014": true, // Configuration check failed
	"AH00015": true, // Unable to open logs (start: a Listen failed)
	"AH00016": true, // Configuration Failed
	"AH00017": true, // Pre-configuration failed, exiting (graceful, restart)
	"AH00018": true, // Configuration check failed, exiting
	"AH00019": true, // Unable to open logs, exiting (graceful with a busy Listen port)
	"AH00020": true, // Configuration Failed, exiting (graceful with a bad certificate)
	"AH00072": true, // make_sock: could not bind to address
	"AH00091": true, // could not open error log file
	"AH00100": true, // could not log pid to file, exit 1
	"AH00526": true, // Syntax error: in the error log, the parent re-read a broken config and exited
	"AH00534": true, // Configuration error: No MPM loaded
	"AH00543": true, // bad user name, exit 1
	"AH02291": true, // Cannot access directory for the error log, pid file or mutex
	"AH02297": true, // Cannot access directory for a log file
	"AH02312": true, // Fatal error initialising mod_ssl, exiting
	"AH02565": true, // Certificate and private key do not match
	"AH02572": true, // Failed to configure at least one certificate and key
	"AH03272": true, // no listening sockets available (2.4.71 prints it without the code)
}

// Fatal reports whether the entry means Apache is dying or refused to come
// up: levels emerg, alert and crit, a code from the startup path after which
// httpd exits (AH00072, AH00015, AH00019, AH00020, AH02565 and others; those
// lines often carry no level), and "no listening sockets available".
// AH00558 is logged at alert but printed without a level; it is not fatal.
func (e LogEntry) Fatal() bool {
	switch e.Level {
	case "emerg", "alert", "crit":
		return true
	}
	for _, c := range e.Codes {
		if fatalCodes[c] {
			return true
		}
	}
	return strings.Contains(e.Message, "no listening sockets available")
}

// ParseErrorLog reads error log text, taking its times as UTC; see
// ParseErrorLogIn. Every line that is not blank gives at least one entry.
func ParseErrorLog(data []byte) []LogEntry {
	return ParseErrorLogIn(data, time.UTC)
}

// ParseErrorLogIn reads error log text whose times are wall clock in loc
// (the Apache host's zone). A line that holds two entries written without a
// newline between them gives both.
func ParseErrorLogIn(data []byte, loc *time.Location) []LogEntry {
	var out []LogEntry
	n := 0
	for line := range strings.Lines(string(data)) {
		n++
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		for _, seg := range splitGlued(line) {
			e, ok := parsePrefixed(seg, loc)
			if !ok {
				e = LogEntry{Message: strings.TrimSpace(seg)}
			}
			e.Raw, e.Line = seg, n
			e.Codes = ahCode.FindAllString(seg, -1)
			out = append(out, e)
		}
	}
	return out
}

// gluedStart finds where a second entry may begin inside a line: an AH code
// (with its "(errno)text: " in front, if any), or a bracketed timestamp
// followed by the next bracket.
var gluedStart = regexp.MustCompile(`(?:\(\d+\)[^()\n]*?: )?AH\d{5}: |\[[A-Z][a-z]{2} [A-Z][a-z]{2} {1,2}\d{1,2} \d{2}:\d{2}:\d{2}(?:\.\d+)? \d{4}\] \[`)

// splitGlued cuts a line where a new entry starts right after the end of
// another, with no space between: "...'/usr/sbin/apache2'AH00558: ...". An
// AH code after a space is part of the message, as in "] AH00094: ...".
func splitGlued(line string) []string {
	var parts []string
	start := 0
	for _, m := range gluedStart.FindAllStringIndex(line, -1) {
		i := m[0]
		if i == 0 {
			continue
		}
		switch line[i-1] {
		case ' ', '\t', '(', '[':
			continue
		}
		parts = append(parts, line[start:i])
		start = i
	}
	return append(parts, line[start:])
}

// logPrefix matches the start of the default ErrorLogFormat: the time, with
// or without microseconds.
var logPrefix = regexp.MustCompile(`^\[([A-Z][a-z]{2} [A-Z][a-z]{2} {1,2}\d{1,2} \d{2}:\d{2}:\d{2}(?:\.\d+)? \d{4})\]`)

var logLevels = map[string]bool{
	"emerg": true, "alert": true, "crit": true, "error": true, "warn": true,
	"notice": true, "info": true, "debug": true,
	"trace1": true, "trace2": true, "trace3": true, "trace4": true,
	"trace5": true, "trace6": true, "trace7": true, "trace8": true,
}

// parsePrefixed reads one entry that starts with the bracketed time; the
// groups after it ([module:level], [pid N:tid M], [client A]) are taken as
// long as they are recognised.
func parsePrefixed(s string, loc *time.Location) (LogEntry, bool) {
	m := logPrefix.FindStringSubmatch(s)
	if m == nil {
		return LogEntry{}, false
	}
	t, err := time.ParseInLocation("Mon Jan 2 15:04:05 2006", strings.Join(strings.Fields(m[1]), " "), loc)
	if err != nil {
		return LogEntry{}, false
	}
	e := LogEntry{Time: t}
	rest := strings.TrimLeft(s[len(m[0]):], " ")
	for first := true; strings.HasPrefix(rest, "["); first = false {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			break
		}
		group := rest[1:end]
		if !e.takeGroup(group, first) {
			break
		}
		rest = strings.TrimLeft(rest[end+1:], " ")
	}
	e.Message = strings.TrimSpace(rest)
	return e, true
}

func (e *LogEntry) takeGroup(g string, first bool) bool {
	if first {
		mod, level, found := strings.Cut(g, ":")
		if !found {
			level, mod = g, "" // 2.2's "[error]"
		}
		if logLevels[level] {
			e.Module, e.Level = mod, level
			return true
		}
	}
	if pid, ok := strings.CutPrefix(g, "pid "); ok && e.PID == 0 {
		pid, _, _ = strings.Cut(pid, ":")
		n, err := strconv.Atoi(pid)
		if err != nil {
			return false
		}
		e.PID = n
		return true
	}
	if c, ok := strings.CutPrefix(g, "client "); ok && e.Client == "" {
		e.Client = c
		return true
	}
	return false
}

func firstLineOf(s string, n int) string {
	line, _, _ := strings.Cut(s, "\n")
	return text.Truncate(strings.TrimSpace(line), n)
}
