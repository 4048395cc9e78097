package hostcmd

import (
	"context"

	"github.com/opsbot/opsbot/bot"
)

// Read calls read for every host at once (at most 8 at a time, as
// bot.EachHost) and returns what each gave, in the order of hosts.
func Read[T any](hosts []bot.Host, read func(h bot.Host) T) []T {
	out := make([]T, len(hosts))
	bot.EachHost(hosts, func(i int, h bot.Host) { out[i] = read(h) })
	return out
}

// View reads every host at once and answers: one host's result in full
// (one), a group's together (group).
func View[T any](r Request, read func(h bot.Host) T, one func(T) bot.Reply, group func([]T) bot.Reply) bot.Reply {
	results := Read(r.Hosts, read)
	if !r.Group && len(results) == 1 {
		return one(results[0])
	}
	return group(results)
}

// Result is one host's change, as a roll sees it.
type Result interface {
	// OK: the change was made and verified, so the roll goes on.
	OK() bool
	// Acted: the change reached the host; false when it was refused
	// before it did anything (a config check failed, the daemon is down).
	Acted() bool
}

// Roll is a change across hosts, as far as it went.
type Roll[R Result] struct {
	Done      []R        // in the order they ran
	Ran       []bot.Host // the host of each of Done
	Untouched []bot.Host // not reached: after a failure, or canceled
}

// Failed is the first host whose change failed, and its result.
func (r Roll[R]) Failed() (h bot.Host, res R, failed bool) {
	for i, d := range r.Done {
		if !d.OK() {
			return r.Ran[i], d, true
		}
	}
	return bot.Host{}, res, false
}

// Complete says every host was changed and verified.
func (r Roll[R]) Complete() bool {
	_, _, failed := r.Failed()
	return !failed && len(r.Untouched) == 0
}

// Changed names the hosts the change reached, verified or not.
func (r Roll[R]) Changed() []string {
	var out []string
	for i, d := range r.Done {
		if d.Acted() {
			out = append(out, r.Ran[i].Name)
		}
	}
	return out
}

// Rollout says how a change goes across hosts.
type Rollout[R Result] struct {
	// Batch is how many hosts change at once after the first, which
	// changes alone (the canary); < 1 is 1, host by host.
	Batch int
	// Next, when set, is told before each batch (the canary first) what
	// is done and what comes: a group's progress.
	Next func(done []R, next []bot.Host, canary bool)
	// Change changes host i of the hosts and says how it went.
	Change func(ctx context.Context, i int, h bot.Host) R
}

// Run changes hosts: the first alone, then batches, each finished and
// checked before the next starts. It stops after the first batch with a
// failure, or when ctx ends, and lists the hosts it did not touch.
func (ro Rollout[R]) Run(ctx context.Context, hosts []bot.Host) Roll[R] {
	var r Roll[R]
	batch := max(ro.Batch, 1)
	for start, n := 0, 1; start < len(hosts); start, n = start+n, min(batch, len(hosts)-start-n) {
		if _, _, failed := r.Failed(); failed || ctx.Err() != nil {
			r.Untouched = append(r.Untouched, hosts[start:]...)
			break
		}
		next := hosts[start : start+n]
		if ro.Next != nil {
			ro.Next(r.Done, next, start == 0)
		}
		done := make([]R, n)
		bot.EachHost(next, func(j int, h bot.Host) { done[j] = ro.Change(ctx, start+j, h) })
		r.Done = append(r.Done, done...)
		r.Ran = append(r.Ran, next...)
	}
	return r
}
