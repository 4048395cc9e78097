package bot

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const rolesPolicy = `
roles:
  oncall:   {commands: [portcheck, scan, listen, "apache status", "apache reload", "relayd show"]}
  admin:    {commands: ["*"]}
  approver: {approve: ["apache restart", "scan"]}
  incident: {commands: ["apache restart"], channels: ["#inc-web"]}
users:
  "shell:alice": [oncall]
  "shell:carol": [admin, approver]
  "slack:U024BE7LH": [oncall, incident]
  "mattermost:dave": [oncall]
`

func testPerms(t *testing.T) *Permissions {
	t.Helper()
	p, err := ParsePolicy([]byte(rolesPolicy))
	require.NoError(t, err)
	return NewPermissions(p)
}

func TestPermissions_RolesGrantCommandsAndSubcommands(t *testing.T) {
	perms := testPerms(t)
	alice := Who{Platform: "shell", User: "alice"}
	assert.NoError(t, perms.Allowed(alice, "scan"))
	assert.NoError(t, perms.Allowed(alice, "apache reload"))
	err := perms.Allowed(alice, "apache restart")
	require.Error(t, err)
	assert.Equal(t, EDENIED, ErrorCode(err))
	assert.Equal(t, `permission denied: shell:alice may not run "apache restart" (granted by admin, incident; your roles here: oncall)`, ErrorMessage(err))

	carol := Who{Platform: "shell", User: "carol"}
	assert.NoError(t, perms.Allowed(carol, "relayd restart"), "* grants everything")
	assert.NoError(t, perms.Allowed(alice, "opsbot whoami"), "whoami is open")
	assert.Error(t, perms.Allowed(alice, "opsbot audit"))
	assert.NoError(t, perms.Allowed(carol, "opsbot audit"))
}

func TestPermissions_UserInNoRole(t *testing.T) {
	err := testPerms(t).Allowed(Who{Platform: "shell", User: "mallory"}, "portcheck")
	require.Error(t, err)
	assert.Contains(t, ErrorMessage(err), `shell:mallory has no role in the policy (users lists no "shell:mallory")`)
}

func TestPermissions_PlatformsAreSeparate(t *testing.T) {
	perms := testPerms(t)
	assert.Error(t, perms.Allowed(Who{Platform: "slack", User: "alice"}, "scan"), "shell:alice is not slack:alice")
	assert.NoError(t, perms.Allowed(Who{Platform: "mattermost", User: "x8k2", UserName: "dave"}, "scan"), "Mattermost users may be named by username")
}

func TestPermissions_ChannelLimitedRole(t *testing.T) {
	perms := testPerms(t)
	in := Who{Platform: "slack", User: "U024BE7LH", Channel: "C0INCWEB1", ChannelName: "inc-web"}
	out := Who{Platform: "slack", User: "U024BE7LH", Channel: "C0GENERAL", ChannelName: "general"}
	assert.NoError(t, perms.Allowed(in, "apache restart"))
	assert.Error(t, perms.Allowed(out, "apache restart"))
	assert.Equal(t, []string{"incident", "oncall"}, perms.Roles(in))
	assert.Equal(t, []string{"oncall"}, perms.Roles(out))
}

func TestPermissions_ChannelsByNameOrIDOnBothPlatforms(t *testing.T) {
	p, err := ParsePolicy([]byte(`
roles:
  byname: {commands: [scan], channels: ["#Ops"]}
  byid:   {commands: [listen], channels: [C024BE91L, "4xp9fdt7pbgium38k5k6w95oic"]}
  bare:   {commands: [portcheck], channels: [incident-42]}
users:
  "slack:U024BE7LH": [byname, byid, bare]
  "mattermost:carol": [byname, byid, bare]
`))
	require.NoError(t, err)
	perms := NewPermissions(p)
	for _, tc := range []struct {
		who  Who
		want []string
	}{
		{Who{Platform: "slack", User: "U024BE7LH", Channel: "C0OPS0001", ChannelName: "ops"}, []string{"byname"}},
		{Who{Platform: "slack", User: "U024BE7LH", Channel: "C024BE91L", ChannelName: "general"}, []string{"byid"}},
		{Who{Platform: "slack", User: "U024BE7LH", Channel: "C0INC0042", ChannelName: "incident-42"}, []string{"bare"}},
		{Who{Platform: "mattermost", User: "x8k2", UserName: "carol", Channel: "4xp9fdt7pbgium38k5k6w95oic", ChannelName: "town-square"}, []string{"byid"}},
		{Who{Platform: "mattermost", User: "x8k2", UserName: "carol", Channel: "c5m3", ChannelName: "ops"}, []string{"byname"}},
		// A channel whose ID reads like a name is not that name: "#ops"
		// matches names only.
		{Who{Platform: "slack", User: "U024BE7LH", Channel: "ops"}, nil},
	} {
		got := perms.Roles(tc.who)
		if tc.want == nil {
			assert.Empty(t, got, "%+v", tc.who)
			continue
		}
		assert.Equal(t, tc.want, got, "%+v", tc.who)
	}
}

