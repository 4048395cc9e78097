package relayd

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/hostcmd"
)

// changed is one host's enable or disable, reload or restart.
type changed interface {
	hostcmd.Result
	reply() bot.Reply
}

// change runs an action that changes relayd (enable/disable, reload,
// restart) host by host: a group is never changed all at once, and the
// first failure stops it, so that the peer of a CARP pair is never
// restarted while the first host is still down.
func (c *Command) change(ctx context.Context, req bot.Request, r request) bot.Reply {
	ro := hostcmd.Rollout[changed]{Batch: 1, Change: func(ctx context.Context, i int, h bot.Host) changed {
		switch r.Sub {
		case "reload":
			return c.reload(ctx, req.Stream, r, i, c.io(h))
		case "restart":
			return c.restart(ctx, req.Stream, r, i, c.io(h))
		}
		return c.toggle(ctx, r, c.io(h))
	}}
	done := ro.Run(ctx, r.Hosts)
	if !r.Group && len(done.Done) == 1 {
		return done.Done[0].reply()
	}
	return groupChangeReply(r, done)
}

// --- enable / disable -------------------------------------------------

// match is one object an enable or disable acts on, as show summary
// printed it.
type match struct {
	Ref
	Status   string
	State    State
	Table    Ref    // a host's table
	Users    []Ref  // the redirects and relays using the table (of a host)
	ParentID uint32 // a host that takes its state from host ParentID
}

// lookup is what show summary says about ID|NAME on one host: what the
// action will change, and what it will not.
type lookup struct {
	Host    bot.Host
	Matches []match
	Others  []match  // tables, or hosts with a parent, of the same name that relayd will leave alone
	Near    []string // names relayd knows that look like what was typed
	// Parent is the host relayd finds when it takes its state from a
	// parent: relayd refuses to change it (command failed), so the bot
	// refuses first.
	Parent *match
	Err    error // show summary could not be read
}

func (c *Command) lookup(ctx context.Context, h hostIO, o object) lookup {
	out, err := h.show(ctx, viewSummary)
	if err != nil {
		return lookup{Host: h.Host, Err: err}
	}
	l := findObjects(out.Summary, o)
	l.Host = h.Host
	return l
}

// findObjects finds what relayd will change for o (pfe.c): a redirect or
// table by id that one; a redirect or table by name the first of that
// name (rdr_findbyname, table_findbyname; redirect names are unique, table
// names are not); a host by id that host, by name every host of that name
// in every table (the host_byname loop of disable_host and enable_host).
func findObjects(s Summary, o object) lookup {
	var l lookup
	hit := func(r Ref) bool {
		if o.ByID {
			return r.ID == o.ID
		}
		return r.Name == o.Name
	}
	users := map[uint32][]Ref{} // table id -> users
	var tables []*Table
	seenTable := map[uint32]bool{}
	s.walk(func(parent Ref, t *Table, h *Host) {
		if h != nil {
			return
		}
		if parent.Type != "" && !containsRef(users[t.ID], parent) {
			users[t.ID] = append(users[t.ID], parent)
		}
		if !seenTable[t.ID] {
			seenTable[t.ID] = true
			tables = append(tables, t)
		}
	})
	switch o.Type {
	case TypeRedirect:
		for _, r := range s.Redirects {
			if hit(r.Ref) {
				l.Matches = append(l.Matches, match{Ref: r.Ref, Status: r.Status, State: r.State})
				break
			}
		}
	case TypeTable:
		for _, t := range tables {
			if hit(t.Ref) {
				l.Matches = append(l.Matches, match{Ref: t.Ref, Status: t.Status, State: t.State, Users: users[t.ID]})
			}
		}
		sort.SliceStable(l.Matches, func(i, j int) bool { return l.Matches[i].ID < l.Matches[j].ID })
		if !o.ByID && len(l.Matches) > 1 {
			l.Others, l.Matches = l.Matches[1:], l.Matches[:1]
		}
	case TypeHost:
		findHosts(&l, s, o, users)
	}
	if len(l.Matches) == 0 && !o.ByID {
		l.Near = nearNames(s, o, tables)
	}
	return l
}

