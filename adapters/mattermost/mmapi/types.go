// Package mmapi is the part of Mattermost's API v4 opsbot uses: the wire
// types it sends and reads, and a small REST client (client.go) for the
// calls it makes. The types carry only the fields opsbot uses, with the
// JSON names and shapes of the server's own (server/public/model); a field
// the server has and opsbot leaves out decodes there as its zero value.
// It replaces the model package, whose dependencies (gRPC, protobuf,
// go-plugin, i18n ...) cost every start of opsbot their init.
package mmapi

// Limits and values the server defines.
const (
	// PostMessageMaxRunes is the longest post message the server stores:
	// model.PostMessageMaxRunesV2 (server/public/model/post.go), its byte
	// limit of 65535 over 4 bytes a rune at worst.
	PostMessageMaxRunes = 65535 / 4

	// A custom command's trigger is 1 to 128 characters
	// (model.MinTriggerLength, model.MaxTriggerLength in
	// server/public/model/command.go).
	MinTriggerLength = 1
	MaxTriggerLength = 128

	// How the server calls a custom command (model.CommandMethodPost, ...).
	CommandMethodPost = "P"
	CommandMethodGet  = "G"

	// Who sees a command's answer (model.CommandResponseTypeInChannel, ...).
	CommandResponseTypeInChannel = "in_channel"
	CommandResponseTypeEphemeral = "ephemeral"

	// PostActionTypeButton is an attachment action drawn as a button
	// (model.PostActionTypeButton).
	PostActionTypeButton = "button"

	// TeamOpen is the type of an open team (model.TeamOpen).
	TeamOpen = "O"
)

// Post is a post (model.Post) as opsbot creates, updates and reads it.
type Post struct {
	ID        string     `json:"id"`
	UserID    string     `json:"user_id"`
	ChannelID string     `json:"channel_id"`
	RootID    string     `json:"root_id"`
	Message   string     `json:"message"`
	Props     *PostProps `json:"props,omitempty"`
	FileIDs   []string   `json:"file_ids"`
}

// PostProps are the props opsbot sets on a post: its attachments, under
// "attachments" (model.PostPropsAttachments).
type PostProps struct {
	Attachments []*MessageAttachment `json:"attachments"`
}

// Attachments returns the post's attachments, nil when it has none.
func (p *Post) Attachments() []*MessageAttachment {
	if p == nil || p.Props == nil {
		return nil
	}
	return p.Props.Attachments
}

// MessageAttachment is a Slack-style attachment (model.MessageAttachment).
type MessageAttachment struct {
	Fallback string                    `json:"fallback"`
	Color    string                    `json:"color"`
	Title    string                    `json:"title"`
	Text     string                    `json:"text"`
	Fields   []*MessageAttachmentField `json:"fields"`
	Actions  []*PostAction             `json:"actions,omitempty"`
}

// MessageAttachmentField is one field of an attachment
// (model.MessageAttachmentField). The server accepts a string or a
// number as the value, and true, false, "true" or "false" as short;
// opsbot sends a string and a boolean.
type MessageAttachmentField struct {
	Title string `json:"title"`
	Value string `json:"value"`
	Short bool   `json:"short"`
}

// PostAction is an attachment's button (model.PostAction).
type PostAction struct {
	ID          string                 `json:"id,omitempty"`
	Type        string                 `json:"type,omitempty"`
	Name        string                 `json:"name,omitempty"`
	Style       string                 `json:"style,omitempty"`
	Integration *PostActionIntegration `json:"integration,omitempty"`
}

// PostActionIntegration is where a click goes and what it carries
// (model.PostActionIntegration). The server keeps the context from the
// client and sends it back in the click's request.
type PostActionIntegration struct {
	URL     string         `json:"url,omitempty"`
	Context map[string]any `json:"context,omitempty"`
}

