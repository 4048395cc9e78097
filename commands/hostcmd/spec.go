package hostcmd

import (
	"strings"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/internal/text"
)

// Sub is one subcommand. Each is its own permission ("apache reload").
type Sub struct {
	Name string
	// Args are the words it takes before the host, as its usage writes
	// them ("enable|disable ID|NAME"); the command reads them itself.
	Args string
	// Changes: it acts on the host, and is recorded as started before it
	// does (bot.Changer); the others only look.
	Changes bool
}

// Spec is what a host command says about itself. A command embeds it for
// Name, Subcommands (bot.Subcommander) and Changes (bot.Changer).
type Spec struct {
	Command  string // the command's name: "apache"
	Synopsis string // shown with a usage error
	Subs     []Sub
	// Needs names the settings block a host must have in the inventory
	// for the command to act there ("relayd"), and NeedsHint says how to
	// add one; "" acts on every host.
	Needs, NeedsHint string
}

// Name implements bot.Command.
func (s Spec) Name() string { return s.Command }

// Subcommands implements bot.Subcommander.
func (s Spec) Subcommands() []string {
	out := make([]string, len(s.Subs))
	for i, sub := range s.Subs {
		out[i] = sub.Name
	}
	return out
}

// Changes implements bot.Changer from the table; an unknown key changes.
func (s Spec) Changes(key string) bool {
	sub := s.sub(strings.TrimPrefix(key, s.Command+" "))
	return sub.Name == "" || sub.Changes
}

// Request is a host command's words, validated: the subcommand and the
// hosts it acts on.
type Request struct {
	Command string
	Sub     string     // the subcommand, in lower case
	Target  string     // the host or group word as typed, or the only host's name
	Hosts   []bot.Host // a group's in the order the file lists them
	Group   bool
}

// Key is the permission and approval key: "apache reload".
func (r Request) Key() string { return r.Command + " " + r.Sub }

// Prefix is what a line of a reply about h starts with: its name in a
// group's reply, nothing in one host's.
func (r Request) Prefix(h bot.Host) string {
	if !r.Group {
		return ""
	}
	return h.Name + ": "
}

// Labels are the hosts as approvals bind to them (bot.Prepared.Hosts).
func (r Request) Labels() []string {
	out := make([]string, len(r.Hosts))
	for i, h := range r.Hosts {
		out[i] = h.Label()
	}
	return out
}

// Parse reads SUB [HOST|GROUP], for commands whose subcommands take no
// words of their own.
func (s Spec) Parse(hosts bot.HostResolver, req bot.Request) (Request, error) {
	sub, rest, err := s.Sub(req.Args)
	if err != nil {
		return Request{}, err
	}
	return s.Select(hosts, req, sub, rest)
}

// Sub reads the subcommand: the first word, which must be in the table.
// rest is the words after it.
func (s Spec) Sub(args []string) (sub string, rest []string, err error) {
	if len(args) == 0 {
		return "", nil, bot.Errorf(bot.EINVALID, "usage:\n%s", s.Synopsis)
	}
	sub = strings.ToLower(args[0])
	for _, known := range s.Subs {
		if known.Name == sub {
			return sub, args[1:], nil
		}
	}
	return "", nil, bot.Errorf(bot.EINVALID, "unknown subcommand %q: accepted are %s", text.Truncate(args[0], 40), strings.Join(s.Subcommands(), ", "))
}

// Select finds the hosts of sub from what is left of the words once the
// command took its own: a host or group, or nothing for the only host the
// asker may run sub on. A host without the settings block the command
// needs is refused.
func (s Spec) Select(hosts bot.HostResolver, req bot.Request, sub string, words []string) (Request, error) {
	r := Request{Command: s.Command, Sub: sub}
	if len(words) > 1 {
		if args := s.sub(sub).Args; args != "" {
			return Request{}, bot.Errorf(bot.EINVALID, "/%s %s takes %s, then one host or group: got %d words after %s (quote a name with spaces); usage:\n%s", s.Command, sub, args, len(words), args, s.Synopsis)
		}
		return Request{}, bot.Errorf(bot.EINVALID, "/%s %s takes one host or group, got %d words; usage:\n%s", s.Command, sub, len(words), s.Synopsis)
	}
	if hosts == nil {
		return Request{}, bot.Errorf(bot.ECONFIG, "no inventory: define hosts in the policy file")
	}
	if len(words) == 0 {
		return s.only(hosts, req, r)
	}
	r.Target = words[0]
	found, group, err := hosts.Resolve(req, r.Key(), r.Target)
	if err != nil {
		return Request{}, err
	}
	var bare []string
	for _, h := range found {
		if !s.acts(h) {
			bare = append(bare, h.Name)
		}
	}
	if len(bare) > 0 {
		return Request{}, bot.Errorf(bot.EINVALID, "%s: no %s settings in the inventory, so /%s does not act there; %s", strings.Join(bare, ", "), s.Needs, s.Command, s.NeedsHint)
	}
	r.Hosts, r.Group = found, group
	return r, nil
}

func (s Spec) sub(name string) Sub {
	for _, sub := range s.Subs {
		if sub.Name == name {
			return sub
		}
	}
	return Sub{}
}

// acts says whether the command acts on h.
func (s Spec) acts(h bot.Host) bool { return s.Needs == "" || h.HasSettings(s.Needs) }

// only picks the only host the asker may run the request on.
func (s Spec) only(hosts bot.HostResolver, req bot.Request, r Request) (Request, error) {
	var names []string
	for _, h := range hosts.Allowed(req, r.Key()) {
		if s.acts(h) {
			r.Hosts = append(r.Hosts, h)
			names = append(names, h.Name)
		}
	}
	switch len(r.Hosts) {
	case 1:
		r.Target = r.Hosts[0].Name
		return r, nil
	case 0:
		with := ""
		if s.Needs != "" {
			with = " with " + s.Needs + " settings"
		}
		return Request{}, bot.Errorf(bot.EINVALID, "/%s %s needs a host, and you may run it on no inventory host%s (see /opsbot hosts)", s.Command, r.Sub, with)
	}
	return Request{}, bot.Errorf(bot.EINVALID, "/%s %s needs a host or group: you may run it on %s", s.Command, r.Sub, strings.Join(names, ", "))
}