// findHosts finds what relayd changes for a host (pfe.c disable_host,
// enable_host): by id that host; by name the first host of that name in
// relayd's table order (host_findbyname), then every other host of that
// name that has no parent. A host found first that has a parent makes
// relayd fail the command; hosts of that name with a parent are skipped.
// Each host changed takes its children (the hosts whose parent it is)
// along.
func findHosts(l *lookup, s Summary, o object, users map[uint32][]Ref) {
	type placed struct {
		h *Host
		t *Table
	}
	// relayd's table list follows the table ids (tables are numbered as
	// they are added to it); within a table, hosts are in print order.
	var all []placed
	seen := map[uint32]bool{}
	s.walk(func(_ Ref, t *Table, h *Host) {
		if h != nil && !seen[h.ID] {
			seen[h.ID] = true
			all = append(all, placed{h, t})
		}
	})
	sort.SliceStable(all, func(i, j int) bool { return all[i].t.ID < all[j].t.ID })
	toMatch := func(p placed) match {
		return match{Ref: p.h.Ref, Status: p.h.Status, State: p.h.State, Table: p.t.Ref, Users: users[p.t.ID], ParentID: p.h.ParentID}
	}
	first := -1
	for i, p := range all {
		if (o.ByID && p.h.ID == o.ID) || (!o.ByID && p.h.Name == o.Name) {
			first = i
			break
		}
	}
	if first < 0 {
		return
	}
	if all[first].h.ParentID != 0 {
		m := toMatch(all[first])
		l.Parent = &m
		return
	}
	var changed []placed
	changed = append(changed, all[first])
	if !o.ByID {
		for _, p := range all[first+1:] {
			switch {
			case p.h.Name != o.Name:
			case p.h.ParentID == 0:
				changed = append(changed, p)
			default:
				l.Others = append(l.Others, toMatch(p))
			}
		}
	}
	ids := map[uint32]bool{}
	for _, c := range changed {
		ids[c.h.ID] = true
	}
	var skipped []match
	for _, m := range l.Others {
		if !ids[m.ParentID] {
			skipped = append(skipped, m)
		}
	}
	l.Others = skipped
	for _, c := range changed {
		l.Matches = append(l.Matches, toMatch(c))
		for _, p := range all {
			if p.h.ParentID == c.h.ID {
				l.Matches = append(l.Matches, toMatch(p))
			}
		}
	}
}

// nearNames helps with the commonest miss: a table typed without its port
// (relayd names tables "webhosts:80"), or a name in another case.
func nearNames(s Summary, o object, tables []*Table) []string {
	var near []string
	add := func(name string) {
		if !slices.Contains(near, name) {
			near = append(near, name)
		}
	}
	switch o.Type {
	case TypeTable:
		for _, t := range tables {
			if strings.HasPrefix(t.Name, o.Name+":") || strings.EqualFold(t.Name, o.Name) {
				add(t.Name)
			}
		}
	case TypeRedirect:
		for _, r := range s.Redirects {
			if strings.EqualFold(r.Name, o.Name) {
				add(r.Name)
			}
		}
	case TypeHost:
		s.walk(func(_ Ref, _ *Table, h *Host) {
			if h != nil && strings.EqualFold(h.Name, o.Name) {
				add(h.Name)
			}
		})
	}
	return near
}

// parentRefusal is the bot's answer for a host that takes its state from
// a parent: relayd would answer command failed, which says nothing.
func parentRefusal(h bot.Host, r request, p match) error {
	return bot.Errorf(bot.EINVALID, "%s on %s: host %s (id %d) in %s takes its state from host id %d (parent %d), and relayd refuses to %s a host with a parent; %s host id %d instead, which changes its children with it",
		r.obj, h.Name, p.Name, p.ID, p.Table.Name, p.ParentID, p.ParentID, r.action, r.action, p.ParentID)
}

// toggled is one host's enable or disable.
type toggled struct {
	Host   bot.Host
	Obj    object
	Action string
	Before lookup
	Err    error // relayctl failed or refused
	Sent   bool  // relayctl was asked: the bot did not refuse first
	After  lookup
	Took   time.Duration
}

func (t toggled) OK() bool         { return t.Err == nil }
func (t toggled) Acted() bool      { return t.Sent }
func (t toggled) reply() bot.Reply { return toggleReply(t) }

