package relayd

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Waiting after a reload or a restart until relayd's hosts are up again,
// and telling from the check counters whether a reload took effect.

// waited is the end of a wait for the hosts to be up after a reload or a
// restart.
type waited struct {
	Final     Summary // the last show hosts read
	Read      bool    // a read succeeded
	Reads     int
	Restarted bool // check counters started again: the reload took effect
	CanTell   bool // counters were there before to tell a reload by
	Pending   []pendingHost
	Err       error // the last read's error
	Died      bool  // relayd stopped answering after a reload
	TimedOut  bool
	Took      time.Duration
}

// pendingHost is a host a wait is still waiting for.
type pendingHost struct {
	Table Ref
	Host  Ref
	State State
	Was   State // before, where known
}

func (p pendingHost) String() string {
	return fmt.Sprintf("%s in %s (id %d): %s", p.Host.Name, p.Table.Name, p.Table.ID, p.State)
}

// pending lists the hosts not settled in now: unknown (not checked since
// relayd started or reloaded), or up before and not up now. A host down
// before may stay down: it is reported, not waited for.
func pending(before *Summary, now Summary) []pendingHost {
	var was map[hostPath]HostChange
	if before != nil {
		was, _ = hostsByPath(*before)
	}
	cur, order := hostsByPath(now)
	var out []pendingHost
	for _, k := range order {
		h := cur[k]
		st := h.Before // hostsByPath keeps the state in Before
		b, ok := was[k]
		if st == StateUnknown || (ok && b.Before == StateUp && st != StateUp) {
			out = append(out, pendingHost{Table: h.Table, Host: h.Host, State: st})
		}
	}
	return out
}

// restarted says relayd built its whole set of hosts anew between two
// show hosts reads, as a reload or a restart does (config.c
// config_gethost: every host starts with zeroed counters, unknown until
// its first check), without matching hosts by name or id: an edit that
// renames hosts or renumbers them reloads all the same. It takes every
// host now to be fresh (no check line yet, or fewer checks than the most
// any host had before) and at least one of them not disabled: a `host
// disable` by someone else resets that host's counters alone (pfe.c
// disable_host) and leaves the others counting, so it is no proof.
// counted says before had counters to tell it by.
func restarted(before, now Summary) (yes, counted bool) {
	var most uint64
	eachHost(before, func(h *Host) {
		if h.Checks != nil {
			counted = true
			most = max(most, h.Checks.Total)
		}
	})
	if !counted {
		return false, false
	}
	fresh, live := true, false
	eachHost(now, func(h *Host) {
		if h.Checks != nil && h.Checks.Total >= most {
			fresh = false
		}
		live = live || h.State != StateDisabled
	})
	return fresh && live, true
}

// anyChecked says some host has completed a check: its counters can tell a
// reload.
func anyChecked(s Summary) bool {
	_, counted := restarted(s, Summary{})
	return counted
}

// relaySessions sums the sessions show relays counts: they only grow
// while a relay lives, and start from zero when a reload builds it anew
// (relayctl prints no statistics while a relay has counted none).
func relaySessions(s Summary) uint64 {
	var n uint64
	for _, r := range s.Relays {
		if r.Stats != nil {
			n += r.Stats.Total
		}
	}
	return n
}

// eachHost calls fn once per host id.
func eachHost(s Summary, fn func(h *Host)) {
	seen := map[uint32]bool{}
	s.walk(func(_ Ref, _ *Table, h *Host) {
		if h != nil && !seen[h.ID] {
			seen[h.ID] = true
			fn(h)
		}
	})
}

// waitHosts reads show hosts until the hosts are settled, for at most
// Config.Wait. After a reload (reload true) it also waits for the check
// counters to start again, which is the only sign that the reload took
// effect, and gives up at once when relayd stops answering: a reload does
// not restart the process that owns the control socket. After a restart
// relayd may take a moment to answer, so errors are waited through.
func (c *Command) waitHosts(ctx context.Context, h hostIO, before *Summary, reload bool) waited {
	start := c.now()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Wait)
	defer cancel()
	interval := min(max(c.cfg.Wait/30, 20*time.Millisecond), 2*time.Second)
	var w waited
	for {
		out, err := h.show(ctx, viewHosts)
		w.Reads++
		if err != nil {
			if ctx.Err() != nil && w.Err != nil {
				break // the bound cut this read short: keep the error before it
			}
			w.Err = err
			if reload && notRunning(err) {
				w.Died = true
				break
			}
		} else {
			w.Err, w.Read, w.Final = nil, true, out.Summary
			w.Pending = pending(before, out.Summary)
			if reload && before != nil {
				w.Restarted, w.CanTell = restarted(*before, out.Summary)
			}
			if len(w.Pending) == 0 && (!reload || w.Restarted || !w.CanTell) {
				break
			}
		}
		select {
		case <-ctx.Done():
			w.TimedOut = true
		case <-time.After(interval):
		}
		if w.TimedOut {
			break
		}
	}
	w.Took = c.now().Sub(start)
	return w
}

func pendingList(p []pendingHost, n int) string {
	var s []string
	for i, h := range p {
		if i == n {
			s = append(s, fmt.Sprintf("and %d more", len(p)-n))
			break
		}
		s = append(s, h.String())
	}
	return strings.Join(s, ", ")
}

// hostsUp counts the hosts of a show view, each id once.
func hostsUp(s Summary) (up, total int) {
	seen := map[uint32]bool{}
	s.walk(func(_ Ref, _ *Table, h *Host) {
		if h == nil || seen[h.ID] {
			return
		}
		seen[h.ID] = true
		total++
		if h.State == StateUp {
			up++
		}
	})
	return up, total
}

// stillDown lists the hosts not up both before and after: not the
// reload's doing, but worth seeing.
func stillDown(before, after Summary) []pendingHost {
	was, _ := hostsByPath(before)
	now, order := hostsByPath(after)
	var out []pendingHost
	for _, k := range order {
		b, ok := was[k]
		h := now[k]
		if ok && b.Before != StateUp && h.Before != StateUp && h.Before != StateUnknown {
			out = append(out, pendingHost{Table: h.Table, Host: h.Host, State: h.Before, Was: b.Before})
		}
	}
	return out
}

func upText(s Summary) string {
	up, total := hostsUp(s)
	return fmt.Sprintf("%d of %d hosts up", up, total)
}
