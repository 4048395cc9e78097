package probe

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Adapting to the path, as TCP does.
//
// A real network between the bot and a target has a round trip of 1 to
// 300 ms, loses a share of packets at random, may be slower than the bot
// sends, and may end at a firewall that limits SYNs. A scanner with a fixed
// timeout and a fixed number of tries misses open ports there and calls
// closed ones filtered. So each scan keeps a model of its path:
//
//   - The round trip, smoothed with its variance (RFC 6298). Every try has
//     a socket of its own, so every answer is an exact sample (no Karn
//     ambiguity), and the timeout of a try is srtt + 4·rttvar.
//   - The loss. A port that answers a later try after earlier ones went
//     unanswered proves those earlier probes (or their answers) were lost.
//     Lost and answered tries give the loss rate; the number of tries a
//     silent port gets before it is called filtered follows from it, so
//     that the scan as a whole expects fewer than one wrong verdict in a
//     hundred scans.
//   - The rate the path carries. Tries are counted by the interval they
//     were sent in. When the loss of an interval rises well above the
//     lowest loss seen (random loss does not depend on the rate; a full
//     queue or a SYN limit does), the send rate falls to the most the path
//     delivered in the last second, and then grows by a quarter every
//     200 ms to look for more. Sending a little above a rate limit costs nothing at
//     the bottleneck, which passes its rate either way; sending below it
//     wastes time, so the rate is set from what was delivered, never
//     halved blindly.
//   - A window on tries in flight that grows with every answer, as TCP's
//     slow start does, so the first burst cannot bury a slow link.
//
// Nothing here decides a port: the engines do, from the answers.

const (
	minRTO           = 20 * time.Millisecond  // below this, scheduling noise looks like loss
	initialWindow    = 64                     // tries in flight before any answer
	lossPriorWeight  = 20                     // the loss estimate starts as 1 loss in this many tries
	wrongPerScan     = 0.01                   // expected wrong "filtered" verdicts per scan
	minTries         = 2                      // every silent port is asked again at least once
	maxTries         = 16                     // and at most this many tries that count
	maxTriesAll      = 32                     // and this many in all, congested ones included
	epochFloor       = 25 * time.Millisecond  // intervals are at least this long
	epochMinSamples  = 30                     // tries of an interval with a known fate, before it counts
	congestionMargin = 0.15                   // loss this far above the floor (and twice it) is congestion
	cleanMargin      = 0.05                   // and a try sent at loss within this of the floor counts as evidence
	probeUpGain      = 1.25                   // the rate grows this much per calm interval (BBR's probing gain)
	probeUpEvery     = 200 * time.Millisecond // and at most this often
	paceBurst        = 8                      // tries sent back to back at most when paced
	stoppedAfter     = 2 * time.Second        // the shortest silence that can mean the target stopped answering
	recentDecay      = 0.9                    // weight of an interval's loss counts per later interval
	poolReach        = 2                      // intervals each side an interval too small to judge is pooled with
	deliveryWindow   = time.Second            // a cut sets the rate to the most delivered within this
)

// epoch counts the tries sent in one interval and, as their fates become
// known, how many were answered and how many lost.
type epoch struct {
	seq            int // its number in the scan
	start, end     time.Time
	sent           int
	answered, lost int
	rttSum         time.Duration
	rttN           int
	evaluated      bool
	congested      bool // its loss was well above the floor
}

// NetReport is what the path did during a scan: the facts a reply states
// when they changed the result or the time.
type NetReport struct {
	RTT      time.Duration // smoothed round trip at the end; 0 if nothing answered
	MinRTT   time.Duration
	Sent     int     // probes sent, retries included
	Retried  int     // of which retries
	Lost     int     // probes known lost (a later try of the same port was answered)
	Answered int     // probes answered
	Loss     float64 // Lost / (Lost + Answered)
	// Paced is the send rate the scan settled at after it saw congestion
	// or a rate limit (probes per second); 0 if it never had to.
	Paced float64
	// Queue: the congestion came with a growing round trip (a slow link
	// filling its queue); otherwise it looked like a rate limit (a
	// firewall dropping what exceeds its rate).
	Queue bool
	// Stopped: the target answered, then went silent for far longer than
	// its answers so far make likely; ports probed since are unknown.
	Stopped bool
}

