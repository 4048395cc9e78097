package mattermost

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsbot/opsbot/adapters/mattermost/mmapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/mattermost/mmtest"
	"github.com/opsbot/opsbot/bot"
)

// memTokens is a bot.CommandTokens in memory (the stores have their own
// conformance suite).
type memTokens struct {
	mu sync.Mutex
	m  map[string]bot.CommandToken
}

func (s *memTokens) SaveCommandToken(_ context.Context, c bot.CommandToken) error {
	if err := bot.CheckCommandToken(c); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]bot.CommandToken{}
	}
	s.m[c.ID] = c
	return nil
}

func (s *memTokens) CommandTokens(_ context.Context, platform string) ([]bot.CommandToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []bot.CommandToken
	for _, c := range s.m {
		if c.Platform == platform {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Trigger < out[j].Trigger })
	return out, nil
}

func (s *memTokens) DeleteCommandToken(_ context.Context, _, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
	return nil
}

const (
	regTeam     = "teamops00000000000000000aa"
	regBotID    = "botuser0000000000000000aaa"
	regBotToken = "bottoken000000000000000aaa"
	regCmdURL   = "https://opsbot.example.com/mattermost/command"
)

var regSpecs = []CommandSpec{
	{Trigger: "portcheck", Description: "Is this port reachable?", Hint: "HOST PORT"},
	{Trigger: "scan", Description: "Which ports are open?", Hint: "HOST [PORTS]"},
	{Trigger: "opsbot", Description: "The bot itself", Hint: "help | approvals | COMMAND ..."},
}

func regServer(t *testing.T, perm mmtest.Permissions) *mmtest.Server {
	return mmtest.New(t, []mmtest.Team{{ID: regTeam, Name: "ops"}},
		[]mmtest.User{{ID: regBotID, Username: "opsbot", Token: regBotToken, Teams: map[string]mmtest.Permissions{regTeam: perm}}})
}

func regConfig(srv *mmtest.Server, store bot.CommandTokens, specs []CommandSpec) RegisterConfig {
	return RegisterConfig{ServerURL: srv.URL, Token: regBotToken, Team: "ops", CommandURL: regCmdURL, Commands: specs, Tokens: store}
}

func actions(changes []Change) map[string]string {
	out := map[string]string{}
	for _, c := range changes {
		out[c.Trigger] = c.Action
	}
	return out
}

var manage = mmtest.Permissions{Member: true, Manage: true}

func TestRegister_CreatesEveryCommandThenASecondRunChangesNothing(t *testing.T) {
	srv := regServer(t, manage)
	store := &memTokens{}
	changes, err := Register(t.Context(), regConfig(srv, store, regSpecs))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"portcheck": "created", "scan": "created", "opsbot": "created"}, actions(changes))

	cmds := srv.Commands(regTeam)
	require.Len(t, cmds, 3)
	stored, err := store.CommandTokens(t.Context(), Platform)
	require.NoError(t, err)
	require.Len(t, stored, 3)
	for _, k := range stored {
		c := cmds[k.Trigger]
		assert.Equal(t, regCmdURL, c.URL)
		assert.Equal(t, mmapi.CommandMethodPost, c.Method)
		assert.Equal(t, regBotID, c.CreatorID)
		assert.True(t, c.AutoComplete)
		assert.Equal(t, c.ID, k.ID)
		assert.Equal(t, regTeam, k.Team)
		assert.Equal(t, digestHex(c.Token), k.TokenSHA256, "the store keeps the SHA-256 of the server's token for /%s", k.Trigger)
		assert.NotContains(t, k.TokenSHA256, c.Token)
	}

	writes := len(srv.Calls(http.MethodPost)) + len(srv.Calls(http.MethodPut)) + len(srv.Calls(http.MethodDelete))
	changes, err = Register(t.Context(), regConfig(srv, store, regSpecs))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"portcheck": "unchanged", "scan": "unchanged", "opsbot": "unchanged"}, actions(changes))
	assert.Equal(t, writes, len(srv.Calls(http.MethodPost))+len(srv.Calls(http.MethodPut))+len(srv.Calls(http.MethodDelete)),
		"the second run sends no create, update or delete")
	assert.Equal(t, cmds, srv.Commands(regTeam))
}

