package commands

import (
	"context"
	"fmt"
	"math/big"
	"net/netip"
	"strings"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/vantage"
	"github.com/opsbot/opsbot/internal/text"
)

// Many targets: /scan 10.0.0.0/24 22,443, /scan web 22,443 and
// /portcheck web 443, where web is an inventory group (or host). The word
// is expanded into addresses before anything is probed; every address is
// checked against the target policy (the refused ones are never probed,
// and the reply says which and why); a request may name at most
// limits.addresses_per_request addresses; an approval binds the allowed
// address list, and the approved run probes that list and nothing else.

// sweepTarget is one address of a many-target request.
type sweepTarget struct {
	addr netip.Addr
	host string // the inventory host it is the address of; "" in a subnet
}

// label is how replies name the target: "web01 (10.0.0.11)" or the address.
func (t sweepTarget) label() string {
	if t.host == "" {
		return t.addr.String()
	}
	return t.host + " (" + t.addr.String() + ")"
}

// targetSet is what a subnet or an inventory group named: the addresses
// the policy allows, in order, and what it refused.
type targetSet struct {
	word    string       // as typed
	prefix  netip.Prefix // the network of a subnet; invalid for a group
	group   bool         // an inventory group (else a subnet, or one inventory host)
	targets []sweepTarget
	refused []string // "10.0.0.128-10.0.0.255: not in targets.allow (...)", "web03: no address in the inventory"
	notes   []string // "10.0.0.5/24 has host bits set: ..."
}

func (s targetSet) addrs() []string {
	out := make([]string, len(s.targets))
	for i, t := range s.targets {
		out[i] = t.addr.String()
	}
	return out
}

// what names the set in titles: "10.0.0.0/24" or "group web (3 hosts)".
func (s targetSet) what() string {
	if s.prefix.IsValid() {
		return s.prefix.String()
	}
	if s.group {
		return "group " + s.word
	}
	return s.word
}

// isSubnet reports whether a host word is written as a subnet (CIDR).
func isSubnet(word string) bool { return strings.Contains(word, "/") }

// notASubnet is the error for a word with a "/" that is no CIDR.
func notASubnet(word string) error {
	return bot.Errorf(bot.EINVALID, "%q is not a subnet: write a CIDR such as 10.0.0.0/24 or fd00::/120", text.TruncateRunes(word, 60))
}