// control is one scan's model of its path. Its methods are safe for
// concurrent use.
type control struct {
	mu      sync.Mutex
	now     func() time.Time
	start   time.Time
	maxTO   time.Duration // the longest a try waits (ScanSpec.Timeout)
	ports   int
	freed   chan struct{} // a slot in the window was freed
	waiting int           // acquirers waiting on freed
	haveRTT bool
	srtt    time.Duration
	rttvar  time.Duration
	minRTT  time.Duration

	window   float64 // tries in flight allowed
	maxWin   int
	inflight int

	rate     float64 // probes per second; 0 = not paced
	nextSend time.Time

	epochs  []*epoch
	nextSeq int
	floor   float64 // lowest loss of an interval with enough samples; 1 until one
	lastCut time.Time
	// delivered: what the judged intervals of the last deliveryWindow
	// delivered
	delivered []delivery
	lastUp    time.Time
	queueCut  bool

	recentLost, recentAnswered float64

	sent, retried, answered, lost int
	// ambiguous: of lost, UDP probes unanswered before a later one was
	// answered; a target's ICMP rate limit does that as well as the path.
	ambiguous int
	// lastAnswer: when the last answer came, as time since start plus
	// one (0: none yet); srttNow: srtt. Both are read without the lock by
	// the questions every try asks.
	lastAnswer                   atomic.Int64
	srttNow                      atomic.Int64
	decidedAnswer, decidedSilent int
	stopped                      bool
}

func newControl(maxTO time.Duration, concurrency, ports int) *control {
	c := &control{
		now:    time.Now,
		maxTO:  maxTO,
		ports:  ports,
		freed:  make(chan struct{}, 1),
		window: float64(min(initialWindow, concurrency)),
		maxWin: concurrency,
		floor:  1,
	}
	c.start = c.now()
	return c
}

// rto is how long a try waits before the next try is sent.
func (c *control) rto() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rtoLocked()
}

func (c *control) rtoLocked() time.Duration {
	if !c.haveRTT {
		return c.maxTO
	}
	return min(max(c.srtt+4*c.rttvar, minRTO, c.srtt*5/4+2*time.Millisecond), c.maxTO)
}

func (c *control) epochLenLocked() time.Duration {
	if !c.haveRTT {
		return 2 * epochFloor
	}
	d := max(epochFloor, 2*c.srtt)
	if c.rate > 0 {
		// Long enough to hold the samples an interval needs to be judged:
		// a paced scan must not slip its tries through unjudged.
		d = max(d, time.Duration(1.5*epochMinSamples/c.rate*float64(time.Second)))
	}
	return d
}