// PostActionIntegrationRequest is what the server POSTs to an action's URL
// on a click (model.PostActionIntegrationRequest).
type PostActionIntegrationRequest struct {
	UserID      string         `json:"user_id"`
	UserName    string         `json:"user_name"`
	ChannelID   string         `json:"channel_id"`
	ChannelName string         `json:"channel_name"`
	TeamID      string         `json:"team_id"`
	TeamName    string         `json:"team_domain"`
	PostID      string         `json:"post_id"`
	TriggerID   string         `json:"trigger_id"`
	Type        string         `json:"type"`
	DataSource  string         `json:"data_source"`
	Context     map[string]any `json:"context,omitempty"`
}

// PostActionIntegrationResponse is the answer to a click
// (model.PostActionIntegrationResponse): a replacement for the post, or a
// text for the clicker alone.
type PostActionIntegrationResponse struct {
	Update           *Post  `json:"update"`
	EphemeralText    string `json:"ephemeral_text"`
	SkipSlackParsing bool   `json:"skip_slack_parsing"`
}

// CommandResponse is the answer to a slash command, inline or through its
// response_url (model.CommandResponse). The server posts each of the extra
// responses after the first, the same way.
type CommandResponse struct {
	ResponseType     string               `json:"response_type"`
	Text             string               `json:"text"`
	SkipSlackParsing bool                 `json:"skip_slack_parsing"` // the text is markdown, not Slack's markup
	Attachments      []*MessageAttachment `json:"attachments"`
	ExtraResponses   []*CommandResponse   `json:"extra_responses"`
}

// Command is a custom slash command (model.Command). An update (PUT
// /commands/{id}) stores the fields sent in place of the old ones, except
// those the server keeps (token, creator, team, times), so every field a
// person may set is here, username and icon_url included, to go back as
// it came.
type Command struct {
	ID               string `json:"id"`
	Token            string `json:"token"`
	CreateAt         int64  `json:"create_at"`
	UpdateAt         int64  `json:"update_at"`
	DeleteAt         int64  `json:"delete_at"`
	CreatorID        string `json:"creator_id"`
	TeamID           string `json:"team_id"`
	Trigger          string `json:"trigger"`
	Method           string `json:"method"`
	Username         string `json:"username"`
	IconURL          string `json:"icon_url"`
	AutoComplete     bool   `json:"auto_complete"`
	AutoCompleteDesc string `json:"auto_complete_desc"`
	AutoCompleteHint string `json:"auto_complete_hint"`
	DisplayName      string `json:"display_name"`
	Description      string `json:"description"`
	URL              string `json:"url"`
	PluginID         string `json:"plugin_id"`
}

// User is an account (model.User), as far as opsbot names it.
type User struct {
	ID        string `json:"id"`
	Username  string `json:"username"`
	Nickname  string `json:"nickname"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	IsBot     bool   `json:"is_bot,omitempty"`
}

// FullName is the first and last name, either alone when the other is
// empty, or "" (model.User.GetFullName).
func (u *User) FullName() string {
	switch {
	case u.FirstName != "" && u.LastName != "":
		return u.FirstName + " " + u.LastName
	case u.FirstName != "":
		return u.FirstName
	default:
		return u.LastName
	}
}

// Team is a team (model.Team).
type Team struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DisplayName string `json:"display_name"`
	Type        string `json:"type"`
}

// FileUploadResponse is the answer to POST /files (model.FileUploadResponse).
type FileUploadResponse struct {
	FileInfos []*FileInfo `json:"file_infos"`
}

// FileInfo is an uploaded file (model.FileInfo).
type FileInfo struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	ChannelID string `json:"channel_id"`
}

// AppError is the server's error body (model.AppError). The client returns
// it for every answer that is not a success.
type AppError struct {
	ID            string `json:"id"`
	Message       string `json:"message"`        // for the end user
	DetailedError string `json:"detailed_error"` // for the developer
	RequestID     string `json:"request_id,omitempty"`
	StatusCode    int    `json:"status_code,omitempty"`
}

// Error is the message and the detail, as the server's AppError says
// them without its "where".
func (e *AppError) Error() string {
	switch {
	case e.Message != "" && e.DetailedError != "":
		return e.Message + ", " + e.DetailedError
	case e.Message != "":
		return e.Message
	case e.DetailedError != "":
		return e.DetailedError
	default:
		return e.ID
	}
}