func (c *Command) toggle(ctx context.Context, r request, h hostIO) toggled {
	start := c.now()
	t := toggled{Host: h.Host, Obj: r.obj, Action: r.action}
	t.Before = c.lookup(ctx, h, r.obj)
	if t.Before.Err != nil && notRunning(t.Before.Err) {
		t.Err = t.Before.Err
		t.Took = c.now().Sub(start)
		return t
	}
	if p := t.Before.Parent; p != nil {
		t.Err = parentRefusal(h.Host, r, *p)
		t.Took = c.now().Sub(start)
		return t
	}
	t.Sent = true
	_, _, t.Err = h.relayctl(ctx, string(r.obj.Type), r.action, r.obj.word())
	if t.Err == nil {
		t.After = c.lookup(ctx, h, r.obj)
	}
	t.Took = c.now().Sub(start)
	return t
}

// --- waiting for the hosts ---------------------------------------------

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

// --- reload -------------------------------------------------------------

// reloaded is one host's reload, from the config check to the verdict.
type reloaded struct {
	Host     bot.Host
	Conf     confFile // the file relayd runs with, which relayd -n checked
	Check    CheckResult
	CheckErr error
	Refused  string // why nothing was done; "" when relayctl reload ran

	Declared Conf  // what that file declares
	ConfErr  error // it could not be read: no comparison

	Before      Summary // show summary before
	BeforeHosts Summary // show hosts before
	// Relay statistics, read only when no host had been checked before:
	// a reload builds its relays anew, with their counts from zero.
	SessionsBefore, SessionsAfter uint64
	BySessions                    bool // the reload was told by them

	ReloadErr  error
	Wait       waited
	After      Summary
	AfterErr   error
	Diff       Diff
	NotRunning []Declared // declared in the file, not run after the reload
	Problems   []string
	Took       time.Duration
}

func (rl reloaded) ok() bool { return rl.Refused == "" && len(rl.Problems) == 0 }

func (rl reloaded) OK() bool         { return rl.ok() }
func (rl reloaded) Acted() bool      { return rl.Refused == "" }
func (rl reloaded) reply() bot.Reply { return reloadReply(rl) }

// notReloaded says the check counters kept counting: relayd still runs
// its old configuration.
func (rl reloaded) notReloaded() bool {
	return rl.ReloadErr == nil && rl.Wait.Read && rl.Wait.CanTell && !rl.Wait.Restarted
}

