package bot

import (
	"sort"
	"strings"
)

// ReadOnlyGrants are what everyone may run when the policy defines no roles
// and no users (DESIGN.md §4): the checks, and the status and show views.
var ReadOnlyGrants = []string{"portcheck", "scan", "tls", "listen", "apache status", "apache configtest", "apache modules", "apache vhosts", "relayd status", "relayd show"}

// Open permissions: anyone may ask these, because they show nothing but the
// asker's own standing, or because the approvals service checks the asker
// itself (approve, deny).
var openKeys = map[string]bool{"opsbot help": true, "opsbot whoami": true, "opsbot hosts": true, "opsbot approvals": true, "opsbot approve": true, "opsbot deny": true, "opsbot cancel": true}

// Permissions decides who may run what, from the policy's roles and users.
type Permissions struct {
	roles    map[string]Role
	users    map[string][]string
	people   map[string]string // identity ("slack:U024BE7LH") -> person
	defaults bool              // no roles and no users: ReadOnlyGrants for everyone
	inv      *Inventory        // for roles limited to some hosts
}

// NewPermissions reads roles, users and people from the policy.
func NewPermissions(p *Policy) *Permissions {
	people := map[string]string{}
	for person, ids := range p.People {
		for _, id := range ids {
			people[id] = person
		}
	}
	return &Permissions{roles: p.Roles, users: p.Users, people: people, defaults: len(p.Roles) == 0 && len(p.Users) == 0, inv: NewInventory(p)}
}

// Person is who w is by policy people:, "" when no person claims the
// identity (by user ID, or on Mattermost by username).
func (p *Permissions) Person(w Who) string {
	if p == nil {
		return ""
	}
	for _, k := range p.keys(w) {
		if person, ok := p.people[k]; ok {
			return person
		}
	}
	return ""
}

// SamePerson reports whether a and b are one person: one identity, or
// identities that policy people: gives to the same person.
func (p *Permissions) SamePerson(a, b Who) bool {
	if a.Platform == b.Platform && a.User == b.User {
		return true
	}
	pa := p.Person(a)
	return pa != "" && pa == p.Person(b)
}

// Who is the asker as policy sees them: the platform's user ID, and for
// platforms where policy may name people by username (Mattermost), that
// too; the channel by ID and, where the platform sends it, by name.
type Who struct {
	Platform, User, UserName, Channel, ChannelName string
}

// WhoOf takes the asker from a request.
func WhoOf(r Request) Who {
	return Who{Platform: r.Platform, User: r.User, UserName: r.UserName, Channel: r.Channel, ChannelName: r.ChannelName}
}

// Principal is "platform:user".
func (w Who) Principal() string { return w.Platform + ":" + w.User }

// Roles lists the roles in force for w in its channel, sorted.
func (p *Permissions) Roles(w Who) []string {
	if p.defaults {
		return []string{"(everyone: read-only, no policy roles)"}
	}
	seen := map[string]bool{}
	var out []string
	for _, key := range p.keys(w) {
		for _, r := range p.users[key] {
			if !seen[r] && p.inChannel(r, w) {
				seen[r] = true
				out = append(out, r)
			}
		}
	}
	sort.Strings(out)
	return out
}

// keys are the policy names of w: "platform:ID", and on platforms whose
// usernames are unique and current (Mattermost), "platform:username".
// Slack's usernames are deprecated and not unique: Slack grants by ID only.
func (p *Permissions) keys(w Who) []string {
	keys := []string{w.Principal()}
	if w.Platform != "slack" && w.UserName != "" && w.UserName != w.User {
		keys = append(keys, w.Platform+":"+w.UserName)
	}
	return keys
}

// inChannel reports whether role applies in w's channel. An entry "#ops"
// is a channel name; any other entry matches the channel's ID (C024BE91L on
// Slack, a 26-character ID on Mattermost) or its name.
func (p *Permissions) inChannel(role string, w Who) bool {
	r := p.roles[role]
	if len(r.Channels) == 0 {
		return true
	}
	name := strings.TrimPrefix(w.ChannelName, "#")
	for _, c := range r.Channels {
		c = strings.TrimSpace(c)
		if n, isName := strings.CutPrefix(c, "#"); isName {
			if name != "" && strings.EqualFold(n, name) {
				return true
			}
			continue
		}
		if c == w.Channel || name != "" && strings.EqualFold(c, name) {
			return true
		}
	}
	return false
}

// grantMatches reports whether a grant ("*", "apache", "apache reload")
// covers a permission key ("apache reload").
func grantMatches(grant, key string) bool {
	grant = strings.ToLower(strings.TrimSpace(grant))
	if grant == "*" || grant == key {
		return true
	}
	if g, ok := strings.CutSuffix(grant, " *"); ok {
		grant = g
	}
	return strings.HasPrefix(key, grant+" ")
}

// Allowed decides whether w may run key. When not, the error names what is
// missing and which roles would grant it.
func (p *Permissions) Allowed(w Who, key string) error {
	if openKeys[key] {
		return nil
	}
	if p.defaults {
		for _, g := range ReadOnlyGrants {
			if grantMatches(g, key) {
				return nil
			}
		}
		return Errorf(EDENIED, "permission denied: %q is not open to everyone: the policy defines no roles, so everyone may run only %s; grant it with roles and users in the policy file", key, strings.Join(ReadOnlyGrants[:3], ", ")+" and the status and show views")
	}
	for _, r := range p.Roles(w) {
		for _, g := range p.roles[r].Commands {
			if grantMatches(g, key) {
				return nil
			}
		}
	}
	return p.denial(w, key, func(r Role) []string { return r.Commands })
}

