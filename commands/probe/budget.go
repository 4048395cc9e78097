package probe

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Budget is the sockets a process may hold open for probing: scans,
// checks, listeners and vantage runs draw on one Budget, so that together
// they never take the descriptors the bot needs for itself (HTTP, the
// store, the chat APIs). Before it, each scan sized itself from the
// descriptor limit alone: two scans under a limit of 700 took 572 sockets
// each, and net.Listen and os.Open failed with EMFILE meanwhile.
//
// A scan reserves its share when it starts and returns it at the end: at
// most half of what is free then (so later scans find room), at least
// ScanMinimum, never the last few sockets, which are kept for single
// checks. A single check or listener socket takes one. When there is not
// enough, the caller waits for a release, up to Wait, and is then refused
// with a *BusyError.
type Budget struct {
	total    int           // sockets for probing in all
	headroom int           // the last sockets, which scans leave to single checks
	wait     time.Duration // how long Reserve and One wait for room

	mu      sync.Mutex
	held    int
	holders int           // reservations outstanding (scans, checks, listeners)
	freed   chan struct{} // closed and replaced on every release
}

// Sizes of shares.
const (
	// ScanMinimum is the smallest share a scan starts with: fewer
	// sockets in flight make even a small scan crawl.
	ScanMinimum = 16
	// budgetWait is how long a probe waits for sockets before it is
	// refused as busy.
	budgetWait = 10 * time.Second
)

// NewBudget makes a budget of total sockets, waiting up to wait for room.
func NewBudget(total int, wait time.Duration) *Budget {
	total = max(total, 2*ScanMinimum)
	return &Budget{total: total, headroom: max(8, total/16), wait: wait, freed: make(chan struct{})}
}

var (
	processOnce    sync.Once
	processSockets *Budget
)

// Sockets is the process's budget, sized from the descriptor limit when
// first asked (Go raises the soft limit to the hard one at start).
func Sockets() *Budget {
	processOnce.Do(func() { processSockets = NewBudget(fdBudget(), budgetWait) })
	return processSockets
}

// fdBudget is how many sockets probing may hold in all: the soft
// descriptor limit less a reserve for the bot's own connections (chat
// APIs, HTTP clients and servers, the store, logs, SSH): a fifth of the
// limit, at least 128 and at most 1024.
func fdBudget() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<20 {
		return 1 << 20
	}
	limit := int(rl.Cur) //nolint:gosec // at most 1<<20, checked above
	reserve := min(max(limit/5, 128), 1024)
	return max(limit-reserve, 2*ScanMinimum)
}

// Lease is sockets taken from a Budget. Release gives them back; it may
// be called more than once.
type Lease struct {
	b    *Budget
	n    int
	once sync.Once
}

// N is how many sockets the lease holds.
func (l *Lease) N() int { return l.n }

// Release returns the sockets.
func (l *Lease) Release() {
	if l == nil || l.b == nil {
		return
	}
	l.once.Do(func() { l.b.release(l.n) })
}

// BusyError says that the budget had no room within its wait.
type BusyError struct {
	Holders int           // reservations holding sockets (scans, checks, listeners)
	Held    int           // sockets they hold
	Total   int           // the budget
	Want    int           // what the refused caller needed at least
	Waited  time.Duration // how long it waited
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("busy: %d scans, checks and listeners hold %d of the %d sockets this process may use for probes; %d more were not free within %s",
		e.Holders, e.Held, e.Total, e.Want, e.Waited.Round(time.Second))
}

// Total is the budget's size.
func (b *Budget) Total() int { return b.total }

// InUse reports the sockets held and the reservations holding them.
func (b *Budget) InUse() (held, holders int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held, b.holders
}

// Reserve takes a share for a scan (or a listener) that would use up to
// want sockets at once: at most half of what is free, at least
// min(want, ScanMinimum), leaving the headroom to single checks. It
// waits for room until ctx ends or the budget's wait passes.
func (b *Budget) Reserve(ctx context.Context, want int) (*Lease, error) {
	want = max(want, 1)
	least := min(want, ScanMinimum)
	return b.take(ctx, least, func(free int) int {
		free -= b.headroom
		if free < least {
			return 0
		}
		return min(want, max(least, free/2))
	})
}

// One takes a single socket (a check, a listening socket, an SSH run). It
// may use the headroom scans leave.
func (b *Budget) One(ctx context.Context) (*Lease, error) {
	return b.take(ctx, 1, func(free int) int { return min(free, 1) })
}

// take waits until share(free) is positive, then holds that many.
func (b *Budget) take(ctx context.Context, least int, share func(free int) int) (*Lease, error) {
	var timer <-chan time.Time
	start := time.Now()
	for {
		b.mu.Lock()
		if n := share(b.total - b.held); n > 0 {
			b.held += n
			b.holders++
			b.mu.Unlock()
			return &Lease{b: b, n: n}, nil
		}
		freed := b.freed
		busy := &BusyError{Holders: b.holders, Held: b.held, Total: b.total, Want: least}
		b.mu.Unlock()
		if timer == nil {
			t := time.NewTimer(b.wait)
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-freed:
		case <-timer:
			busy.Waited = time.Since(start)
			return nil, busy
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (b *Budget) release(n int) {
	b.mu.Lock()
	b.held -= n
	b.holders--
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}
