package slack

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/opsbot/opsbot/bot"
)

// stream is a running command's bot.Stream in Slack: progress is one
// message (chat.postMessage) edited in place (chat.update) at most once per
// editInterval, with the Cancel button the Router asks for; posts go to a
// thread under the first message. One goroutine sends, in order, so the
// command never waits on Slack.
type stream struct {
	a           *Adapter
	ctx         context.Context
	channel     string
	reqID       string
	responseURL string // for posts the channel refuses, a few of them

	mu       sync.Mutex
	pending  *bot.Reply  // newest progress not yet shown
	posts    []bot.Reply // posts not yet sent
	ts       string      // the progress message
	threadTS string      // where posts go
	last     time.Time   // last post or edit of the progress message
	broken   bool        // the channel refused the first message: no progress there
	hookUses int         // posts sent through response_url
	dropped  int         // posts that reached no one
	started  bool
	closed   bool
	kick     chan struct{}
	done     chan struct{}
}

var _ bot.Stream = (*stream)(nil)

// maxQueuedPosts bounds the posts waiting for Slack: a command that posts
// faster than Slack takes them loses the excess, counted, rather than
// queueing without end (the Router caps a request at bot.MaxPosts anyway).
const maxQueuedPosts = bot.MaxPosts

// maxHookPosts leaves room in a response_url's five uses for the reply.
const maxHookPosts = 3

func (a *Adapter) newStream(ctx context.Context, d delivery) *stream {
	return &stream{a: a, ctx: context.WithoutCancel(ctx), channel: d.channel, reqID: d.reqID, responseURL: d.responseURL,
		kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// Progress implements bot.Stream.
func (s *stream) Progress(r bot.Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.broken {
		return
	}
	s.pending = &r
	s.wakeLocked()
}

// Post implements bot.Stream.
func (s *stream) Post(r bot.Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if len(s.posts) >= maxQueuedPosts {
		s.dropped++ // said in the final reply (withDropped)
		return
	}
	s.posts = append(s.posts, r)
	s.wakeLocked()
}

func (s *stream) wakeLocked() {
	if !s.started {
		s.started = true
		go s.run()
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// close sends what is queued (the last progress included, so it is seen
// before the final reply), stops the sender and returns the progress
// message's timestamp, "" when there is none.
func (s *stream) close() string {
	s.mu.Lock()
	s.closed = true
	if !s.started {
		s.mu.Unlock()
		return ""
	}
	s.wakeLocked()
	s.mu.Unlock()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ts
}

// finish replaces the progress message with the final reply, no sooner
// than the edit interval allows.
func (s *stream) finish(ts string, m rendered) error {
	s.mu.Lock()
	wait := time.Until(s.last.Add(s.a.editInterval))
	s.mu.Unlock()
	if wait > 0 {
		if err := s.a.sleep(s.ctx, wait); err != nil {
			return err
		}
	}
	return s.a.updateMessage(s.ctx, s.channel, ts, m.Text, m.Blocks)
}

func (s *stream) run() {
	defer close(s.done)
	for {
		s.mu.Lock()
		switch {
		case len(s.posts) > 0:
			p := s.posts[0]
			s.posts = s.posts[1:]
			s.mu.Unlock()
			s.sendPost(p)
			continue
		case s.pending != nil && !s.broken:
			wait := time.Duration(0)
			if s.ts != "" {
				wait = time.Until(s.last.Add(s.a.editInterval))
			}
			if wait > 0 {
				s.mu.Unlock()
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-s.kick: // a post may be waiting; the progress keeps its turn
					t.Stop()
				}
				continue
			}
			p := *s.pending
			s.pending = nil
			s.mu.Unlock()
			s.showProgress(p)
			continue
		case s.closed:
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		<-s.kick
	}
}

// showProgress posts or edits the progress message.
func (s *stream) showProgress(r bot.Reply) {
	m := render(r) // its Cancel action comes from r.Cancel
	s.mu.Lock()
	ts := s.ts
	s.mu.Unlock()
	var err error
	if ts == "" {
		ts, err = s.a.postMessage(s.ctx, s.channel, "", m.Text, m.Blocks)
		if err == nil {
			s.a.track(s.channel, ts, s)
		}
	} else {
		err = s.a.updateMessage(s.ctx, s.channel, ts, m.Text, m.Blocks)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = time.Now()
	if err != nil {
		s.a.log.Warn("progress message failed", "req", s.reqID, "channel", s.channel, "err", err)
		if s.ts == "" {
			s.broken = true // not in the channel: the final reply still comes through response_url
		}
		return
	}
	if s.ts == "" {
		s.ts = ts
		if s.threadTS == "" {
			s.threadTS = ts
		}
	}
}

// sendPost adds a message to the thread; the first post starts it when no
// progress message exists.
func (s *stream) sendPost(r bot.Reply) {
	m := render(r)
	s.mu.Lock()
	thread := s.threadTS
	s.mu.Unlock()
	s.mu.Lock()
	broken := s.broken
	s.mu.Unlock()
	var ts string
	err := errNotInChannel
	if !broken {
		ts, err = s.a.postMessage(s.ctx, s.channel, thread, m.Text, m.Blocks)
	}
	if err != nil {
		s.a.log.Warn("thread message failed", "req", s.reqID, "channel", s.channel, "err", err)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.broken = s.broken || thread == ""
		if s.responseURL != "" && s.hookUses < maxHookPosts {
			s.hookUses++
			if s.a.webhook(s.ctx, s.responseURL, webhookMessage(m.Text, m.Blocks, m.Ephemeral, false)) == nil {
				return
			}
		}
		s.dropped++
		return
	}
	s.a.sendMore(s.ctx, delivery{reqID: s.reqID, channel: s.channel}, m, firstNonEmpty(thread, ts))
	s.mu.Lock()
	if s.threadTS == "" {
		s.threadTS = ts
	}
	s.mu.Unlock()
}

var errNotInChannel = errors.New("the channel refused the command's first message")

// droppedPosts is how many posts reached no one, for the final reply to say.
func (s *stream) droppedPosts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// withDropped adds to a final reply how many of the command's messages
// could not be shown, so none is lost silently.
func withDropped(m rendered, n int) rendered {
	if n > 0 {
		m.Blocks = append(m.Blocks, contextBlock(fmt.Sprintf(
			":warning: %d message(s) from this command could not be posted here. Invite the bot (/invite @opsbot) to see them next time.", n)))
	}
	return m
}

// track registers a progress message while its command runs, so a click
// on its Cancel button leaves the message to the stream.
func (a *Adapter) track(channel, ts string, s *stream) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.streams[channel+"/"+ts] = s
}

func (a *Adapter) untrack(channel, ts string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.streams, channel+"/"+ts)
}

func (a *Adapter) tracked(channel, ts string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.streams[channel+"/"+ts]
	return ok
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