func TestRegister_UpdatesWhatDriftedAndKeepsTheToken(t *testing.T) {
	srv := regServer(t, manage)
	store := &memTokens{}
	_, err := Register(t.Context(), regConfig(srv, store, regSpecs))
	require.NoError(t, err)
	before := srv.Commands(regTeam)
	// Someone changes opsbot's commands in the System Console.
	srv.Edit(before["scan"].ID, func(c *mmapi.Command) { c.Trigger = "scan2" })
	srv.Edit(before["portcheck"].ID, func(c *mmapi.Command) { c.URL = "http://old.example.com/mattermost/command" })
	srv.Edit(before["opsbot"].ID, func(c *mmapi.Command) { c.Method = mmapi.CommandMethodGet })

	changes, err := Register(t.Context(), regConfig(srv, store, regSpecs))
	require.NoError(t, err)
	got := actions(changes)
	assert.Equal(t, map[string]string{"portcheck": "updated", "scan": "updated", "opsbot": "updated"}, got)
	for _, c := range changes {
		assert.NotEmpty(t, c.Detail, "/%s: says what differed", c.Trigger)
	}
	after := srv.Commands(regTeam)
	require.Len(t, after, 3)
	for trig, c := range after {
		assert.Equal(t, before[trig].ID, c.ID, "/%s: updated in place, not recreated", trig)
		assert.Equal(t, before[trig].Token, c.Token, "/%s: an update keeps the token", trig)
		assert.Equal(t, regCmdURL, c.URL)
		assert.Equal(t, mmapi.CommandMethodPost, c.Method)
	}
	assert.Empty(t, srv.Calls(http.MethodDelete))
}

func TestRegister_NeverTouchesCommandsNotOurs(t *testing.T) {
	srv := regServer(t, mmtest.Permissions{Member: true, Manage: true, ManageOthers: true})
	store := &memTokens{}
	deploy := srv.AddCommand(mmapi.Command{TeamID: regTeam, CreatorID: "someone00000000000000000aa", Trigger: "deploy", Method: "P", URL: "https://ci.example.com/hook"})
	scan := srv.AddCommand(mmapi.Command{TeamID: regTeam, CreatorID: "someone00000000000000000aa", Trigger: "scan", Method: "P", URL: "https://other.example.com/scan"})

	_, err := Register(t.Context(), regConfig(srv, store, regSpecs))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/scan belongs to a command opsbot did not create (id "+scan.ID+", URL https://other.example.com/scan): left alone, and nothing was changed")
	assert.Len(t, srv.Commands(regTeam), 2, "nothing created")
	assert.Contains(t, err.Error(), "--single")
	assert.Equal(t, *deploy, srv.Commands(regTeam)["deploy"])
	assert.Equal(t, *scan, srv.Commands(regTeam)["scan"])

	// One command for the team instead: the others stay untouched.
	changes, err := Register(t.Context(), regConfig(srv, store, regSpecs[2:]))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"opsbot": "created"}, actions(changes))
	assert.Equal(t, *deploy, srv.Commands(regTeam)["deploy"])
	assert.Equal(t, *scan, srv.Commands(regTeam)["scan"])
	for _, c := range srv.Calls("") {
		assert.NotContains(t, c.Path, deploy.ID)
		assert.NotContains(t, c.Path, scan.ID)
	}
}

func TestRegister_SingleRemovesOurOtherCommands(t *testing.T) {
	srv := regServer(t, manage)
	store := &memTokens{}
	_, err := Register(t.Context(), regConfig(srv, store, regSpecs))
	require.NoError(t, err)
	opsbot := srv.Commands(regTeam)["opsbot"]

	changes, err := Register(t.Context(), regConfig(srv, store, regSpecs[2:]))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"opsbot": "unchanged", "portcheck": "removed", "scan": "removed"}, actions(changes))
	after := srv.Commands(regTeam)
	assert.Equal(t, map[string]mmapi.Command{"opsbot": opsbot}, after)
	stored, err := store.CommandTokens(t.Context(), Platform)
	require.NoError(t, err)
	require.Len(t, stored, 1)
	assert.Equal(t, "opsbot", stored[0].Trigger)
}