// manyTargets decides whether ta.host names many targets: a subnet, or an
// inventory host or group (hosts, which may be nil, decides which names
// are). ok is false for one address or a DNS name: the caller checks it as
// one host. inventoryMiss is the inventory's answer for a name it does not
// know, to say alongside a DNS failure.
//
// With bound (an approved run) nothing is resolved: the bound addresses
// are the targets, each checked against the policy again and against the
// subnet or the inventory.
func manyTargets(ctx context.Context, req bot.Request, key string, targets *bot.Targets, hosts vantage.Hosts, ta targetArgs, limit int) (set targetSet, ok bool, inventoryMiss error, err error) {
	if limit <= 0 {
		limit = bot.DefaultAddressesPerRequest
	}
	set.word = ta.host
	var cands []sweepTarget
	var names map[netip.Addr][]string // DNS names an address came from, for allow-by-name
	switch {
	case isSubnet(ta.host):
		if cands, err = set.subnet(ta, limit); err != nil {
			return set, true, nil, err
		}
	default:
		if a, _, perr := bot.ParseHost(ta.host); perr != nil || a.IsValid() || hosts == nil {
			return set, false, nil, nil
		}
		members, group, rerr := hosts.Resolve(req, key, ta.host)
		if rerr != nil {
			if code := bot.ErrorCode(rerr); code == bot.ENOTFOUND || code == bot.EINVALID {
				return set, false, rerr, nil // not the inventory's: a DNS name
			}
			return set, true, nil, rerr
		}
		set.group = group
		if len(members) > limit {
			return set, true, nil, bot.Errorf(bot.EINVALID, "group %s has %d hosts: policy allows at most %d addresses per request (limits.addresses_per_request); name fewer hosts", ta.host, len(members), limit)
		}
		if cands, names, err = set.inventory(ctx, targets, members, ta, len(req.Bound) > 0); err != nil {
			return set, true, nil, err
		}
	}
	if len(req.Bound) > 0 {
		cands, err = set.bound(req.Bound, cands, names)
		if err != nil {
			return set, true, nil, err
		}
	}
	addrs := make([]netip.Addr, len(cands))
	hostOf := map[netip.Addr]string{}
	for i, c := range cands {
		addrs[i] = c.addr
		hostOf[c.addr] = c.host
	}
	allowed, refused, err := targets.CheckAddrs(ctx, addrs, func(a netip.Addr) []string { return names[a] })
	if len(req.Bound) > 0 && len(refused) > 0 {
		r := refused[0]
		return set, true, nil, bot.Errorf(r.Code, "the approved address %s may no longer be checked: %s; nothing ran", r.Addr, r.Why)
	}
	set.refused = append(set.refused, refusalRanges(refused)...)
	if len(allowed) == 0 {
		why := "none of them is an address"
		if len(set.refused) > 0 {
			why = strings.Join(set.refused, "; ")
		}
		code := bot.EDENIED
		if len(refused) > 0 && refused[0].Code != bot.EDENIED {
			code = refused[0].Code
		}
		return set, true, nil, bot.Errorf(code, "nothing of %s may be checked: %s", set.what(), why)
	}
	if err != nil {
		return set, true, nil, err
	}
	for _, a := range allowed {
		set.targets = append(set.targets, sweepTarget{addr: a, host: hostOf[a]})
	}
	return set, true, nil, nil
}

// subnet expands a CIDR into its host addresses: for IPv4 shorter than
// /31 without the network and broadcast addresses, which name no host.
func (s *targetSet) subnet(ta targetArgs, limit int) ([]sweepTarget, error) {
	p, err := netip.ParsePrefix(ta.host)
	if err != nil {
		return nil, notASubnet(ta.host)
	}
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	switch {
	case ta.family == 4 && p.Addr().Is6():
		return nil, bot.Errorf(bot.EINVALID, "-4 asks for IPv4 but %s is an IPv6 subnet: drop -4", p)
	case ta.family == 6 && p.Addr().Is4():
		return nil, bot.Errorf(bot.EINVALID, "-6 asks for IPv6 but %s is an IPv4 subnet: drop -6", p)
	}
	s.prefix = p.Masked()
	hostBits := p.Addr().BitLen() - p.Bits()
	n := new(big.Int).Lsh(big.NewInt(1), uint(hostBits)) //nolint:gosec // 0 <= hostBits <= 128
	edges := p.Addr().Is4() && hostBits >= 2
	if edges {
		n.Sub(n, big.NewInt(2))
	}
	if n.Cmp(big.NewInt(int64(limit))) > 0 {
		return nil, bot.Errorf(bot.EINVALID, "%s is %s addresses: policy allows at most %d per request (limits.addresses_per_request); split it into smaller subnets", s.prefix, count(n), limit)
	}
	if s.prefix != p {
		s.notes = append(s.notes, fmt.Sprintf("%s has host bits set: checked the network %s.", p, s.prefix))
	}
	if edges {
		s.notes = append(s.notes, fmt.Sprintf("The network and broadcast addresses of %s (%s, %s) name no host and were left out.", s.prefix, s.prefix.Addr(), last(s.prefix)))
	}
	var out []sweepTarget
	end := last(s.prefix)
	for a := s.prefix.Addr(); a.IsValid(); a = a.Next() {
		if !edges || (a != s.prefix.Addr() && a != end) {
			out = append(out, sweepTarget{addr: a})
		}
		if a == end {
			break
		}
	}
	return out, nil
}

