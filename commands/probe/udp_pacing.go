package probe

import (
	"context"
	"slices"
	"time"
)

// Pacing against ICMP rate limits.
//
// Linux answers at most a burst of about six ICMP errors per destination and
// then one per icmp_ratelimit (1 s by default for IPv4): a token bucket per
// peer. A probe of a closed port that finds the bucket empty draws no answer
// and looks exactly like an open or filtered port. Silence only counts once
// it is witnessed.
//
// A round sends the silent candidates back to back, then two probes of a
// port already known closed (the controls). The target handles them in
// order. A candidate is witnessed (not closed) only when at least two probes
// after it in the same round drew ICMP errors, and the round went out in a
// span far shorter than the token interval. Why two: had the candidate been
// closed and found the bucket below one token, the bucket would have had to
// gain more than one whole token within the round for two later probes to
// be answered, and the span rules that out. One later answer would not be
// proof: the next token can fall due between the candidate and the control.
//
// Every closed port costs one token whatever we do; a witness costs two
// tokens for however many silent candidates precede them. Rounds that find
// no token are free for the target, so we look often around the time the
// next token is due (learned from the spacing of past grants) and never wait
// a fixed long timeout. When only the first control is answered (one token
// was there, not two), the next round waits until two should have accrued.

const (
	udpRoundBatch     = 4                     // candidates per round, before the control, at first
	udpRoundMax       = 64                    // and at most, while tokens are plentiful
	udpPollUnknown    = 25 * time.Millisecond // look this often while the token interval is unknown
	udpPollFloor      = 10 * time.Millisecond // and never more often than this
	udpPollCeil       = 50 * time.Millisecond //
	udpGiveUpAfter    = 10 * time.Second      // no ICMP error for this long: the target stopped answering
	udpRoundWaitFloor = 10 * time.Millisecond // wait for a round's answers at least this long
	udpRoundWaitAdd   = 5 * time.Millisecond  // plus four round trips
	udpIntervalMax    = 5 * time.Second       // ICMP rate limits are seconds at most
	udpSpacingKeep    = 5                     // grant spacings kept for the median
	udpIntervalSlip   = 9                     // first look at 9/10 of the expected interval
	udpControls       = 2                     // control probes closing each round: a witness needs two answers
	udpWitnessSpan    = 2 * time.Millisecond  // a round sent over a longer span witnesses nothing
	udpStallRounds    = 8                     // answered rounds in a row that decide nothing: stop
)

// pacer decides when the next round goes out.
type pacer struct {
	start     time.Time
	lastRound time.Time
	lastGrant time.Time     // send time of the last round that drew an ICMP error
	missed    bool          // a round since lastGrant found no token
	interval  time.Duration // learned token interval; 0 while unknown
	spacings  []time.Duration
	// lastSpacing is the time between the last two grants, whatever the
	// rounds looked like: the fallback when the interval is not learned.
	lastSpacing time.Duration
	double      bool // the last grant was one token where two were needed
}

func (p *pacer) poll() time.Duration {
	if p.interval == 0 {
		return udpPollUnknown
	}
	return min(max(p.interval/40, udpPollFloor), udpPollCeil)
}

// next is when the next round should be sent.
func (p *pacer) next() time.Time {
	if p.lastRound.IsZero() {
		return p.start // a token has accrued during the first pass's wait
	}
	at := p.lastRound.Add(p.poll())
	if p.lastGrant.IsZero() {
		return at
	}
	if p.double {
		// Two tokens, and no early look: an early look takes the one
		// token that is there and the wait starts again.
		if base := max(p.interval, p.lastSpacing); base > 0 {
			if due := p.lastGrant.Add(base * 22 / 10); due.After(at) {
				at = due
			}
		}
		return at
	}
	if p.interval > 0 {
		if due := p.lastGrant.Add(p.interval * udpIntervalSlip / 10); due.After(at) {
			at = due
		}
	}
	return at
}