func TestPermissions_SlackUsernamesGrantNothing(t *testing.T) {
	p, err := ParsePolicy([]byte("roles:\n  r: {commands: [scan]}\nusers:\n  \"slack:U024BE7LH\": [r]\n  \"mattermost:carol\": [r]\n"))
	require.NoError(t, err)
	perms := NewPermissions(p)
	assert.NoError(t, perms.Allowed(Who{Platform: "slack", User: "U024BE7LH", UserName: "bob"}, "scan"))
	// Another account that took the name "U024BE7LH"... is still not
	// that ID; and a Slack username never stands for its owner.
	assert.Error(t, perms.Allowed(Who{Platform: "slack", User: "U0OTHER01", UserName: "U024BE7LH"}, "scan"))
	assert.NoError(t, perms.Allowed(Who{Platform: "mattermost", User: "x8k2", UserName: "carol"}, "scan"), "Mattermost usernames are unique")
}

func TestPermissions_Approvers(t *testing.T) {
	perms := testPerms(t)
	assert.NoError(t, perms.MayApprove(Who{Platform: "shell", User: "carol"}, "scan"))
	err := perms.MayApprove(Who{Platform: "shell", User: "alice"}, "scan")
	require.Error(t, err)
	assert.Contains(t, ErrorMessage(err), `shell:alice may not approve "scan" (granted by approver`)
}

func TestPermissions_NoPolicyMeansReadOnlyForEveryone(t *testing.T) {
	perms := NewPermissions(DefaultPolicy())
	anyone := Who{Platform: "slack", User: "U1"}
	for _, k := range []string{"portcheck", "scan", "listen", "apache status", "relayd show"} {
		assert.NoError(t, perms.Allowed(anyone, k), k)
	}
	for _, k := range []string{"apache reload", "apache restart", "relayd reload", "opsbot audit"} {
		assert.Error(t, perms.Allowed(anyone, k), k)
	}
	assert.Error(t, perms.MayApprove(anyone, "apache restart"))
}

func TestRouter_HelpListsOnlyWhatTheAskerMayRun(t *testing.T) {
	mk := func(name string) Command {
		return &fakeCommand{name: name, RunFn: func(context.Context, Request) (Reply, error) { return Reply{}, nil }}
	}
	p, err := ParsePolicy([]byte("roles:\n  r: {commands: [portcheck]}\nusers:\n  \"shell:alice\": [r]\n"))
	require.NoError(t, err)
	r := NewRouter(RouterConfig{Commands: []Command{mk("portcheck"), mk("scan")}, Perms: NewPermissions(p)})
	help := r.Handle(context.Background(), Request{Platform: "shell", User: "alice", Line: "help"})
	require.NotNil(t, help.Table)
	require.Len(t, help.Table.Rows, 1)
	assert.Equal(t, "/portcheck", help.Table.Rows[0][0])
	usage := r.Handle(context.Background(), Request{Platform: "shell", User: "alice", Line: "/scan help"})
	assert.Equal(t, StatusUsage, usage.Status, "usage of a command one may not run is not shown")
	denied := r.Handle(context.Background(), Request{Platform: "shell", User: "alice", Line: "/scan 127.0.0.1"})
	assert.Equal(t, 3, denied.Status.ExitCode())
}

// An approval bound to a subnet shows its addresses as ranges: 254 of them
// in one line, not past what a chat field holds.
func TestBoundList_ConsecutiveAddressesAreOneRange(t *testing.T) {
	var hosts []string
	for i := 1; i <= 254; i++ {
		if i != 77 {
			hosts = append(hosts, fmt.Sprintf("10.0.0.%d", i))
		}
	}
	assert.Equal(t, "10.0.0.1-10.0.0.76 (76 addresses), 10.0.0.78-10.0.0.254 (177 addresses)", boundList(hosts))
	assert.Equal(t, "127.0.0.1, 127.0.0.2, here", boundList([]string{"127.0.0.1", "127.0.0.2", "here"}))
	assert.Equal(t, "10.0.0.11, web01 (10.0.0.11), fd00::1-fd00::3 (3 addresses)", boundList([]string{"10.0.0.11", "web01 (10.0.0.11)", "fd00::1", "fd00::2", "fd00::3"}))
}
