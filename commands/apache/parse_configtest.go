package apache

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// apache2ctl configtest: Syntax OK, or the errors with their file and line.

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
