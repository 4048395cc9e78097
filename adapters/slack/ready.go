package slack

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// readyCacheTTL bounds how often readiness asks Slack (auth.test is a Tier
// 4 method, but a busy /readyz must not spend the workspace's budget).
const readyCacheTTL = 30 * time.Second

// Ready reports whether the adapter can serve, and if not, why: Slack
// accepts the bot token (auth.test, remembered for 30 s), and in Socket
// Mode the websocket is connected (else the last connection trouble).
func (a *Adapter) Ready(ctx context.Context) error {
	if err := a.authTest(ctx); err != nil {
		return err
	}
	if a.appToken != "" && !a.connected.Load() {
		if cause, _ := a.trouble.Load().(string); cause != "" {
			return fmt.Errorf("slack: socket mode is not connected: %s", cause)
		}
		return errors.New("slack: socket mode is not connected yet")
	}
	return nil
}

// authTest asks Slack whether it accepts the bot token, at most every
// readyCacheTTL. A token Slack refuses (invalid_auth, token_revoked, a
// user token) reads not ready with Slack's own error code.
func (a *Adapter) authTest(ctx context.Context) error {
	a.mu.Lock()
	at, err := a.auth.at, a.auth.err
	a.mu.Unlock()
	if !at.IsZero() && a.now().Sub(at) < readyCacheTTL {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = a.api.AuthTestContext(cctx)
	if err != nil {
		var se slack.SlackErrorResponse
		if errors.As(err, &se) {
			err = fmt.Errorf("slack: auth.test refused the bot token (OPSBOT_SLACK_BOT_TOKEN): %s", se.Err)
		} else {
			err = fmt.Errorf("slack: auth.test failed, Slack's Web API did not answer: %w", redactURL(err))
		}
	}
	a.mu.Lock()
	a.auth.at, a.auth.err = a.now(), err
	a.mu.Unlock()
	return err
}

// connectionTrouble says why Socket Mode is not connected, from the
// library's event.
func connectionTrouble(evt socketmode.Event) string {
	switch d := evt.Data.(type) {
	case *slack.ConnectionErrorEvent:
		if d.ErrorObj != nil {
			return fmt.Sprintf("attempt %d: %v (retrying in %s)", d.Attempt, redactURL(d.ErrorObj), d.Backoff)
		}
	case *slack.IncomingEventError:
		if d.ErrorObj != nil {
			return "reading from the websocket: " + redactURL(d.ErrorObj).Error()
		}
	}
	if evt.Type == socketmode.EventTypeInvalidAuth {
		return "Slack refused the app-level token (OPSBOT_SLACK_APP_TOKEN): check it, its connections:write scope, and that Socket Mode is on in the app's settings"
	}
	return string(evt.Type)
}
