package mattermost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/opsbot/opsbot/adapters/mattermost/mmapi"
	"github.com/opsbot/opsbot/bot"
)

// CommandSpec is one slash command opsbot wants in a team.
type CommandSpec struct {
	Trigger     string // without the slash: "portcheck"
	Description string // at most 128 characters (the server's limit)
	Hint        string // the arguments, shown by autocomplete
}

// RegisterConfig is what Register uses.
type RegisterConfig struct {
	ServerURL  string // OPSBOT_MATTERMOST_URL
	Token      string // the bot account's access token
	Team       string // the team's name (the handle in its URL)
	CommandURL string // where Mattermost sends the commands: PUBLIC_URL/mattermost/command
	Commands   []CommandSpec
	Tokens     bot.CommandTokens // where the command tokens are kept
	Now        func() time.Time  // nil = time.Now
}

// Change is what Register did, or would have had to do, to one command.
type Change struct {
	Trigger string
	ID      string
	Action  string // "created", "updated", "unchanged", "removed", "token recorded"
	Detail  string // what changed, for "updated"
}

func (c Change) String() string {
	s := fmt.Sprintf("/%s: %s", c.Trigger, c.Action)
	if c.Detail != "" {
		s += " (" + c.Detail + ")"
	}
	return s
}

// Register makes the team's slash commands match cfg.Commands, through
// the API with the bot account's token, and keeps each command's token
// (its SHA-256) in cfg.Tokens, where every replica's adapter finds it.
//
// A command is opsbot's when its ID is in the store or its URL is
// cfg.CommandURL; no other command is ever changed. One of opsbot's whose
// trigger, URL, method or texts differ from what is wanted is updated (its
// token stays); a wanted one that is missing is created; one of opsbot's
// no longer wanted (e.g. /scan after switching to a single /opsbot) is
// removed. A wanted trigger taken by a command that is not opsbot's is an
// error naming it. Run twice, the second run changes nothing: every
// Change says "unchanged".
func Register(ctx context.Context, cfg RegisterConfig) ([]Change, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := checkRegister(cfg); err != nil {
		return nil, err
	}
	c := mmapi.NewClient(strings.TrimSpace(cfg.ServerURL), strings.TrimSpace(cfg.Token), &http.Client{Timeout: callTimeout})

	me, err := c.GetMe(ctx)
	if err != nil {
		return nil, apiError("reading the bot account (users/me) with OPSBOT_MATTERMOST_TOKEN", err)
	}
	team, err := c.GetTeamByName(ctx, cfg.Team)
	if err != nil {
		var ae *mmapi.AppError
		if errors.As(err, &ae) && ae.StatusCode == http.StatusForbidden {
			return nil, fmt.Errorf("team %q: the bot account %s is not a member: add it to the team (Main Menu > Invite People, or mmctl team users add %s %s)", cfg.Team, me.Username, cfg.Team, me.Username)
		}
		return nil, apiError(fmt.Sprintf("team %q", cfg.Team), err)
	}
	var changes []Change
	for attempt := 0; ; attempt++ {
		changes, err = reconcile(ctx, c, me, team, cfg)
		var ae *mmapi.AppError
		if attempt < 4 && err != nil && errors.As(err, &ae) && ae.ID == "api.command.duplicate_trigger.app_error" {
			// Another replica registering at the same moment created it
			// first: again, and it is found as opsbot's.
			continue
		}
		return changes, err
	}
}

func checkRegister(cfg RegisterConfig) error {
	var problems []string
	if u, err := url.Parse(strings.TrimSpace(cfg.ServerURL)); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, "OPSBOT_MATTERMOST_URL is not an http(s) URL, e.g. https://chat.example.com")
	}
	if strings.TrimSpace(cfg.Token) == "" {
		problems = append(problems, "OPSBOT_MATTERMOST_TOKEN is empty: set it to the bot account's access token")
	}
	if cfg.Team == "" {
		problems = append(problems, "no team: give --team NAME, the team's name as in its URL (https://chat.example.com/NAME)")
	}
	if u, err := url.Parse(cfg.CommandURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, "no URL for the commands: set OPSBOT_PUBLIC_URL (https://opsbot.example.com) or give --url")
	}
	for _, s := range cfg.Commands {
		if err := checkTrigger(s.Trigger); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(cfg.Commands) == 0 {
		problems = append(problems, "no commands to register")
	}
	if cfg.Tokens == nil {
		problems = append(problems, "no store for the command tokens (a bug in the wiring)")
	}
	if len(problems) > 0 {
		return bot.Errorf(bot.ECONFIG, "mattermost register: %s", strings.Join(problems, "; "))
	}
	return nil
}

// checkTrigger applies the server's rule (model.Command.IsValid in
// server/public/model/command.go): 1 to 128 characters, letters, digits,
// '_', '.', '/' and '-', not starting with '/'.
func checkTrigger(t string) error {
	if len(t) < mmapi.MinTriggerLength || len(t) > mmapi.MaxTriggerLength || strings.HasPrefix(t, "/") {
		return fmt.Errorf("trigger %q: 1 to 128 characters, without the leading slash", t)
	}
	for _, r := range t {
		allowed := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_./-", r)
		if !allowed {
			return fmt.Errorf("trigger %q: only letters, digits, '_', '.', '/' and '-' (no spaces)", t)
		}
	}
	return nil
}

