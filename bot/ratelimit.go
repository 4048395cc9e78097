package bot

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimiter allows each key (a user, a target address) a number of
// events per minute, with that many in a burst.
type RateLimiter struct {
	mu       sync.Mutex
	perMin   int
	limiters map[string]*rate.Limiter
	lastSeen map[string]time.Time
	now      func() time.Time
}

// NewRateLimiter allows perMinute events per key per minute.
func NewRateLimiter(perMinute int) *RateLimiter {
	return &RateLimiter{perMin: perMinute, limiters: map[string]*rate.Limiter{}, lastSeen: map[string]time.Time{}, now: time.Now}
}

// maxKeys bounds memory: beyond it, keys idle for a minute (whose buckets
// are full again, so forgetting them changes nothing) are dropped.
const maxKeys = 10000

// Allow takes one event for key, or says how long to wait.
func (l *RateLimiter) Allow(key string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	lim, ok := l.limiters[key]
	if !ok {
		if len(l.limiters) >= maxKeys {
			l.sweep(now)
		}
		lim = rate.NewLimiter(rate.Limit(float64(l.perMin)/60), l.perMin)
		l.limiters[key] = lim
	}
	l.lastSeen[key] = now
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

func (l *RateLimiter) sweep(now time.Time) {
	for k, t := range l.lastSeen {
		if now.Sub(t) > time.Minute {
			delete(l.limiters, k)
			delete(l.lastSeen, k)
		}
	}
}
