package bot

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stepClock moves only when told.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *stepClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *stepClock) NewTicker(d time.Duration) Ticker { return SystemClock{}.NewTicker(d) }

type busyObserver struct {
	NopObserver
	mu   sync.Mutex
	what []string
}

func (b *busyObserver) Busy(what string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.what = append(b.what, what)
}

func TestJobs_PerUserAndTotalCapsAnswerBusy(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	slow := &fakeCommand{name: "slow", RunFn: func(_ context.Context, _ Request) (Reply, error) {
		started <- struct{}{}
		<-release
		return Reply{Status: StatusOK, Title: "done"}, nil
	}}
	view := &fakeCommand{name: "opsbot", RunFn: func(context.Context, Request) (Reply, error) {
		return Reply{Status: StatusInfo, Title: "view"}, nil
	}}
	clock := &stepClock{t: time.Unix(1000, 0)}
	obs := &busyObserver{}
	jobs := NewJobs(2, 3)
	r := NewRouter(RouterConfig{Commands: []Command{slow, view}, Jobs: jobs, Clock: clock, Observer: obs})
	ask := func(user, line string) Reply {
		return r.Handle(context.Background(), Request{Platform: "shell", User: user, Line: line})
	}
	var wg sync.WaitGroup
	run := func(user string) {
		wg.Go(func() { assert.Equal(t, StatusOK, ask(user, "/slow").Status) })
		<-started
	}
	run("alice")
	run("alice")
	busy := ask("alice", "/slow")
	assert.Equal(t, EBUSY, busy.Code)
	assert.Equal(t, 3, busy.Status.ExitCode())
	assert.Equal(t, "busy: 2 jobs running for you (limits.jobs_per_user is 2), try again in 10s, or stop one with /opsbot cancel ID", busy.Title)
	assert.Equal(t, StatusInfo, ask("alice", "/opsbot whoami").Status, "the bot's own views stay open to a busy user")

	run("bob")
	busy = ask("carol", "/slow")
	assert.Equal(t, EBUSY, busy.Code)
	assert.Equal(t, "busy: 3 jobs running (limits.jobs_total is 3), try again in 10s", busy.Title)
	total, mine := jobs.Running("shell:alice")
	assert.Equal(t, 3, total)
	assert.Equal(t, 2, mine)

	clock.add(4 * time.Second)
	close(release)
	wg.Wait()
	total, _ = jobs.Running("shell:alice")
	assert.Zero(t, total, "finished jobs are counted out")
	assert.Equal(t, []string{"jobs_per_user", "jobs_total"}, obs.what)

	// Once a kind of job has been seen to take 4 s, the estimate follows.
	release = make(chan struct{})
	run("alice")
	run("alice")
	clock.add(time.Second)
	busy = ask("alice", "/slow")
	assert.Equal(t, "busy: 2 jobs running for you (limits.jobs_per_user is 2), try again in 3s, or stop one with /opsbot cancel ID", busy.Title)
	jobs.SetLimits(3, 3)
	run("alice")
	close(release)
	wg.Wait()
}

func TestJobs_WhatCounts(t *testing.T) {
	for key, want := range map[string]bool{
		"scan": true, "apache reload": true, "opsbot approve": false, "opsbot deny": false,
		"opsbot": false, "opsbot cancel": false, "opsbot approvals": false, "opsbot whoami": false,
	} {
		assert.Equal(t, want, isJob(key), key)
	}
}

func TestPolicy_JobLimits(t *testing.T) {
	p, err := ParsePolicy([]byte("limits:\n  jobs_per_user: 2\n  jobs_total: 10\n"))
	require.NoError(t, err)
	assert.Equal(t, 2, p.Limits.JobsPerUser)
	assert.Equal(t, 10, p.Limits.JobsTotal)
	d := DefaultPolicy().Limits
	assert.Equal(t, DefaultJobsPerUser, d.JobsPerUser)
	assert.Equal(t, DefaultJobsTotal, d.JobsTotal)
	for doc, msg := range map[string]string{
		"limits:\n  jobs_per_user: 0\n":                   "limits.jobs_per_user is 0: accepted 1 to 1000",
		"limits:\n  jobs_total: 0\n":                      "limits.jobs_total is 0: accepted 1 to 10000",
		"limits:\n  jobs_per_user: 50\n  jobs_total: 8\n": "limits.jobs_per_user is 50, more than limits.jobs_total (8)",
	} {
		_, err := ParsePolicy([]byte(doc))
		require.Error(t, err, doc)
		assert.Contains(t, ErrorMessage(err), msg)
	}
}
