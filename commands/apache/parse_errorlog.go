package apache

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The error log: entries, their levels and AH codes, and which are fatal.

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
