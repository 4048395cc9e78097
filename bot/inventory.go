package bot

import (
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/opsbot/opsbot/internal/text"
)

// hostName is what an inventory host or group may be called: it is typed in
// chat, so nothing a shell or a URL would read specially.
var hostName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// CheckHostName validates an inventory host or group name as typed.
func CheckHostName(word string) error {
	if !hostName.MatchString(word) {
		return Errorf(EINVALID, "%q is not an inventory host or group name: names are letters, digits, '.', '_' and '-', at most 63, starting with a letter or digit", text.Truncate(word, 40))
	}
	return nil
}

// Inventory is the policy's hosts and groups, resolved into the Hosts the
// runners take. It never changes after it is built.
type Inventory struct {
	hosts  map[string]Host
	groups map[string][]string // group -> member host names, as the file lists them
}

// NewInventory reads hosts and groups from a validated policy.
func NewInventory(p *Policy) *Inventory {
	inv := &Inventory{hosts: map[string]Host{}, groups: map[string][]string{}}
	for name, spec := range p.Hosts {
		inv.hosts[name] = spec.host(name)
	}
	for g, members := range p.Groups {
		inv.groups[g] = append([]string(nil), members...)
	}
	return inv
}

// host turns a spec into the Host runners take. An address without via
// means ssh; no address means the bot's own host.
func (s HostSpec) host(name string) Host {
	h := Host{
		Name: name, Address: s.Address, Via: s.Via, User: s.User, Port: s.Port,
		Become: s.Become, Timeout: s.Timeout.D, Tags: append([]string(nil), s.Tags...),
	}
	if h.Via == "" {
		h.Via = "local"
		if h.Address != "" {
			h.Via = "ssh"
		}
	}
	if len(s.values) > 0 {
		h.Settings = make(map[string]any, len(s.values))
		for k, v := range s.values {
			h.Settings[k] = v
		}
	}
	return h
}

// Empty reports whether the inventory has no hosts.
func (inv *Inventory) Empty() bool { return inv == nil || len(inv.hosts) == 0 }

// Host returns one host by name.
func (inv *Inventory) Host(name string) (Host, bool) {
	if inv == nil {
		return Host{}, false
	}
	h, ok := inv.hosts[name]
	return h, ok
}

