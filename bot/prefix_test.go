package bot_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/opsbot/opsbot/bot"
)

type named struct {
	name string
	subs []string
	got  *[]string
}

func (n named) Name() string    { return n.name }
func (n named) Summary() string { return n.name }
func (n named) Usage() string   { return n.name }
func (n named) Subcommands() []string {
	return n.subs
}
func (n named) Run(_ context.Context, req bot.Request) (bot.Reply, error) {
	*n.got = append(*n.got, n.name+" "+req.Line)
	return bot.Reply{Status: bot.StatusOK, Title: "ok"}, nil
}

func TestPrefixed_EveryCommandAnswersUnderOpsbot(t *testing.T) {
	var got []string
	r := bot.NewRouter(bot.RouterConfig{Commands: []bot.Command{
		named{name: "portcheck", got: &got},
		named{name: "opsbot", subs: []string{"help", "hosts", "approve"}, got: &got},
	}})
	p := bot.Prefixed{Router: r}
	for line, want := range map[string]string{
		"/opsbot portcheck 10.0.0.1 80":     "/portcheck 10.0.0.1 80",
		"  /OPSBOT\t/portcheck  h  'a b'  ": "/portcheck  h  'a b'",
		"opsbot portcheck help":             "/portcheck help",
		"/opsbot hosts":                     "/opsbot hosts", // /opsbot's own subcommand
		"/opsbot nosuch x":                  "/opsbot nosuch x",
		"/opsbot opsbot hosts":              "/opsbot opsbot hosts",
		"/portcheck 10.0.0.1 80":            "/portcheck 10.0.0.1 80",
		"/opsbot":                           "/opsbot",
	} {
		assert.Equal(t, want, p.Unprefix(line), line)
	}
	p.Handle(context.Background(), bot.Request{Platform: "shell", User: "a", Line: "/opsbot portcheck 10.0.0.1 80"})
	assert.Equal(t, []string{"portcheck /portcheck 10.0.0.1 80"}, got, "run as /portcheck itself")
	assert.True(t, p.Knows("portcheck"), "adapters still ask the Router which commands exist")
	var names []string
	for _, c := range r.Commands() {
		names = append(names, c.Name())
	}
	assert.Equal(t, []string{"opsbot", "portcheck"}, names)
}
