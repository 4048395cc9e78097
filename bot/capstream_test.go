package bot

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
)

type countStream struct{ posts, progress int }

func (c *countStream) Progress(Reply) { c.progress++ }
func (c *countStream) Post(Reply)     { c.posts++ }

type postN int

func (postN) Name() string    { return "spam" }
func (postN) Summary() string { return "posts" }
func (postN) Usage() string   { return "/spam" }
func (n postN) Run(_ context.Context, req Request) (Reply, error) {
	for range int(n) {
		req.Stream.Post(Reply{Title: "hit"})
		req.Stream.Progress(Reply{Title: "count"})
	}
	return Reply{Status: StatusOK, Title: "done"}, nil
}

func TestRouter_OneRequestPostsAtMostMaxPosts(t *testing.T) {
	r := NewRouter(RouterConfig{Commands: []Command{postN(5000)}})
	st := &countStream{}
	reply := r.Handle(context.Background(), Request{Platform: "shell", User: "alice", Line: "/spam", Stream: st})
	assert.Equal(t, "done", reply.Title)
	assert.Equal(t, MaxPosts, st.posts)
	assert.Equal(t, 5000, st.progress, "progress is edited in place, not counted")
	assert.Equal(t, "4980 more message(s) from this request were not posted: one request posts at most 20.", reply.Text)
}
