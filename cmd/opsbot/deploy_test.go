package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
)

// repo is the repository root, seen from this package's directory.
const repo = "../.."

func readRepo(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, path))
	require.NoError(t, err)
	return string(b)
}

// served is every command the bot's Router serves, as wired by NewMain.
func served(t *testing.T) []bot.Command {
	t.Helper()
	clearEnv(t)
	t.Setenv("OPSBOT_DATABASE", filepath.Join(t.TempDir(), "opsbot.db"))
	m, err := NewMain(t.Context(), "", os.Stderr)
	require.NoError(t, err)
	t.Cleanup(m.Close)
	cmds := m.Router.Commands()
	require.GreaterOrEqual(t, len(cmds), 6)
	return cmds
}

// The Slack manifest declares exactly the commands the bot serves, each
// with every subcommand in its usage hint, and the setup guides name every
// one: a new command without a manifest entry fails here.
func TestSlackManifest_DeclaresEveryCommandTheRouterServes(t *testing.T) {
	var manifest struct {
		DisplayInformation struct {
			LongDescription string `yaml:"long_description"`
		} `yaml:"display_information"`
		Features struct {
			SlashCommands []struct {
				Command     string `yaml:"command"`
				URL         string `yaml:"url"`
				Description string `yaml:"description"`
				UsageHint   string `yaml:"usage_hint"`
			} `yaml:"slash_commands"`
		} `yaml:"features"`
		Settings struct {
			Interactivity struct {
				RequestURL string `yaml:"request_url"`
			} `yaml:"interactivity"`
		} `yaml:"settings"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(readRepo(t, "deploy/slack/manifest.yaml")), &manifest))
	declared := map[string]int{}
	for i, c := range manifest.Features.SlashCommands {
		declared[c.Command] = i
		assert.Equal(t, "https://opsbot.example.com/slack/commands", c.URL, "%s: an https URL on the commands endpoint", c.Command)
		assert.LessOrEqual(t, len(c.Description), 100, "%s: Slack cuts descriptions", c.Command)
	}
	assert.True(t, strings.HasPrefix(manifest.Settings.Interactivity.RequestURL, "https://"), "Slack calls only https")
	slackGuide := readRepo(t, "deploy/slack/README.md")
	mmGuide := readRepo(t, "deploy/mattermost/README.md")
	var names []string
	for _, cmd := range served(t) {
		name := "/" + cmd.Name()
		names = append(names, name)
		i, ok := declared[name]
		if !assert.True(t, ok, "%s is served but not in deploy/slack/manifest.yaml", name) {
			continue
		}
		hint := manifest.Features.SlashCommands[i].UsageHint
		if s, ok := cmd.(bot.Subcommander); ok {
			for _, sub := range s.Subcommands() {
				assert.Regexp(t, `(^|[ |])`+regexp.QuoteMeta(sub)+`($|[ |])`, hint, "%s: the usage hint names %q", name, sub)
			}
		}
		assert.Contains(t, manifest.DisplayInformation.LongDescription, name, "the app's description names %s", name)
		assert.Contains(t, slackGuide, "`"+name+"`", "deploy/slack/README.md names %s", name)
		assert.Contains(t, mmGuide, "`"+cmd.Name()+"`", "deploy/mattermost/README.md has the trigger word %s", cmd.Name())
	}
	sort.Strings(names)
	var got []string
	for n := range declared {
		got = append(got, n)
	}
	sort.Strings(got)
	assert.Equal(t, names, got, "the manifest declares exactly the served commands")
	for _, guide := range []string{slackGuide, mmGuide} {
		assert.NotContains(t, guide, "and later")
		assert.NotContains(t, guide, "not in this release")
	}
	assert.NotContains(t, readRepo(t, "deploy/slack/manifest.yaml"), "not in this release")
}

// The targets a command takes (its help's first argument: HOST, PORT,
// HOST|SUBNET|GROUP) open its Slack usage hint and its row of the
// Mattermost setup table, so a command that learns a new kind of target
// cannot leave the hints behind.
func TestDocs_UsageHintsNameTheTargetsEachCommandTakes(t *testing.T) {
	var manifest struct {
		Features struct {
			SlashCommands []struct {
				Command   string `yaml:"command"`
				UsageHint string `yaml:"usage_hint"`
			} `yaml:"slash_commands"`
		} `yaml:"features"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(readRepo(t, "deploy/slack/manifest.yaml")), &manifest))
	hints := map[string]string{}
	for _, c := range manifest.Features.SlashCommands {
		hints[c.Command] = c.UsageHint
	}
	mmGuide := readRepo(t, "deploy/mattermost/README.md")
	checked := 0
	for _, cmd := range served(t) {
		words := strings.Fields(strings.SplitN(cmd.Usage(), "\n", 2)[0])
		if len(words) < 2 || words[1] != strings.ToUpper(words[1]) {
			continue // subcommands first (apache status|...), or no arguments
		}
		first := words[1]
		checked++
		assert.True(t, strings.HasPrefix(hints["/"+cmd.Name()], first), "/%s: the Slack usage hint %q starts with %s", cmd.Name(), hints["/"+cmd.Name()], first)
		row := regexp.MustCompile("(?m)^\\| `" + regexp.QuoteMeta(cmd.Name()) + "` \\| `([^`]*)`").FindStringSubmatch(mmGuide)
		if assert.NotNil(t, row, "deploy/mattermost/README.md has a row for %s", cmd.Name()) {
			assert.True(t, strings.HasPrefix(strings.ReplaceAll(row[1], "\\|", "|"), first), "%s: the Mattermost hint %q starts with %s", cmd.Name(), row[1], first)
		}
	}
	assert.GreaterOrEqual(t, checked, 4, "portcheck, scan, tls and listen take targets")
	assert.Contains(t, hints["/scan"], "SUBNET|GROUP", "/scan takes subnets and groups")
}

