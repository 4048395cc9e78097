package apache

import (
	"regexp"
	"strings"

	"github.com/opsbot/opsbot/internal/text"
)

// Pure parsers for what Apache httpd 2.4 prints: server-status?auto,
// apache2ctl configtest, -M, -S, -t -D DUMP_RUN_CFG and the error log. Every
// format here was captured from Debian's apache2 2.4.71; the samples and how
// they were made are in testdata/parse (README.md there). One file a
// format (parse_status.go, parse_configtest.go, ...); this one holds what
// several share.

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

func firstLineOf(s string, n int) string {
	line, _, _ := strings.Cut(s, "\n")
	return text.Truncate(strings.TrimSpace(line), n)
}
