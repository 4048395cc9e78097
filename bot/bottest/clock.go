// Package bottest holds fakes of bot's interfaces for tests: only tests
// import it.
package bottest

import (
	"sync"
	"time"

	"github.com/opsbot/opsbot/bot"
)

// Clock is a bot.Clock that moves only when Advance says so. Its tickers
// fire as Advance passes their times, and Advance waits until each tick
// has been taken by the goroutine reading it, so a test that advances
// past a lease renewal knows the renewal has started.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	tickers []*ticker
}

var _ bot.Clock = (*Clock)(nil)

// NewClock starts at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now implements bot.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTicker implements bot.Clock.
func (c *Clock) NewTicker(d time.Duration) bot.Ticker {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &ticker{every: d, next: c.now.Add(d), c: make(chan time.Time), stop: make(chan struct{})}
	c.tickers = append(c.tickers, t)
	return t
}

// Tickers is how many tickers are running: a test waits until the code
// under test has started the one it means to drive.
func (c *Clock) Tickers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.tickers {
		select {
		case <-t.stop:
		default:
			n++
		}
	}
	return n
}

// Advance moves the clock by d in steps, firing every ticker whose time
// comes, in time order; each tick is handed over (or dropped, for a
// stopped ticker) before Advance goes on.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var due *ticker
		live := c.tickers[:0]
		for _, t := range c.tickers {
			select {
			case <-t.stop:
				continue // stopped: forget it
			default:
			}
			live = append(live, t)
			if !t.next.After(end) && (due == nil || t.next.Before(due.next)) {
				due = t
			}
		}
		c.tickers = live
		if due == nil {
			c.now = end
			c.mu.Unlock()
			return
		}
		at := due.next
		c.now = at
		due.next = at.Add(due.every)
		c.mu.Unlock()
		select {
		case due.c <- at:
		case <-due.stop:
		}
	}
}

type ticker struct {
	every    time.Duration
	next     time.Time
	c        chan time.Time
	stop     chan struct{}
	stopOnce sync.Once
}

func (t *ticker) C() <-chan time.Time { return t.c }
func (t *ticker) Stop()               { t.stopOnce.Do(func() { close(t.stop) }) }
