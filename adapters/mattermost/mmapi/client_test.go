package mmapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The JSON the server reads and writes, field by field, as its model
// package names them (server/public/model: post.go, message_attachment.go,
// integration_action.go, command_response.go).
func TestWire_FieldNamesAreTheServers(t *testing.T) {
	p := &Post{ChannelID: "c", RootID: "r", Message: "m", FileIDs: []string{"f"}, Props: &PostProps{Attachments: []*MessageAttachment{{
		Fallback: "fb", Color: "#2eb886", Title: "t", Text: "x",
		Fields:  []*MessageAttachmentField{{Title: "k", Value: "v", Short: true}},
		Actions: []*PostAction{{ID: "a1", Type: PostActionTypeButton, Name: "Go", Style: "primary", Integration: &PostActionIntegration{URL: "https://o/a", Context: map[string]any{"k": "v"}}}},
	}}}}
	b, err := json.Marshal(p)
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":"","user_id":"","channel_id":"c","root_id":"r","message":"m","file_ids":["f"],
		"props":{"attachments":[{"fallback":"fb","color":"#2eb886","title":"t","text":"x",
			"fields":[{"title":"k","value":"v","short":true}],
			"actions":[{"id":"a1","type":"button","name":"Go","style":"primary","integration":{"url":"https://o/a","context":{"k":"v"}}}]}]}}`, string(b))

	cr := &CommandResponse{ResponseType: CommandResponseTypeInChannel, Text: "t", SkipSlackParsing: true,
		ExtraResponses: []*CommandResponse{{ResponseType: CommandResponseTypeInChannel, Text: "2"}}}
	b, err = json.Marshal(cr)
	require.NoError(t, err)
	assert.JSONEq(t, `{"response_type":"in_channel","text":"t","skip_slack_parsing":true,"attachments":null,
		"extra_responses":[{"response_type":"in_channel","text":"2","skip_slack_parsing":false,"attachments":null,"extra_responses":null}]}`, string(b))

	b, err = json.Marshal(&PostActionIntegrationResponse{EphemeralText: "e", SkipSlackParsing: true})
	require.NoError(t, err)
	assert.JSONEq(t, `{"update":null,"ephemeral_text":"e","skip_slack_parsing":true}`, string(b))

	// A click as the server sends it.
	var in PostActionIntegrationRequest
	require.NoError(t, json.Unmarshal([]byte(`{"user_id":"u","user_name":"n","channel_id":"c","channel_name":"cn","team_id":"t",
		"team_domain":"td","post_id":"p","trigger_id":"tr","type":"button","data_source":"","context":{"k":"v"}}`), &in))
	assert.Equal(t, PostActionIntegrationRequest{UserID: "u", UserName: "n", ChannelID: "c", ChannelName: "cn", TeamID: "t",
		TeamName: "td", PostID: "p", TriggerID: "tr", Type: "button", Context: map[string]any{"k": "v"}}, in)
}

// An update sends back every field of a command a person may have set:
// the server stores what it is sent.
func TestWire_CommandRoundTripsWhatAPersonSet(t *testing.T) {
	server := `{"id":"i","token":"tk","create_at":1,"update_at":2,"delete_at":0,"creator_id":"u","team_id":"t","trigger":"scan",
		"method":"P","username":"scanner","icon_url":"https://i/x.png","auto_complete":true,"auto_complete_desc":"d",
		"auto_complete_hint":"h","display_name":"dn","description":"de","url":"https://o/c","plugin_id":""}`
	var c Command
	require.NoError(t, json.Unmarshal([]byte(server), &c))
	b, err := json.Marshal(&c)
	require.NoError(t, err)
	assert.JSONEq(t, server, string(b))
}

func TestClient_SendsTheTokenAndDecodes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "Bearer tok", r.Header.Get("Authorization"))
		assert.Equal(t, "/sub/api/v4/users/me", r.URL.Path)
		_, _ = io.WriteString(w, `{"id":"u1","username":"opsbot","first_name":"Ops","last_name":"Bot","create_at":5}`)
	}))
	defer srv.Close()
	u, err := NewClient(srv.URL+"/sub/", "tok", nil).GetMe(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "opsbot", u.Username)
	assert.Equal(t, "Ops Bot", u.FullName())
}

// An ID from a request cannot leave its route: each segment is escaped.
func TestClient_EscapesPathSegments(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.EscapedPath()
		_, _ = io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	_, err := NewClient(srv.URL, "tok", nil).GetUser(t.Context(), "../../system/ping?x=1")
	require.NoError(t, err)
	assert.Equal(t, "/api/v4/users/..%2F..%2Fsystem%2Fping%3Fx=1", got)
}

// POST /files as the server reads it: the channel_id field and one file
// under "files".
func TestClient_UploadFileIsMultipart(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "/api/v4/files", r.URL.Path)
		require.NoError(t, r.ParseMultipartForm(1<<20))
		assert.Equal(t, "chan1", r.FormValue("channel_id"))
		fhs := r.MultipartForm.File["files"]
		require.Len(t, fhs, 1)
		assert.Equal(t, "out.txt", fhs[0].Filename)
		f, err := fhs[0].Open()
		require.NoError(t, err)
		b, _ := io.ReadAll(f)
		assert.Equal(t, "hello", string(b))
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"file_infos":[{"id":"f1","name":"out.txt","channel_id":"chan1"}],"client_ids":[]}`)
	}))
	defer srv.Close()
	up, err := NewClient(srv.URL, "tok", nil).UploadFile(t.Context(), []byte("hello"), "chan1", "out.txt")
	require.NoError(t, err)
	require.Len(t, up.FileInfos, 1)
	assert.Equal(t, "f1", up.FileInfos[0].ID)
}

func TestClient_ErrorsAreTheServersAppError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v4/commands":
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"id":"api.context.permissions.app_error","message":"You do not have the appropriate permissions.",
				"detailed_error":"userId=u1, permission=manage_slash_commands","request_id":"r1","status_code":403}`)
		case "/api/v4/teams/name/ops":
			w.WriteHeader(http.StatusNotFound) // no status_code in the body
			_, _ = io.WriteString(w, `{"id":"app.team.get_by_name.missing.app_error","message":"Unable to find the existing team."}`)
		default:
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "<html>"+strings.Repeat("bad gateway ", 100)+"</html>")
		}
	}))
	defer srv.Close()
	c := NewClient(srv.URL, "tok", nil)

	_, err := c.ListCommands(t.Context(), "t1", true)
	var ae *AppError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, AppError{ID: "api.context.permissions.app_error", Message: "You do not have the appropriate permissions.",
		DetailedError: "userId=u1, permission=manage_slash_commands", RequestID: "r1", StatusCode: 403}, *ae)
	assert.Equal(t, "You do not have the appropriate permissions., userId=u1, permission=manage_slash_commands", err.Error())

	_, err = c.GetTeamByName(t.Context(), "ops")
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusNotFound, ae.StatusCode, "the HTTP status when the body has none")
	assert.Equal(t, "app.team.get_by_name.missing.app_error", ae.ID)

	err = c.DeleteCommand(t.Context(), "x")
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusBadGateway, ae.StatusCode)
	assert.Contains(t, err.Error(), "the server answered 502 Bad Gateway without an API error, <html>bad gateway")
	assert.Less(t, len(err.Error()), 300, "a page is not quoted whole")
}

func TestClient_ObeysTheContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := NewClient(srv.URL, "tok", nil).GetMe(ctx)
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.Canceled), "%v", err)
}