func (c *Command) reload(ctx context.Context, stream bot.Stream, r request, i int, h hostIO) (rl reloaded) {
	start := c.now()
	rl = reloaded{Host: h.Host}
	defer func() { rl.Took = c.now().Sub(start) }()
	progress := func(what string) {
		stream.Progress(bot.Reply{Status: bot.StatusRunning, Title: fmt.Sprintf("reload of relayd on %s%s: %s", h.Host.Name, hostOf(r, i), what)})
	}

	progress("relayd -n")
	rl.Conf = h.confFile(ctx)
	rl.Check, rl.CheckErr = h.check(ctx, rl.Conf)
	switch {
	case rl.CheckErr != nil:
		rl.Refused = "relayd -n could not test the configuration"
		return rl
	case !rl.Check.OK:
		rl.Refused = "relayd -n found errors: the running relayd keeps its configuration"
		return rl
	}
	rl.Declared, rl.ConfErr = h.readConf(ctx, rl.Conf)
	before, err := h.show(ctx, viewSummary)
	if err != nil {
		rl.Refused = hostcmd.ErrText(err)
		if notRunning(err) {
			rl.Refused += ": there is nothing to reload; /relayd restart " + h.Host.Name + " starts it"
		}
		return rl
	}
	rl.Before = before.Summary
	beforeHosts, err := h.show(ctx, viewHosts)
	if err != nil {
		rl.Refused = "cannot read the hosts to verify the reload by: " + hostcmd.ErrText(err)
		return rl
	}
	rl.BeforeHosts = beforeHosts.Summary

	if !anyChecked(rl.BeforeHosts) {
		if out, err := h.show(ctx, viewRelays); err == nil {
			rl.SessionsBefore = relaySessions(out.Summary)
		}
	}

	progress("relayctl reload")
	if _, _, rl.ReloadErr = h.relayctl(ctx, "reload"); rl.ReloadErr != nil {
		rl.Problems = append(rl.Problems, hostcmd.ErrText(rl.ReloadErr))
		return rl
	}
	progress(fmt.Sprintf("waiting up to %s for the hosts", c.cfg.Wait))
	rl.Wait = c.waitHosts(ctx, h, &rl.BeforeHosts, true)
	if rl.Wait.Read && !rl.Wait.CanTell && rl.SessionsBefore > 0 {
		if out, err := h.show(ctx, viewRelays); err == nil {
			rl.SessionsAfter = relaySessions(out.Summary)
			if rl.SessionsAfter < rl.SessionsBefore {
				rl.Wait.Restarted, rl.Wait.CanTell, rl.BySessions = true, true, true
			}
		}
	}
	switch {
	case rl.Wait.Died:
		rl.Problems = append(rl.Problems, "relayd died on reload: "+hostcmd.ErrText(rl.Wait.Err))
		return rl
	case !rl.Wait.Read:
		rl.Problems = append(rl.Problems, "relayd did not answer after the reload: "+hostcmd.ErrText(rl.Wait.Err))
		return rl
	case rl.notReloaded():
		rl.Problems = append(rl.Problems, fmt.Sprintf("relayd did not reload within %s: not every host's check counters started again, so it still runs its old configuration (relayctl reload says nothing either way; the reason is in relayd's syslog)", c.cfg.Wait))
	case len(rl.Wait.Pending) > 0:
		rl.Problems = append(rl.Problems, fmt.Sprintf("%d hosts not up %s after the reload: %s", len(rl.Wait.Pending), c.cfg.Wait, pendingList(rl.Wait.Pending, 5)))
	}
	after, err := h.show(ctx, viewSummary)
	if err != nil {
		rl.AfterErr = err
		rl.Problems = append(rl.Problems, "relayd after the reload: "+hostcmd.ErrText(err))
		return rl
	}
	rl.After = after.Summary
	rl.Diff = Compare(rl.Before, rl.After)
	if rl.ConfErr == nil && !rl.notReloaded() {
		rl.NotRunning = Dropped(rl.Declared, rl.After)
	}
	if n := len(rl.NotRunning); n > 0 {
		var names []string
		for _, d := range rl.NotRunning {
			names = append(names, d.String())
		}
		rl.Problems = append(rl.Problems, fmt.Sprintf("relayd runs only part of %s after the reload: %s declared there %s not running (%s)",
			rl.Conf.Path, hostcmd.Plural(n, "object"), map[bool]string{true: "is", false: "are"}[n == 1], strings.Join(names, ", ")))
	}
	if len(rl.Before.parents()) > 0 && len(rl.After.parents()) == 0 {
		rl.Problems = append(rl.Problems, "relayd runs with no redirect, relay or router after the reload")
	}
	return rl
}

