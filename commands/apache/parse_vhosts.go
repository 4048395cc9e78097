package apache

import (
	"net"
	"regexp"
	"strconv"
	"strings"
)

// apache2ctl -S: the virtual hosts and the settings printed with them.

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
