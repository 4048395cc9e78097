package bot

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeResolver answers from a map; the real resolver is exercised by the
// namespace tests through /etc/hosts.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, &netDNSError{host}
}

type netDNSError struct{ host string }

func (e *netDNSError) Error() string { return "no such host " + e.host }

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, x := range s {
		out = append(out, netip.MustParseAddr(x))
	}
	return out
}

func newTargets(t *testing.T, rules TargetRules, r Resolver) *Targets {
	t.Helper()
	if rules.Allow == nil {
		rules.Allow = DefaultAllow
	}
	tg, err := NewTargets(rules, r, nil)
	require.NoError(t, err)
	return tg
}

func TestTargets_DefaultPolicy(t *testing.T) {
	tg := newTargets(t, TargetRules{}, fakeResolver{})
	for _, ok := range []string{"127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "::1", "fd12::1", "[::1]", "::ffff:10.0.0.1"} {
		_, err := tg.Resolve(context.Background(), ok)
		assert.NoError(t, err, ok)
	}
	for _, tc := range []struct{ host, code, msg string }{
		{"8.8.8.8", EDENIED, "not in targets.allow"},
		{"169.254.169.254", EDENIED, "link-local"},
		{"::ffff:169.254.169.254", EDENIED, "link-local"},
		{"fd00:ec2::254", EDENIED, "metadata"},
		{"fe80::1", EDENIED, "link-local"},
		{"0.0.0.0", EINVALID, "not a host address"},
		{"::", EINVALID, "not a host address"},
		{"224.0.0.1", EINVALID, "multicast"},
		{"", EINVALID, "empty host"},
		{"a;b", EINVALID, "invalid host"},
		{"$(id)", EINVALID, "invalid host"},
		{"`id`", EINVALID, "invalid host"},
		{"a b", EINVALID, "invalid host"},
		{"nosuch.test", ENOTFOUND, "cannot resolve"},
	} {
		_, err := tg.Resolve(context.Background(), tc.host)
		require.Error(t, err, tc.host)
		assert.Equal(t, tc.code, ErrorCode(err), tc.host)
		assert.Contains(t, ErrorMessage(err), tc.msg, tc.host)
	}
}

func TestTargets_MetadataAllowedOnlyWhenNamed(t *testing.T) {
	broad := newTargets(t, TargetRules{Allow: []string{"0.0.0.0/0", "::/0"}}, nil)
	_, err := broad.Resolve(context.Background(), "169.254.169.254")
	assert.Equal(t, EDENIED, ErrorCode(err), "0.0.0.0/0 does not name the metadata service")
	_, err = broad.Resolve(context.Background(), "fd00:ec2::254")
	assert.Equal(t, EDENIED, ErrorCode(err))

	named := newTargets(t, TargetRules{Allow: []string{"169.254.169.254"}}, nil)
	_, err = named.Resolve(context.Background(), "169.254.169.254")
	assert.NoError(t, err)
	_, err = named.Resolve(context.Background(), "169.254.1.1")
	assert.Equal(t, EDENIED, ErrorCode(err), "naming one address does not open the range")
}

