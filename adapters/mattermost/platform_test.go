package mattermost

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opsbot/opsbot/adapters/mattermost/mmapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
)

// Mattermost's rules, each against the fake that enforces it
// (helpers_test.go): 200-only answers, the 1 MiB read of a command answer,
// a site under a subpath, threads (root_id), GET commands, files.

// openRows is a scan result of n open ports, a row each: the worst case,
// when no rows can be grouped.
func openRows(n int) bot.Reply {
	t := &bot.Table{Header: []string{"port", "state", "service", "evidence"}}
	for p := 1; p <= n; p++ {
		t.Rows = append(t.Rows, []string{fmt.Sprintf("%d/tcp", 2*p), "open", "-", "handshake completed, 0.1 ms"})
	}
	return bot.Reply{Status: bot.StatusOK, Title: fmt.Sprintf("10.0.0.9 tcp 1-65535: %d open", n), Table: t}
}

func TestCommand_BigResultFirstPageInlineTheRestInAThreadAndAFile(t *testing.T) {
	// A row per port of 65 535: 181 posts' worth, 3.6 MB when every page
	// rode in the answer (the server cuts that at 1 MiB and posts nothing).
	h := &fakeHandler{fn: func(context.Context, bot.Request) bot.Reply { return openRows(65535) }}
	f := newFixture(t, h)
	// The answer is inline: under -race on a loaded machine, building
	// 65 535 rows can outlast the 2 s that would make it a late answer.
	f.a.fastReply = time.Minute
	w, resp := f.postCommand(t, f.commandForm("/scan", "10.0.0.9 1-65535", "uCarol00000000000000000000", "carol"), testCmdToken)
	require.Equal(t, http.StatusOK, w.Code)
	require.NotNil(t, resp, "the server could read the answer")
	assert.Less(t, w.Body.Len(), 256<<10, "the inline answer is well under 1 MiB")
	assert.Empty(t, resp.ExtraResponses, "the rest goes through the API")
	require.Len(t, resp.Attachments, 1)
	assert.Contains(t, resp.Attachments[0].Text, "all of it is in the file opsbot-output.txt")

	require.NoError(t, f.a.Wait(t.Context()))
	posts := f.srv.recorded(http.MethodPost, "/api/v4/posts")
	require.Len(t, posts, maxMore+1, "the capped pages, then the file's post")
	root := posts[0].Post
	assert.Empty(t, root.RootID)
	for _, p := range posts[1:] {
		assert.Equal(t, root.ID, p.Post.RootID, "in the thread")
	}
	filePost := posts[len(posts)-1].Post
	require.Len(t, filePost.FileIDs, 1)
	content := f.srv.file(filePost.FileIDs[0])
	assert.Equal(t, 65535+2, strings.Count(content, "\n"), "title, header and every row")
	assert.Contains(t, content, "131070/tcp")
}

func TestCommand_InAThreadTheAnswersStayInIt(t *testing.T) {
	release := make(chan struct{})
	h := &fakeHandler{fn: func(_ context.Context, req bot.Request) bot.Reply {
		req.Stream.Post(bot.Reply{Status: bot.StatusInfo, Lines: []string{"an event"}})
		<-release
		return openRows(20000)
	}}
	f := newFixture(t, h)
	f.a.fastReply = 10 * time.Millisecond
	form := f.commandForm("/listen", "3873", "uCarol00000000000000000000", "carol")
	form.Set("root_id", "threadroot0000000000000000")
	w, resp := f.postCommand(t, form, testCmdToken)
	require.Equal(t, http.StatusOK, w.Code)
	require.NotNil(t, resp)
	assert.Contains(t, resp.Text, "Working on")
	f.srv.waitFor(t, 1, http.MethodPost, "/api/v4/posts")
	close(release)
	require.NoError(t, f.a.Wait(t.Context()))
	posts := f.srv.recorded(http.MethodPost, "/api/v4/posts")
	require.GreaterOrEqual(t, len(posts), 3)
	for _, p := range posts {
		assert.Equal(t, "threadroot0000000000000000", p.Post.RootID, "every post in the thread the command was typed in")
	}
}

func TestCommand_GETCommandIsAccepted(t *testing.T) {
	h := &fakeHandler{fn: func(context.Context, bot.Request) bot.Reply { return portcheckReply() }}
	f := newFixture(t, h)
	form := f.commandForm("/portcheck", "127.0.0.1 8080", "uCarol00000000000000000000", "carol")
	r := httptest.NewRequest(http.MethodGet, "/mattermost/command?"+form.Encode(), nil)
	r.Header.Set("Authorization", "Token "+testCmdToken)
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	resp := serverReadsCommand(t, w)
	require.NotNil(t, resp, "status %d: %s", w.Code, w.Body.String())
	assert.Contains(t, resp.Attachments[0].Text, "succeeded!")
	require.Len(t, h.requests(), 1)
	assert.Equal(t, "/portcheck 127.0.0.1 8080", h.requests()[0].Line)
}