// record notes a round sent at t, and whether it drew an ICMP error.
func (p *pacer) record(t time.Time, grant bool) {
	p.lastRound = t
	if !grant {
		p.missed = true
		return
	}
	if !p.lastGrant.IsZero() {
		spacing := t.Sub(p.lastGrant)
		p.lastSpacing = spacing
		switch {
		case p.missed:
			// Found by looking often: the spacing is the token interval
			// to within one poll.
			p.spacings = append(p.spacings, spacing)
			if len(p.spacings) > udpSpacingKeep {
				p.spacings = p.spacings[1:]
			}
			sorted := slices.Sorted(slices.Values(p.spacings))
			p.interval = min(sorted[len(sorted)/2], udpIntervalMax)
		case p.interval > spacing:
			// The token was there at the first look, so a token takes no
			// longer than this spacing: look earlier next time; misses
			// will measure it again.
			p.interval = spacing
		}
	}
	p.lastGrant = t
	p.missed = false
}

// exhausted reports that the target has sent no ICMP error for so long that
// more rounds are pointless (it went away, or a firewall changed).
func (p *pacer) exhausted(now time.Time) bool {
	since := p.start
	if p.lastGrant.After(since) {
		since = p.lastGrant
	}
	return now.Sub(since) > max(udpGiveUpAfter, 5*p.interval)
}

// pace runs witness rounds over the silent candidates until each is decided
// or witnessed, ctx ends, or the target stops answering. It returns the
// ports still without an answer (witnessed or not), sorted.
func (u *udpScan) pace(ctx context.Context, cands []int) []int {
	p := &pacer{start: time.Now()}
	var done []int // witnessed: no longer candidates, still silent
	t := u.target.clone()
	b := new(udpBuffers)
	size := udpRoundBatch
	maxSize := udpRoundMax
	stalled := 0
	progress := false
	// Rounds that found fewer tokens than probes of the known-closed
	// port: a limit does that to most rounds, the path only to a few.
	rounds, short := 0, 0
	if u.limiter != nil {
		maxSize = max(min(maxSize, u.limiter.Burst()-1), 1)
	}
	for len(cands) > 0 && ctx.Err() == nil && !p.exhausted(time.Now()) {
		sleepCtx(ctx, time.Until(p.next()))
		control := u.control()
		if ctx.Err() != nil || control < 0 {
			break
		}
		batch := cands[:min(size, len(cands), maxSize)]
		if u.wait(ctx, len(batch)+udpControls) != nil {
			break
		}
		progress = false
		sent, last, witnessed, ok := u.round(ctx, t, b, batch, control)
		grant := last >= 0
		if ctx.Err() != nil {
			break
		}
		if !ok {
			p.lastRound = sent // could not open the control socket; try again later
			continue
		}
		p.record(sent, grant)
		rounds++
		if last < len(batch)+udpControls-1 {
			short++
		}
		// The last control answering means tokens were left over: the
		// target is not short of them (no limit, or a fast one), so
		// witness more candidates per round. A miss means tokens are
		// scarce, and a short round wastes fewer probes.
		if last == len(batch)+udpControls-1 {
			size = min(2*size, maxSize)
		} else if !grant {
			size = udpRoundBatch
		}
		if !grant {
			// A port known closed stayed silent: its error was withheld.
			// (Silent-then-closed candidates are flagged in decide.)
			u.mu.Lock()
			u.rateLimited = true
			u.mu.Unlock()
		}
		// A witness proves a port not closed unless its own probe (or
		// the ICMP error it drew) was lost on the way: on a lossy path a
		// port needs as many witnesses as a silent TCP port needs tries.
		limited := short >= 3 && 2*short > rounds
		u.icmpLimited = limited
		need := min(u.ctl.udpWitnesses(limited), udpMaxPasses)
		var proven []int
		for _, i := range witnessed {
			u.witnessCount[i]++
			if u.witnessCount[i] >= need {
				proven = append(proven, i)
			} else {
				u.witnessed[i] = false
			}
		}
		done = append(done, proven...)
		before := len(cands)
		cands = slices.DeleteFunc(cands, func(i int) bool {
			return u.results[i].State != 0 || slices.Contains(proven, i)
		})
		progress = progress || len(witnessed) > 0
		progress = progress || len(cands) < before
		// Answered, yet nothing decided: the one token went to the first
		// control. Wait for two.
		p.double = grant && !progress
		if grant && !progress {
			stalled++
		} else if progress {
			stalled = 0
		}
		if stalled >= udpStallRounds {
			break // the rest stay unwitnessed: reported as unconfirmed
		}
	}
	rest := append(cands, done...)
	slices.Sort(rest)
	return rest
}