// acquire waits until one more try may go out: the window has room and,
// when paced, the rate allows it. It records the try as sent and returns
// the time it was sent and its epoch.
func (c *control) acquire(ctx context.Context, retry bool) (*epoch, error) {
	for {
		c.mu.Lock()
		now := c.now()
		if c.inflight < int(c.window) {
			if c.rate <= 0 || !now.Before(c.nextSend) {
				c.inflight++
				if c.rate > 0 {
					gap := time.Duration(float64(time.Second) / c.rate)
					// Credit for idle time is capped: a burst after a
					// pause must not exceed paceBurst tries.
					if earliest := now.Add(-paceBurst * gap); c.nextSend.Before(earliest) {
						c.nextSend = earliest
					}
					c.nextSend = c.nextSend.Add(gap)
				}
				e := c.epochLocked(now)
				e.sent++
				c.sent++
				if retry {
					c.retried++
				}
				c.mu.Unlock()
				return e, nil
			}
			wait := c.nextSend.Sub(now)
			c.mu.Unlock()
			sleepCtx(ctx, wait)
		} else {
			c.waiting++
			c.mu.Unlock()
			select {
			case <-c.freed:
			case <-ctx.Done():
			}
			c.mu.Lock()
			c.waiting--
			c.mu.Unlock()
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// release frees the window slot of a try: it was answered, decided at
// once by the local kernel, or its timeout passed.
func (c *control) release() {
	c.mu.Lock()
	c.inflight--
	waiting := c.waiting > 0
	c.mu.Unlock()
	if waiting { // the loopback path decides every try at once: no one waits
		select {
		case c.freed <- struct{}{}:
		default:
		}
	}
}

func (c *control) currentLocked(now time.Time) *epoch {
	if n := len(c.epochs); n > 0 && now.Before(c.epochs[n-1].end) {
		return c.epochs[n-1]
	}
	return nil
}

func (c *control) epochLocked(now time.Time) *epoch {
	if e := c.currentLocked(now); e != nil {
		return e
	}
	e := &epoch{seq: c.nextSeq, start: now, end: now.Add(c.epochLenLocked())}
	c.nextSeq++
	c.epochs = append(c.epochs, e)
	c.evaluateLocked(now)
	return e
}

// answer records an answer to a try sent in e after rtt; lost are the
// epochs of earlier tries of the same port that went unanswered: proof
// that they were lost, since a path keeps the order of packets.
func (c *control) answer(e *epoch, rtt time.Duration, lost []*epoch) {
	c.mu.Lock()
	now := c.now()
	e.answered++
	if rtt < kernelSYNRetry {
		c.sampleLocked(rtt)
		e.rttSum += rtt
		e.rttN++
	}
	c.answered++
	for _, le := range lost {
		le.lost++
		c.lost++
	}
	c.answeredAt(now)
	c.decidedAnswer++
	// Slow start: one more try in flight per answer, up to the limit.
	if c.window < float64(c.maxWin) {
		c.window++
	}
	c.mu.Unlock()
}

// answerAtOnce is release and answer in one step, for a first try the
// local kernel decided within connect(2).
func (c *control) answerAtOnce(e *epoch, rtt time.Duration) {
	c.mu.Lock()
	c.inflight--
	waiting := c.waiting > 0
	e.answered++
	c.sampleLocked(rtt)
	e.rttSum += rtt
	e.rttN++
	c.answered++
	c.answeredAt(c.now())
	c.decidedAnswer++
	if c.window < float64(c.maxWin) {
		c.window++
	}
	c.mu.Unlock()
	if waiting {
		select {
		case c.freed <- struct{}{}:
		default:
		}
	}
}

// timeout records a try whose timeout passed without an answer. While the
// path shows little loss, a silent port is the likely reason, and the
// window grows as it would on an answer: a target behind a firewall that
// drops most ports must not hold the scan to its first window.
func (c *control) timeout() {
	c.mu.Lock()
	if c.lossLocked() < 0.1 && c.window < float64(c.maxWin) {
		c.window++
	}
	c.mu.Unlock()
}

func (c *control) sampleLocked(rtt time.Duration) {
	rtt = max(rtt, time.Microsecond)
	if !c.haveRTT {
		c.haveRTT = true
		c.srtt, c.rttvar, c.minRTT = rtt, rtt/2, rtt
		c.srttNow.Store(int64(c.srtt))
		return
	}
	d := c.srtt - rtt
	if d < 0 {
		d = -d
	}
	c.rttvar = (3*c.rttvar + d) / 4
	c.srtt = (7*c.srtt + rtt) / 8
	c.minRTT = min(c.minRTT, rtt)
	c.srttNow.Store(int64(c.srtt))
}

// evaluateLocked looks at the intervals whose tries have all met their
// fate (sent long enough ago for a retry to have been answered) and moves
// the send rate.
func (c *control) evaluateLocked(now time.Time) {
	lag := 2*c.rtoLocked() + c.srtt
	for _, e := range c.epochs {
		if e.evaluated || now.Sub(e.end) < lag {
			continue
		}
		e.evaluated = true
		n := e.answered + e.lost
		if n < epochMinSamples {
			continue
		}
		loss := float64(e.lost) / float64(n)
		// What the interval delivered: its answers, scaled up by the
		// share of ports that answer at all (probes to silent ports
		// cross the bottleneck too).
		dur := e.end.Sub(e.start).Seconds()
		f := 1.0
		if n := c.decidedAnswer + c.decidedSilent; n > 0 && c.decidedSilent > 0 {
			f = max(float64(c.decidedAnswer)/float64(n), 0.05)
		}
		c.delivered = append(c.delivered, delivery{at: e.end, perSec: float64(e.answered) / dur / f})
		if len(c.delivered) > 64 {
			c.deliveredLocked(now) // forget the old ones
		}

		threshold := max(2*c.floor, c.floor+congestionMargin)
		if c.floor >= 1 {
			threshold = congestionMargin
		}
		if loss > threshold && e.lost >= 5 {
			e.congested = true
			c.decayed(e)
			// What the path carries now is the most it delivered lately,
			// as BBR takes its bottleneck bandwidth: one saturated
			// interval alone can catch a lull (a link that stalled for
			// a moment, a full queue draining), and a rate set below what
			// the path carries costs time for the rest of the scan; it
			// grows back by probing only slowly at low rates, whose
			// intervals are long.
			c.rate = max(c.deliveredLocked(now), 10)
			c.nextSend = now
			// The window shrinks to what the rate needs: tries in flight
			// for a timeout each, twice over, so that it never holds the
			// rate back.
			need := c.rate * c.rtoLocked().Seconds() * 2
			c.window = min(c.window, max(need, initialWindow))
			c.lastCut, c.lastUp = now, now
			if e.rttN > 0 && c.minRTT > 0 {
				avg := e.rttSum / time.Duration(e.rttN)
				c.queueCut = avg > c.minRTT*3/2+time.Millisecond
			}
			continue
		}
		c.floor = min(c.floor, loss)
		c.decayed(e)
		// Look for more: probeUpGain at most every probeUpEvery (and two round trips).
		if c.rate > 0 && now.Sub(c.lastUp) >= max(probeUpEvery, e.end.Sub(e.start), 2*c.srtt) {
			c.rate *= probeUpGain
			c.lastUp = now
		}
	}
	// Keep only what may still be evaluated or counted.
	for len(c.epochs) > 64 && c.epochs[0].evaluated {
		c.epochs = c.epochs[1:]
	}
}

// delivery is what one judged interval delivered: answers per second,
// scaled to every port.
type delivery struct {
	at     time.Time // the interval's end
	perSec float64
}

// deliveredLocked is the most the path delivered in the intervals judged
// within deliveryWindow (or three intervals, if longer) of now, forgetting
// older ones.
func (c *control) deliveredLocked(now time.Time) float64 {
	window := max(deliveryWindow, 3*c.epochLenLocked())
	keep := c.delivered[:0]
	best := 0.0
	for _, d := range c.delivered {
		if now.Sub(d.at) > window {
			continue
		}
		keep = append(keep, d)
		best = max(best, d.perSec)
	}
	c.delivered = keep
	return best
}

// decayed adds an evaluated interval to the recent loss counts, in which
// older intervals weigh less: the loss that decides how many tries a port
// gets is the loss now, not during a burst the scan has since slowed from.
func (c *control) decayed(e *epoch) {
	c.recentLost = c.recentLost*recentDecay + float64(e.lost)
	c.recentAnswered = c.recentAnswered*recentDecay + float64(e.answered)
}

// lossLocked is the loss estimate, pessimistic while there is little
// evidence: it starts at one loss in lossPriorWeight tries.
func (c *control) lossLocked() float64 {
	return lossEstimate(c.lossCountsLocked())
}

func lossEstimate(lost, answered float64) float64 {
	return (lost + 1) / (lost + answered + lossPriorWeight)
}

// lossUpper is the upper confidence bound of the loss estimate from
// these counts.
func lossUpper(lost, answered float64) float64 {
	p := lossEstimate(lost, answered)
	n := lost + answered + lossPriorWeight
	return min(p+2*math.Sqrt(p*(1-p)/n), 0.95)
}

// triesFor is how many unanswered tries of a silent port a scan of ports
// needs at the loss bound p.
func triesFor(p float64, ports int) int {
	n := math.Ceil(math.Log(wrongPerScan/float64(max(ports, 1))) / math.Log(p))
	return int(min(max(n, minTries), maxTries))
}

// lossCountsLocked gives the recent counts once enough intervals are
// evaluated, and every count until then.
func (c *control) lossCountsLocked() (lost, answered float64) {
	if c.recentLost+c.recentAnswered >= 100 {
		return c.recentLost, c.recentAnswered
	}
	return float64(c.lost), float64(c.answered)
}

// tries is how many tries a port that never answers gets: enough that
// losing all of them to the path, at the loss measured (its upper
// confidence bound), is expected fewer than wrongPerScan times in the scan.
func (c *control) tries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.triesLocked()
}

func (c *control) triesLocked() int {
	return triesFor(c.lossUpperLocked(), c.ports)
}

func (c *control) lossUpperLocked() float64 {
	return lossUpper(c.lossCountsLocked())
}

// sure reports whether tries unanswered tries make a port filtered beyond
// reasonable doubt, given the loss measured.
func (c *control) sure(tries int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.decidedSilent++
	p := c.lossUpperLocked()
	return math.Pow(p, float64(tries))*float64(c.ports) <= 10*wrongPerScan
}

func (c *control) answeredAt(t time.Time) {
	c.lastAnswer.Store(int64(t.Sub(c.start)) + 1)
}

// lastAnswerAt gives the time of the last answer; ok is false before any.
func (c *control) lastAnswerAt() (t time.Time, ok bool) {
	v := c.lastAnswer.Load()
	if v == 0 {
		return time.Time{}, false
	}
	return c.start.Add(time.Duration(v - 1)), true
}

// answeredAny reports whether the target ever answered.
func (c *control) answeredAny() bool {
	return c.lastAnswer.Load() != 0
}

// answeredSince reports whether an answer came after t.
func (c *control) answeredSince(t time.Time) bool {
	last, ok := c.lastAnswerAt()
	return ok && last.After(t)
}

// silentLonger reports whether the target has not answered for far
// longer than its round trip: stoppedAfter at least.
func (c *control) silentLonger() bool {
	last, ok := c.lastAnswerAt()
	return ok && c.now().Sub(last) > max(stoppedAfter, 10*time.Duration(c.srttNow.Load()))
}

// silentFor is how long since the target's last answer (0 before any).
func (c *control) silentFor() time.Duration {
	last, ok := c.lastAnswerAt()
	if !ok {
		return 0
	}
	return c.now().Sub(last)
}

func (c *control) markStopped() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
}

// report gives what the path did. limited: the target limited its ICMP
// errors, and UDP probes answered only on a later try count as withheld,
// not lost.
func (c *control) report(limited bool) NetReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	lost := c.pathLostLocked(limited)
	r := NetReport{Sent: c.sent, Retried: c.retried, Lost: lost, Answered: c.answered, Paced: c.rate, Queue: c.queueCut, Stopped: c.stopped}
	if c.haveRTT {
		r.RTT, r.MinRTT = c.srtt, c.minRTT
	}
	if lost+c.answered > 0 {
		r.Loss = float64(lost) / float64(lost+c.answered)
	}
	return r
}

