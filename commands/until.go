package commands

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/probe"
	"github.com/opsbot/opsbot/internal/text"
)

// Waiting: /portcheck HOST PORT until open|closed [for 10m].
const (
	untilDefault = 10 * time.Minute
	untilLongest = 24 * time.Hour
	// The first re-check comes after untilFirst; each wait doubles up to
	// untilSlowest, so a port that comes back is seen within 30 s and a
	// long wait costs a probe every 30 s.
	untilFirst   = time.Second
	untilSlowest = 30 * time.Second
)

// untilArgs is the "until STATE [for D]" part of a /portcheck.
type untilArgs struct {
	open bool // wait for open; false: for closed (anything but open)
	dur  time.Duration
}

func (u untilArgs) want() string {
	if u.open {
		return "open"
	}
	return "closed"
}

// cutUntil takes "until open|closed [for D]" off the words (after the
// host); ok is false when there is no "until".
func cutUntil(args []string) (rest []string, u untilArgs, ok bool, err error) {
	at := -1
	for i := 1; i < len(args); i++ {
		if strings.EqualFold(args[i], "until") {
			at = i
			break
		}
	}
	if at < 0 {
		return args, u, false, nil
	}
	rest = append([]string(nil), args[:at]...)
	words := args[at+1:]
	if len(words) == 0 {
		return nil, u, true, bot.Errorf(bot.EINVALID, "until needs a state: until open or until closed, optionally for 10m")
	}
	switch strings.ToLower(words[0]) {
	case "open", "up":
		u.open = true
	case "closed", "down":
	default:
		return nil, u, true, bot.Errorf(bot.EINVALID, "until %q: accepted are until open and until closed", text.TruncateRunes(words[0], 40))
	}
	u.dur = untilDefault
	words = words[1:]
	for len(words) > 0 {
		if !strings.EqualFold(words[0], "for") {
			rest = append(rest, words[0])
			words = words[1:]
			continue
		}
		if len(words) < 2 {
			return nil, u, true, bot.Errorf(bot.EINVALID, "for needs a duration, like for 10m (at most %s)", waitText(untilLongest))
		}
		if u.dur, err = parseDuration("for", words[1], time.Second, untilLongest); err != nil {
			return nil, u, true, err
		}
		words = words[2:]
	}
	return rest, u, true, nil
}

// parseUntil validates a /portcheck ... until request.
func (c *Portcheck) parseUntil(args []string) (targetArgs, untilArgs, bool, error) {
	rest, u, ok, err := cutUntil(args)
	if !ok || err != nil {
		return targetArgs{}, u, ok, err
	}
	ta, err := c.parseArgs(rest)
	if err != nil {
		return ta, u, true, err
	}
	if ta.vantage != "" {
		return ta, u, true, bot.Errorf(bot.EINVALID, "until waits from the bot's own host: drop from %s", ta.vantage)
	}
	if isSubnet(ta.host) {
		return ta, u, true, bot.Errorf(bot.EINVALID, "until watches one address, and %s is a subnet: name one host", text.TruncateRunes(ta.host, 60))
	}
	if len(ta.ports) != 1 {
		return ta, u, true, bot.Errorf(bot.EINVALID, "until waits for one port, not %d: give one", len(ta.ports))
	}
	return ta, u, true, nil
}

