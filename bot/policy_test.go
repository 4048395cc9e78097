package bot

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDefaultPolicy(t *testing.T) {
	p := DefaultPolicy()
	assert.Equal(t, DefaultAllow, p.Targets.Allow)
	assert.Equal(t, 65535, p.Limits.ScanPorts)
	assert.Equal(t, 10*time.Minute, p.Limits.ListenFor.D)
	assert.Equal(t, 15*time.Minute, p.Approval.TTL.D)
}

func TestParsePolicy_DesignExample(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "design-policy.yaml"))
	require.NoError(t, err)
	p, err := ParsePolicy(data, asWritten("apache"), asWritten("relayd"))
	require.NoError(t, err)
	assert.Equal(t, []string{"169.254.0.0/16"}, p.Targets.Deny)
	assert.Equal(t, 65535, p.Limits.ScanPorts)
	assert.Equal(t, 10*time.Minute, p.Limits.ListenFor.D)
	assert.Equal(t, "doas", p.Hosts["lb01"].Become)
	lb01, _ := NewInventory(p).Host("lb01")
	assert.Equal(t, uint64(50), lb01.Settings["relayd"].(map[string]any)["demote"])
}

func TestParsePolicy_UnknownKeyNamesItsLine(t *testing.T) {
	_, err := ParsePolicy([]byte("targets:\n  allow: [10.0.0.0/8]\nlimits:\n  scan_ports: 100\n  scan_portz: 5\n"))
	require.Error(t, err)
	assert.Equal(t, ECONFIG, ErrorCode(err))
	assert.Contains(t, ErrorMessage(err), "5:3")
	assert.Contains(t, ErrorMessage(err), `unknown field "scan_portz"`)
}

func TestParsePolicy_HostSettingsBelongToTheirCommands(t *testing.T) {
	strict := HostBlock{Key: "svc", Decode: func(s HostSettings) (any, error) {
		var b struct {
			Path string `yaml:"path"`
			Port int    `yaml:"port"`
		}
		if err := s.Decode(&b); err != nil {
			return nil, err
		}
		if b.Path != "" && b.Path[0] != '/' {
			return nil, errors.Join(s.Errorf("path", "hosts: %q has svc.path %q: write an absolute path", s.Host, b.Path), errors.New("and one more"))
		}
		return b.Path, nil
	}}
	p, err := ParsePolicy([]byte("hosts:\n  a: {via: local, svc: {path: /x}}\n  b:\n    via: local\n    svc:\n"), strict)
	require.NoError(t, err)
	inv := NewInventory(p)
	a, _ := inv.Host("a")
	assert.Equal(t, "/x", a.Settings["svc"], "what the command made of its block")
	b, _ := inv.Host("b")
	assert.True(t, b.HasSettings("svc"), "an empty block is a block: the command's defaults")

	for _, tc := range []struct{ yaml, want string }{
		{"hosts:\n  a:\n    via: local\n    svc:\n      path: /x\n      paht: /y\n", `6:7: unknown field "paht"`},
		{"hosts:\n  a:\n    via: local\n    svc: {port: many}\n", "4:17"},
		{"hosts:\n  a:\n    via: local\n    svc:\n      path: x\n", `5:13: hosts: "a" has svc.path "x": write an absolute path`},
		{"hosts:\n  a:\n    via: local\n    svc:\n      path: x\n", "hosts.a.svc: and one more"},
		{"hosts:\n  a:\n    via: local\n    svd: {}\n", `4:5: hosts.a: unknown field "svd": accepted are address, via, user, port, become, tags, timeout, and the settings of svc`},
		{"hosts:\n  a:\n    adress: 10.0.0.1\n", `3:5: hosts.a: unknown field "adress"`},
	} {
		_, err := ParsePolicy([]byte(tc.yaml), strict)
		require.Error(t, err, tc.yaml)
		assert.Equal(t, ECONFIG, ErrorCode(err))
		assert.Contains(t, ErrorMessage(err), tc.want, tc.yaml)
	}
	_, err = ParsePolicy([]byte("hosts:\n  a: {via: local, svc: {}}\n"))
	assert.Contains(t, ErrorMessage(err), `unknown field "svc"`, "a block no command claims is unknown")
}

func TestLoadPolicy_ErrorNamesFileAndLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.yaml")
	require.NoError(t, os.WriteFile(path, []byte("limits:\n  listen_for: forever\n"), 0o600))
	_, err := LoadPolicy(path)
	require.Error(t, err)
	assert.Contains(t, ErrorMessage(err), path+":2:")
}

