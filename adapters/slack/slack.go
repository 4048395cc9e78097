// Package slack is opsbot's Slack adapter. It owns everything between Slack
// and the bot.Handler: verifying signed requests, slash commands and button
// clicks over HTTP or Socket Mode, the 3-second acknowledgement, progress
// messages edited in place, rendering bot.Reply to Block Kit, duplicate
// deliveries and Slack's rate limits. It knows nothing of what commands do:
// a button's value is an ordinary command line, run as the clicking user.
package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slack-go/slack"
	"golang.org/x/time/rate"

	"github.com/opsbot/opsbot/bot"
)

// Config is what the adapter needs; secrets come from the environment.
type Config struct {
	SigningSecret string      // OPSBOT_SLACK_SIGNING_SECRET (HTTP mode)
	BotToken      string      // OPSBOT_SLACK_BOT_TOKEN (xoxb-...)
	AppToken      string      // OPSBOT_SLACK_APP_TOKEN (xapp-...): Socket Mode when set
	APIURL        string      // OPSBOT_SLACK_API_URL: tests point it at slacktest ("" = Slack's)
	Handler       bot.Handler // the Router
	Audit         bot.Auditor // the store: rejected requests are audited here
	// Deliveries is the store too: retries and replays are recognised
	// across replicas. nil: by this process only.
	Deliveries bot.Deliveries
	Log        *slog.Logger
	Now        func() time.Time // nil = time.Now (tests fake the clock for the 5-minute window)
}

// Adapter serves Slack: HTTP endpoints, Socket Mode, and the Notifier the
// Router uses to announce approval outcomes.
type Adapter struct {
	secret   string
	appToken string
	apiURL   string
	api      *slack.Client
	http     *http.Client
	handler  bot.Handler
	audit    bot.Auditor
	log      *slog.Logger
	now      func() time.Time
	// inflight counts the results being delivered after their
	// acknowledgement, so that a shutdown can wait for them (Wait).
	inflight   sync.WaitGroup
	seen       *dedupe        // deliveries already handled here
	deliveries bot.Deliveries // and by any replica; nil: here only
	posted     *dedupe        // "channel/ts" of messages posted with chat.postMessage
	hooks      *hookBudget    // uses left of each response_url

	// Tunables; tests shorten them.
	inlineWait   time.Duration // how long a command may take to be answered in the HTTP response itself
	editInterval time.Duration // least time between two edits of a progress message
	pingInterval time.Duration // Socket Mode: how long without a ping before reconnecting
	maxAttempts  int           // calls to Slack, 429s included
	maxWait      time.Duration // longest Retry-After honoured
	sleep        func(ctx context.Context, d time.Duration) error

	rejectLimit *rate.Limiter // audit records for rejected requests
	suppressed  atomic.Int64  // rejections not audited since the last audited one

	connected atomic.Bool   // Socket Mode
	trouble   atomic.Value  // string: why Socket Mode last lost or failed its connection
	sem       chan struct{} // bounds the Socket Mode events handled at once

	mu      sync.Mutex
	streams map[string]*stream // progress messages by channel+ts, while their command runs
	clicks  map[string]string  // the message clicked, by request ID, while the click's request runs
	auth    struct {           // the last auth.test, for Ready
		at  time.Time
		err error
	}
}

var _ bot.Notifier = (*Adapter)(nil)

