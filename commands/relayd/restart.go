package relayd

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/hostcmd"
)

// restart: the failover runbook, one step at a time.

// stepState is where a runbook step is.
type stepState int

const (
	stepWaiting stepState = iota // not reached
	stepRunning
	stepOK
	stepFailed
)

// step is one step of the runbook.
type step struct {
	Name    string // what it does, for people
	Command string // the command as typed on the host
	State   stepState
	Took    time.Duration
	Note    string // what came of it
}

// runbook is one host's restart, step by step.
type runbook struct {
	Host   bot.Host
	Target string
	Of     string // " (host 1 of 2 in lbs)"
	Set    settings
	Conf   confFile // the file relayd runs with, from the config check
	Steps  []step
	Failed int // the failed step, -1 when none failed
	// LeftIn is what the failed step left CARP and relayd in, when the
	// reply cannot tell it from Demoted.
	LeftIn  string
	Check   CheckResult
	Before  *Summary // show hosts before, nil when relayd did not answer
	BeforeE error
	Demoted bool // the CARP demotion is in effect as far as the bot knows
	// After is what relayd answered after a failed rcctl restart: the
	// state the host is left in.
	After              string
	AfterUp, AfterDown bool
	Wait               waited
	Recovery           []string // commands on the host, in order
	Next               string   // what to do in chat
	Took               time.Duration
}

// OK: every step ran.
func (rb *runbook) OK() bool { return rb.Failed == -1 }

// Acted: the config check passed, so the runbook went on to the host.
func (rb *runbook) Acted() bool { return rb.Check.OK }

func (rb *runbook) reply() bot.Reply { return restartReply(rb) }

// pollRetry bounds how long relayctl poll is retried while the restarted
// relayd has not created its control socket yet. It is its own bound, not
// a share of Config.Wait: how soon relayd listens does not depend on how
// long its hosts may take (a short Wait made a loaded machine's second
// poll miss its turn).
const pollRetry = 10 * time.Second

// restartStep is one step of the runbook, declared once: what it is
// called, the command as a person would type it on the host, what it
// does, and, when it fails, what the host is left in and how to recover.
type restartStep struct {
	name    string
	command string
	// run does the step; it may correct its own command line (the config
	// check learns the file relayd runs with).
	run func(ctx context.Context, st *step) (note string, err error)
	// recover fills in the runbook's way out after this step failed:
	// Next, and the commands of Recovery.
	recover func(rb *runbook)
}

// restartSteps are the failover runbook for one host, in order.
func (c *Command) restartSteps(h hostIO, rb *runbook) []restartStep {
	s := h.set
	name := h.Host.Name
	undemote := h.Shown(s.undemoteArgv())
	// After relayd restarted but its hosts were not seen up: undemote
	// once they are.
	restarted := func(rb *runbook) {
		rb.Recovery = []string{undemote}
		rb.Next = fmt.Sprintf("relayd was restarted. Check it with /relayd status %s; once the hosts are up, undemote so that %s takes its addresses back.", name, name)
	}
	return []restartStep{{
		name:    "config check",
		command: h.Shown(s.checkArgv(confFile{})),
		run: func(ctx context.Context, st *step) (string, error) {
			rb.Conf = h.confFile(ctx)
			st.Command = h.Shown(s.checkArgv(rb.Conf))
			res, err := h.check(ctx, rb.Conf)
			rb.Check = res
			if err != nil {
				return "", err
			}
			if !res.OK {
				return "", bot.Errorf(bot.EFAILED, "%s", checkFailure(res))
			}
			// What relayd looks like before, to wait for afterwards.
			if before, err := h.show(ctx, viewHosts); err == nil {
				rb.Before = &before.Summary
			} else {
				rb.BeforeE = err
			}
			return "configuration OK: " + rb.Conf.shown(), nil
		},
		recover: func(rb *runbook) {
			rb.Next = "Nothing was changed: relayd keeps running its current configuration and CARP was not touched. Fix the configuration, test it with /relayd check " + name + ", then restart again."
		},
	}, {
		name:    fmt.Sprintf("CARP demote by %d (the peer takes over)", s.demote),
		command: h.Shown(s.demoteArgv()),
		run: func(ctx context.Context, _ *step) (string, error) {
			if _, err := h.plain(ctx, ifconfigTimeout, s.demoteArgv()); err != nil {
				return "", err
			}
			rb.Demoted = true
			return fmt.Sprintf("demoted by %d", s.demote), nil
		},
		recover: func(rb *runbook) {
			rb.LeftIn = fmt.Sprintf("CARP group %s most likely not demoted (ifconfig failed); relayd untouched", s.carpGroup)
			rb.Next = fmt.Sprintf("relayd was not touched. ifconfig failed, so the demote counter of group %s is most likely unchanged: %s shows it (carp demote count).", s.carpGroup, h.Shown([]string{s.ifconfig, "-g", s.carpGroup}))
		},
	}, {
		name:    "restart relayd",
		command: h.Shown(s.restartArgv()),
		run: func(ctx context.Context, _ *step) (string, error) {
			out, err := h.plain(ctx, rcctlTimeout, s.restartArgv())
			if err != nil {
				rb.After, rb.AfterUp, rb.AfterDown = c.probe(ctx, h)
				return "", err
			}
			return strings.Join(nonBlank(out.Stdout), " "), nil
		},
		recover: func(rb *runbook) {
			rb.Recovery = []string{h.Shown(s.checkArgv(rb.Conf)), h.Shown([]string{s.rcctl, "start", "relayd"}), undemote}
			switch {
			case rb.AfterUp:
				rb.Recovery = []string{undemote}
				rb.Next = fmt.Sprintf("relayd answers on %s although rcctl failed. Undemote once /relayd status %s shows the hosts up.", name, name)
			case rb.AfterDown:
				rb.Next = fmt.Sprintf("relayd is not running on %s. Start it once relayd -n passes, then undemote once /relayd status %s shows the hosts up.", name, name)
			default:
				rb.Next = fmt.Sprintf("Whether relayd runs on %s is unknown (%s). Check with /relayd status %s, start it if it is not running, then undemote once the hosts are up.", name, rb.After, name)
			}
		},
	}, {
		name:    "poll (check every host now)",
		command: h.Shown(s.relayctlArgv("poll")),
		run:     func(ctx context.Context, _ *step) (string, error) { return c.pollRetrying(ctx, h) },
		recover: restarted,
	}, {
		name:    "wait until the hosts are up",
		command: fmt.Sprintf("%s, at most %s", h.Shown(s.relayctlArgv("show", "hosts")), c.cfg.Wait),
		run: func(ctx context.Context, _ *step) (string, error) {
			rb.Wait = c.waitHosts(ctx, h, rb.Before, false)
			w := rb.Wait
			up, total := hostsUp(w.Final)
			switch {
			case !w.Read:
				return "", bot.Errorf(bot.EFAILED, "relayd did not answer within %s: %s", c.cfg.Wait, hostcmd.ErrText(w.Err))
			case len(w.Pending) > 0:
				return "", bot.Errorf(bot.EFAILED, "%d of %d hosts up after %s, still waiting for %s", up, total, c.cfg.Wait, pendingList(w.Pending, 3))
			}
			return fmt.Sprintf("%d of %d hosts up", up, total), nil
		},
		recover: restarted,
	}, {
		name:    "CARP undemote",
		command: undemote,
		run: func(ctx context.Context, _ *step) (string, error) {
			if _, err := h.plain(ctx, ifconfigTimeout, s.undemoteArgv()); err != nil {
				return "", err
			}
			rb.Demoted = false
			return "undemoted", nil
		},
		recover: func(rb *runbook) {
			rb.Recovery = []string{undemote}
			rb.Next = fmt.Sprintf("relayd was restarted and its hosts are up, but %s stays backup until it is undemoted.", name)
		},
	}}
}