func TestParsePolicy_Validation(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"limits: {scan_ports: 70000}", "limits.scan_ports is 70000"},
		{"limits: {scan_concurrency: -1}", "limits.scan_concurrency"},
		{"limits: {listen_for: 48h}", "limits.listen_for is 48h0m0s"},
		{"targets: {allow: [\"10.0.0.0/40\"]}", "targets.allow"},
		{"users: {alice: [oncall]}\nroles: {oncall: {commands: [scan]}}", "must be platform:user"},
		{"users: {\"shell:alice\": [nobody]}", "role \"nobody\""},
		{"groups: {web: [web09]}", "host \"web09\""},
		{"hosts: {a: {via: telnet}}", "via \"telnet\""},
		{"approval: {ttl: 10ms}", "approval.ttl is 10ms: accepted 1s to 168h"},
		{"limits: {addresses_per_request: 0}", "limits.addresses_per_request is 0: accepted 1 to 65536"},
		{"limits:\n  scan_ports: 1\nlimits:\n  scan_ports: 2\n", "already defined"},
	} {
		_, err := ParsePolicy([]byte(tc.yaml))
		require.Error(t, err, tc.yaml)
		assert.Contains(t, ErrorMessage(err), tc.want, tc.yaml)
	}
}

func TestParsePolicy_ValidationNamesTheLine(t *testing.T) {
	_, err := ParsePolicy([]byte("targets:\n  allow: [10.0.0.0/8]\nlimits:\n  scan_ports: 70000\n  listen_for: forever\n"))
	require.Error(t, err)
	msg := ErrorMessage(err)
	assert.Contains(t, msg, "4:15: limits.scan_ports is 70000: accepted 1 to 65535")
	assert.Contains(t, msg, `5:15: limits.listen_for is "forever"`)
}

func TestParsePolicy_ExplicitZeroIsNotTheDefault(t *testing.T) {
	_, err := ParsePolicy([]byte("limits:\n  scan_ports: 0\n"))
	require.Error(t, err)
	assert.Contains(t, ErrorMessage(err), "limits.scan_ports is 0")
	p, err := ParsePolicy([]byte("limits:\n  scan_rate: 0\n"))
	require.NoError(t, err, "scan_rate 0 means no limit")
	assert.Equal(t, DefaultScanPorts, p.Limits.ScanPorts, "absent keys keep their defaults")
	p, err = ParsePolicy([]byte("targets:\n  allow: []\n"))
	require.NoError(t, err)
	assert.Empty(t, p.Targets.Allow, "an explicit empty allow list allows nothing")
}

func TestPolicy_SlackGrantsByUserIDOnly(t *testing.T) {
	for _, doc := range []string{
		"roles:\n  r: {commands: [scan]}\nusers:\n  \"slack:alice\": [r]\n",
		"people:\n  alice: [\"slack:alice\", \"mattermost:alice\"]\n",
		"roles:\n  r: {commands: [scan]}\nusers:\n  \"slack:u024be7lh\": [r]\n",
	} {
		_, err := ParsePolicy([]byte(doc))
		require.Error(t, err, doc)
		assert.Equal(t, ECONFIG, ErrorCode(err))
		assert.Contains(t, ErrorMessage(err), "is not a Slack user ID: Slack grants by user ID only (slack:U024BE7LH", doc)
	}
	for _, doc := range []string{
		"roles:\n  r: {commands: [scan]}\nusers:\n  \"slack:U024BE7LH\": [r]\n  \"slack:W012A3CDE\": [r]\n  \"mattermost:alice\": [r]\n",
	} {
		_, err := ParsePolicy([]byte(doc))
		assert.NoError(t, err, doc)
	}
}

func TestParsePolicy_TLS(t *testing.T) {
	p, err := ParsePolicy([]byte("targets: {allow: [127.0.0.1]}\n"))
	require.NoError(t, err)
	assert.Equal(t, DefaultTLSExpiryWarnDays, p.TLS.ExpiryWarnDays)
	roots, err := p.TLS.Roots()
	require.NoError(t, err)
	assert.Nil(t, roots, "the system roots")

	_, err = ParsePolicy([]byte("tls:\n  expiry_warn_days: -1\n"))
	assert.Contains(t, ErrorMessage(err), "2:21: tls.expiry_warn_days is -1: accepted 0 to 3650")
	_, err = ParsePolicy([]byte("tls:\n  ca_bundle: /nonexistent/ca.pem\n"))
	assert.Contains(t, ErrorMessage(err), "2:14: tls.ca_bundle: cannot read /nonexistent/ca.pem: no such file or directory")
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello\n"), 0o600))
	_, err = ParsePolicy([]byte("tls:\n  ca_bundle: " + notPEM + "\n"))
	assert.Contains(t, ErrorMessage(err), "holds no PEM certificate")
}
