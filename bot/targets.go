package bot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/opsbot/opsbot/internal/text"
)

// Resolver looks up a name's addresses; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// sensitive ranges are denied unless an allow entry lies inside them: a
// policy that allows 0.0.0.0/0 has not said it wants the cloud metadata
// service probed, one that allows 169.254.169.254 has.
var sensitive = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address (cloud metadata services live here)"},
	{netip.MustParsePrefix("fe80::/10"), "an IPv6 link-local address"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "the AWS IPv6 metadata address"},
}

type rules struct {
	allow, deny           []netip.Prefix
	allowNames, denyNames []string // lower case; "*.x" matches any subdomain of x
	allowText, denyText   []string // as written, for messages
}

func compileRules(t TargetRules) (*rules, error) {
	r := &rules{}
	for _, list := range []struct {
		key      string
		in       []string
		prefixes *[]netip.Prefix
		names    *[]string
	}{
		{"targets.allow", t.Allow, &r.allow, &r.allowNames},
		{"targets.deny", t.Deny, &r.deny, &r.denyNames},
	} {
		for _, entry := range list.in {
			e := strings.TrimSpace(entry)
			if p, err := netip.ParsePrefix(e); err == nil {
				*list.prefixes = append(*list.prefixes, p.Masked())
				continue
			}
			if a, err := netip.ParseAddr(e); err == nil {
				a = a.Unmap()
				*list.prefixes = append(*list.prefixes, netip.PrefixFrom(a, a.BitLen()))
				continue
			}
			name := strings.ToLower(strings.TrimSuffix(e, "."))
			if err := checkName(strings.TrimPrefix(name, "*.")); err != nil || strings.Contains(strings.TrimPrefix(name, "*."), "*") {
				return nil, Errorf(ECONFIG, "%s: %q is not a CIDR, an address or a DNS name (a leading \"*.\" matches subdomains)", list.key, entry)
			}
			*list.names = append(*list.names, name)
		}
	}
	r.allowText, r.denyText = t.Allow, t.Deny
	return r, nil
}

func matchName(patterns []string, name string) (string, bool) {
	for _, p := range patterns {
		if p == name || (strings.HasPrefix(p, "*.") && strings.HasSuffix(name, p[1:])) {
			return p, true
		}
	}
	return "", false
}

