package mattermost

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/opsbot/opsbot/bot"
)

// cachedUser is a Mattermost account as policy and messages name it.
type cachedUser struct {
	name    string // username, which policy may use ("mattermost:carol")
	display string // "Carol Danvers (@carol)"
	at      time.Time
}

// usernameRE is Mattermost's username alphabet: safe to put after an @.
var usernameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// user looks a user up by ID through Client4, cached for a while. On
// failure it returns the ID alone: policy then matches by ID only, which can
// only grant less.
func (a *Adapter) user(ctx context.Context, id string) cachedUser {
	a.mu.Lock()
	u, ok := a.users[id]
	a.mu.Unlock()
	if ok && a.now().Sub(u.at) < userCacheTTL {
		return u
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	mu, _, err := a.client.GetUser(ctx, id, "")
	if err != nil || mu == nil {
		a.log.Warn("looking up user", "user", id, "err", err)
		return cachedUser{display: id}
	}
	u = cachedUser{name: mu.Username, display: "@" + mu.Username, at: a.now()}
	if full := strings.TrimSpace(mu.GetFullName()); full != "" {
		u.display = full + " (@" + mu.Username + ")"
	} else if mu.Nickname != "" {
		u.display = mu.Nickname + " (@" + mu.Username + ")"
	}
	a.mu.Lock()
	if len(a.users) > 10000 {
		clear(a.users)
	}
	a.users[id] = u
	a.mu.Unlock()
	return u
}

// createPost posts as the bot.
func (a *Adapter) createPost(ctx context.Context, p *model.Post) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	created, _, err := a.client.CreatePost(ctx, p)
	if err != nil {
		return "", fmt.Errorf("create post in %s: %w", p.ChannelId, err)
	}
	return created.Id, nil
}

// updatePost replaces a post's message and attachments.
func (a *Adapter) updatePost(ctx context.Context, id string, p *model.Post) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	p.Id = id
	if _, _, err := a.client.UpdatePost(ctx, id, p); err != nil {
		return fmt.Errorf("update post %s: %w", id, err)
	}
	return nil
}

// postPages posts a reply's pages in channel, the first under root (or as a
// new root) and the rest in its thread. It returns the first post's ID.
func (a *Adapter) postPages(ctx context.Context, channel, root string, pages []page) (string, error) {
	first := ""
	for i, pg := range pages {
		parent := root
		if parent == "" && i > 0 {
			parent = first
		}
		id, err := a.createPost(ctx, pg.post(channel, parent))
		if err != nil {
			return first, err
		}
		if i == 0 {
			first = id
		}
	}
	return first, nil
}

// respond posts a command response to the response_url Mattermost gave,
// for results that come after the command was answered.
func (a *Adapter) respond(ctx context.Context, responseURL string, resp *model.CommandResponse) error {
	u, err := url.Parse(responseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.HasPrefix(u.Path, "/hooks/commands/") {
		return fmt.Errorf("response_url is not a Mattermost command hook")
	}
	body, err := json.Marshal(resp)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	// The URL came in a request that carried a valid command token, and is
	// a command hook path: it is the server's, not a caller's choice.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body)) //nolint:gosec // see above
	if err != nil {
		return fmt.Errorf("response_url: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := a.http.Do(req) //nolint:gosec // the server's command hook, see above
	if err != nil {
		return fmt.Errorf("response_url: %w", err)
	}
	defer func() { _ = res.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("response_url: %s", res.Status)
	}
	return nil
}

// Ready reports whether the server answers and accepts the bot's token
// (GET /users/me), remembering the answer for a few seconds so that a
// busy /readyz does not hammer the server.
func (a *Adapter) Ready(ctx context.Context) error {
	a.mu.Lock()
	at, err := a.ready.at, a.ready.err
	a.mu.Unlock()
	if !at.IsZero() && a.now().Sub(at) < readyCacheTTL {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	_, _, err = a.client.GetMe(ctx, "")
	if err != nil {
		err = fmt.Errorf("mattermost: the server at %s does not accept the bot token: %w", a.client.URL, err)
	}
	a.mu.Lock()
	a.ready.at, a.ready.err = a.now(), err
	a.mu.Unlock()
	return err
}

// NotifyOutcome posts how an approval request ended in the channel it was
// made in, mentioning the requester.
func (a *Adapter) NotifyOutcome(ctx context.Context, ap bot.Approval, outcome bot.Reply) {
	if ap.Platform != Platform || ap.Channel == "" {
		return
	}
	ctx = context.WithoutCancel(ctx)
	name := ap.UserName
	if !usernameRE.MatchString(name) {
		name = a.user(ctx, ap.User).name
	}
	who := "Your request"
	if usernameRE.MatchString(name) {
		who = "@" + name + ", your request"
	}
	outcome.Actions = nil
	pages := render(outcome, buttons{})
	pages[0].Message = fmt.Sprintf("%s `%s`:", who, strings.ReplaceAll(ap.Line, "`", "'"))
	if ap.ID != "" { // an action that needed no approval (one interrupted) has none
		pages[0].Message = fmt.Sprintf("%s `%s` (approval %s):", who, strings.ReplaceAll(ap.Line, "`", "'"), ap.ID)
	}
	if _, err := a.postPages(ctx, ap.Channel, "", pages); err != nil {
		a.log.Error("notifying the requester", "approval", ap.ID, "err", err)
	}
}