func TestRespond_ResponseURLUnderTheSitesSubpath(t *testing.T) {
	release := make(chan struct{})
	h := &fakeHandler{fn: func(context.Context, bot.Request) bot.Reply {
		<-release
		return bot.Reply{Status: bot.StatusInfo, Title: "help for you alone"}
	}}
	f := newFixtureAt(t, h, "/sub")
	f.a.fastReply = 10 * time.Millisecond
	form := f.commandForm("/opsbot", "help", "uCarol00000000000000000000", "carol")
	require.Equal(t, f.srv.URL+"/sub/hooks/commands/hookid0000000000000000000", form.Get("response_url"))
	w, _ := f.postCommand(t, form, testCmdToken)
	require.Equal(t, http.StatusOK, w.Code)
	close(release)
	require.NoError(t, f.a.Wait(t.Context()))
	hooks := f.srv.recorded(http.MethodPost, "/hooks/commands/")
	require.Len(t, hooks, 1, "delivered to the hook under the subpath")
	var cr mmapi.CommandResponse
	require.NoError(t, json.Unmarshal(hooks[0].Body, &cr))
	assert.Contains(t, cr.Attachments[0].Title, "help for you alone")

	for _, bad := range []string{
		"http://elsewhere.example/sub/hooks/commands/x", // another host
		f.srv.URL + "/hooks/commands/x",                 // outside the site's path
		f.srv.URL + "/subway/hooks/commands/x",          // a prefix of the path is not the path
		f.srv.URL + "/sub/hooks/commands/",              // no hook ID
		"ftp://" + strings.TrimPrefix(f.srv.URL, "http://") + "/sub/hooks/commands/x",
	} {
		assert.Error(t, f.a.checkHook(bad), bad)
	}
}

func TestAction_RefusedClickIs200SoTheServerShowsWhy(t *testing.T) {
	// After the action secret is rotated, every old button fails to
	// verify: the clicker must read why, not a generic error.
	f, _, atts := promptFixture(t, func(bot.Request) bot.Reply {
		t.Fatal("nothing may run")
		return bot.Reply{}
	})
	f.a.secret = []byte("a-rotated-secret-0123456789abcdef")
	w, resp := f.click(t, buttonNamed(t, atts, "Approve"), "uDave000000000000000000000", "promptpost0000000000000000", nil)
	assert.Equal(t, http.StatusOK, w.Code)
	require.NotNil(t, resp, "the server keeps the text of a 200 only")
	assert.Contains(t, resp.EphemeralText, "could not be verified")
}

func TestFakeMattermost_DropsTheTextOfANon200Answer(t *testing.T) {
	// The fake's own rule: a regression in it would let the tests above
	// pass where the server shows a generic error.
	w := httptest.NewRecorder()
	writeJSON(w, http.StatusForbidden, refusal("you will never read this"))
	assert.Nil(t, serverReadsCommand(t, w))
	big := httptest.NewRecorder()
	big.Header().Set("Content-Type", "application/json")
	big.WriteHeader(http.StatusOK)
	_, _ = big.WriteString(`{"text":"` + strings.Repeat("x", 1<<20) + `"}`)
	assert.Nil(t, serverReadsCommand(t, big), "cut at 1 MiB")
}

func TestStream_BigFinalReplyEditsTheProgressPostThenCapsTheRest(t *testing.T) {
	var f *fixture
	h := &fakeHandler{fn: func(_ context.Context, req bot.Request) bot.Reply {
		req.Stream.Progress(bot.Reply{Status: bot.StatusRunning, Title: "Scanning"})
		f.srv.waitFor(t, 1, http.MethodPost, "/api/v4/posts")
		return openRows(65535)
	}}
	f = newFixture(t, h)
	f.a.fastReply = 10 * time.Millisecond
	w, _ := f.postCommand(t, f.commandForm("/scan", "10.0.0.9 1-65535", "uCarol00000000000000000000", "carol"), testCmdToken)
	require.Equal(t, http.StatusOK, w.Code)
	require.NoError(t, f.a.Wait(t.Context()))
	creates := f.srv.recorded(http.MethodPost, "/api/v4/posts")
	require.Len(t, creates, 1+maxMore+1, "the progress post, the capped pages after the first, the file's post")
	progress := creates[0].Post
	for _, c := range creates[1:] {
		assert.Equal(t, progress.ID, c.Post.RootID, "in the progress post's thread")
	}
	edits := f.srv.recorded(http.MethodPut, "/api/v4/posts/"+progress.ID)
	require.NotEmpty(t, edits)
	assert.Contains(t, string(edits[len(edits)-1].Body), "all of it is in the file opsbot-output.txt")
	require.Len(t, creates[len(creates)-1].Post.FileIDs, 1)
}