func matchPrefix(prefixes []netip.Prefix, a netip.Addr) (netip.Prefix, bool) {
	for _, p := range prefixes {
		if p.Contains(a) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// Target is a host a user named, resolved and checked against policy.
type Target struct {
	Host    string       // as typed, brackets removed
	Name    string       // the DNS name, "" when Host is an address
	Addrs   []netip.Addr // allowed addresses, in resolver order
	Skipped []string     // addresses the policy denied, with why
}

// Targets checks hosts against the target policy after resolving them, so
// DNS cannot smuggle a denied address in, and rate-limits checks per
// address.
type Targets struct {
	rules    *rules
	resolver Resolver
	limiter  *RateLimiter
	now      func() time.Time

	// The addresses of the names in targets.deny, resolved when first
	// needed and again once they are older than denyTTL. A failed lookup
	// keeps the addresses known before: a DNS outage must not open them.
	// A refresh is done by one caller, outside the lock; the others go on
	// with the addresses known (a minute old at most) meanwhile.
	denyMu      sync.Mutex
	denyAt      time.Time
	denyAddr    map[netip.Addr]string // address -> the deny entry it came from; never changed once published
	denyRefresh bool                  // a refresh is under way
}

// denyTTL is how long the resolved addresses of denied names are trusted.
const denyTTL = time.Minute

// NewTargets compiles the rules. limiter may be nil (no per-target limit).
func NewTargets(t TargetRules, resolver Resolver, limiter *RateLimiter) (*Targets, error) {
	r, err := compileRules(t)
	if err != nil {
		return nil, err
	}
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	return &Targets{rules: r, resolver: resolver, limiter: limiter, now: time.Now}, nil
}

// deniedAddrs resolves the names in targets.deny (patterns like
// "*.prod.example.com" name no address and are matched by name only),
// so that the same host is refused by its address or another name.
func (t *Targets) deniedAddrs(ctx context.Context) map[netip.Addr]string {
	var names []string
	for _, n := range t.rules.denyNames {
		if !strings.HasPrefix(n, "*.") {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil
	}
	t.denyMu.Lock()
	now := t.now()
	if t.denyAddr != nil && (now.Sub(t.denyAt) < denyTTL || t.denyRefresh) {
		known := t.denyAddr
		t.denyMu.Unlock()
		return known
	}
	if t.denyAddr == nil {
		// The first lookup: nothing is known to refuse by, so every
		// caller waits for it.
		defer t.denyMu.Unlock()
		t.denyAddr, t.denyAt = t.resolveDenied(ctx, names, nil), now
		return t.denyAddr
	}
	t.denyRefresh = true
	known := t.denyAddr
	t.denyMu.Unlock()
	next := t.resolveDenied(ctx, names, known)
	t.denyMu.Lock()
	t.denyAddr, t.denyAt, t.denyRefresh = next, now, false
	t.denyMu.Unlock()
	return next
}

// resolveDenied looks up names at once, within 5 s. A name whose lookup
// failed for any reason but "no such host" keeps its addresses in known.
func (t *Targets) resolveDenied(ctx context.Context, names []string, known map[netip.Addr]string) map[netip.Addr]string {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	type answer struct {
		name  string
		addrs []netip.Addr
		err   error
	}
	answers := make(chan answer, len(names))
	for _, n := range names {
		go func() {
			a, err := t.resolver.LookupNetIP(lctx, "ip", n)
			answers <- answer{n, a, err}
		}()
	}
	next := map[netip.Addr]string{}
	for range names {
		ans := <-answers
		if ans.err != nil {
			var dnsErr *net.DNSError
			if !errors.As(ans.err, &dnsErr) || !dnsErr.IsNotFound {
				// Keep what this name resolved to before.
				for a, n := range known {
					if n == ans.name {
						next[a] = n
					}
				}
				continue
			}
		}
		for _, a := range ans.addrs {
			next[a.Unmap().WithZone("")] = ans.name
		}
	}
	return next
}

// ParseHost validates a host as typed: an IPv4 or IPv6 address (brackets
// allowed) or a DNS name. It returns the address, or the name in lower case.
func ParseHost(s string) (netip.Addr, string, error) {
	h := s
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if h == "" {
		return netip.Addr{}, "", Errorf(EINVALID, "empty host: give a DNS name, an IPv4 or an IPv6 address")
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return a, "", nil
	}
	name := strings.ToLower(strings.TrimSuffix(h, "."))
	if err := checkName(name); err != nil {
		return netip.Addr{}, "", Errorf(EINVALID, "invalid host %q: %s; a host is a DNS name (letters, digits, hyphens, dots), an IPv4 or an IPv6 address", s, err.Error())
	}
	return netip.Addr{}, name, nil
}

func checkName(name string) error {
	if name == "" {
		return errors.New("empty name")
	}
	if len(name) > 253 {
		return errors.New("longer than 253 characters")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" {
			return errors.New("empty label")
		}
		if len(label) > 63 {
			return errors.New("a label is longer than 63 characters")
		}
		for i, c := range label {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '*'
			if !ok {
				return fmt.Errorf("%q is not allowed in a name", c)
			}
			if c == '-' && (i == 0 || i == len(label)-1) {
				return errors.New("a label starts or ends with a hyphen")
			}
		}
	}
	return nil
}

// Resolve validates host, resolves names, and keeps the addresses the
// policy allows. It fails with EINVALID for a malformed host, ENOTFOUND for
// a name that does not resolve, EDENIED when no address is allowed and
// ERATELIMIT when an address has been checked too often.
func (t *Targets) Resolve(ctx context.Context, host string) (Target, error) {
	addr, name, err := ParseHost(host)
	if err != nil {
		return Target{}, err
	}
	tg := Target{Host: strings.Trim(host, "[]"), Name: name}
	var addrs []netip.Addr
	if name == "" {
		if e := checkZone(addr); e != nil {
			return tg, e
		}
		addrs = []netip.Addr{addr}
	} else {
		if p, denied := matchName(t.rules.denyNames, name); denied {
			return tg, Errorf(EDENIED, "%s is denied by policy (targets.deny: %s)", name, p)
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		addrs, err = t.resolver.LookupNetIP(lctx, "ip", name)
		if err != nil || len(addrs) == 0 {
			var dnsErr *net.DNSError
			why := "no address"
			if errors.As(err, &dnsErr) {
				why = dnsErr.Err
			}
			return tg, &Error{Code: ENOTFOUND, Message: fmt.Sprintf("cannot resolve %s: %s", name, why), Err: err}
		}
	}
	var firstDenial *Error
	seen := map[netip.Addr]bool{}
	denied := t.deniedAddrs(ctx)
	for _, a := range addrs {
		a = a.Unmap()
		if name != "" {
			a = a.WithZone("") // a resolver's zone is not the user's to choose
		}
		if seen[a] {
			continue
		}
		seen[a] = true
		e := t.check(a, name)
		if e == nil {
			e = deniedByName(denied, a)
		}
		if e != nil {
			if name == "" {
				return tg, e
			}
			if firstDenial == nil {
				firstDenial = e
			}
			tg.Skipped = append(tg.Skipped, e.Message)
			continue
		}
		tg.Addrs = append(tg.Addrs, a)
	}
	if len(tg.Addrs) == 0 {
		return tg, Errorf(firstDenial.Code, "%s resolves only to addresses the policy does not allow: %s", name, strings.Join(tg.Skipped, "; "))
	}
	return tg, t.limit(tg.Addrs)
}

// limit takes one check of each address from the per-target limiter,
// keyed without a zone: fd00::5%1 and fd00::5%eth0 are one host.
func (t *Targets) limit(addrs []netip.Addr) error {
	if t.limiter == nil {
		return nil
	}
	for _, a := range addrs {
		if wait, ok := t.limiter.Allow(a.WithZone("").String()); !ok {
			return Errorf(ERATELIMIT, "%s has been checked too often: retry in %s", a, roundUp(wait))
		}
	}
	return nil
}

// checkZone refuses an IPv6 zone (fd00::5%eth0) except on a link-local
// address, the only kind whose meaning depends on the interface; whether a
// link-local address may be checked at all is the policy's to say.
func checkZone(a netip.Addr) *Error {
	zone := a.Zone()
	if zone == "" || a.IsLinkLocalUnicast() {
		return nil
	}
	return Errorf(EINVALID, "%s: a zone (%%%s) is accepted only on a link-local address (fe80::/10); write %s", a, zone, a.WithZone(""))
}

// deniedByName refuses an address that a name in targets.deny resolves to.
func deniedByName(denied map[netip.Addr]string, a netip.Addr) *Error {
	if n, ok := denied[a.WithZone("")]; ok {
		return Errorf(EDENIED, "%s is denied by policy: it is an address of %s (targets.deny: %s)", a, n, n)
	}
	return nil
}

// Bound checks the addresses an approval bound host to, for the approved
// run: no name is resolved again, so a DNS answer that changed since the
// approval (round robin, a TTL of 0) cannot send the run anywhere else.
// Each address must still be one policy allows for host, and the
// per-address rate limit applies as for any check.
func (t *Targets) Bound(ctx context.Context, host string, bound []string) (Target, error) {
	_, name, err := ParseHost(host)
	if err != nil {
		return Target{}, err
	}
	tg := Target{Host: strings.Trim(host, "[]"), Name: name}
	if len(bound) == 0 {
		return tg, Errorf(EFAILED, "the approval of %s is bound to no address: nothing ran; request it again", tg.Host)
	}
	denied := t.deniedAddrs(ctx)
	for _, b := range bound {
		a, err := netip.ParseAddr(b)
		if err != nil {
			return tg, Errorf(EFAILED, "the approval of %s is bound to %q, which is not an address: nothing ran; request it again", tg.Host, text.Truncate(b, 60))
		}
		e := t.check(a, name)
		if e == nil {
			e = deniedByName(denied, a)
		}
		if e == nil {
			e = checkZone(a)
		}
		if e != nil {
			return tg, Errorf(e.Code, "the approved address %s may no longer be checked: %s; nothing ran", a, e.Message)
		}
		tg.Addrs = append(tg.Addrs, a)
	}
	return tg, t.limit(tg.Addrs)
}

// check decides one address. name is what the user typed when it was a
// name: allow-by-name lets a name reach its addresses, but deny rules and
// the sensitive ranges still apply to the address itself.
func (t *Targets) check(a netip.Addr, name string) *Error {
	a = a.WithZone("")
	switch {
	case a.IsUnspecified():
		return Errorf(EINVALID, "%s is not a host address (it means \"any\"); name the host", a)
	case a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return Errorf(EINVALID, "%s is a multicast or broadcast address; name one host", a)
	}
	if p, ok := matchPrefix(t.rules.deny, a); ok {
		return Errorf(EDENIED, "%s is denied by policy (targets.deny: %s)", a, p)
	}
	for _, s := range sensitive {
		if !s.prefix.Contains(a) {
			continue
		}
		for _, p := range t.rules.allow {
			if p.Overlaps(s.prefix) && p.Bits() >= s.prefix.Bits() && p.Contains(a) {
				return nil
			}
		}
		return Errorf(EDENIED, "%s is %s: denied unless targets.allow names it explicitly", a, s.what)
	}
	if _, ok := matchPrefix(t.rules.allow, a); ok {
		return nil
	}
	if name != "" {
		if _, ok := matchName(t.rules.allowNames, name); ok {
			return nil
		}
	}
	return Errorf(EDENIED, "%s is not in targets.allow (%s)", a, strings.Join(t.rules.allowText, ", "))
}

func roundUp(d time.Duration) time.Duration {
	if d < time.Second {
		return time.Second
	}
	return d.Round(time.Second)
}

// Refusal is an address the target policy refused, and why.
type Refusal struct {
	Addr netip.Addr
	Code string // EDENIED, or EINVALID for an address that names no host
	Why  string // the reason, without the address ("not in targets.allow (...)")
}

// CheckAddrs checks addresses of a request that names many (a subnet, an
// inventory group) against the target policy, resolving nothing: each is
// allowed by its address, or by one of names(a), the DNS names it came
// from (nil: none). allowed keeps the order; refused says why for each of
// the others. The allowed addresses then take one check each from the
// per-target rate limiter (ERATELIMIT when one has been checked too often).
func (t *Targets) CheckAddrs(ctx context.Context, addrs []netip.Addr, names func(netip.Addr) []string) (allowed []netip.Addr, refused []Refusal, err error) {
	denied := t.deniedAddrs(ctx)
	for _, a := range addrs {
		a = a.Unmap()
		e := checkZone(a)
		if e == nil {
			e = t.check(a, "")
			if e != nil && e.Code == EDENIED && names != nil {
				for _, n := range names(a) {
					if t.check(a, n) == nil {
						e = nil
						break
					}
				}
			}
		}
		if e == nil {
			e = deniedByName(denied, a)
		}
		if e != nil {
			refused = append(refused, Refusal{Addr: a, Code: e.Code, Why: strings.TrimPrefix(e.Message, a.String()+" ")})
			continue
		}
		allowed = append(allowed, a)
	}
	return allowed, refused, t.limit(allowed)
}
