package apache

import (
	"regexp"
	"strings"
)

// apache2ctl -M: the loaded modules.

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