// apiError words a failed API call; a 403 names the permission. The
// server's *mmapi.AppError stays reachable with errors.As.
func apiError(what string, err error) error {
	var ae *mmapi.AppError
	if errors.As(err, &ae) {
		msg := fmt.Sprintf("%s: %d %s: %s", what, ae.StatusCode, ae.ID, ae.Message)
		switch ae.StatusCode {
		case http.StatusUnauthorized:
			msg = fmt.Sprintf("%s: the server refused the token (401 %s): check OPSBOT_MATTERMOST_TOKEN", what, ae.ID)
		case http.StatusForbidden:
			msg = fmt.Sprintf("%s: forbidden (403: %s %s)", what, ae.Message, ae.DetailedError)
		}
		return &wordedError{msg: msg, err: err}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// wordedError is an error said in our words that keeps its cause.
type wordedError struct {
	msg string
	err error
}

func (e *wordedError) Error() string { return e.msg }
func (e *wordedError) Unwrap() error { return e.err }

func reconcile(ctx context.Context, c *mmapi.Client, me *mmapi.User, team *mmapi.Team, cfg RegisterConfig) ([]Change, error) {
	// The store first: a token recorded before the listing belongs to a
	// command the listing shows (its creator recorded it after creating
	// it), so a command another replica is creating now is never taken
	// for one deleted on the server.
	stored, err := cfg.Tokens.CommandTokens(ctx, Platform)
	if err != nil {
		return nil, err
	}
	existing, err := c.ListCommands(ctx, team.ID, true)
	if err != nil {
		var ae *mmapi.AppError
		if errors.As(err, &ae) && ae.StatusCode == http.StatusForbidden {
			return nil, fmt.Errorf("team %q: the bot account %s may not manage slash commands (403 %s): give it the manage_slash_commands permission in this team (System Console > User Management > Permissions, or make the bot a team admin), or register the commands by hand (deploy/mattermost/README.md)", cfg.Team, me.Username, ae.DetailedError)
		}
		return nil, apiError(fmt.Sprintf("listing the slash commands of team %q", cfg.Team), err)
	}
	known := map[string]bot.CommandToken{}
	for _, t := range stored {
		if t.Team == team.ID {
			known[t.ID] = t
		}
	}
	// opsbot's commands in the team, by ID; the rest are left alone.
	ours := map[string]*mmapi.Command{}
	taken := map[string]*mmapi.Command{}
	for _, cmd := range existing {
		if cmd.DeleteAt != 0 {
			continue
		}
		if _, ok := known[cmd.ID]; ok || sameURL(cmd.URL, cfg.CommandURL) {
			ours[cmd.ID] = cmd
		} else {
			taken[cmd.Trigger] = cmd
		}
	}
	// Match each wanted trigger to one of ours: the one the store recorded
	// under that trigger (it may have been renamed since), else the one
	// that has it now.
	byTrigger := map[string]*mmapi.Command{}
	for id, cmd := range ours {
		if k, ok := known[id]; ok && byTrigger[k.Trigger] == nil {
			byTrigger[k.Trigger] = cmd
		}
	}
	for _, cmd := range ours {
		if byTrigger[cmd.Trigger] == nil && !claimed(byTrigger, cmd) {
			byTrigger[cmd.Trigger] = cmd
		}
	}

	var changes []Change
	used := map[string]bool{}
	specs := append([]CommandSpec(nil), cfg.Commands...)
	sort.Slice(specs, func(i, j int) bool { return specs[i].Trigger < specs[j].Trigger })
	// A wanted trigger taken by someone else's command stops the run before
	// it changes anything.
	for _, spec := range specs {
		want := strings.ToLower(spec.Trigger)
		if other, ok := taken[want]; ok && byTrigger[want] == nil {
			return nil, fmt.Errorf("team %q: /%s belongs to a command opsbot did not create (id %s, URL %s): left alone, and nothing was changed; remove it, or register with --single to use /opsbot only", cfg.Team, want, other.ID, other.URL)
		}
	}
	for _, spec := range specs {
		want := strings.ToLower(spec.Trigger)
		cur := byTrigger[want]
		if cur == nil {
			created, err := c.CreateCommand(ctx, desired(&mmapi.Command{TeamID: team.ID}, spec, cfg.CommandURL))
			if err != nil {
				return changes, apiError(fmt.Sprintf("creating /%s in team %q", want, cfg.Team), err)
			}
			if err := keep(ctx, cfg, created, created.Token); err != nil {
				return changes, err
			}
			changes = append(changes, Change{Trigger: want, ID: created.ID, Action: "created"})
			used[created.ID] = true
			continue
		}
		used[cur.ID] = true
		token := cur.Token
		diff, textsOnly := differences(cur, spec, cfg.CommandURL)
		if textsOnly && cur.CreatorID != me.ID {
			// Made by hand and pointing at opsbot: adopted as it is; its
			// texts are its author's (changing them would need
			// manage_others_slash_commands).
			diff = ""
		}
		if diff != "" {
			updated, err := c.UpdateCommand(ctx, desired(cur, spec, cfg.CommandURL))
			if err != nil {
				return changes, apiError(fmt.Sprintf("updating /%s in team %q", want, cfg.Team), err)
			}
			if updated.Token != "" {
				token = updated.Token
			}
			changes = append(changes, Change{Trigger: want, ID: cur.ID, Action: "updated", Detail: diff})
		} else {
			changes = append(changes, Change{Trigger: want, ID: cur.ID, Action: "unchanged"})
		}
		if token == "" {
			// The listing did not show the token: a new one is the only way
			// to learn it.
			if token, err = c.RegenCommandToken(ctx, cur.ID); err != nil {
				return changes, apiError(fmt.Sprintf("reading the token of /%s in team %q", want, cfg.Team), err)
			}
		}
		if k, ok := known[cur.ID]; !ok || k.TokenSHA256 != digestHex(token) || k.Trigger != want {
			if err := keep(ctx, cfg, &mmapi.Command{ID: cur.ID, TeamID: team.ID, Trigger: want}, token); err != nil {
				return changes, err
			}
			if changes[len(changes)-1].Action == "unchanged" {
				changes[len(changes)-1].Action = "token recorded"
			}
		}
	}
	// opsbot's commands no longer wanted go, and so do tokens of commands
	// that no longer exist on the server.
	for id, cmd := range ours {
		if used[id] {
			continue
		}
		if err := c.DeleteCommand(ctx, id); err != nil {
			return changes, apiError(fmt.Sprintf("removing /%s from team %q", cmd.Trigger, cfg.Team), err)
		}
		if err := cfg.Tokens.DeleteCommandToken(ctx, Platform, id); err != nil {
			return changes, err
		}
		changes = append(changes, Change{Trigger: cmd.Trigger, ID: id, Action: "removed"})
	}
	for id, k := range known {
		if _, ok := ours[id]; !ok {
			if err := cfg.Tokens.DeleteCommandToken(ctx, Platform, id); err != nil {
				return changes, err
			}
			changes = append(changes, Change{Trigger: k.Trigger, ID: id, Action: "forgotten (deleted on the server)"})
		}
	}
	return changes, nil
}

func claimed(m map[string]*mmapi.Command, cmd *mmapi.Command) bool {
	for _, c := range m {
		if c == cmd {
			return true
		}
	}
	return false
}

// desired is cmd with what opsbot wants of it.
func desired(cmd *mmapi.Command, spec CommandSpec, commandURL string) *mmapi.Command {
	out := *cmd
	out.Trigger = strings.ToLower(spec.Trigger)
	out.URL = commandURL
	out.Method = mmapi.CommandMethodPost
	out.DisplayName = "opsbot " + strings.ToLower(spec.Trigger)
	out.Description = truncate(spec.Description, 128)
	out.AutoComplete = true
	out.AutoCompleteDesc = truncate(spec.Description, 128)
	out.AutoCompleteHint = spec.Hint
	return &out
}

// differences names the fields of cmd that are not what opsbot wants, and
// whether only its texts (description, autocomplete) differ.
func differences(cmd *mmapi.Command, spec CommandSpec, commandURL string) (string, bool) {
	want := desired(cmd, spec, commandURL)
	var d []string
	if cmd.Trigger != want.Trigger {
		d = append(d, fmt.Sprintf("trigger /%s", cmd.Trigger))
	}
	if cmd.URL != want.URL {
		d = append(d, "URL "+cmd.URL)
	}
	if cmd.Method != want.Method {
		d = append(d, "method "+cmd.Method)
	}
	textsOnly := len(d) == 0
	if cmd.DisplayName != want.DisplayName || cmd.Description != want.Description || cmd.AutoComplete != want.AutoComplete ||
		cmd.AutoCompleteDesc != want.AutoCompleteDesc || cmd.AutoCompleteHint != want.AutoCompleteHint {
		d = append(d, "description or autocomplete")
	} else {
		textsOnly = false
	}
	if len(d) == 0 {
		return "", false
	}
	return "was " + strings.Join(d, ", "), textsOnly
}

func keep(ctx context.Context, cfg RegisterConfig, cmd *mmapi.Command, token string) error {
	if token == "" {
		return fmt.Errorf("the server returned /%s without its token", cmd.Trigger)
	}
	return cfg.Tokens.SaveCommandToken(ctx, bot.CommandToken{Platform: Platform, ID: cmd.ID, Team: cmd.TeamID,
		Trigger: strings.ToLower(cmd.Trigger), TokenSHA256: digestHex(token), Updated: cfg.Now()})
}

func digestHex(token string) string {
	d := sha256.Sum256([]byte(token))
	return hex.EncodeToString(d[:])
}

func sameURL(a, b string) bool {
	return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	for len(string(r))+len("…") > n {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}