// udpAnswer records an answer to a UDP probe after rtt, with the number of
// earlier probes of the same port that went unanswered (lost on the path,
// or withheld by an ICMP rate limit: both ask for more tries).
func (c *control) udpAnswer(rtt time.Duration, lostBefore int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sampleLocked(rtt)
	c.answered++
	c.lost += lostBefore
	c.ambiguous += lostBefore
	c.decidedAnswer++
}

// udpLost records probes known lost in a witness round: a control probe
// unanswered while a later one of the same round was answered (a rate
// limit cannot do that within the round's span; the path can).
func (c *control) udpLost(lost, answered int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lost += lost
	c.answered += answered
}

func (c *control) haveRTTNow() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.haveRTT
}

// fate reports whether a try sent in e counts as evidence of silence
// (clean: its interval has been judged, and the path was not congested
// then; a try lost to a full queue or a rate limit says nothing about the
// port), and whether a try not clean yet may become so (pending: its
// interval has not been judged).
//
// The interval is judged again with what is known now: its answers and
// the losses proved since it was first evaluated (a retry answered late
// proves an earlier loss). An interval with too few tries of known fate
// is judged with its neighbours; if they are too few as well, its tries
// count only on a path that has never congested. Under a rate limit the
// short intervals before the first cut lose most of their tries without
// proving it in time, and counting them clean called closed ports
// filtered.
func (c *control) fate(e *epoch) (clean, pending bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evaluateLocked(c.now())
	if !e.evaluated {
		return false, true
	}
	if e.congested {
		return false, false
	}
	lost, answered, congested := c.poolLocked(e)
	if congested {
		return false, false
	}
	if lost+answered < epochMinSamples {
		return c.rate == 0, false
	}
	loss := float64(lost) / float64(lost+answered)
	if c.floor >= 1 {
		return loss <= congestionMargin, false
	}
	// Near the lowest loss seen: a try lost while the scan probed above
	// the path's rate (losing more than usual, if not enough to call it
	// congestion) does not count either.
	return loss <= max(2*c.floor, c.floor+cleanMargin), false
}

