package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/opsbot/opsbot/adapters/mattermost"
	"github.com/opsbot/opsbot/bot"
)

// teamRegistration is one team of OPSBOT_MATTERMOST_REGISTER.
type teamRegistration struct {
	Team   string
	Single bool
}

// registerTeams reads OPSBOT_MATTERMOST_REGISTER ("ops,infra:single"). It
// needs OPSBOT_PUBLIC_URL: the commands' URL cannot come from a request.
func registerTeams(e Env) ([]teamRegistration, error) {
	if strings.TrimSpace(e.MattermostRegister) == "" {
		return nil, nil
	}
	var out []teamRegistration
	for _, item := range splitList(e.MattermostRegister) {
		name, mode, hasMode := strings.Cut(item, ":")
		if name == "" || strings.ContainsAny(name, " /") || (hasMode && mode != "single") {
			return nil, bot.Errorf(bot.ECONFIG, "OPSBOT_MATTERMOST_REGISTER=%q: list team names (as in the team's URL) separated by commas, each optionally NAME:single for /opsbot alone, such as ops,infra:single", e.MattermostRegister)
		}
		out = append(out, teamRegistration{Team: name, Single: hasMode})
	}
	if e.PublicURL == "" {
		return nil, bot.Errorf(bot.ECONFIG, "OPSBOT_MATTERMOST_REGISTER needs OPSBOT_PUBLIC_URL: the address Mattermost sends the slash commands to, such as https://opsbot.example.com")
	}
	return out, nil
}

// commandSpecs are the slash commands the Router serves, as Mattermost
// registers them; single makes /opsbot the only one (every command is
// typed under it: /opsbot portcheck HOST PORT).
func commandSpecs(r *bot.Router, single bool) []mattermost.CommandSpec {
	var specs, others []mattermost.CommandSpec
	var names []string
	for _, c := range r.Commands() {
		spec := mattermost.CommandSpec{Trigger: c.Name(), Description: c.Summary()}
		if s, ok := c.(bot.Subcommander); ok {
			spec.Hint = strings.Join(s.Subcommands(), " | ")
		}
		if c.Name() == "opsbot" {
			specs = append(specs, spec)
			continue
		}
		names = append(names, c.Name())
		others = append(others, spec)
	}
	if !single {
		return append(specs, others...)
	}
	for i := range specs {
		specs[i].Description = "every command: /opsbot " + strings.Join(names, ", /opsbot ") + "; and help, approvals, approve, deny, audit"
		specs[i].Hint = strings.Join(names, " | ") + " ... | " + specs[i].Hint
	}
	return specs
}

// commandURL is where Mattermost sends the commands.
func commandURL(publicURL string) string {
	if publicURL == "" {
		return ""
	}
	return strings.TrimRight(publicURL, "/") + "/mattermost/command"
}

// mattermostCmd is `opsbot mattermost register --team NAME [--single]`.
func mattermostCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const use = "usage: opsbot mattermost register --team NAME [--single] [--url URL] [--config FILE]"
	if len(args) == 0 || args[0] != "register" {
		fmt.Fprintln(stderr, use)
		return 2
	}
	fs := flag.NewFlagSet("opsbot mattermost register", flag.ContinueOnError)
	fs.SetOutput(stderr)
	team := fs.String("team", "", "the team's name, as in its URL (https://chat.example.com/NAME)")
	single := fs.Bool("single", false, "register /opsbot alone: every command is typed under it (/opsbot portcheck HOST PORT); removes opsbot's other commands from the team")
	urlFlag := fs.String("url", "", "where Mattermost sends the commands (default $OPSBOT_PUBLIC_URL/mattermost/command)")
	cfg := fs.String("config", "", "policy file (default $OPSBOT_CONFIG)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *team == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, use)
		return 2
	}
	m, err := NewMain(ctx, *cfg, io.Discard)
	if err != nil {
		return configError(stderr, err)
	}
	defer m.Close()
	cu := *urlFlag
	if cu == "" {
		cu = commandURL(m.Env.PublicURL)
	}
	changes, err := m.registerTeam(ctx, teamRegistration{Team: *team, Single: *single}, cu)
	for _, c := range changes {
		fmt.Fprintln(stdout, c.String())
	}
	if err != nil {
		if bot.ErrorCode(err) == bot.ECONFIG {
			return configError(stderr, err)
		}
		fmt.Fprintln(stderr, "opsbot mattermost register:", err)
		return 1
	}
	fmt.Fprintln(stdout, registerSummary(*team, changes))
	return 0
}

func (m *Main) registerTeam(ctx context.Context, t teamRegistration, url string) ([]mattermost.Change, error) {
	return mattermost.Register(ctx, mattermost.RegisterConfig{
		ServerURL: m.Env.MattermostURL, Token: m.Env.MattermostToken, Team: t.Team, CommandURL: url,
		Commands: commandSpecs(m.live.Load(), t.Single), Tokens: m.Store,
	})
}

// registerSummary is the last line: whether anything changed.
func registerSummary(team string, changes []mattermost.Change) string {
	changed := 0
	for _, c := range changes {
		if c.Action != "unchanged" {
			changed++
		}
	}
	if changed == 0 {
		return fmt.Sprintf("team %s: nothing changed: the %d slash commands are registered as wanted", team, len(changes))
	}
	return fmt.Sprintf("team %s: %d of %d changed; the tokens are in the store, every opsbot sharing it accepts them now (no restart)", team, changed, len(changes))
}

// registerAtStart registers the slash commands of OPSBOT_MATTERMOST_REGISTER.
// A failure is logged with its cause and does not stop serve: commands
// already registered keep working.
func (m *Main) registerAtStart(ctx context.Context) {
	teams, err := registerTeams(m.Env)
	if err != nil || len(teams) == 0 {
		return
	}
	log := errorCounting(m.Log.With("platform", "mattermost"), m.Metrics, "mattermost")
	for _, t := range teams {
		changes, err := m.registerTeam(ctx, t, commandURL(m.Env.PublicURL))
		if err != nil {
			log.Error("registering the slash commands failed", "team", t.Team, "err", err)
			continue
		}
		for _, c := range changes {
			if c.Action != "unchanged" {
				log.Info("slash command", "team", t.Team, "trigger", "/"+c.Trigger, "action", c.Action, "detail", c.Detail)
			}
		}
		log.Info(registerSummary(t.Team, changes))
	}
}

// mattermostCommandsLine is config check's word on how slash commands are
// verified: tokens from the environment, registered ones in the store, and
// the teams serve registers at start.
func (m *Main) mattermostCommandsLine(ctx context.Context) string {
	e := m.Env
	if e.MattermostURL == "" && e.MattermostCommandTokens == "" {
		return ""
	}
	registered, err := m.Store.CommandTokens(ctx, mattermost.Platform)
	stored := fmt.Sprintf("%d registered in the store", len(registered))
	if err != nil {
		stored = "the registered ones unreadable (" + err.Error() + ")"
	}
	line := fmt.Sprintf("  mattermost slash commands: %d tokens in OPSBOT_MATTERMOST_COMMAND_TOKENS, %s", len(splitList(e.MattermostCommandTokens)), stored)
	if teams, _ := registerTeams(e); len(teams) > 0 {
		var names []string
		for _, t := range teams {
			names = append(names, t.Team)
		}
		line += "; serve registers them in " + strings.Join(names, ", ") + " at start"
	} else if len(registered) == 0 && e.MattermostCommandTokens == "" {
		line += " — none yet: run opsbot mattermost register --team NAME (or set OPSBOT_MATTERMOST_REGISTER)"
	}
	return line
}