// New checks the configuration: a bot token, and a signing secret (HTTP)
// or an app token (Socket Mode), or both.
func New(cfg Config) (*Adapter, error) {
	if cfg.BotToken == "" {
		return nil, errors.New("slack: OPSBOT_SLACK_BOT_TOKEN is required")
	}
	if !strings.HasPrefix(cfg.BotToken, "xoxb-") {
		return nil, errors.New("slack: OPSBOT_SLACK_BOT_TOKEN must be a bot token (xoxb-...)")
	}
	if cfg.SigningSecret == "" && cfg.AppToken == "" {
		return nil, errors.New("slack: set OPSBOT_SLACK_SIGNING_SECRET (HTTP endpoints) or OPSBOT_SLACK_APP_TOKEN (Socket Mode)")
	}
	if cfg.AppToken != "" && !strings.HasPrefix(cfg.AppToken, "xapp-") {
		return nil, errors.New("slack: OPSBOT_SLACK_APP_TOKEN must be an app-level token (xapp-...)")
	}
	if cfg.Handler == nil {
		return nil, errors.New("slack: no handler")
	}
	a := &Adapter{
		secret:       cfg.SigningSecret,
		appToken:     cfg.AppToken,
		handler:      cfg.Handler,
		audit:        cfg.Audit,
		log:          cfg.Log,
		now:          cfg.Now,
		http:         &http.Client{Timeout: 15 * time.Second},
		inlineWait:   2 * time.Second,
		editInterval: 1500 * time.Millisecond,
		pingInterval: 30 * time.Second,
		maxAttempts:  4,
		maxWait:      60 * time.Second,
		sleep:        sleepCtx,
		rejectLimit:  rate.NewLimiter(5, 20),
		streams:      map[string]*stream{},
		clicks:       map[string]string{},
		sem:          make(chan struct{}, 100),
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("adapter", "slack")
	if a.now == nil {
		a.now = time.Now
	}
	a.seen = newDedupe(dedupeTTL, 20000, a.now)
	a.deliveries = cfg.Deliveries
	a.posted = newDedupe(24*time.Hour, 20000, a.now)
	a.hooks = &hookBudget{now: a.now, m: map[string]*hookUse{}}
	opts := []slack.Option{slack.OptionHTTPClient(a.http)}
	if cfg.APIURL != "" {
		u, err := url.Parse(cfg.APIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, errors.New("slack: OPSBOT_SLACK_API_URL must be an http(s) URL")
		}
		a.apiURL = strings.TrimSuffix(cfg.APIURL, "/") + "/"
		opts = append(opts, slack.OptionAPIURL(a.apiURL))
	}
	if cfg.AppToken != "" {
		opts = append(opts, slack.OptionAppLevelToken(cfg.AppToken))
	}
	a.api = slack.New(cfg.BotToken, opts...)
	return a, nil
}

// Register adds the HTTP endpoints Slack calls.
func (a *Adapter) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /slack/commands", a.serveCommand)
	mux.HandleFunc("POST /slack/interactions", a.serveInteraction)
}

// call runs one request to Slack, waiting out rate limits (429 with
// Retry-After) a bounded number of times.
func (a *Adapter) call(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err = fn(cctx)
		cancel()
		var rl *slack.RateLimitedError
		if !errors.As(err, &rl) || attempt >= a.maxAttempts {
			break
		}
		wait := min(max(rl.RetryAfter, 100*time.Millisecond), a.maxWait)
		a.log.Info("slack rate limit: waiting", "op", op, "retry_after", wait, "attempt", attempt)
		if serr := a.sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%s: %w", op, serr)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op, redactURL(err))
	}
	return nil
}

// redactURL drops the URL from an HTTP client error: a response_url is a
// credential for five posts and must not reach the logs.
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// postMessage posts blocks to a channel (in a thread when threadTS is set)
// and returns the message's timestamp.
func (a *Adapter) postMessage(ctx context.Context, channel, threadTS, text string, blocks []slack.Block) (string, error) {
	opts := []slack.MsgOption{slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...)}
	if threadTS != "" {
		opts = append(opts, slack.MsgOptionTS(threadTS))
	}
	var ts string
	err := a.call(ctx, "chat.postMessage", func(ctx context.Context) error {
		var err error
		_, ts, err = a.api.PostMessageContext(ctx, channel, opts...)
		return err
	})
	if err == nil {
		a.posted.first(channel + "/" + ts)
	}
	return ts, err
}