func TestTargets_NameCheckedAfterResolution(t *testing.T) {
	r := fakeResolver{
		"evil.example.com":  addrs("169.254.169.254"),
		"mixed.example.com": addrs("10.0.0.5", "169.254.169.254"),
		"web.example.com":   addrs("203.0.113.10", "2001:db8::10"),
		"db.example.com":    addrs("10.9.0.1"),
	}
	tg := newTargets(t, TargetRules{Allow: []string{"10.0.0.0/8", "*.example.com"}, Deny: []string{"10.9.0.0/16"}}, r)

	_, err := tg.Resolve(context.Background(), "evil.example.com")
	require.Error(t, err)
	assert.Equal(t, EDENIED, ErrorCode(err), "DNS must not smuggle the metadata address in")

	got, err := tg.Resolve(context.Background(), "mixed.example.com")
	require.NoError(t, err)
	assert.Equal(t, addrs("10.0.0.5"), got.Addrs)
	require.Len(t, got.Skipped, 1)
	assert.Contains(t, got.Skipped[0], "169.254.169.254")

	got, err = tg.Resolve(context.Background(), "WEB.example.com.")
	require.NoError(t, err, "allowed by name pattern")
	assert.Equal(t, "web.example.com", got.Name)
	assert.Len(t, got.Addrs, 2)

	_, err = tg.Resolve(context.Background(), "db.example.com")
	assert.Equal(t, EDENIED, ErrorCode(err), "deny by address beats allow by name")
	_, err = tg.Resolve(context.Background(), "203.0.113.10")
	assert.Equal(t, EDENIED, ErrorCode(err), "the address alone is not allowed")
}

func TestTargets_DenyByName(t *testing.T) {
	r := fakeResolver{"db.prod.example.com": addrs("10.0.0.9")}
	tg := newTargets(t, TargetRules{Allow: []string{"10.0.0.0/8"}, Deny: []string{"*.prod.example.com"}}, r)
	_, err := tg.Resolve(context.Background(), "db.prod.example.com")
	assert.Equal(t, EDENIED, ErrorCode(err))
	assert.Contains(t, ErrorMessage(err), "*.prod.example.com")
}

func TestTargets_RateLimitPerAddress(t *testing.T) {
	lim := NewRateLimiter(2)
	now := time.Unix(1000, 0)
	lim.now = func() time.Time { return now }
	tg, err := NewTargets(TargetRules{Allow: DefaultAllow}, nil, lim)
	require.NoError(t, err)
	for i := 0; i < 2; i++ {
		_, err := tg.Resolve(context.Background(), "10.0.0.1")
		require.NoError(t, err)
	}
	_, err = tg.Resolve(context.Background(), "10.0.0.1")
	require.Error(t, err)
	assert.Equal(t, ERATELIMIT, ErrorCode(err))
	assert.Contains(t, ErrorMessage(err), "retry in 30s")
	_, err = tg.Resolve(context.Background(), "10.0.0.2")
	assert.NoError(t, err, "another address has its own budget")
	now = now.Add(31 * time.Second)
	_, err = tg.Resolve(context.Background(), "10.0.0.1")
	assert.NoError(t, err, "the budget refills")
}

func TestCompileRules_RejectsGarbage(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "a;b", "*.*.example.com", "ex*ample.com"} {
		_, err := NewTargets(TargetRules{Allow: []string{bad}}, nil, nil)
		assert.Error(t, err, bad)
	}
}

func TestTargets_DeniedNameDeniesItsAddresses(t *testing.T) {
	r := fakeResolver{
		"db.example.com":    addrs("10.0.0.9", "fd00::9"),
		"alias.example.com": addrs("10.0.0.9"),
		"web.example.com":   addrs("10.0.0.10", "10.0.0.9"),
	}
	tg := newTargets(t, TargetRules{Allow: []string{"10.0.0.0/8", "fc00::/7"}, Deny: []string{"db.example.com"}}, r)
	for _, host := range []string{"db.example.com", "10.0.0.9", "fd00::9", "[fd00::9]", "alias.example.com", "::ffff:10.0.0.9"} {
		_, err := tg.Resolve(context.Background(), host)
		require.Error(t, err, host)
		assert.Equal(t, EDENIED, ErrorCode(err), host)
		assert.Contains(t, ErrorMessage(err), "db.example.com", "%s: the message names the denied entry", host)
	}
	got, err := tg.Resolve(context.Background(), "web.example.com")
	require.NoError(t, err, "a name with another, allowed address keeps it")
	assert.Equal(t, addrs("10.0.0.10"), got.Addrs)
	require.Len(t, got.Skipped, 1)
	assert.Contains(t, got.Skipped[0], "address of db.example.com")
	_, err = tg.Resolve(context.Background(), "10.0.0.10")
	assert.NoError(t, err)

	// An approved run bound to the address is refused too.
	_, err = tg.Bound(context.Background(), "alias.example.com", []string{"10.0.0.9"})
	assert.Equal(t, EDENIED, ErrorCode(err))
}

