package probe

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Under a target's ICMP rate limit, a UDP port answered only on a later
// try had its error withheld, not lost: it must not make every witness
// count several times over, nor show in the reply as path loss. A loss a
// limit cannot cause (the first of two back-to-back controls silent, the
// second answered) still counts.
func TestControl_WithheldICMPIsNotPathLossUnderALimit(t *testing.T) {
	c := newControl(time.Second, 64, 100)
	for range 90 {
		c.udpAnswer(10*time.Millisecond, 3) // silent three times, then closed
	}
	assert.Equal(t, 1, c.udpWitnesses(true), "limited: withheld errors are no loss")
	assert.Greater(t, c.udpWitnesses(false), 1, "no limit: the same silence is path loss")
	assert.Zero(t, c.report(true).Lost)
	assert.Equal(t, 270, c.report(false).Lost)

	c.udpLost(1, 1)
	assert.Greater(t, c.udpWitnesses(true), 1, "a lost control counts under a limit too")
	assert.Equal(t, 1, c.report(true).Lost)
}

// Probes sent only to measure the loss go out while answers are scarce
// (a firewall drops most ports), and stop once the path is paced or most
// ports answer.
func TestControl_EvidenceOnlyWhileAnswersAreScarce(t *testing.T) {
	sendAndAnswer := func(sent, answered int) *control {
		c := newControl(time.Second, 1024, 1000)
		var es []*epoch
		for range sent {
			e, err := c.acquire(context.Background(), false)
			require.NoError(t, err)
			c.release() // the window has no room for all of them at once
			es = append(es, e)
		}
		for k := range answered {
			c.answer(es[k], 100*time.Millisecond, nil)
		}
		return c
	}
	want := func(c *control) [2]bool {
		w, final := c.needEvidence()
		return [2]bool{w, final}
	}
	assert.Equal(t, [2]bool{true, false}, want(sendAndAnswer(200, 10)), "10 answers of 200 tries")
	assert.Equal(t, [2]bool{false, true}, want(sendAndAnswer(200, 150)), "most ports answer: their tries are evidence enough")
	assert.Equal(t, [2]bool{false, false}, want(sendAndAnswer(20, 1)), "too early to tell, not never")
	paced := sendAndAnswer(200, 10)
	paced.rate = 300
	assert.Equal(t, [2]bool{false, true}, want(paced), "a paced path has no probes to spare")
	few := sendAndAnswer(200, 10)
	for range 2000 {
		few.answer(&epoch{}, time.Millisecond, nil) // evidence enough: tries at their fewest
	}
	assert.Equal(t, [2]bool{false, true}, want(few))
}

// A silent port's later tries wait longer only once the path has shown
// trouble: behind a firewall on a clean path, backing off only costs time.
func TestStretched_OnlyOnATroubledPath(t *testing.T) {
	rto := 100 * time.Millisecond
	assert.Equal(t, rto, stretched(rto, backoffAfter+2, false))
	assert.Equal(t, 4*rto, stretched(rto, backoffAfter+2, true))
	assert.Equal(t, rto, stretched(rto, backoffAfter, true))

	c := newControl(time.Second, 64, 100)
	assert.False(t, c.troubled())
	c.udpAnswer(time.Millisecond, 1)
	assert.True(t, c.troubled())
}

// A ping's socket is forgotten like a try's, although its port was decided
// at once and never waited (no listening sockets of its own): CI once
// crashed here when a ping timed out.
func TestForget_APingOfAPortDecidedAtOnce(t *testing.T) {
	ts := &tcpScan{port: make([]tcpPort, 1)}
	f, err := os.Open(os.DevNull)
	require.NoError(t, err)
	assert.NotPanics(t, func() { ts.forget(pendingConn{f: f, i: 0, kind: livePing}) })
	assert.Zero(t, ts.port[0].listening())
}

