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

	"github.com/opsbot/opsbot/adapters/mattermost/mmapi"
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

// user looks a user up by ID through the API, cached for a while. On
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
	mu, err := a.client.GetUser(ctx, id)
	if err != nil || mu == nil {
		a.log.Warn("looking up user", "user", id, "err", err)
		return cachedUser{display: id}
	}
	u = cachedUser{name: mu.Username, display: "@" + mu.Username, at: a.now()}
	if full := strings.TrimSpace(mu.FullName()); full != "" {
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
func (a *Adapter) createPost(ctx context.Context, p *mmapi.Post) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	created, err := a.client.CreatePost(ctx, p)
	if err != nil {
		return "", fmt.Errorf("create post in %s: %w", p.ChannelID, err)
	}
	return created.ID, nil
}

// updatePost replaces a post's message and attachments.
func (a *Adapter) updatePost(ctx context.Context, id string, p *mmapi.Post) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	p.ID = id
	if _, err := a.client.UpdatePost(ctx, id, p); err != nil {
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

// checkHook accepts a response_url that is a command hook of the server
// at OPSBOT_MATTERMOST_URL: the same host, and the path under the same
// prefix (a server under a subpath gives https://host/sub/hooks/commands/ID).
func (a *Adapter) checkHook(responseURL string) error {
	u, err := url.Parse(responseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("response_url is not an http(s) URL")
	}
	prefix := strings.TrimRight(a.site.Path, "/") + "/hooks/commands/"
	if !strings.EqualFold(u.Host, a.site.Host) || !strings.HasPrefix(u.Path, prefix) || len(u.Path) == len(prefix) {
		return fmt.Errorf("response_url is not a command hook of %s (want %s://%s%sID)", a.site.Redacted(), a.site.Scheme, a.site.Host, prefix)
	}
	return nil
}

// outFile is a reply's whole output as a text file.
type outFile struct {
	Name, Content string
}

// capPages keeps the first 1+maxMore pages of a reply, the buttons of the
// last page moved onto the last one kept, and says on the first page that
// the whole output follows as a file: a 65 535-row result is four posts
// and a file, not 181 posts.
func capPages(pages []page, r bot.Reply, withFile bool) ([]page, *outFile) {
	if len(pages) <= 1+maxMore {
		return pages, nil
	}
	total := len(pages)
	last := pages[total-1]
	kept := append([]page(nil), pages[:1+maxMore]...)
	if len(last.Attachments) > 0 && len(last.Attachments[0].Actions) > 0 {
		k := kept[len(kept)-1]
		if len(k.Attachments) > 0 {
			att := *k.Attachments[0]
			att.Actions = last.Attachments[0].Actions
			k.Attachments = append([]*mmapi.MessageAttachment{&att}, k.Attachments[1:]...)
			kept[len(kept)-1] = k
		}
	}
	var f *outFile
	note := fmt.Sprintf("\n\n_The output is %d posts long: the first %d are shown. Narrow the command (fewer ports or hosts) to see the rest._", total, len(kept))
	if withFile {
		f = &outFile{Name: "opsbot-output.txt", Content: r.Plain()}
		note = fmt.Sprintf("\n\n_The output is %d posts long: the first %d are shown, and all of it is in the file %s in the thread._", total, len(kept), f.Name)
	}
	first := kept[0]
	if len(first.Attachments) > 0 {
		att := *first.Attachments[0]
		att.Text += note
		first.Attachments = append([]*mmapi.MessageAttachment{&att}, first.Attachments[1:]...)
		kept[0] = first
	}
	return kept, f
}

// postReply posts a reply in channel (under root, or as a new thread):
// its first pages, and the whole output as a file when it is longer.
func (a *Adapter) postReply(ctx context.Context, channel, root string, r bot.Reply, btn buttons) (string, error) {
	pages, file := capPages(render(r, btn), r, true)
	id, err := a.postPages(ctx, channel, root, pages)
	if err != nil {
		return id, err
	}
	if file != nil {
		if err := a.postFile(ctx, channel, firstNonEmpty(root, id), *file); err != nil {
			a.log.Error("output file not shared", "channel", channel, "err", err)
		}
	}
	return id, nil
}

// postRest posts the pages after a first one shown elsewhere (an inline
// answer, an edited progress post), then the file, in root's thread.
func (a *Adapter) postRest(ctx context.Context, channel, root string, rest []page, file *outFile) (string, error) {
	id, err := a.postPages(ctx, channel, root, rest)
	if err != nil {
		return id, err
	}
	if file != nil {
		err = a.postFile(ctx, channel, firstNonEmpty(root, id), *file)
	}
	return id, err
}

// postFile uploads a text file (POST /api/v4/files) and posts it, with
// its file ID, in the thread of root.
func (a *Adapter) postFile(ctx context.Context, channel, root string, f outFile) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	up, err := a.client.UploadFile(ctx, []byte(f.Content), channel, f.Name)
	if err != nil {
		return fmt.Errorf("upload %s to %s: %w", f.Name, channel, err)
	}
	if up == nil || len(up.FileInfos) == 0 {
		return fmt.Errorf("upload %s to %s: the server returned no file", f.Name, channel)
	}
	p := &mmapi.Post{ChannelID: channel, RootID: root, Message: "The whole output: " + f.Name, FileIDs: []string{up.FileInfos[0].ID}}
	_, err = a.createPost(ctx, p)
	return err
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// respond posts a command response to the response_url Mattermost gave,
// for results that come after the command was answered.
func (a *Adapter) respond(ctx context.Context, responseURL string, resp *mmapi.CommandResponse) error {
	if err := a.checkHook(responseURL); err != nil {
		return err
	}
	u, _ := url.Parse(responseURL)
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
	_, err = a.client.GetMe(ctx)
	if err != nil {
		err = fmt.Errorf("mattermost: the server at %s does not accept the bot token: %w", a.client.URL, err)
	}
	a.mu.Lock()
	a.ready.at, a.ready.err = a.now(), err
	a.mu.Unlock()
	return err
}

// NotifyOutcome posts how an approval request ended in the channel it was
// made in, mentioning the requester. When a Mattermost request from that
// channel decided it (outcome.Decides says which), the result already
// shows there (the prompt replaced, or the approver's own reply), so the
// mention is one line; otherwise (another channel or platform, the
// terminal, an expiry) the full outcome is posted.
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
	about := fmt.Sprintf("%s `%s`", who, strings.ReplaceAll(ap.Line, "`", "'"))
	if ap.ID != "" { // an action that needed no approval (one interrupted) has none
		about += " (approval " + ap.ID + ")"
	}
	if d := outcome.Decides; d != nil && d.Request != "" && d.Platform == Platform && d.Channel == ap.Channel {
		p := &mmapi.Post{ChannelID: ap.Channel, Message: about + ": " + neutralize(outcome.Title)}
		if _, err := a.createPost(ctx, p); err != nil {
			a.log.Error("notifying the requester", "approval", ap.ID, "err", err)
		}
		return
	}
	outcome.Actions = nil
	pages, file := capPages(render(outcome, buttons{}), outcome, true)
	pages[0].Message = about + ":"
	if _, err := a.postRest(ctx, ap.Channel, "", pages, file); err != nil {
		a.log.Error("notifying the requester", "approval", ap.ID, "err", err)
	}
}