// poolLocked gives the tries of known fate of e, with those of its
// evaluated neighbours (nearest first, up to poolReach each side) while
// they are fewer than epochMinSamples; congested: a neighbour pooled was
// congested.
func (c *control) poolLocked(e *epoch) (lost, answered int, congested bool) {
	lost, answered = e.lost, e.answered
	if lost+answered >= epochMinSamples || len(c.epochs) == 0 {
		return lost, answered, false
	}
	k := e.seq - c.epochs[0].seq
	if k < 0 || k >= len(c.epochs) || c.epochs[k] != e {
		return lost, answered, false // trimmed: too old to have neighbours
	}
	for d := 1; d <= poolReach && lost+answered < epochMinSamples; d++ {
		for _, j := range [2]int{k - d, k + d} {
			if j < 0 || j >= len(c.epochs) || !c.epochs[j].evaluated {
				continue
			}
			n := c.epochs[j]
			if n.congested {
				return lost, answered, true
			}
			lost += n.lost
			answered += n.answered
		}
	}
	return lost, answered, false
}

// needEvidence reports whether probes sent only to measure the loss are
// worth their cost: answers are scarce (most ports are silent, so their
// tries teach nothing about the path), and more samples would lower the
// number of tries a silent port gets.
// final: the answer will not change to yes (most ports answer, or the
// path is paced, or the tries are as few as evidence makes them).
func (c *control) needEvidence() (want, final bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.rate > 0 || c.triesLocked() <= minTries+1:
		return false, true
	case c.sent < initialWindow:
		return false, false // too early to tell
	case float64(c.answered) > 0.2*float64(c.sent):
		return false, true
	}
	return true, false
}

// troubled reports whether the path has lost a probe or congested.
func (c *control) troubled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost > 0 || c.rate > 0
}

// pathLostLocked is the probes known lost on the path. limited: the target
// limits its ICMP errors, and UDP probes answered only on a later try were
// withheld, not lost.
func (c *control) pathLostLocked(limited bool) int {
	if limited {
		return c.lost - c.ambiguous
	}
	return c.lost
}

// udpWitnesses is how many witness rounds prove a UDP port not closed.
// One, unless the path loses probes: a closed port's probe or its ICMP
// error lost on the way looks like a witness. limited: the target limits
// its ICMP errors, so probes answered only on a later try say nothing
// about the path; only losses a limit cannot cause count.
func (c *control) udpWitnesses(limited bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	lost := c.pathLostLocked(limited)
	if lost <= 0 {
		return 1
	}
	return triesFor(lossUpper(float64(lost), float64(c.answered)), c.ports)
}
