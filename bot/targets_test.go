package bot

import (
	"context"
	"net/netip"
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