func TestRegister_SaysWhatTheServerRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		perm  mmtest.Permissions
		token string
		want  string
	}{
		{"not a member", mmtest.Permissions{}, regBotToken, `team "ops": the bot account opsbot is not a member`},
		{"no manage_slash_commands", mmtest.Permissions{Member: true}, regBotToken, "may not manage slash commands (403 userId=" + regBotID + ", permission=manage_slash_commands)"},
		{"wrong token", manage, "wrongtoken00000000000000aa", "the server refused the token (401"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := regServer(t, tc.perm)
			cfg := regConfig(srv, &memTokens{}, regSpecs)
			cfg.Token = tc.token
			_, err := Register(t.Context(), cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Empty(t, srv.Calls(http.MethodPost))
			for _, c := range srv.Calls(http.MethodGet) {
				if strings.HasPrefix(c.Path, "/api/v4/commands") {
					assert.NotEqual(t, http.StatusOK, c.Status, "nothing listed without permission")
				}
			}
		})
	}
	srv := regServer(t, manage)
	cfg := regConfig(srv, &memTokens{}, regSpecs)
	cfg.Team = "nosuchteam"
	_, err := Register(t.Context(), cfg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `team "nosuchteam": 404 app.team.get_by_name.missing.app_error`)
}

// The stand-in refuses what the server refuses; Register refuses it first.
func TestRegister_TriggerRules(t *testing.T) {
	srv := regServer(t, manage)
	for _, bad := range []string{"/scan", "port check", "", strings.Repeat("a", 129), "scan!"} {
		_, err := Register(t.Context(), regConfig(srv, &memTokens{}, []CommandSpec{{Trigger: bad}}))
		require.Error(t, err, "%q", bad)
		assert.Equal(t, bot.ECONFIG, bot.ErrorCode(err))
		assert.Contains(t, err.Error(), "trigger")
	}
	assert.Empty(t, srv.Calls(""), "nothing was sent")

	// The stand-in itself: the server's rules, as the server answers them.
	c := mmapi.NewClient(srv.URL, regBotToken, nil)
	for trig, id := range map[string]string{
		"/scan": "model.command.is_valid.trigger.app_error", "port check": "model.command.is_valid.trigger.app_error",
		"echo": "api.command.duplicate_trigger.app_error",
	} {
		_, err := c.CreateCommand(t.Context(), &mmapi.Command{TeamID: regTeam, Trigger: trig, Method: "P", URL: regCmdURL})
		var ae *mmapi.AppError
		require.ErrorAs(t, err, &ae, trig)
		assert.Equal(t, http.StatusBadRequest, ae.StatusCode, trig)
		assert.Equal(t, id, ae.ID, trig)
	}
	_, err := c.CreateCommand(t.Context(), &mmapi.Command{TeamID: regTeam, Trigger: "x", Method: "P"})
	var ae *mmapi.AppError
	require.ErrorAs(t, err, &ae, "a URL is required")
	assert.Equal(t, http.StatusBadRequest, ae.StatusCode)
	assert.Equal(t, "model.command.is_valid.url.app_error", ae.ID)
	_, err = mmapi.NewClient(srv.URL, "", nil).ListCommands(t.Context(), regTeam, true)
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusUnauthorized, ae.StatusCode)
}

