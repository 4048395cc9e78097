package apache

import (
	"fmt"
	"strings"
)

// apache2ctl -t -D DUMP_RUN_CFG: where the pid file and the error log are.

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
