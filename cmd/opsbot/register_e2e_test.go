package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opsbot/opsbot/adapters/mattermost/mmapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/mattermost/mmtest"
)

// Mattermost without hand work: serve registers the slash commands at start
// (OPSBOT_MATTERMOST_REGISTER) with no token list in the environment, and
// accepts them at once; opsbot mattermost register --single then leaves
// /opsbot alone, under which every command answers, without a restart.
func TestE2E_MattermostRegisterThenServe(t *testing.T) {
	const team, botToken = "teamops00000000000000000aa", "bottoken000000000000000aaa"
	mm := mmtest.New(t, []mmtest.Team{{ID: team, Name: "ops"}}, []mmtest.User{{ID: "botuser0000000000000000aaa", Username: "opsbot", Token: botToken,
		Teams: map[string]mmtest.Permissions{team: {Member: true, Manage: true}}}})
	dir := t.TempDir()
	addr := freePort(t)
	env := append(os.Environ(),
		"OPSBOT_CONFIG=", "OPSBOT_DATABASE="+filepath.Join(dir, "opsbot.db"), "OPSBOT_HTTP_ADDR="+addr,
		"OPSBOT_MATTERMOST_URL="+mm.URL, "OPSBOT_MATTERMOST_TOKEN="+botToken, "OPSBOT_MATTERMOST_COMMAND_TOKENS=",
		"OPSBOT_MATTERMOST_ACTION_SECRET="+mmSecret, "OPSBOT_PUBLIC_URL=http://"+addr, "OPSBOT_MATTERMOST_REGISTER=ops")
	c := &cli{t: t, bin: opsbotBinary(t), env: env}
	out, code := c.run("config", "check")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "mattermost slash commands: 0 tokens in OPSBOT_MATTERMOST_COMMAND_TOKENS, 0 registered in the store; serve registers them in ops at start")

	base := startServe(t, env, addr, "/healthz")
	var cmds map[string]mmapi.Command
	require.Eventually(t, func() bool { cmds = mm.Commands(team); return len(cmds) >= 6 }, 20*time.Second, 50*time.Millisecond)
	for _, trig := range []string{"portcheck", "scan", "listen", "apache", "relayd", "opsbot"} {
		assert.Equal(t, "http://"+addr+"/mattermost/command", cmds[trig].URL, "/%s registered", trig)
	}

	command := func(token, line string) (int, string) {
		name, text, _ := strings.Cut(line, " ")
		form := url.Values{"token": {token}, "team_id": {team}, "channel_id": {"chan1"}, "user_id": {"ualice"}, "user_name": {"alice"},
			"command": {name}, "text": {text}, "response_url": {mm.URL + "/hooks/commands/x"}}
		req, _ := http.NewRequest(http.MethodPost, base+"/mattermost/command", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Token "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	port := listener(t)
	status, body := command(cmds["portcheck"].Token, fmt.Sprintf("/portcheck 127.0.0.1 %d", port))
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, fmt.Sprintf("Connection to 127.0.0.1 %d port [tcp/*] succeeded!", port))
	status, body = command("forgedtoken0000000000000aa", fmt.Sprintf("/portcheck 127.0.0.1 %d", port))
	assert.Equal(t, http.StatusOK, status, "Mattermost shows only a 200's text")
	assert.Contains(t, body, "does not know this slash command's token")
	assert.NotContains(t, body, "succeeded")

	// A team that wants one command: /opsbot alone, every command under it.
	out, code = c.run("mattermost", "register", "--team", "ops", "--single")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "/portcheck: removed")
	assert.Contains(t, out, "/opsbot: updated")
	assert.Contains(t, out, "team ops: 7 of 7 changed")
	out, code = c.run("mattermost", "register", "--team", "ops", "--single")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "team ops: nothing changed")
	cmds = mm.Commands(team)
	require.Len(t, cmds, 1)
	status, body = command(cmds["opsbot"].Token, fmt.Sprintf("/opsbot portcheck 127.0.0.1 %d", port))
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, fmt.Sprintf("Connection to 127.0.0.1 %d port [tcp/*] succeeded!", port))

	// Someone else's trigger: refused, said, nothing changed.
	other := mm.AddCommand(mmapi.Command{TeamID: team, CreatorID: "someone00000000000000000aa", Trigger: "scan", Method: "P", URL: "https://ci.example.com/scan"})
	out, code = c.run("mattermost", "register", "--team", "ops")
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "/scan belongs to a command opsbot did not create (id "+other.ID)
	assert.Len(t, mm.Commands(team), 2)
}