// flakyResolver fails (not "not found") once told to.
type flakyResolver struct {
	fakeResolver
	down bool
}

func (f *flakyResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if f.down && host == "db.example.com" {
		return nil, &net.DNSError{Err: "server misbehaving", Name: host, IsTemporary: true}
	}
	return f.fakeResolver.LookupNetIP(ctx, network, host)
}

func TestTargets_DeniedNameStaysDeniedWhenDNSFails(t *testing.T) {
	r := &flakyResolver{fakeResolver: fakeResolver{"db.example.com": addrs("10.0.0.9")}}
	tg := newTargets(t, TargetRules{Allow: []string{"10.0.0.0/8"}, Deny: []string{"db.example.com"}}, r)
	now := time.Unix(1000, 0)
	tg.now = func() time.Time { return now }
	_, err := tg.Resolve(context.Background(), "10.0.0.9")
	require.Equal(t, EDENIED, ErrorCode(err))
	r.down = true
	now = now.Add(2 * denyTTL)
	_, err = tg.Resolve(context.Background(), "10.0.0.9")
	assert.Equal(t, EDENIED, ErrorCode(err), "a DNS outage does not open a denied host")
	r.down = false
	r.fakeResolver["db.example.com"] = addrs("10.0.0.19")
	now = now.Add(2 * denyTTL)
	_, err = tg.Resolve(context.Background(), "10.0.0.9")
	assert.NoError(t, err, "the name moved: its old address is no longer denied")
	_, err = tg.Resolve(context.Background(), "10.0.0.19")
	assert.Equal(t, EDENIED, ErrorCode(err))
}

func TestTargets_ZonesOnlyOnAllowedLinkLocal(t *testing.T) {
	tg := newTargets(t, TargetRules{Allow: []string{"fc00::/7", "fe80::1/128"}}, nil)
	for _, host := range []string{"fd00::5%1", "fd00::5%eth0", "[fd00::5%2]", "::1%lo"} {
		_, err := tg.Resolve(context.Background(), host)
		require.Error(t, err, host)
		assert.Equal(t, EINVALID, ErrorCode(err), host)
		assert.Contains(t, ErrorMessage(err), "a zone", host)
		assert.Contains(t, ErrorMessage(err), "link-local", host)
	}
	got, err := tg.Resolve(context.Background(), "fe80::1%eth0")
	require.NoError(t, err, "a link-local address the policy names may carry its zone")
	assert.Equal(t, "eth0", got.Addrs[0].Zone(), "the zone is kept for the probe")
	_, err = tg.Resolve(context.Background(), "fe80::2%eth0")
	assert.Equal(t, EDENIED, ErrorCode(err), "link-local is still the policy's to allow")
}

func TestTargets_RateLimitIgnoresZones(t *testing.T) {
	lim := NewRateLimiter(2)
	lim.now = func() time.Time { return time.Unix(1000, 0) }
	tg, err := NewTargets(TargetRules{Allow: []string{"fe80::/10"}}, nil, lim)
	require.NoError(t, err)
	_, err = tg.Resolve(context.Background(), "fe80::5%1")
	require.NoError(t, err)
	_, err = tg.Resolve(context.Background(), "fe80::5%eth0")
	require.NoError(t, err)
	_, err = tg.Resolve(context.Background(), "fe80::5%2")
	require.Error(t, err, "three zones of one address share one slot")
	assert.Equal(t, ERATELIMIT, ErrorCode(err))
	_, err = tg.Resolve(context.Background(), "fe80::5")
	assert.Equal(t, ERATELIMIT, ErrorCode(err))
}

