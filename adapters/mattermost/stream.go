package mattermost

import (
	"context"
	"sync"
	"time"

	"github.com/opsbot/opsbot/bot"
)

// stream is a running command's voice in a channel: one progress post,
// created on the first Progress and edited at most once per editEvery with
// the Cancel button the Router asks for, and thread replies for Post.
type stream struct {
	a         *Adapter
	channel   string
	reqID     string
	actionURL string

	mu      sync.Mutex
	latest  bot.Reply
	dirty   bool
	started bool
	closed  bool
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}

	io     sync.Mutex // one post or edit at a time, in order
	postID string     // the progress post
	postIn string     // the thread the progress post is in ("" when it is a root)
	rootID string     // the thread Post replies in
	failed bool       // the progress post could not be created: stop trying
	posts  int        // thread posts sent
	lost   int        // thread posts past maxPosts, counted not sent
}

// maxPosts bounds the thread posts of one stream, whatever asks for them
// (the Router caps a request at bot.MaxPosts too): each Post waits for the
// server, so a flood would otherwise hold the command and grow without end.
const maxPosts = bot.MaxPosts

var _ bot.Stream = (*stream)(nil)

func (a *Adapter) newStream(channel, reqID, actionURL, root string) *stream {
	return &stream{a: a, channel: channel, reqID: reqID, actionURL: actionURL, rootID: root,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// Progress keeps the latest update; a worker sends it when the rate allows,
// so a fast command never waits on the chat server.
func (s *stream) Progress(r bot.Reply) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.latest, s.dirty = r, true
	if !s.started {
		s.started = true
		go s.run()
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *stream) run() {
	defer close(s.done)
	for {
		select {
		case <-s.kick:
		case <-s.stop:
			return
		}
		s.mu.Lock()
		r, dirty := s.latest, s.dirty
		s.dirty = false
		s.mu.Unlock()
		if dirty {
			s.sendProgress(r)
		}
		t := time.NewTimer(s.a.editEvery)
		select {
		case <-t.C:
		case <-s.stop:
			t.Stop()
			return
		}
	}
}

func (s *stream) sendProgress(r bot.Reply) {
	s.io.Lock()
	defer s.io.Unlock()
	if s.failed {
		return
	}
	// The Cancel button comes from r.Cancel, on the last page; progress is
	// replaced by the result.
	pages := render(r, s.a.buttons(s.actionURL, s.channel, s.reqID))
	pg := pages[len(pages)-1]
	ctx := context.Background()
	if s.postID == "" {
		id, err := s.a.createPost(ctx, pg.post(s.channel, s.rootID))
		if err != nil {
			s.failed = true
			s.a.log.Warn("progress post", "req", s.reqID, "err", err)
			return
		}
		s.postID, s.postIn = id, s.rootID
		if s.rootID == "" {
			s.rootID = id
		}
		return
	}
	if err := s.a.updatePost(ctx, s.postID, pg.post(s.channel, s.postIn)); err != nil {
		s.a.log.Warn("progress edit", "req", s.reqID, "err", err)
	}
}

// Post replies in the request's thread (a /listen connection); the first
// post starts the thread when there is no progress post yet.
func (s *stream) Post(r bot.Reply) {
	s.io.Lock()
	defer s.io.Unlock()
	if s.posts >= maxPosts {
		s.lost++
		return
	}
	s.posts++
	id, err := s.a.postPages(context.Background(), s.channel, s.rootID, render(r, s.a.buttons(s.actionURL, s.channel, s.reqID)))
	if err != nil {
		s.a.log.Warn("thread post", "req", s.reqID, "err", err)
	}
	if s.rootID == "" {
		s.rootID = id
	}
}

// finish stops progress and, when there is a progress post, edits the
// final reply into it (its Cancel button gone) with further pages in the
// thread. It reports whether the reply was delivered that way.
func (s *stream) finish(ctx context.Context, final bot.Reply) bool {
	s.mu.Lock()
	s.closed = true
	started := s.started
	s.mu.Unlock()
	if started {
		close(s.stop)
		<-s.done
	}
	s.io.Lock()
	defer s.io.Unlock()
	if s.postID == "" {
		return false
	}
	pages, file := capPages(render(final, s.a.buttons(s.actionURL, s.channel, s.reqID)), final, true)
	if err := s.a.updatePost(ctx, s.postID, pages[0].post(s.channel, s.postIn)); err != nil {
		s.a.log.Warn("final edit", "req", s.reqID, "err", err)
		return false
	}
	if len(pages) > 1 {
		if _, err := s.a.postRest(ctx, s.channel, s.rootID, pages[1:], file); err != nil {
			s.a.log.Error("final reply, further pages", "req", s.reqID, "err", err)
		}
	}
	return true
}