// yamlBlocks returns the ```yaml blocks of a markdown file.
func yamlBlocks(text string) []string {
	re := regexp.MustCompile("(?s)```yaml\n(.*?)```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		out = append(out, m[1])
	}
	return out
}

// Every YAML example in README.md and deploy/ is a policy that `opsbot
// config check` accepts: a reader who copies one gets a working file.
func TestDocs_EveryYAMLExamplePassesConfigCheck(t *testing.T) {
	examples := map[string]string{"deploy/policy.example.yaml": readRepo(t, "deploy/policy.example.yaml")}
	var docs []string
	require.NoError(t, filepath.WalkDir(filepath.Join(repo, "deploy"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			docs = append(docs, strings.TrimPrefix(p, repo+"/"))
		}
		return err
	}))
	docs = append(docs, "README.md")
	for _, doc := range docs {
		for i, block := range yamlBlocks(readRepo(t, doc)) {
			examples[doc+"#"+string(rune('1'+i))] = block
		}
	}
	require.GreaterOrEqual(t, len(examples), 6, "README.md and the guides hold policy examples")
	for name, body := range examples {
		t.Run(name, func(t *testing.T) {
			clearEnv(t)
			code, out, errOut := run(t, "config", "check", "--config", writeFile(t, body))
			assert.Equal(t, 0, code, "%s:\n%s\n%s", name, body, errOut)
			assert.Contains(t, out, "policy OK")
		})
	}
}

// Directives newer than the systemd of still-supported distributions must
// say which version they need, so that an install on Debian 11, Ubuntu
// 22.04 or RHEL 8 is not a surprise.
func TestSystemd_NewerDirectivesSayWhichVersionTheyNeed(t *testing.T) {
	need := map[string]string{"PrivateIPC=": "248", "ProtectProc=": "247", "ProcSubset=": "247", "LoadCredential=": "247", "%d": "251"}
	files, err := filepath.Glob(filepath.Join(repo, "deploy/systemd/opsbot.service*"))
	require.NoError(t, err)
	more, err := filepath.Glob(filepath.Join(repo, "deploy/systemd/opsbot.service.d/*.conf"))
	require.NoError(t, err)
	files = append(files, more...)
	require.Len(t, files, 4, "the unit, its directory, and two drop-ins")
	checked := 0
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || fi.IsDir() {
			continue
		}
		text, err := os.ReadFile(f)
		require.NoError(t, err)
		var directives, comments strings.Builder
		for _, line := range strings.Split(string(text), "\n") {
			if strings.HasPrefix(line, "#") {
				comments.WriteString(line + "\n")
			} else {
				directives.WriteString(line + "\n")
			}
		}
		for d, v := range need {
			if strings.Contains(directives.String(), d) {
				checked++
				assert.Regexp(t, `(?i)(systemd |needs |)`+v, comments.String(), "%s uses %s: its comments say it needs systemd %s", filepath.Base(f), d, v)
			}
		}
	}
	assert.GreaterOrEqual(t, checked, 5)
	pre := readRepo(t, "deploy/systemd/opsbot.service.d/ssh-pre251.conf")
	assert.NotContains(t, regexp.MustCompile(`(?m)^#.*$`).ReplaceAllString(pre, ""), "%d", "the fallback works without %d")
	assert.Contains(t, readRepo(t, "deploy/README.md"), "ssh-pre251.conf")
}

// The shutdown timings: serve needs at most grace + shutdownTail after
// SIGTERM; systemd's stop timeout and the container docs' stop timeout
// leave shutdownMargin on top (the chart's are checked by make chart).
func TestShutdown_SupervisorsWaitLongerThanServeNeeds(t *testing.T) {
	clearEnv(t)
	env, err := loadEnv()
	require.NoError(t, err)
	worst := env.ShutdownGrace + shutdownTail
	assert.Equal(t, "30s", worst.String(), "the default: 20 s grace, 10 s to cancel and deliver")
	want := int((worst + shutdownMargin).Seconds())

	unit := readRepo(t, "deploy/systemd/opsbot.service")
	m := regexp.MustCompile(`(?m)^TimeoutStopSec=(\d+)s$`).FindStringSubmatch(unit)
	require.NotNil(t, m, "the unit sets TimeoutStopSec")
	assert.Equal(t, want, atoi(t, m[1]), "systemd: grace + 10 s + 5 s margin")

	m = regexp.MustCompile(`(?m)^daemon_timeout=(\d+)$`).FindStringSubmatch(readRepo(t, "deploy/openbsd/opsbot"))
	require.NotNil(t, m, "the rc.d script sets daemon_timeout")
	assert.Equal(t, want, atoi(t, m[1]), "OpenBSD rc.d: grace + 10 s + 5 s margin")

	docs := readRepo(t, "deploy/README.md")
	for _, re := range []string{`docker stop -t (\d+)`, `--stop-timeout (\d+)`} {
		m := regexp.MustCompile(re).FindStringSubmatch(docs)
		require.NotNil(t, m, "deploy/README.md gives %s", re)
		assert.Equal(t, want, atoi(t, m[1]), "the container docs: %s", re)
	}
	assert.Contains(t, readRepo(t, "README.md"), fmt.Sprintf("docker stop -t %d", want))
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, c := range s {
		require.True(t, c >= '0' && c <= '9', s)
		n = n*10 + int(c-'0')
	}
	return n
}
