package bot

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const inventoryPolicy = `
roles:
  web:   {commands: ["apache status", "apache reload"], hosts: [web]}
  edge:  {commands: ["apache status"], hosts: ["tag:edge"]}
  admin: {commands: ["*"]}
users:
  "shell:alice": [web]
  "shell:eddie": [edge]
  "shell:root":  [admin]
hosts:
  web01: {address: 10.0.0.11, user: opsbot, become: sudo, tags: [edge]}
  web02: {address: web02.example.com, via: ssh, user: opsbot, port: 2222}
  lb01:  {address: "fd00::2", user: opsbot, become: doas}
  self:  {via: local, apache: {ctl: "env APACHE_CONFDIR=/etc/apache2-x apache2ctl", status_url: "http://127.0.0.1:8080/server-status"}}
groups:
  web: [web02, web01]
`

// asWritten is a settings block a test command takes as it is written.
func asWritten(key string) HostBlock {
	return HostBlock{Key: key, Decode: func(s HostSettings) (any, error) {
		var m map[string]any
		return m, s.Decode(&m)
	}}
}

func TestInventory_ResolvesHostsAndGroupsInFileOrder(t *testing.T) {
	p, err := ParsePolicy([]byte(inventoryPolicy), asWritten("apache"))
	require.NoError(t, err)
	inv := NewInventory(p)

	hosts, group, err := inv.Resolve("web")
	require.NoError(t, err)
	assert.True(t, group)
	require.Len(t, hosts, 2)
	assert.Equal(t, "web02", hosts[0].Name, "the first listed is the canary")
	assert.Equal(t, "ssh", hosts[1].Via, "an address without via means ssh")
	assert.Equal(t, 2222, hosts[0].Port)

	self, group, err := inv.Resolve("self")
	require.NoError(t, err)
	assert.False(t, group)
	assert.Equal(t, "local", self[0].Via)
	assert.Equal(t, "env APACHE_CONFDIR=/etc/apache2-x apache2ctl", self[0].Settings["apache"].(map[string]any)["ctl"], "the command's block, as its command decoded it")
	assert.True(t, self[0].HasSettings("apache"))
	assert.False(t, self[0].HasSettings("relayd"))
	assert.False(t, mustHost(t, inv, "web01").HasSettings("apache"))
	assert.Equal(t, "self", self[0].Label())
	assert.Equal(t, "lb01 (fd00::2)", mustHost(t, inv, "lb01").Label())
	assert.Equal(t, []string{"web"}, inv.Groups("web01"))

	_, _, err = inv.Resolve("web03")
	assert.Equal(t, ENOTFOUND, ErrorCode(err))
	assert.Contains(t, ErrorMessage(err), "known are hosts lb01, self, web01, web02; groups web")
	for _, bad := range []string{"web01;id", "$(id)", "", "-rf", "a b", "../x", "web01\n"} {
		_, _, err = inv.Resolve(bad)
		assert.Equal(t, EINVALID, ErrorCode(err), "%q", bad)
	}
}

func mustHost(t *testing.T, inv *Inventory, name string) Host {
	t.Helper()
	h, ok := inv.Host(name)
	require.True(t, ok)
	return h
}

func TestHostAccess_RoleHostLimits(t *testing.T) {
	p, err := ParsePolicy([]byte(inventoryPolicy), asWritten("apache"))
	require.NoError(t, err)
	a := HostAccess{Inventory: NewInventory(p), Perms: NewPermissions(p)}
	req := func(user string) Request { return Request{Platform: "shell", User: user} }

	hosts, _, err := a.Resolve(req("alice"), "apache reload", "web")
	require.NoError(t, err, "alice's role covers the web group")
	assert.Len(t, hosts, 2)
	_, _, err = a.Resolve(req("alice"), "apache reload", "lb01")
	assert.Equal(t, EDENIED, ErrorCode(err))
	assert.Contains(t, ErrorMessage(err), `may run "apache reload", but not on lb01`)

	_, _, err = a.Resolve(req("eddie"), "apache status", "web01")
	assert.NoError(t, err, "tag:edge covers web01")
	_, _, err = a.Resolve(req("eddie"), "apache status", "web")
	assert.Equal(t, EDENIED, ErrorCode(err), "a group only partly covered is refused whole")
	assert.Contains(t, ErrorMessage(err), "group web includes web02")
	_, _, err = a.Resolve(req("eddie"), "apache reload", "web01")
	assert.Equal(t, EDENIED, ErrorCode(err), "the command itself is not granted")

	_, _, err = a.Resolve(req("root"), "apache restart", "lb01")
	assert.NoError(t, err, "no hosts key: every host")
	assert.Len(t, a.Allowed(req("eddie"), "apache status"), 1)
	assert.Len(t, a.Allowed(req("root"), "apache status"), 4)
}

func TestParsePolicy_InventoryValidation(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"hosts:\n  web01: {via: ssh}\n", `"web01" is reached via ssh but has no address`},
		{"hosts:\n  \"web;01\": {via: local}\n", `"web;01" is not a usable host name`},
		{"hosts:\n  web01: {address: \"10.0.0.1; id\"}\n", `has address "10.0.0.1; id"`},
		{"hosts:\n  web01: {address: 10.0.0.1, user: \"root -oProxyCommand=x\"}\n", "not a valid login name"},
		{"hosts:\n  web01: {address: 10.0.0.1, port: 70000}\n", "has port 70000"},
		{"hosts:\n  web01: {via: local, address: 10.0.0.1}\n", "via local (the bot's own host) but has address"},
		{"hosts:\n  web: {via: local}\ngroups:\n  web: [web]\n", `"web" is also a host name`},
		{"hosts:\n  a: {via: local}\ngroups:\n  g: [a, a]\n", `lists host "a" twice`},
		{"hosts:\n  a: {via: local}\nroles:\n  r: {commands: [scan], hosts: [nosuch]}\n", `limits hosts to "nosuch"`},
		{"limits:\n  roll_batch: 0\n", "limits.roll_batch is 0"},
	} {
		_, err := ParsePolicy([]byte(tt.yaml))
		require.Error(t, err, tt.yaml)
		assert.Equal(t, ECONFIG, ErrorCode(err))
		assert.Contains(t, ErrorMessage(err), tt.want, tt.yaml)
	}
}

func TestParsePolicy_ApprovalRequiredDefaultsAndCanBeEmptied(t *testing.T) {
	p, err := ParsePolicy([]byte("limits:\n  scan_ports: 100\n"))
	require.NoError(t, err)
	assert.Equal(t, DefaultApprovalRequired, p.Approval.Required, "a restart waits for a second person by default")

	p, err = ParsePolicy([]byte("approval:\n  required: [scan]\n"))
	require.NoError(t, err)
	assert.Equal(t, []string{"scan"}, p.Approval.Required, "a list replaces the default, it does not add to it")

	p, err = ParsePolicy([]byte("approval:\n  required: []\n"))
	require.NoError(t, err)
	assert.Empty(t, p.Approval.Required)
}
