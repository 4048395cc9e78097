// Package mattermost is the Mattermost adapter: custom slash commands
// (POST /mattermost/command, verified by per-command tokens), interactive
// buttons (POST /mattermost/action, verified by an HMAC in the button's
// context, since Mattermost signs nothing), and the bot's own posts and
// edits through a small API v4 client (mmapi, which also declares the
// server's wire types opsbot sends and reads).
// It renders bot.Reply as markdown and message attachments; everything
// else goes through the bot.Handler like any other request.
package mattermost

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/opsbot/opsbot/adapters/mattermost/mmapi"
	"github.com/opsbot/opsbot/bot"
)

// Platform is how policy names Mattermost users: "mattermost:USERID" or
// "mattermost:USERNAME".
const Platform = "mattermost"

// Config is what the adapter uses; cmd/opsbot fills it from OPSBOT_*.
type Config struct {
	URL           string   // OPSBOT_MATTERMOST_URL: the server, for the API client
	Token         string   // OPSBOT_MATTERMOST_TOKEN: the bot account's access token
	CommandTokens []string // OPSBOT_MATTERMOST_COMMAND_TOKENS split on commas: one per slash command
	ActionSecret  string   // OPSBOT_MATTERMOST_ACTION_SECRET: HMAC key for button contexts
	// PublicURL is where the server reaches us for /mattermost/action; ""
	// derives it from each incoming command request (Host, X-Forwarded-Proto).
	PublicURL string
	Handler   bot.Handler
	Audit     bot.Auditor
	Log       *slog.Logger
	Now       func() time.Time // nil = time.Now
	// Registered holds the tokens of the commands opsbot mattermost
	// register created (the store): with it, CommandTokens may be empty.
	Registered bot.CommandTokens
}

// Timings. Mattermost waits 30 s for a command or a click; we answer well
// before, and deliver what takes longer as a post.
const (
	maxBody       = 64 << 10
	maxInline     = 512 << 10        // the largest command answer sent (Mattermost reads 1 MiB)
	maxMore       = 3                // pages posted after the first; the whole output beyond is a file
	fastReply     = 2 * time.Second  // a command's result within this is answered inline
	clickWait     = 10 * time.Second // a click's result within this updates the post in the response
	editEvery     = 1500 * time.Millisecond
	buttonTTL     = 24 * time.Hour // approvals expire sooner in the store; this bounds any button
	workTimeout   = time.Hour      // the longest a command started from chat may run
	callTimeout   = 10 * time.Second
	userCacheTTL  = 10 * time.Minute
	readyCacheTTL = 10 * time.Second
)

// Adapter serves Mattermost's slash commands and button clicks and posts as
// the bot account.
type Adapter struct {
	client    *mmapi.Client
	site      *url.URL            // OPSBOT_MATTERMOST_URL: response_urls must be under it
	tokens    [][sha256.Size]byte // digests of the command tokens
	stored    *storedTokens       // and those registered in the store
	secret    []byte
	publicURL string
	handler   bot.Handler
	audit     bot.Auditor
	log       *slog.Logger
	now       func() time.Time
	// inflight counts the results being delivered after their
	// acknowledgement, so that a shutdown can wait for them (Wait).
	inflight sync.WaitGroup
	http     *http.Client // for response_url

	// Timings, shortened by tests.
	fastReply, clickWait, editEvery time.Duration

	mu    sync.Mutex
	users map[string]cachedUser
	ready struct {
		at  time.Time
		err error
	}
}

var _ bot.Notifier = (*Adapter)(nil)