// Hosts lists every host, by name.
func (inv *Inventory) Hosts() []Host {
	if inv == nil {
		return nil
	}
	out := make([]Host, 0, len(inv.hosts))
	for _, h := range inv.hosts {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Groups lists the groups host belongs to, sorted.
func (inv *Inventory) Groups(host string) []string {
	if inv == nil {
		return nil
	}
	var out []string
	for g, members := range inv.groups {
		for _, m := range members {
			if m == host {
				out = append(out, g)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// Resolve turns a word typed in chat into hosts: a host name gives that
// host, a group name its members in the order the file lists them (the
// first is a roll's canary).
func (inv *Inventory) Resolve(word string) (hosts []Host, group bool, err error) {
	if err := CheckHostName(word); err != nil {
		return nil, false, err
	}
	if inv.Empty() {
		return nil, false, Errorf(ENOTFOUND, "no host %q: the policy defines no hosts (add them under hosts: in the policy file)", word)
	}
	if h, ok := inv.hosts[word]; ok {
		return []Host{h}, false, nil
	}
	if members, ok := inv.groups[word]; ok {
		for _, m := range members {
			hosts = append(hosts, inv.hosts[m])
		}
		return hosts, true, nil
	}
	return nil, false, Errorf(ENOTFOUND, "no host or group %q in the inventory: known are %s", word, inv.names())
}

func (inv *Inventory) names() string {
	var hosts, groups []string
	for n := range inv.hosts {
		hosts = append(hosts, n)
	}
	for g := range inv.groups {
		groups = append(groups, g)
	}
	sort.Strings(hosts)
	sort.Strings(groups)
	s := "hosts " + strings.Join(limitList(hosts, 12), ", ")
	if len(groups) > 0 {
		s += "; groups " + strings.Join(limitList(groups, 8), ", ")
	}
	return s
}

func limitList(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(s[:n:n], "... ("+strconv.Itoa(len(s)-n)+" more, see /opsbot hosts)")
}

// Label is how a reply names a host: "web01 (10.0.0.11)", or the name
// alone for the bot's own host. Approvals bind to it, so a changed address
// in the inventory voids an approval given for the old one.
func (h Host) Label() string {
	if h.Address == "" || h.Address == h.Name {
		return h.Name
	}
	return h.Name + " (" + h.Address + ")"
}

// hostMatches reports whether a role's hosts entry ("web01", a group name,
// "tag:edge", "*") covers host.
func (inv *Inventory) hostMatches(entry, host string) bool {
	if entry == "*" || entry == host {
		return true
	}
	if tag, ok := strings.CutPrefix(entry, "tag:"); ok {
		h, found := inv.hosts[host]
		if !found {
			return false
		}
		for _, t := range h.Tags {
			if t == tag {
				return true
			}
		}
		return false
	}
	for _, m := range inv.groups[entry] {
		if m == host {
			return true
		}
	}
	return false
}

// validateInventory checks hosts and groups; it is part of Policy.validate.
func (p *Policy) validateInventory(bad func(string, ...any)) {
	for name, h := range p.Hosts {
		if !hostName.MatchString(name) {
			bad("hosts: %q is not a usable host name: letters, digits, '.', '_' and '-', at most 63, starting with a letter or digit (it is typed in chat)", name)
		}
		if h.Timeout.bad != "" {
			bad("hosts.%s.timeout is %q: write a duration such as 30s", name, h.Timeout.bad)
		}
		switch h.Via {
		case "", "local", "ssh":
		default:
			bad("hosts: %q has via %q: accepted local, ssh", name, h.Via)
		}
		switch h.Become {
		case "", "sudo", "doas":
		default:
			bad("hosts: %q has become %q: accepted sudo, doas, or nothing", name, h.Become)
		}
		if h.Via == "ssh" && h.Address == "" {
			bad("hosts: %q is reached via ssh but has no address", name)
		}
		if h.Via == "local" && h.Address != "" && !isLoopback(h.Address) {
			bad("hosts: %q is via local (the bot's own host) but has address %s: remove the address or use via: ssh", name, h.Address)
		}
		if h.Address != "" && !validAddress(h.Address) {
			bad("hosts: %q has address %q: write an IP address or a DNS name", name, h.Address)
		}
		if h.User != "" && !unixUser.MatchString(h.User) {
			bad("hosts: %q has user %q: not a valid login name", name, h.User)
		}
		if h.Port < 0 || h.Port > 65535 {
			bad("hosts: %q has port %d: accepted 1 to 65535 (0 or nothing: 22)", name, h.Port)
		}
		for _, t := range h.Tags {
			if !hostName.MatchString(t) {
				bad("hosts: %q has tag %q: tags are letters, digits, '.', '_' and '-'", name, t)
			}
		}
	}
	for g, members := range p.Groups {
		if !hostName.MatchString(g) {
			bad("groups: %q is not a usable group name: letters, digits, '.', '_' and '-' (it is typed in chat)", g)
		}
		if _, clash := p.Hosts[g]; clash {
			bad("groups: %q is also a host name: a name typed in chat must mean one thing", g)
		}
		if len(members) == 0 {
			bad("groups: %q has no hosts", g)
		}
		seen := map[string]bool{}
		for _, h := range members {
			if _, ok := p.Hosts[h]; !ok {
				bad("groups: %q names host %q, which hosts does not define", g, h)
			}
			if seen[h] {
				bad("groups: %q lists host %q twice", g, h)
			}
			seen[h] = true
		}
	}
	for name, r := range p.Roles {
		for _, e := range r.Hosts {
			tag, isTag := strings.CutPrefix(e, "tag:")
			_, isHost := p.Hosts[e]
			_, isGroup := p.Groups[e]
			if e != "*" && !isHost && !isGroup && (!isTag || !hostName.MatchString(tag)) {
				bad("roles: %q limits hosts to %q, which is no host, group, tag:NAME or *", name, e)
			}
		}
	}
}

var (
	unixUser = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)
	dnsName  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$`)
)

func validAddress(a string) bool {
	if _, err := netip.ParseAddr(a); err == nil {
		return true
	}
	return len(a) <= 253 && dnsName.MatchString(a)
}

func isLoopback(a string) bool {
	ip, err := netip.ParseAddr(a)
	return a == "localhost" || err == nil && ip.IsLoopback()
}

// HostAccess resolves the host words of a request against the inventory
// and the asker's permissions. Commands that act on hosts (/apache,
// /relayd) take it; the Router makes one.
type HostAccess struct {
	Inventory *Inventory
	Perms     *Permissions // nil: everyone may act on every host
}

// Resolve turns word (a host or group) into the hosts the asker may run key
// on. A group the asker may act on only in part is refused whole, naming
// the hosts left out: a roll that silently skips hosts is worse than none.
func (a HostAccess) Resolve(req Request, key, word string) (hosts []Host, group bool, err error) {
	hosts, group, err = a.Inventory.Resolve(word)
	if err != nil {
		return nil, false, err
	}
	if a.Perms == nil {
		return hosts, group, nil
	}
	who := WhoOf(req)
	if err := a.Perms.Allowed(who, key); err != nil {
		return nil, false, err
	}
	var refused []string
	var first error
	for _, h := range hosts {
		if err := a.Perms.coversHost(who, key, h.Name); err != nil {
			refused = append(refused, h.Name)
			if first == nil {
				first = err
			}
		}
	}
	switch {
	case len(refused) == 0:
		return hosts, group, nil
	case !group:
		return nil, false, first
	default:
		return nil, false, Errorf(EDENIED, "permission denied: group %s includes %s, where your roles do not grant %q; name the hosts you may act on one by one", word, strings.Join(refused, ", "), key)
	}
}

// Allowed lists the inventory hosts the asker may run key on.
func (a HostAccess) Allowed(req Request, key string) []Host {
	var out []Host
	for _, h := range a.Inventory.Hosts() {
		if a.Perms == nil || a.Perms.MayActOn(WhoOf(req), key, h.Name) == nil {
			out = append(out, h)
		}
	}
	return out
}

// EachHost runs f for every host at once, at most 8 at a time, and waits:
// how commands read or act on a group of hosts.
func EachHost(hosts []Host, f func(i int, h Host)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, h := range hosts {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			f(i, h)
		})
	}
	wg.Wait()
}

// HostResolver is what commands that act on inventory hosts (/apache,
// /relayd, checks from a vantage) need of HostAccess; tests may pass their
// own.
type HostResolver interface {
	Resolve(req Request, key, word string) (hosts []Host, group bool, err error)
	Allowed(req Request, key string) []Host
}

var _ HostResolver = HostAccess{}
