package probe

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The pacer is driven with made-up times: a target whose bucket gives a
// token every second, looked at every poll.
func TestPacer_LearnsTheTokenInterval(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := &pacer{start: t0}
	assert.Equal(t, t0, p.next(), "first round at once: a token accrued during the first pass")

	now := t0
	tokenAt := t0
	for range 6 {
		// Look until the token is due; rounds before it find nothing.
		for {
			at := p.next()
			if at.Before(now) {
				at = now
			}
			now = at
			if !now.Before(tokenAt) {
				p.record(now, true)
				tokenAt = now.Add(time.Second)
				break
			}
			p.record(now, false)
		}
	}
	assert.InDelta(t, float64(time.Second), float64(p.interval), float64(udpPollUnknown))
	// Known interval: wait most of it, then look often.
	next := p.next()
	assert.GreaterOrEqual(t, next.Sub(p.lastGrant), p.interval*8/10)
	assert.Less(t, next.Sub(p.lastGrant), p.interval)
}

func TestPacer_ShrinksAnIntervalThatIsTooLong(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := &pacer{start: t0, interval: 2 * time.Second}
	p.record(t0, true)
	p.record(t0.Add(1800*time.Millisecond), true) // a token at the first look
	assert.Less(t, p.interval, 2*time.Second)
}

func TestPacer_GivesUpWhenTheTargetFallsSilent(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := &pacer{start: t0}
	p.record(t0, true)
	assert.False(t, p.exhausted(t0.Add(time.Second)))
	assert.True(t, p.exhausted(t0.Add(udpGiveUpAfter+time.Second)))
}

// When one token is there but a witness needs two, the next round waits
// for two to accrue, even when the interval was never learned from misses
// (slow rounds that always find a token).
func TestPacer_WaitsForTwoTokensToWitness(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := &pacer{start: t0}
	p.record(t0, true)
	p.record(t0.Add(time.Second), true)
	p.record(t0.Add(2*time.Second), true)
	p.double = true
	assert.GreaterOrEqual(t, p.next().Sub(t0.Add(2*time.Second)), 2*time.Second, "two token intervals at least")
	p.double = false
	assert.Less(t, p.next().Sub(t0.Add(2*time.Second)), time.Second)
}
