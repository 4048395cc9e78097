package slack

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// maxAck keeps Socket Mode acks under Slack's 20 KB limit, JSON framing
// included; a bigger reply goes through response_url.
const maxAck = 16 << 10

// Run serves Socket Mode until ctx ends, when an app token is configured;
// otherwise it returns nil at once. Reconnects are the library's.
func (a *Adapter) Run(ctx context.Context) error {
	if a.appToken == "" {
		return nil
	}
	client := socketmode.New(a.api,
		socketmode.OptionPingInterval(a.pingInterval),
		socketmode.OptionLog(slogPrinter{a.log}))
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		a.drain(ctx, client)
	}()
	err := client.RunContext(ctx)
	a.connected.Store(false)
	cancel()
	<-drained
	if parent.Err() != nil {
		return nil // asked to stop
	}
	return fmt.Errorf("slack socket mode: %w", err)
}

// drain reads every event without blocking on any: each envelope is
// handled in its own goroutine, at most cap(a.sem) at once.
func (a *Adapter) drain(ctx context.Context, client *socketmode.Client) {
	for {
		var evt socketmode.Event
		select {
		case <-ctx.Done():
			return
		case evt = <-client.Events:
		}
		switch evt.Type {
		case socketmode.EventTypeConnected:
			a.connected.Store(true)
			a.trouble.Store("")
			a.log.Info("socket mode connected")
		case socketmode.EventTypeConnecting:
			a.log.Debug("socket mode connecting")
		case socketmode.EventTypeConnectionError, socketmode.EventTypeInvalidAuth, socketmode.EventTypeIncomingError:
			a.connected.Store(false)
			cause := connectionTrouble(evt)
			a.trouble.Store(cause)
			a.log.Warn("socket mode connection trouble", "event", string(evt.Type), "cause", cause)
		case socketmode.EventTypeDisconnect:
			a.connected.Store(false)
			a.trouble.Store("disconnected; the library reconnects")
			a.log.Info("socket mode disconnected; reconnecting")
		case socketmode.EventTypeSlashCommand, socketmode.EventTypeInteractive, socketmode.EventTypeEventsAPI:
			if evt.Request == nil {
				continue
			}
			select {
			case a.sem <- struct{}{}:
				go func() {
					defer func() { <-a.sem }()
					a.envelope(ctx, client, evt)
				}()
			default:
				// Too much at once: still ack, so Slack does not retry into
				// the same overload, and say so to the user.
				a.log.Warn("socket mode busy: envelope refused", "type", string(evt.Type))
				payload := any(nil)
				if evt.Type == socketmode.EventTypeSlashCommand {
					payload = response{ResponseType: slack.ResponseTypeEphemeral, Text: "opsbot is busy right now: nothing ran. Try again in a moment."}
				}
				a.ack(ctx, client, evt.Request, payload)
			}
		}
	}
}

// acker is what envelope needs of the Socket Mode client.
type acker interface {
	AckCtx(ctx context.Context, reqID string, payload any) error
}

// envelope handles one Socket Mode request and acks it.
func (a *Adapter) envelope(ctx context.Context, client acker, evt socketmode.Event) {
	req := evt.Request
	switch evt.Type {
	case socketmode.EventTypeSlashCommand:
		cmd, ok := evt.Data.(slack.SlashCommand)
		if !ok {
			a.ack(ctx, client, req, nil)
			return
		}
		resp, err := a.command(ctx, cmd, req.Payload, maxAck)
		if err != nil {
			a.log.Warn("socket mode slash command refused", "err", err)
			a.ack(ctx, client, req, nil)
			return
		}
		if resp == nil {
			a.ack(ctx, client, req, nil)
			return
		}
		a.ack(ctx, client, req, *resp)
	case socketmode.EventTypeInteractive:
		a.ack(ctx, client, req, nil) // clicks are answered through response_url
		cb, ok := evt.Data.(slack.InteractionCallback)
		if !ok {
			return
		}
		if err := a.interaction(ctx, cb, req.Payload); err != nil {
			a.log.Warn("socket mode interaction refused", "err", err)
		}
	default:
		a.ack(ctx, client, req, nil) // events we did not subscribe to
	}
}

// ack acknowledges an envelope, with the immediate answer as its payload
// when there is one. Without an ack Slack retries the envelope.
func (a *Adapter) ack(ctx context.Context, client acker, req *socketmode.Request, payload any) {
	err := client.AckCtx(ctx, req.EnvelopeID, payload)
	if err != nil && payload != nil {
		a.log.Warn("socket mode ack with payload failed, acking bare", "err", err)
		err = client.AckCtx(ctx, req.EnvelopeID, nil)
	}
	if err != nil {
		a.log.Error("socket mode ack failed", "type", req.Type, "err", err)
	}
}

// slogPrinter lets the socketmode client's debug output reach slog.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Output(_ int, s string) error {
	p.log.Debug(s)
	return nil
}