// grants is Allowed without the open keys: does a role really grant key?
func (p *Permissions) grants(w Who, key string) error {
	if p.defaults {
		return Errorf(EDENIED, "no roles are defined")
	}
	for _, r := range p.Roles(w) {
		for _, g := range p.roles[r].Commands {
			if grantMatches(g, key) {
				return nil
			}
		}
	}
	return Errorf(EDENIED, "%s is not granted %q", w.Principal(), key)
}

// MayApprove decides whether w holds an approver role for key.
func (p *Permissions) MayApprove(w Who, key string) error {
	if p.defaults {
		return Errorf(EDENIED, "permission denied: nobody may approve %q, because the policy defines no approver roles", key)
	}
	for _, r := range p.Roles(w) {
		for _, g := range p.roles[r].Approve {
			if grantMatches(g, key) {
				return nil
			}
		}
	}
	e := p.denial(w, key, func(r Role) []string { return r.Approve })
	e.Message = strings.Replace(e.Message, "may not run", "may not approve", 1)
	return e
}

// MayApproveOn decides whether w holds an approver role for key that
// covers every host the request is bound to. A role with hosts: approves
// only for those inventory hosts (names, groups, "tag:NAME", "*"); a bound
// entry that is no inventory host (an address a /scan is bound to) is
// covered only by a role without hosts, or with "*". The refusal names
// the hosts w may not approve for.
func (p *Permissions) MayApproveOn(w Who, key string, hosts []string) error {
	if err := p.MayApprove(w, key); err != nil {
		return err
	}
	var limits []string
	covered := make([]bool, len(hosts))
	for _, r := range p.Roles(w) {
		role := p.roles[r]
		granted := false
		for _, g := range role.Approve {
			if grantMatches(g, key) {
				granted = true
				break
			}
		}
		if !granted {
			continue
		}
		if len(role.Hosts) == 0 {
			return nil
		}
		limits = append(limits, r+" ("+strings.Join(role.Hosts, ", ")+")")
		for i, h := range hosts {
			name := boundHostName(h)
			for _, e := range role.Hosts {
				if e == "*" || p.inv.hostMatches(e, name) {
					covered[i] = true
				}
			}
		}
	}
	var outside []string
	for i, ok := range covered {
		if !ok {
			outside = append(outside, hosts[i])
		}
	}
	if len(outside) == 0 {
		return nil
	}
	return Errorf(EDENIED, "permission denied: %s may approve %q only for the hosts of %s, not for %s",
		w.Principal(), key, strings.Join(limits, "; "), strings.Join(outside, ", "))
}

// boundHostName is the inventory name in a bound host: "web01 (10.0.0.11)" is
// web01 (Host.Label); anything else is itself.
func boundHostName(bound string) string {
	if name, _, ok := strings.Cut(bound, " ("); ok {
		return name
	}
	return bound
}

// MayApproveAny reports whether w holds any approver grant.
func (p *Permissions) MayApproveAny(w Who) bool {
	_, approve := p.Grants(w)
	return len(approve) > 0
}

func (p *Permissions) denial(w Who, key string, grants func(Role) []string) *Error {
	var granting []string
	for name, r := range p.roles {
		for _, g := range grants(r) {
			if grantMatches(g, key) {
				granting = append(granting, name)
				break
			}
		}
	}
	sort.Strings(granting)
	mine := p.Roles(w)
	if len(mine) == 0 {
		return Errorf(EDENIED, "permission denied: %s has no role in the policy (users lists no %q), so may not run %q", w.Principal(), w.Principal(), key)
	}
	by := "no role grants it"
	if len(granting) > 0 {
		by = "granted by " + strings.Join(granting, ", ")
	}
	return Errorf(EDENIED, "permission denied: %s may not run %q (%s; your roles here: %s)", w.Principal(), key, by, strings.Join(mine, ", "))
}

// Grants lists what w may run, for whoami.
func (p *Permissions) Grants(w Who) (run, approve []string) {
	if p.defaults {
		return append([]string(nil), ReadOnlyGrants...), nil
	}
	seenR, seenA := map[string]bool{}, map[string]bool{}
	for _, r := range p.Roles(w) {
		for _, g := range p.roles[r].Commands {
			if !seenR[g] {
				seenR[g] = true
				run = append(run, g)
			}
		}
		for _, g := range p.roles[r].Approve {
			if !seenA[g] {
				seenA[g] = true
				approve = append(approve, g)
			}
		}
	}
	sort.Strings(run)
	sort.Strings(approve)
	return run, approve
}

// MayActOn decides whether w may run key on an inventory host: some role of
// w's must grant key and either name no hosts or cover this one (by name,
// group, tag or "*").
func (p *Permissions) MayActOn(w Who, key, host string) error {
	if err := p.Allowed(w, key); err != nil {
		return err
	}
	return p.coversHost(w, key, host)
}

// coversHost is MayActOn's host half, for an asker already allowed key.
func (p *Permissions) coversHost(w Who, key, host string) error {
	if p.defaults || openKeys[key] {
		return nil
	}
	var limits []string
	for _, r := range p.Roles(w) {
		role := p.roles[r]
		granted := false
		for _, g := range role.Commands {
			if grantMatches(g, key) {
				granted = true
				break
			}
		}
		if !granted {
			continue
		}
		if len(role.Hosts) == 0 {
			return nil
		}
		for _, e := range role.Hosts {
			if p.inv.hostMatches(e, host) {
				return nil
			}
		}
		limits = append(limits, r+" ("+strings.Join(role.Hosts, ", ")+")")
	}
	return Errorf(EDENIED, "permission denied: %s may run %q, but not on %s: your roles granting it cover only %s", w.Principal(), key, host, strings.Join(limits, "; "))
}