// round sends one probe to each candidate and then udpControls probes to
// the control port, back to back, waits for the answers, and reports which
// candidates are witnessed (silent, with two later probes of the round
// answered by ICMP errors, all sent within udpWitnessSpan) and the send
// position of the last probe that drew an ICMP error (-1 if none: no token
// was there). ok is false if a control probe could not be sent, so the
// round proves nothing.
func (u *udpScan) round(ctx context.Context, t *sockTarget, b *udpBuffers, batch []int, control int) (sent time.Time, last int, witnessed []int, ok bool) {
	order := slices.Clone(batch)
	for range udpControls {
		order = append(order, control)
	}
	probes := make([]*udpProbe, len(order))
	defer func() {
		for _, p := range probes {
			if p != nil {
				p.close()
			}
		}
	}()
	// Sockets first, so that the sends below follow each other within
	// microseconds.
	for k, i := range order {
		p, st, rs, _ := openUDP(t.at(u.ports[i]), t.family, u.ports[i])
		if st != 0 && k < len(batch) {
			u.tries[i]++
			now := time.Now()
			u.decide(i, udpAnswer{state: st, reason: rs, at: now}, now)
		}
		probes[k] = p // nil after a local error: the round goes on without it
	}
	answers := make([]udpAnswer, len(order))
	got := make([]bool, len(order))
	sent = time.Now()
	for k, p := range probes {
		if p == nil {
			continue
		}
		if k < len(batch) {
			u.tries[order[k]]++
		}
		answers[k], got[k] = p.send(b.oob[:])
	}
	span := time.Since(sent)
	// Wait for the answers, looking every millisecond: the target answers
	// in order, so once the last control has its answer every earlier one
	// is in too, and a round that found tokens ends at once. Reading as
	// they arrive also keeps the RTT estimate honest (an answer read late
	// would inflate it, and with it every later wait).
	wait := min(max(4*time.Duration(u.maxRTT.Load())+udpRoundWaitAdd, udpRoundWaitFloor), u.spec.Timeout)
	deadline := sent.Add(wait)
	lastCtl := len(order) - 1
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for k, p := range probes {
			if p != nil && !got[k] {
				answers[k], got[k] = p.poll(p.fd, b.buf[:], b.oob[:])
			}
		}
		if got[lastCtl] || probes[lastCtl] == nil {
			break
		}
		sleepCtx(ctx, time.Millisecond)
	}
	if ctx.Err() != nil {
		return sent, -1, nil, false
	}
	last = -1
	after := make([]int, len(order)+1) // ICMP errors drawn by probes after position k
	for k, p := range probes {
		if p == nil {
			continue
		}
		if !got[k] {
			answers[k], got[k] = p.poll(p.fd, b.buf[:], b.oob[:])
		}
		if got[k] && answers[k].icmpError() {
			last = k
		}
	}
	for k := len(order) - 1; k >= 0; k-- {
		after[k] = after[k+1]
		if k+1 < len(order) && got[k+1] && answers[k+1].icmpError() {
			after[k]++
		}
	}
	// Two controls back to back: the first silent and the second answered
	// cannot be the target's rate limit (a token for the second was there
	// for the first too); the path lost it.
	c1, c2 := len(batch), len(batch)+1
	if probes[c1] != nil && probes[c2] != nil && span <= udpWitnessSpan {
		switch {
		case !got[c1] && got[c2] && answers[c2].icmpError():
			u.ctl.udpLost(1, 1)
		case got[c1] && got[c2]:
			u.ctl.udpLost(0, 2)
		}
	}
	tight := span <= udpWitnessSpan
	for k, i := range batch {
		switch {
		case probes[k] == nil || u.results[i].State != 0:
		case got[k]:
			u.decide(i, answers[k], sent)
		case tight && after[k] >= 2:
			u.witnessed[i] = true
			witnessed = append(witnessed, i)
		}
	}
	ok = true
	for _, p := range probes[len(batch):] {
		ok = ok && p != nil
	}
	return sent, last, witnessed, ok
}
