package relayd

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
)

// host|table|redirect enable|disable: what relayd will change, the
// bot's refusals before relayctl would fail, and the change.

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

func (t toggled) OK() bool { return t.Err == nil }

func (t toggled) Acted() bool { return t.Sent }

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