// restart runs the runbook on one host, a step at a time; a failed step
// stops it.
func (c *Command) restart(ctx context.Context, stream bot.Stream, r request, i int, h hostIO) *runbook {
	rb := &runbook{Host: h.Host, Target: r.Target, Of: hostOf(r, i), Set: h.set, Failed: -1}
	steps := c.restartSteps(h, rb)
	for _, st := range steps {
		rb.Steps = append(rb.Steps, step{Name: st.name, Command: st.command})
	}
	start := c.now()
	defer func() { rb.Took = c.now().Sub(start) }()
	for n, def := range steps {
		st := &rb.Steps[n]
		st.State = stepRunning
		stream.Progress(runbookProgress(rb))
		t0 := c.now()
		var note string
		err := ctx.Err()
		if err == nil {
			note, err = def.run(ctx, st)
		} else {
			err = bot.Errorf(bot.EFAILED, "canceled before it ran")
		}
		st.Took = c.now().Sub(t0)
		if err != nil {
			st.State, st.Note, rb.Failed = stepFailed, hostcmd.ErrText(err), n
			def.recover(rb)
			return rb
		}
		st.State, st.Note = stepOK, note
	}
	return rb
}

// pollRetrying runs relayctl poll, retrying while relayd has no control
// socket yet: rcctl returns once the daemon has forked, which can be
// before it listens.
func (c *Command) pollRetrying(ctx context.Context, h hostIO) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, pollRetry)
	defer cancel()
	var last error
	for {
		_, _, err := h.relayctl(ctx, "poll")
		if err == nil {
			return "command succeeded", nil
		}
		if ctx.Err() != nil && last != nil {
			return "", last
		}
		last = err
		if !notRunning(err) {
			return "", err
		}
		select {
		case <-ctx.Done():
			return "", last
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// probe says whether relayd answers, after a failed step.
func (c *Command) probe(ctx context.Context, h hostIO) (what string, up, down bool) {
	out, err := h.show(ctx, viewSummary)
	if err != nil {
		return hostcmd.ErrText(err), false, notRunning(err)
	}
	n, total := hostsUp(out.Summary)
	return fmt.Sprintf("relayd answers on %s: %d of %d hosts up", h.Host.Name, n, total), true, false
}

func checkFailure(res CheckResult) string {
	if len(res.Errors) > 0 {
		return fmt.Sprintf("%d errors in the configuration, the first %s", len(res.Errors), res.Errors[0])
	}
	var msgs []string
	for _, m := range res.Messages {
		msgs = append(msgs, strings.TrimSpace(m.Text))
	}
	return "the configuration does not load: " + strings.Join(msgs, "; ")
}
