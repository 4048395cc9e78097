package bot

import (
	"strings"
	"sync"
	"time"
)

// Jobs caps the commands running at once: per user and in all. One Jobs
// serves every Router of a process (a policy reload makes a new Router; the
// jobs still running under the old one count), and SetLimits applies a
// reloaded policy. A refusal says how many run and when to try again,
// estimated from how long jobs of the same kind took before.
type Jobs struct {
	mu      sync.Mutex
	perUser int
	total   int
	running map[int64]job
	byUser  map[string]int
	typical map[string]time.Duration // moving average of finished jobs' durations, by permission key
	next    int64
}

type job struct {
	principal, key string
	start          time.Time
}

// defaultTypical is the guess for a kind of job never seen to finish.
const defaultTypical = 10 * time.Second

// NewJobs caps jobs at perUser for one user and total in all; 0 is no cap.
func NewJobs(perUser, total int) *Jobs {
	return &Jobs{perUser: perUser, total: total, running: map[int64]job{}, byUser: map[string]int{}, typical: map[string]time.Duration{}}
}

// SetLimits changes the caps; jobs running keep running.
func (j *Jobs) SetLimits(perUser, total int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.perUser, j.total = perUser, total
}

// Running reports the jobs running, in all and for principal.
func (j *Jobs) Running(principal string) (total, mine int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.running), j.byUser[principal]
}

// isJob reports whether a permission key is a job the caps count: every
// command but /opsbot's (whoami, approvals, cancel, approve, deny, ...),
// which must stay available when the bot is busy: cancel above all, and a
// decision on an approval, which every click must get (an approved action
// runs once, whoever clicked; refusing a click as busy would leave the
// decision to chance).
func isJob(key string) bool {
	return key != "opsbot" && !strings.HasPrefix(key, "opsbot ")
}

// start counts a job for principal, or refuses with an EBUSY error and
// what was at its limit ("jobs_per_user", "jobs_total").
func (j *Jobs) start(principal, key string, now time.Time) (done func(time.Time), what string, err error) {
	if j == nil || !isJob(key) {
		return func(time.Time) {}, "", nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.perUser > 0 && j.byUser[principal] >= j.perUser {
		wait := j.soonest(now, func(r job) bool { return r.principal == principal })
		return nil, "jobs_per_user", Errorf(EBUSY, "busy: %d jobs running for you (limits.jobs_per_user is %d), try again in %s, or stop one with /opsbot cancel ID",
			j.byUser[principal], j.perUser, wait)
	}
	if j.total > 0 && len(j.running) >= j.total {
		wait := j.soonest(now, func(job) bool { return true })
		return nil, "jobs_total", Errorf(EBUSY, "busy: %d jobs running (limits.jobs_total is %d), try again in %s", len(j.running), j.total, wait)
	}
	j.next++
	id := j.next
	j.running[id] = job{principal: principal, key: key, start: now}
	j.byUser[principal]++
	return func(end time.Time) {
		j.mu.Lock()
		defer j.mu.Unlock()
		r := j.running[id]
		delete(j.running, id)
		if j.byUser[principal]--; j.byUser[principal] <= 0 {
			delete(j.byUser, principal)
		}
		took := max(end.Sub(r.start), 0)
		if t, ok := j.typical[key]; ok {
			j.typical[key] = (3*t + took) / 4
		} else if len(j.typical) < 1000 {
			j.typical[key] = took
		}
	}, "", nil
}

// soonest estimates when the first of the matching jobs ends: each is
// expected to take as long as its kind typically does; one already past
// that is expected within a second. Whole seconds, at least one.
func (j *Jobs) soonest(now time.Time, match func(job) bool) time.Duration {
	best := time.Duration(-1)
	for _, r := range j.running {
		if !match(r) {
			continue
		}
		typical, ok := j.typical[r.key]
		if !ok {
			typical = defaultTypical
		}
		left := max(typical-now.Sub(r.start), time.Second)
		if best < 0 || left < best {
			best = left
		}
	}
	if best < 0 {
		best = defaultTypical
	}
	return roundUp(best)
}