// New checks the configuration and builds the adapter. It talks to no one.
func New(cfg Config) (*Adapter, error) {
	var problems []string
	u, err := url.Parse(strings.TrimSpace(cfg.URL))
	if cfg.URL == "" {
		problems = append(problems, "OPSBOT_MATTERMOST_URL is empty: set it to the server's address, e.g. https://chat.example.com")
	} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, "OPSBOT_MATTERMOST_URL is not an http(s) URL, e.g. https://chat.example.com")
	}
	if strings.TrimSpace(cfg.Token) == "" {
		problems = append(problems, "OPSBOT_MATTERMOST_TOKEN is empty: set it to the bot account's access token")
	}
	a := &Adapter{
		handler: cfg.Handler, audit: cfg.Audit, log: cfg.Log, now: cfg.Now,
		http:      &http.Client{Timeout: callTimeout},
		fastReply: fastReply, clickWait: clickWait, editEvery: editEvery,
		users: map[string]cachedUser{},
	}
	for _, t := range cfg.CommandTokens {
		if t = strings.TrimSpace(t); t != "" {
			a.tokens = append(a.tokens, sha256.Sum256([]byte(t)))
		}
	}
	if cfg.Registered != nil {
		a.stored = &storedTokens{src: cfg.Registered}
	} else if len(a.tokens) == 0 {
		problems = append(problems, "OPSBOT_MATTERMOST_COMMAND_TOKENS is empty: list the token of every slash command, separated by commas")
	}
	switch s := strings.TrimSpace(cfg.ActionSecret); {
	case s == "":
		problems = append(problems, "OPSBOT_MATTERMOST_ACTION_SECRET is empty: it signs button clicks; generate one with openssl rand -hex 32")
	case len(s) < 16:
		problems = append(problems, fmt.Sprintf("OPSBOT_MATTERMOST_ACTION_SECRET is too short (%d characters, want 16 or more): generate one with openssl rand -hex 32", len(s)))
	default:
		a.secret = []byte(s)
	}
	if cfg.PublicURL != "" {
		p, err := url.Parse(cfg.PublicURL)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			problems = append(problems, "OPSBOT_PUBLIC_URL is not an http(s) URL, e.g. https://opsbot.example.com")
		}
		a.publicURL = strings.TrimRight(cfg.PublicURL, "/")
	}
	if cfg.Handler == nil {
		problems = append(problems, "no handler (a bug in the wiring)")
	}
	if len(problems) > 0 {
		return nil, errors.New("mattermost: " + strings.Join(problems, "; "))
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("platform", Platform)
	if a.now == nil {
		a.now = time.Now
	}
	a.site = u
	a.client = mmapi.NewClient(strings.TrimSpace(cfg.URL), strings.TrimSpace(cfg.Token), &http.Client{Timeout: callTimeout})
	return a, nil
}

// Register adds the two endpoints Mattermost calls.
func (a *Adapter) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /mattermost/command", a.handleCommand)
	mux.HandleFunc("GET /mattermost/command", a.handleCommand)
	mux.HandleFunc("POST /mattermost/action", a.handleAction)
}

// actionURL is where buttons call back: the configured public URL, or the
// scheme and host the command came in on.
func (a *Adapter) actionURL(r *http.Request) string {
	base := a.publicURL
	if base == "" && r != nil {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
			scheme = p
		}
		base = scheme + "://" + r.Host
	}
	return base + "/mattermost/action"
}

// buttons signs the actions of a reply posted in channel.
func (a *Adapter) buttons(actionURL, channel, ref string) buttons {
	return buttons{secret: a.secret, url: actionURL, channel: channel, ref: ref, expires: a.now().Add(buttonTTL)}
}

// reject audits a platform request that failed verification. The message
// says why and never carries a token or a signature.
func (a *Adapter) reject(ctx context.Context, r *http.Request, user, channel, line, why string) {
	a.log.Warn("rejected", "path", r.URL.Path, "remote", r.RemoteAddr, "user", user, "why", why)
	if a.audit == nil {
		return
	}
	rec := bot.AuditRecord{
		Time: a.now().UTC(), Kind: bot.AuditRejected, RequestID: bot.NewID(), Platform: Platform,
		User: user, Channel: channel, Line: line, Result: "rejected", Message: why,
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := a.audit.AppendAudit(actx, rec); err != nil {
		a.log.Error("audit write failed", "err", err, "why", why)
	}
}

// Wait waits until every result being delivered after its acknowledgement
// (a slow command, a click) has been posted, or ctx ends: the adapter's
// part of a graceful shutdown, after the Router has drained.
func (a *Adapter) Wait(ctx context.Context) error { return bot.WaitContext(ctx, &a.inflight) }