// An interval with too few tries of known fate is judged with its
// neighbours, and with the losses proved since it was first evaluated: a
// try sent beside a congested interval, or in one whose losses were
// proved late, is no evidence that its port is silent.
func TestControl_FateJudgesSmallIntervalsWithTheirNeighbours(t *testing.T) {
	p := newPath(10 * time.Millisecond)
	c, interval := p.c, p.interval
	judge := func() { p.judge(time.Second) }

	calm := interval(100, 0) // sets the floor: no loss
	small := interval(10, 0)
	congested := interval(40, 30)
	judge()
	require.True(t, congested.congested)
	clean, pending := c.fate(calm)
	assert.True(t, clean)
	assert.False(t, pending)
	clean, _ = c.fate(small)
	assert.False(t, clean, "beside a congested interval")

	// Alone between calm ones, a small interval counts, until losses
	// proved after its evaluation show it was not calm.
	before := interval(100, 0)
	alone := interval(10, 0)
	after := interval(100, 0)
	judge()
	require.False(t, before.congested || after.congested)
	clean, _ = c.fate(alone)
	assert.True(t, clean)
	alone.lost += 40 // retries answered late prove its tries lost
	clean, _ = c.fate(alone)
	assert.False(t, clean, "its neighbours' samples no longer hide its loss")

	// Too few samples even with the neighbours: evidence only on a path
	// that never congested. This one did (the rate was cut above).
	require.Positive(t, c.rate)
	sp := newPath(10 * time.Millisecond)
	sparse := sp.c
	e := sp.interval(5, 0)
	sp.clock = sp.clock.Add(5 * time.Second)
	clean, _ = sparse.fate(e)
	assert.True(t, clean, "a calm path with few answers: a firewall's silence is evidence")
	sparse.rate = 300
	clean, _ = sparse.fate(e)
	assert.False(t, clean, "a path that was cut: too few samples prove nothing")
}

// A cut sets the rate to the most the path delivered in the last second,
// not to what one stalled interval delivered: a link that stalls for a
// moment must not hold a scan at a crawl, since a low rate grows back
// only slowly. What was delivered long ago is forgotten.
func TestControl_CutToTheMostDeliveredLately(t *testing.T) {
	p := newPath(10 * time.Millisecond)
	c := p.c
	c.rate = 600
	interval := func(answered, lost int) float64 {
		e := p.interval(answered, lost)
		return float64(answered) / e.end.Sub(e.start).Seconds()
	}
	judge := func() { p.judge(200 * time.Millisecond) }

	calm := interval(45, 0)
	stalled := interval(5, 40)
	judge()
	require.Greater(t, calm, 5*stalled)
	assert.InDelta(t, calm, c.rate, 1, "the calm interval's delivery, not the stall's")

	p.clock = p.clock.Add(5 * time.Second)
	later := interval(6, 40)
	judge()
	assert.InDelta(t, later, c.rate, 1, "a second later, the old delivery no longer holds the rate up")
}

// path is a control on a clock that moves only when told, with a round
// trip already measured.
type path struct {
	c     *control
	clock time.Time
}

func newPath(rtt time.Duration) *path {
	p := &path{clock: time.Unix(1000, 0)}
	p.c = newControl(time.Second, 1024, 3000)
	p.c.now = func() time.Time { return p.clock }
	p.c.start = p.clock
	p.c.sampleLocked(rtt)
	return p
}

// interval starts a new interval now and gives it these counts; the clock
// moves to its end.
func (p *path) interval(answered, lost int) *epoch {
	e := p.c.epochLocked(p.clock)
	e.sent, e.answered, e.lost = answered+lost, answered, lost
	p.clock = e.end
	return e
}

// judge moves the clock by d and evaluates the intervals due.
func (p *path) judge(d time.Duration) {
	p.clock = p.clock.Add(d)
	p.c.mu.Lock()
	p.c.evaluateLocked(p.clock)
	p.c.mu.Unlock()
}