// last is the highest address of a masked prefix.
func last(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// count writes a large number of addresses readably: "16777214", "2^64".
func count(n *big.Int) string {
	if n.BitLen() > 40 {
		return fmt.Sprintf("about 2^%d", n.BitLen()-1)
	}
	return n.String()
}

// inventory takes each member's inventory address: an IP address as
// written, or a DNS name resolved through the policy (not on an approved
// run, which resolves nothing: the names are returned for allow-by-name).
func (s *targetSet) inventory(ctx context.Context, targets *bot.Targets, members []bot.Host, ta targetArgs, approved bool) ([]sweepTarget, map[netip.Addr][]string, error) {
	var out []sweepTarget
	names := map[netip.Addr][]string{}
	for _, h := range members {
		if h.Address == "" {
			s.refused = append(s.refused, h.Name+": no address in the inventory (it is the bot's own host: check 127.0.0.1)")
			continue
		}
		if a, err := netip.ParseAddr(h.Address); err == nil {
			a = a.Unmap()
			if ta.family != 0 && (ta.family == 4) != a.Is4() {
				s.refused = append(s.refused, fmt.Sprintf("%s: its address %s is not IPv%d", h.Name, a, ta.family))
				continue
			}
			out = append(out, sweepTarget{addr: a, host: h.Name})
			continue
		}
		if approved {
			names[netip.Addr{}] = append(names[netip.Addr{}], h.Address) // matched against the bound addresses in bound
			continue
		}
		tg, err := resolve(ctx, targets, targetArgs{host: h.Address, family: ta.family})
		if err != nil {
			s.refused = append(s.refused, h.Name+": "+bot.ErrorMessage(err))
			continue
		}
		a := tg.Addrs[0]
		names[a] = append(names[a], tg.Name)
		out = append(out, sweepTarget{addr: a, host: h.Name})
		if len(tg.Addrs) > 1 {
			s.notes = append(s.notes, fmt.Sprintf("%s (%s) has %d allowed addresses; checked %s.", h.Name, h.Address, len(tg.Addrs), a))
		}
	}
	if len(members) == 1 && len(out) == 0 && len(s.refused) == 1 {
		return nil, nil, bot.Errorf(bot.EINVALID, "%s", s.refused[0])
	}
	return out, names, nil
}

// bound is the approved run's targets: the bound addresses, each of which
// must still belong to the subnet or be an address of the group (a member
// named by DNS is not resolved again: its address is allowed by its name).
func (s *targetSet) bound(bound []string, cands []sweepTarget, names map[netip.Addr][]string) ([]sweepTarget, error) {
	known := map[netip.Addr]string{}
	for _, c := range cands {
		known[c.addr] = c.host
	}
	dnsNames := names[netip.Addr{}]
	var out []sweepTarget
	for _, b := range bound {
		a, err := netip.ParseAddr(b)
		if err != nil {
			return nil, bot.Errorf(bot.EFAILED, "the approval of %s is bound to %q, which is not an address: nothing ran; request it again", s.word, text.TruncateRunes(b, 60))
		}
		host, ok := known[a]
		switch {
		case s.prefix.IsValid() && !s.prefix.Contains(a):
			return nil, bot.Errorf(bot.EFAILED, "the approval of %s is bound to %s, outside it: nothing ran; request it again", s.word, a)
		case !s.prefix.IsValid() && !ok && len(dnsNames) == 0:
			return nil, bot.Errorf(bot.EFAILED, "the approved address %s is no longer an address of %s in the inventory: nothing ran; request it again", a, s.word)
		case !ok:
			names[a] = dnsNames
		}
		out = append(out, sweepTarget{addr: a, host: host})
	}
	return out, nil
}

// refusalRanges groups the refused addresses by reason, each as ranges:
// "10.0.0.128-10.0.0.255: not in targets.allow (10.0.0.0/25)".
func refusalRanges(refused []bot.Refusal) []string {
	var order []string
	by := map[string][]netip.Addr{}
	for _, r := range refused {
		if _, ok := by[r.Why]; !ok {
			order = append(order, r.Why)
		}
		by[r.Why] = append(by[r.Why], r.Addr)
	}
	out := make([]string, len(order))
	for i, why := range order {
		out[i] = addrRanges(by[why]) + ": " + why
	}
	return out
}

// addrRanges writes addresses compactly, consecutive ones as a range:
// "10.0.0.1-10.0.0.40, 10.0.0.77". The order is kept.
func addrRanges(addrs []netip.Addr) string {
	var b strings.Builder
	for i := 0; i < len(addrs); {
		j := i
		for j+1 < len(addrs) && addrs[j].Next() == addrs[j+1] {
			j++
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(addrs[i].String())
		if j > i {
			b.WriteString("-" + addrs[j].String())
		}
		i = j + 1
	}
	return b.String()
}

// oneTarget refuses a subnet or an inventory group where only one address
// can be checked (until, from): what says which.
func oneTarget(set targetSet, what string) error {
	return bot.Errorf(bot.EINVALID, "%s takes one address, and %s names %d: name one host", what, set.what(), len(set.targets))
}

// pickTargets is the front of /scan and /portcheck: the word after the
// command names one host (tg, many false) or many addresses (set, many
// true). For a check from vantage hosts it only turns an inventory host
// into its address (ta.host), refusing a subnet or a group, and resolves
// nothing: the vantage path decides its hosts first. n is target's: how
// many bound addresses an approved run of one host takes (0: all).
func pickTargets(ctx context.Context, req bot.Request, key string, targets *bot.Targets, hosts vantage.Hosts, ta *targetArgs, limit, n int) (tg bot.Target, set targetSet, many bool, err error) {
	if ta.vantage != "" {
		if isSubnet(ta.host) {
			return tg, set, false, bot.Errorf(bot.EINVALID, "from checks one address, and %s is a subnet: drop from %s, or name one host", ta.host, ta.vantage)
		}
		if a, _, perr := bot.ParseHost(ta.host); perr == nil && !a.IsValid() && hosts != nil {
			members, group, rerr := hosts.Resolve(req, key, ta.host)
			switch {
			case rerr == nil && group:
				return tg, set, false, bot.Errorf(bot.EINVALID, "from checks one address, and %s is a group of %d hosts: drop from %s, or name one host", ta.host, len(members), ta.vantage)
			case rerr == nil && members[0].Address == "":
				return tg, set, false, bot.Errorf(bot.EINVALID, "%s has no address in the inventory (it is the bot's own host): name its address", ta.host)
			case rerr == nil:
				ta.host = members[0].Address
			case bot.ErrorCode(rerr) == bot.EDENIED:
				return tg, set, false, rerr
			}
		}
		return tg, set, false, nil
	}
	set, many, miss, err := manyTargets(ctx, req, key, targets, hosts, *ta, limit)
	if err != nil {
		return tg, set, many, err
	}
	if many {
		if !set.group && !set.prefix.IsValid() && len(set.targets) == 1 {
			// One inventory host: checked as one host, named as the
			// inventory names it.
			return bot.Target{Host: set.word, Name: set.word, Addrs: []netip.Addr{set.targets[0].addr}, Skipped: set.refused}, set, false, nil
		}
		return tg, set, true, nil
	}
	tg, err = target(ctx, targets, *ta, req.Bound, n)
	if err != nil && miss != nil && bot.ErrorCode(err) == bot.ENOTFOUND {
		return tg, set, false, bot.Errorf(bot.ENOTFOUND, "%s; nor does DNS know it (%s)", bot.ErrorMessage(miss), bot.ErrorMessage(err))
	}
	return tg, set, false, err
}