// stuckResolver answers db.example.com at once until stuck is set, then
// holds every lookup until release is closed.
type stuckResolver struct {
	fakeResolver
	stuck   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (s *stuckResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if s.stuck.Load() {
		s.entered <- struct{}{}
		<-s.release
	}
	return s.fakeResolver.LookupNetIP(ctx, network, host)
}

// A slow refresh of the denied names holds up only the caller doing it:
// other checks go on with the addresses known, and stay refused.
func TestTargets_DenyRefreshDoesNotHoldOtherChecks(t *testing.T) {
	r := &stuckResolver{fakeResolver: fakeResolver{"db.example.com": addrs("10.0.0.9")}, entered: make(chan struct{}, 1), release: make(chan struct{})}
	tg := newTargets(t, TargetRules{Allow: []string{"10.0.0.0/8"}, Deny: []string{"db.example.com"}}, r)
	now := time.Unix(1000, 0)
	tg.now = func() time.Time { return now }
	_, err := tg.Resolve(context.Background(), "10.0.0.9")
	require.Equal(t, EDENIED, ErrorCode(err))

	now = now.Add(2 * denyTTL)
	r.stuck.Store(true)
	refreshed := make(chan error, 1)
	go func() {
		_, err := tg.Resolve(context.Background(), "10.0.0.9")
		refreshed <- err
	}()
	<-r.entered // the refresh is waiting for DNS
	other := make(chan [2]error, 1)
	go func() {
		_, denied := tg.Resolve(context.Background(), "10.0.0.9")
		_, allowed := tg.Resolve(context.Background(), "10.0.0.8")
		other <- [2]error{denied, allowed}
	}()
	select {
	case errs := <-other:
		assert.Equal(t, EDENIED, ErrorCode(errs[0]), "refused by the addresses known")
		assert.NoError(t, errs[1])
	case <-time.After(10 * time.Second):
		t.Error("other checks waited for the refresh's DNS lookup")
	}
	close(r.release)
	assert.Equal(t, EDENIED, ErrorCode(<-refreshed))
}

// CheckAddrs decides many addresses at once without DNS: each allowed by
// its address or by a name it came from, the others refused with why, and
// the allowed ones rate-limited.
func TestTargets_CheckAddrs(t *testing.T) {
	lim := NewRateLimiter(1)
	tg, err := NewTargets(TargetRules{Allow: []string{"10.0.0.0/24", "*.example.com"}, Deny: []string{"10.0.0.8/30", "bad.example.com"}},
		fakeResolver{"bad.example.com": addrs("10.0.0.5")}, lim)
	require.NoError(t, err)
	names := func(a netip.Addr) []string {
		if a == netip.MustParseAddr("192.0.2.7") {
			return []string{"web03.example.com"}
		}
		return nil
	}
	allowed, refused, err := tg.CheckAddrs(context.Background(), addrs("10.0.0.1", "10.0.0.5", "10.0.0.9", "192.0.2.7", "192.0.2.8", "169.254.169.254"), names)
	require.NoError(t, err)
	assert.Equal(t, addrs("10.0.0.1", "192.0.2.7"), allowed, "by address, and by the name it came from")
	require.Len(t, refused, 4)
	assert.Equal(t, Refusal{Addr: netip.MustParseAddr("10.0.0.5"), Code: EDENIED, Why: "is denied by policy: it is an address of bad.example.com (targets.deny: bad.example.com)"}, refused[0])
	assert.Equal(t, "is denied by policy (targets.deny: 10.0.0.8/30)", refused[1].Why)
	assert.Contains(t, refused[2].Why, "is not in targets.allow")
	assert.Contains(t, refused[3].Why, "is a link-local address")

	_, _, err = tg.CheckAddrs(context.Background(), addrs("10.0.0.1"), nil)
	assert.Equal(t, ERATELIMIT, ErrorCode(err), "each allowed address took a check")
}
