package mmapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/opsbot/opsbot/internal/text"
)

// maxAnswer bounds what is read of one answer: a team's command list is
// the largest opsbot asks for.
const maxAnswer = 8 << 20

// Client calls the API v4 of one server with a bearer token (a bot's or a
// personal access token).
type Client struct {
	URL   string // the server, without a trailing slash: https://chat.example.com
	token string
	http  *http.Client
}

// NewClient is a client of the server at serverURL; hc nil is
// http.DefaultClient. Every call also obeys its context.
func NewClient(serverURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{URL: strings.TrimRight(serverURL, "/"), token: token, http: hc}
}

// GetMe is the account the token belongs to (GET /users/me).
func (c *Client) GetMe(ctx context.Context) (*User, error) {
	var u User
	return &u, c.call(ctx, http.MethodGet, path("users", "me"), nil, nil, &u)
}

// GetUser is the account with the given ID (GET /users/{id}).
func (c *Client) GetUser(ctx context.Context, id string) (*User, error) {
	var u User
	return &u, c.call(ctx, http.MethodGet, path("users", id), nil, nil, &u)
}

// GetTeamByName is the team whose name (the handle in its URL) is name
// (GET /teams/name/{name}).
func (c *Client) GetTeamByName(ctx context.Context, name string) (*Team, error) {
	var t Team
	return &t, c.call(ctx, http.MethodGet, path("teams", "name", name), nil, nil, &t)
}

// CreatePost posts as the token's account (POST /posts).
func (c *Client) CreatePost(ctx context.Context, p *Post) (*Post, error) {
	var out Post
	return &out, c.callJSON(ctx, http.MethodPost, path("posts"), p, &out)
}

// UpdatePost replaces a post's message, props and files (PUT /posts/{id}).
func (c *Client) UpdatePost(ctx context.Context, id string, p *Post) (*Post, error) {
	var out Post
	return &out, c.callJSON(ctx, http.MethodPut, path("posts", id), p, &out)
}

// UploadFile uploads one file to a channel, to be attached to a post by its
// ID (POST /files, multipart: the field channel_id, then the file under
// "files", as the server reads them).
func (c *Client) UploadFile(ctx context.Context, data []byte, channelID, name string) (*FileUploadResponse, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if err := mw.WriteField("channel_id", channelID); err != nil {
		return nil, err
	}
	part, err := mw.CreateFormFile("files", name)
	if err != nil {
		return nil, err
	}
	if _, err := part.Write(data); err != nil {
		return nil, err
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	var out FileUploadResponse
	return &out, c.call(ctx, http.MethodPost, path("files"), &body, http.Header{"Content-Type": {mw.FormDataContentType()}}, &out)
}

// ListCommands lists a team's slash commands; customOnly leaves out the
// built-in ones and needs manage_slash_commands (GET /commands).
func (c *Client) ListCommands(ctx context.Context, teamID string, customOnly bool) ([]*Command, error) {
	q := url.Values{"team_id": {teamID}, "custom_only": {strconv.FormatBool(customOnly)}}
	var out []*Command
	return out, c.call(ctx, http.MethodGet, path("commands")+"?"+q.Encode(), nil, nil, &out)
}

// CreateCommand creates a custom slash command (POST /commands).
func (c *Client) CreateCommand(ctx context.Context, cmd *Command) (*Command, error) {
	var out Command
	return &out, c.callJSON(ctx, http.MethodPost, path("commands"), cmd, &out)
}

// UpdateCommand replaces a command's settings; the server keeps its token
// (PUT /commands/{id}).
func (c *Client) UpdateCommand(ctx context.Context, cmd *Command) (*Command, error) {
	var out Command
	return &out, c.callJSON(ctx, http.MethodPut, path("commands", cmd.ID), cmd, &out)
}

// DeleteCommand removes a command (DELETE /commands/{id}).
func (c *Client) DeleteCommand(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, path("commands", id), nil, nil, nil)
}

// RegenCommandToken gives a command a new token and returns it
// (PUT /commands/{id}/regen_token).
func (c *Client) RegenCommandToken(ctx context.Context, id string) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	err := c.call(ctx, http.MethodPut, path("commands", id, "regen_token"), nil, nil, &out)
	return out.Token, err
}

// path is an API v4 path from segments, each escaped (an ID from a
// request cannot step out of its route).
func path(segments ...string) string {
	var b strings.Builder
	b.WriteString("/api/v4")
	for _, s := range segments {
		b.WriteString("/" + url.PathEscape(s))
	}
	return b.String()
}

func (c *Client) callJSON(ctx context.Context, method, p string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", method, p, err)
	}
	return c.call(ctx, method, p, bytes.NewReader(b), http.Header{"Content-Type": {"application/json"}}, out)
}

// call makes one request and decodes a success into out (nil: the body is
// dropped) or a failure into an *AppError.
func (c *Client) call(ctx context.Context, method, p string, body io.Reader, h http.Header, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.URL+p, body)
	if err != nil {
		return err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = res.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, p, err)
	}
	if res.StatusCode/100 != 2 {
		return answerError(res, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the JSON expected: %w", method, p, err)
	}
	return nil
}

// answerError is the server's AppError from a failed call; an answer that
// is not one (a proxy's error page) becomes one with the HTTP status and
// the start of the body.
func answerError(res *http.Response, data []byte) error {
	var ae AppError
	if err := json.Unmarshal(data, &ae); err != nil || (ae.ID == "" && ae.Message == "") {
		ae = AppError{Message: "the server answered " + res.Status + " without an API error",
			DetailedError: text.Truncate(strings.TrimSpace(string(data)), 200)}
	}
	if ae.StatusCode == 0 {
		ae.StatusCode = res.StatusCode
	}
	return &ae
}
