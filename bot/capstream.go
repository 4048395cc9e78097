package bot

import (
	"fmt"
	"sync"
)

// MaxPosts is the most messages one request may add to its thread
// (Stream.Post). A command that has more to say (a /listen hit by
// thousands of connections) reports the first ones, then counts, and sums
// up in its final reply; whatever still passes the cap is counted here and
// said in the reply, never queued. Progress is not counted: it edits one
// message in place at a bounded rate.
const MaxPosts = 20

// CappedStream passes at most limit posts to its stream and counts the rest.
type CappedStream struct {
	inner Stream
	limit int

	mu      sync.Mutex
	posted  int
	dropped int
}

// NewCappedStream caps s at limit posts (MaxPosts when limit <= 0). A stream
// that is already capped is returned as it is.
func NewCappedStream(s Stream, limit int) *CappedStream {
	if c, ok := s.(*CappedStream); ok {
		return c
	}
	if limit <= 0 {
		limit = MaxPosts
	}
	if s == nil {
		s = NopStream{}
	}
	return &CappedStream{inner: s, limit: limit}
}

var _ Stream = (*CappedStream)(nil)

// Progress implements Stream: passed through.
func (c *CappedStream) Progress(r Reply) { c.inner.Progress(r) }

// Post implements Stream: the first limit posts pass, the rest are counted.
func (c *CappedStream) Post(r Reply) {
	c.mu.Lock()
	if c.posted >= c.limit {
		c.dropped++
		c.mu.Unlock()
		return
	}
	c.posted++
	c.mu.Unlock()
	c.inner.Post(r)
}

// Dropped is how many posts the cap held back.
func (c *CappedStream) Dropped() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

// Remaining is how many more posts would pass.
func (c *CappedStream) Remaining() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.limit - c.posted
}

// Note is the line a final reply carries when posts were held back, "" when
// none were.
func (c *CappedStream) Note() string {
	n := c.Dropped()
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d more message(s) from this request were not posted: one request posts at most %d.", n, c.limit)
}
