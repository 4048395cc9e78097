package main

import (
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/opsbot/opsbot/bot"
)

// Env is everything opsbot reads from the environment (prefix OPSBOT_):
// secrets and addresses, never policy. It lives with main, which wires
// them into the adapters; the core never sees a token.
type Env struct {
	Config   string `envconfig:"CONFIG"`   // policy file
	Database string `envconfig:"DATABASE"` // a file path or postgres://...
	HTTPAddr string `envconfig:"HTTP_ADDR" default:":8080"`
	// PublicURL is where chat servers reach this bot (https://opsbot.example.com),
	// for button callbacks; without it, adapters use the address a request came to.
	PublicURL string `envconfig:"PUBLIC_URL"`
	LogLevel  string `envconfig:"LOG_LEVEL"`  // debug, info, warn, error; default: warn in the terminal, info for serve
	LogFormat string `envconfig:"LOG_FORMAT"` // text (default) or json
	// MetricsAddr, when set, serves /metrics on its own address (e.g.
	// 127.0.0.1:9090) instead of on HTTPAddr beside the chat endpoints.
	MetricsAddr string `envconfig:"METRICS_ADDR"`
	// ShutdownGrace is how long serve lets running commands finish after
	// SIGTERM before it cancels them (keep it below the orchestrator's
	// kill timeout: Kubernetes' terminationGracePeriodSeconds is 30 s).
	ShutdownGrace time.Duration `envconfig:"SHUTDOWN_GRACE" default:"20s"`
	// ApprovalLease is how long a replica's claim on an approved action
	// holds without renewal: how soon the other replicas report the action
	// abandoned when the replica running it dies (1s to 1h).
	ApprovalLease time.Duration `envconfig:"APPROVAL_LEASE" default:"1m"`

	SlackSigningSecret string `envconfig:"SLACK_SIGNING_SECRET"`
	SlackBotToken      string `envconfig:"SLACK_BOT_TOKEN"`
	SlackAppToken      string `envconfig:"SLACK_APP_TOKEN"`
	SlackAPIURL        string `envconfig:"SLACK_API_URL"`

	// SSH to inventory hosts: a private key file and/or the ssh-agent, and
	// the known_hosts file every host key is checked against (default
	// ~/.ssh/known_hosts).
	SSHKey        string `envconfig:"SSH_KEY"`
	SSHAgent      bool   `envconfig:"SSH_AGENT"`
	SSHKnownHosts string `envconfig:"SSH_KNOWN_HOSTS"`

	MattermostURL           string `envconfig:"MATTERMOST_URL"`
	MattermostToken         string `envconfig:"MATTERMOST_TOKEN"`
	MattermostCommandTokens string `envconfig:"MATTERMOST_COMMAND_TOKENS"`
	MattermostActionSecret  string `envconfig:"MATTERMOST_ACTION_SECRET"`
	// MattermostRegister lists the teams whose slash commands serve
	// creates or updates at start (opsbot mattermost register), comma-
	// separated; "NAME:single" registers /opsbot alone in that team.
	MattermostRegister string `envconfig:"MATTERMOST_REGISTER"`
}

// loadEnv reads OPSBOT_* variables.
func loadEnv() (Env, error) {
	var e Env
	if err := envconfig.Process("opsbot", &e); err != nil {
		return e, &bot.Error{Code: bot.ECONFIG, Message: "environment: " + err.Error(), Err: err}
	}
	return e, nil
}

// HasChat reports whether any chat platform is configured; without one,
// opsbot opens the terminal adapter.
func (e Env) HasChat() bool {
	return e.SlackBotToken != "" || e.SlackAppToken != "" || e.SlackSigningSecret != "" ||
		e.MattermostURL != "" || e.MattermostCommandTokens != ""
}