// The adapter verifies slash commands against the registered tokens, with
// none in the environment, and sees a command registered after it started.
func TestAdapter_VerifiesCommandsAgainstRegisteredTokens(t *testing.T) {
	srv := regServer(t, manage)
	store := &memTokens{}
	_, err := Register(t.Context(), regConfig(srv, store, regSpecs[:1]))
	require.NoError(t, err)

	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := &fakeHandler{fn: func(context.Context, bot.Request) bot.Reply { return bot.Reply{Title: "ok", Status: bot.StatusOK} }}
	a, err := New(Config{URL: srv.URL, Token: regBotToken, Registered: store, ActionSecret: testSecret,
		PublicURL: "https://opsbot.example.com", Handler: h, Now: clock})
	require.NoError(t, err, "no OPSBOT_MATTERMOST_COMMAND_TOKENS needed with registered commands")
	mux := http.NewServeMux()
	a.Register(mux)
	// Every answer is a 200 (Mattermost shows nothing else); a refused
	// token says so and runs nothing.
	const refused = "does not know this slash command's token"
	post := func(trigger, token string) string {
		form := url.Values{"channel_id": {testChannel}, "command": {"/" + trigger}, "text": {"x"}, "token": {token},
			"user_id": {"ualice0000000000000000000a"}, "user_name": {"alice"}, "team_id": {regTeam}}
		r := httptest.NewRequest(http.MethodPost, "/mattermost/command", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Authorization", "Token "+token)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		require.Equal(t, http.StatusOK, w.Code)
		return w.Body.String()
	}
	assert.NotContains(t, post("portcheck", srv.Commands(regTeam)["portcheck"].Token), refused)
	assert.Len(t, h.requests(), 1, "the registered command ran")
	assert.Contains(t, post("portcheck", "forgedtoken0000000000000aa"), refused)
	assert.Len(t, h.requests(), 1, "the forged one did not")

	// Registered while the adapter runs: accepted at once, no restart.
	_, err = Register(t.Context(), regConfig(srv, store, regSpecs))
	require.NoError(t, err)
	mu.Lock()
	now = now.Add(2 * storedRetry)
	mu.Unlock()
	assert.NotContains(t, post("scan", srv.Commands(regTeam)["scan"].Token), refused)
	assert.Len(t, h.requests(), 2)

	// Removed (--single): refused once the adapter's list is older than storedTTL.
	scanToken := srv.Commands(regTeam)["scan"].Token
	_, err = Register(t.Context(), regConfig(srv, store, regSpecs[2:]))
	require.NoError(t, err)
	mu.Lock()
	now = now.Add(2 * storedTTL)
	mu.Unlock()
	assert.Contains(t, post("scan", scanToken), refused)
	assert.Len(t, h.requests(), 2)
}

// Commands made by hand from the old setup guide (same URL) are adopted:
// their tokens are recorded, their texts left as their author wrote them,
// and only a wrong URL, method or trigger would be corrected.
func TestRegister_AdoptsHandMadeCommandsPointingAtOpsbot(t *testing.T) {
	srv := regServer(t, manage) // no manage_others_slash_commands
	store := &memTokens{}
	admin := "sysadmin0000000000000000aa"
	hand := srv.AddCommand(mmapi.Command{TeamID: regTeam, CreatorID: admin, Trigger: "portcheck", Method: "P", URL: regCmdURL, DisplayName: "Port check"})
	changes, err := Register(t.Context(), regConfig(srv, store, regSpecs[:1]))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"portcheck": "token recorded"}, actions(changes))
	assert.Equal(t, *hand, srv.Commands(regTeam)["portcheck"], "left as it was")
	stored, err := store.CommandTokens(t.Context(), Platform)
	require.NoError(t, err)
	require.Len(t, stored, 1)
	assert.Equal(t, digestHex(hand.Token), stored[0].TokenSHA256)

	// Its URL is wrong now: correcting it needs manage_others_slash_commands,
	// and the server's 403 is said.
	srv.Edit(hand.ID, func(c *mmapi.Command) { c.URL = "https://old.example.com/mattermost/command" })
	_, err = Register(t.Context(), regConfig(srv, store, regSpecs[:1]))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "permission=manage_others_slash_commands")
}

// Replicas registering at the same start: each ends with every command
// registered once, whichever created it.
func TestRegister_ConcurrentRunsCreateEachCommandOnce(t *testing.T) {
	srv := regServer(t, manage)
	store := &memTokens{}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { _, errs[i] = Register(t.Context(), regConfig(srv, store, regSpecs)) })
	}
	wg.Wait()
	for _, err := range errs {
		assert.NoError(t, err)
	}
	cmds := srv.Commands(regTeam)
	assert.Len(t, cmds, 3)
	stored, err := store.CommandTokens(t.Context(), Platform)
	require.NoError(t, err)
	require.Len(t, stored, 3)
	for _, k := range stored {
		assert.Equal(t, digestHex(cmds[k.Trigger].Token), k.TokenSHA256)
	}
}