// runUntil probes one port of the first allowed address with backoff
// until it is in the wanted state or the time is up, keeping one
// progress message current and posting each change of state.
func (c *Portcheck) runUntil(ctx context.Context, req bot.Request, ta targetArgs, u untilArgs) (bot.Reply, error) {
	tg, err := c.untilTarget(ctx, req, ta)
	if err != nil {
		return bot.Reply{}, err
	}
	timeout := ta.timeout
	if timeout == 0 {
		timeout = 3 * time.Second
	}
	stream := req.Stream
	if stream == nil {
		stream = bot.NopStream{}
	}
	now, sleep := c.clock()
	ap := netip.AddrPortFrom(tg.Addrs[0], ta.ports[0])
	who := ap.Addr().String()
	if tg.Name != "" {
		who = tg.Name + " (" + ap.Addr().String() + ")"
	}
	start := now()
	deadline := start.Add(u.dur)
	wait := untilFirst
	var last probe.Result
	checks := 0
	for {
		r := c.check(ctx, ap, ta.proto, probe.Options{Timeout: timeout})
		if ctx.Err() != nil {
			break
		}
		checks++
		reached := (r.State == probe.Open) == u.open
		if checks > 1 && r.State != last.State {
			// A new message in the thread, naming the asker: the platform
			// notifies them (an edit of the progress message would not).
			post := bot.Reply{Status: bot.StatusInfo, Title: fmt.Sprintf("%s %d/%s is now %s (was %s)", who, ap.Port(), ta.proto, r.State, last.State),
				Lines: []string{portLine(tg.Name, r, timeout)}, Mention: bot.MentionOf(req)}
			if reached {
				post.Status = bot.StatusOK
				post.Title += fmt.Sprintf(": %s after %s", u.want(), waitText(now().Sub(start)))
			}
			stream.Post(post)
		}
		last = r
		if reached {
			reply := bot.Reply{Status: bot.StatusOK, Title: fmt.Sprintf("%s %d/%s is %s after %s (%d checks)", who, ap.Port(), ta.proto, r.State, waitText(now().Sub(start)), checks),
				Lines: []string{portLine(tg.Name, r, timeout)}}
			if checks == 1 {
				reply.Title = fmt.Sprintf("%s %d/%s is already %s", who, ap.Port(), ta.proto, r.State)
			}
			reply.Text = untilNotes(tg)
			return reply, nil
		}
		left := deadline.Sub(now())
		if left <= 0 {
			break
		}
		stream.Progress(bot.Reply{Status: bot.StatusRunning,
			Title: fmt.Sprintf("Waiting for %s %d/%s to be %s: %s, %d checks, %s of %s", who, ap.Port(), ta.proto, u.want(), r.State, checks, waitText(now().Sub(start)), waitText(u.dur)),
			Lines: []string{portLine(tg.Name, r, timeout)}})
		if err := sleep(ctx, min(wait, left)); err != nil {
			break
		}
		wait = min(2*wait, untilSlowest)
	}
	reply := bot.Reply{Status: bot.StatusNegative, Title: fmt.Sprintf("%s %d/%s still %s after %s (%d checks): not %s", who, ap.Port(), ta.proto, last.State, waitText(now().Sub(start)), checks, u.want())}
	if last.State != 0 {
		reply.Lines = []string{portLine(tg.Name, last, timeout)}
	}
	if ctx.Err() != nil {
		reply.Title = fmt.Sprintf("%s %d/%s: stopped waiting after %s (%d checks), last %s", who, ap.Port(), ta.proto, waitText(now().Sub(start)), checks, last.State)
	} else {
		// The time is up: said in the thread too, naming the asker.
		stream.Post(bot.Reply{Status: bot.StatusNegative, Title: fmt.Sprintf("Time is up: %s %d/%s is still %s after %s, not %s", who, ap.Port(), ta.proto, last.State, waitText(now().Sub(start)), u.want()),
			Mention: bot.MentionOf(req)})
	}
	reply.Text = untilNotes(tg)
	return reply, nil
}

// untilTarget is the one address until watches: an inventory host is its
// address; a subnet or a group is refused.
func (c *Portcheck) untilTarget(ctx context.Context, req bot.Request, ta targetArgs) (bot.Target, error) {
	tg, set, many, err := pickTargets(ctx, req, c.Name(), c.targets, c.vantages.Hosts, &ta, c.addrLimit(), 1)
	if err != nil {
		return tg, err
	}
	if many {
		return tg, oneTarget(set, "until")
	}
	return tg, nil
}

// waitText is a wait in whole seconds: "7s", "5m", "1h30m".
func waitText(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func untilNotes(tg bot.Target) string {
	var notes []string
	if len(tg.Addrs) > 1 {
		notes = append(notes, fmt.Sprintf("%s has %d allowed addresses; until watches the first (name an address to watch another).", tg.Host, len(tg.Addrs)))
	}
	if len(tg.Skipped) > 0 {
		notes = append(notes, "Not checked (policy): "+joinSemicolon(tg.Skipped))
	}
	return strings.Join(notes, "\n")
}

// clock is the time and the wait /portcheck until uses: the real ones
// unless a test set its own.
func (c *Portcheck) clock() (func() time.Time, func(context.Context, time.Duration) error) {
	now, sleep := c.now, c.sleep
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		}
	}
	return now, sleep
}
