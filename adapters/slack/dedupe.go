package slack

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"
)

// dedupe remembers the deliveries seen in the last ttl, so that a retry of
// Slack's (X-Slack-Retry-Num, a Socket Mode retry_attempt) or a replay of
// the same trigger runs nothing. It holds at most max keys, dropping the
// oldest first.
type dedupe struct {
	ttl  time.Duration
	max  int
	now  func() time.Time
	mu   sync.Mutex
	keys map[string]*list.Element
	fifo *list.List // of entry, oldest first
}

type entry struct {
	key  string
	seen time.Time
}

func newDedupe(ttl time.Duration, limit int, now func() time.Time) *dedupe {
	return &dedupe{ttl: ttl, max: limit, now: now, keys: map[string]*list.Element{}, fifo: list.New()}
}

// first records every key and reports whether none of them was seen
// within the ttl: true means run it, false means it is a duplicate.
func (d *dedupe) first(keys ...string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	for e := d.fifo.Front(); e != nil; e = d.fifo.Front() {
		if en := e.Value.(entry); now.Sub(en.seen) < d.ttl && d.fifo.Len() <= d.max {
			break
		}
		delete(d.keys, e.Value.(entry).key)
		d.fifo.Remove(e)
	}
	fresh := true
	for _, k := range keys {
		if k == "" {
			continue
		}
		if _, ok := d.keys[k]; ok {
			fresh = false
			continue
		}
		d.keys[k] = d.fifo.PushBack(entry{key: k, seen: now})
	}
	return fresh
}

// dedupeTTL is how long a delivery is remembered: Slack retries within
// minutes, and a response_url lives 30.
const dedupeTTL = 10 * time.Minute

// first reports whether a delivery is new: neither this process nor,
// with a shared store (Config.Deliveries), any replica handled one with
// any of these keys within dedupeTTL. When the store cannot answer, the
// delivery is handled (an approval still runs once: the store's
// compare-and-set decides that) and the failure is logged.
func (a *Adapter) first(ctx context.Context, keys ...string) bool {
	if !a.seen.first(keys...) {
		return false
	}
	if a.deliveries == nil {
		return true
	}
	now := a.now()
	fresh, err := a.deliveries.FirstDelivery(ctx, keys, now, now.Add(dedupeTTL))
	if err != nil {
		a.log.Warn("shared de-duplication failed: handling the delivery", "err", err)
		return true
	}
	return fresh
}

// bodyKey identifies a delivery by its content.
func bodyKey(kind string, body []byte) string {
	sum := sha256.Sum256(body)
	return kind + ":sha256:" + hex.EncodeToString(sum[:16])
}

// has reports whether key was recorded within the ttl.
func (d *dedupe) has(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.keys[key]
	return ok && d.now().Sub(e.Value.(entry).seen) < d.ttl
}