func hostOf(r request, i int) string {
	if !r.Group {
		return ""
	}
	return fmt.Sprintf(" (host %d of %d in %s)", i+1, len(r.Hosts), r.Target)
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

// --- restart: the failover runbook --------------------------------------

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
	Host    bot.Host
	Target  string
	Of      string // " (host 1 of 2 in lbs)"
	Set     settings
	Conf    confFile // the file relayd runs with, from the config check
	Steps   []step
	Failed  int // the failed step, -1 when none failed
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
func (rb *runbook) Acted() bool { return rb.Failed != stepCheck }

func (rb *runbook) reply() bot.Reply { return restartReply(rb) }

const (
	stepCheck = iota
	stepDemote
	stepRestart
	stepPoll
	stepWait
	stepUndemote
)

// pollRetry bounds how long relayctl poll is retried while the restarted
// relayd has not created its control socket yet. It is its own bound, not
// a share of Config.Wait: how soon relayd listens does not depend on how
// long its hosts may take (a short Wait made a loaded machine's second
// poll miss its turn).
const pollRetry = 10 * time.Second

func (c *Command) restart(ctx context.Context, stream bot.Stream, r request, i int, h hostIO) *runbook {
	s := h.set
	rb := &runbook{Host: h.Host, Target: r.Target, Of: hostOf(r, i), Set: s, Failed: -1}
	rb.Steps = []step{
		{Name: "config check", Command: h.Shown(s.checkArgv(confFile{}))},
		{Name: fmt.Sprintf("CARP demote by %d (the peer takes over)", s.demote), Command: h.Shown(s.demoteArgv())},
		{Name: "restart relayd", Command: h.Shown(s.restartArgv())},
		{Name: "poll (check every host now)", Command: h.Shown(s.relayctlArgv("poll"))},
		{Name: "wait until the hosts are up", Command: fmt.Sprintf("%s, at most %s", h.Shown(s.relayctlArgv("show", "hosts")), c.cfg.Wait)},
		{Name: "CARP undemote", Command: h.Shown(s.undemoteArgv())},
	}
	start := c.now()
	defer func() { rb.Took = c.now().Sub(start) }()

	run := func(n int, f func() (string, error)) bool {
		st := &rb.Steps[n]
		st.State = stepRunning
		stream.Progress(runbookProgress(rb))
		t0 := c.now()
		var note string
		err := ctx.Err()
		if err == nil {
			note, err = f()
		} else {
			err = bot.Errorf(bot.EFAILED, "canceled before it ran")
		}
		st.Took = c.now().Sub(t0)
		if err != nil {
			st.State, st.Note, rb.Failed = stepFailed, hostcmd.ErrText(err), n
			return false
		}
		st.State, st.Note = stepOK, note
		return true
	}

	ok := run(stepCheck, func() (string, error) {
		rb.Conf = h.confFile(ctx)
		rb.Steps[stepCheck].Command = h.Shown(s.checkArgv(rb.Conf))
		res, err := h.check(ctx, rb.Conf)
		rb.Check = res
		if err != nil {
			return "", err
		}
		if !res.OK {
			return "", bot.Errorf(bot.EFAILED, "%s", checkFailure(res))
		}
		return "configuration OK: " + rb.Conf.shown(), nil
	})
	if !ok {
		return c.recovery(rb, h)
	}
	if before, err := h.show(ctx, viewHosts); err == nil {
		rb.Before = &before.Summary
	} else {
		rb.BeforeE = err
	}
	steps := []struct {
		n int
		f func() (string, error)
	}{
		{stepDemote, func() (string, error) {
			if _, err := h.plain(ctx, ifconfigTimeout, s.demoteArgv()); err != nil {
				return "", err
			}
			rb.Demoted = true
			return fmt.Sprintf("demoted by %d", s.demote), nil
		}},
		{stepRestart, func() (string, error) {
			out, err := h.plain(ctx, rcctlTimeout, s.restartArgv())
			if err != nil {
				rb.After, rb.AfterUp, rb.AfterDown = c.probe(ctx, h)
				return "", err
			}
			return strings.Join(nonBlank(out.Stdout), " "), nil
		}},
		{stepPoll, func() (string, error) { return c.pollRetrying(ctx, h) }},
		{stepWait, func() (string, error) {
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
		}},
		{stepUndemote, func() (string, error) {
			if _, err := h.plain(ctx, ifconfigTimeout, s.undemoteArgv()); err != nil {
				return "", err
			}
			rb.Demoted = false
			return "undemoted", nil
		}},
	}
	for _, st := range steps {
		if !run(st.n, st.f) {
			break
		}
	}
	return c.recovery(rb, h)
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

// recovery fills in what the host is left in and how to get out of it,
// from the step that failed.
func (c *Command) recovery(rb *runbook, h hostIO) *runbook {
	s := h.set
	undemote := h.Shown(s.undemoteArgv())
	name := h.Host.Name
	switch rb.Failed {
	case -1:
		return rb
	case stepCheck:
		rb.Next = "Nothing was changed: relayd keeps running its current configuration and CARP was not touched. Fix the configuration, test it with /relayd check " + name + ", then restart again."
	case stepDemote:
		rb.Next = fmt.Sprintf("relayd was not touched. ifconfig failed, so the demote counter of group %s is most likely unchanged: %s shows it (carp demote count).", s.carpGroup, h.Shown([]string{s.ifconfig, "-g", s.carpGroup}))
	case stepRestart:
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
	case stepPoll, stepWait:
		rb.Recovery = []string{undemote}
		rb.Next = fmt.Sprintf("relayd was restarted. Check it with /relayd status %s; once the hosts are up, undemote so that %s takes its addresses back.", name, name)
	case stepUndemote:
		rb.Recovery = []string{undemote}
		rb.Next = fmt.Sprintf("relayd was restarted and its hosts are up, but %s stays backup until it is undemoted.", name)
	}
	return rb
}