// updateMessage replaces a bot message in place.
func (a *Adapter) updateMessage(ctx context.Context, channel, ts, text string, blocks []slack.Block) error {
	return a.call(ctx, "chat.update", func(ctx context.Context) error {
		_, _, _, err := a.api.UpdateMessageContext(ctx, channel, ts, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
		return err
	})
}

// postEphemeral shows blocks to one user in a channel.
func (a *Adapter) postEphemeral(ctx context.Context, channel, user, text string, blocks []slack.Block) error {
	return a.call(ctx, "chat.postEphemeral", func(ctx context.Context) error {
		_, err := a.api.PostEphemeralContext(ctx, channel, user, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
		return err
	})
}

// webhook posts to a response_url, within its budget: Slack takes at most
// hookUses posts to one response_url, within hookTTL of the command or
// click that gave it. Progress, the final reply, follow-ups and answers to
// clicks all draw on the same budget; a caller that finds it spent posts
// with chat.postMessage instead, where the bot can.
func (a *Adapter) webhook(ctx context.Context, responseURL string, msg *slack.WebhookMessage) error {
	if responseURL == "" {
		return errors.New("response_url: none in the request")
	}
	if err := a.hooks.take(responseURL); err != nil {
		return err
	}
	return a.call(ctx, "response_url", func(ctx context.Context) error {
		return slack.PostWebhookCustomHTTPContext(ctx, responseURL, a.http, msg)
	})
}

// Slack's rule for a response_url (docs.slack.dev, "Handling user
// interaction"): up to 5 uses within 30 minutes.
const (
	hookUses = 5
	hookTTL  = 30 * time.Minute
)

var (
	errHookSpent   = errors.New("response_url: its 5 uses are spent")
	errHookExpired = errors.New("response_url: expired (30 minutes)")
)

// hookBudget counts the uses of each response_url this process was given.
type hookBudget struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*hookUse
}

type hookUse struct {
	uses   int
	issued time.Time
}

// issue starts a response_url's clock, when the command or click that
// carries it arrives.
func (b *hookBudget) issue(u string) {
	if u == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.getLocked(u)
}

func (b *hookBudget) getLocked(u string) *hookUse {
	h, ok := b.m[u]
	if ok {
		return h
	}
	now := b.now()
	if len(b.m) >= 20000 { // forget the expired ones; they are refused by Slack anyway
		for k, v := range b.m {
			if now.Sub(v.issued) > hookTTL {
				delete(b.m, k)
			}
		}
		if len(b.m) >= 20000 {
			clear(b.m)
		}
	}
	h = &hookUse{issued: now}
	b.m[u] = h
	return h
}

// take spends one use, or says why none is left.
func (b *hookBudget) take(u string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.getLocked(u)
	switch {
	case b.now().Sub(h.issued) > hookTTL:
		return errHookExpired
	case h.uses >= hookUses:
		return errHookSpent
	}
	h.uses++
	return nil
}

// webhookMessage is a rendered message for a response_url.
func webhookMessage(text string, blocks []slack.Block, ephemeral, replace bool) *slack.WebhookMessage {
	rt := slack.ResponseTypeInChannel
	if ephemeral {
		rt = slack.ResponseTypeEphemeral
	}
	return &slack.WebhookMessage{Text: text, Blocks: &slack.Blocks{BlockSet: blocks}, ResponseType: rt, ReplaceOriginal: replace}
}

// sendMore posts the follow-up messages of a split reply: in the channel
// (threaded under the first message when its timestamp is known), or to
// the user alone for an ephemeral reply.
func (a *Adapter) sendMore(ctx context.Context, d delivery, m rendered, threadTS string) {
	for _, p := range m.More {
		var err error
		if m.Ephemeral {
			err = a.postEphemeral(ctx, d.channel, d.user, p.Text, p.Blocks)
		} else {
			_, err = a.postMessage(ctx, d.channel, threadTS, p.Text, p.Blocks)
		}
		if err != nil {
			// The bot may not be in the channel: the response_url still works.
			err = a.webhook(ctx, d.responseURL, webhookMessage(p.Text, p.Blocks, m.Ephemeral, false))
		}
		if err != nil {
			a.log.Error("follow-up message lost", "req", d.reqID, "channel", d.channel, "err", err)
		}
	}
	if m.File != nil && !m.Ephemeral {
		if err := a.uploadFile(ctx, d.channel, threadTS, *m.File); err != nil {
			a.log.Error("output file not shared", "req", d.reqID, "channel", d.channel, "err", err)
		}
	}
}

// uploadFile shares a text file in a channel (in a thread when threadTS is
// set) through Slack's external upload: files.getUploadURLExternal, the
// bytes to the URL it gives, files.completeUploadExternal.
func (a *Adapter) uploadFile(ctx context.Context, channel, threadTS string, f File) error {
	return a.call(ctx, "files upload", func(ctx context.Context) error {
		_, err := a.api.UploadFileContext(ctx, slack.UploadFileParameters{
			Filename: f.Name, Title: f.Title, Content: f.Content, FileSize: len(f.Content),
			Channel: channel, ThreadTimestamp: threadTS, SnippetType: "text",
		})
		return err
	})
}

// delivery is where a request's answers go.
type delivery struct {
	reqID       string
	channel     string
	user        string
	responseURL string
}

// Wait waits until every result being delivered after its acknowledgement
// (a slow command, a click) has been posted, or ctx ends: the adapter's
// part of a graceful shutdown, after the Router has drained.
func (a *Adapter) Wait(ctx context.Context) error { return bot.WaitContext(ctx, &a.inflight) }
