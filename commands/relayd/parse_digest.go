package relayd

// Digest is what needs attention in a summary, for /relayd status. Tables
// and hosts are counted once per (type, id) however many times relayctl
// printed them.
type Digest struct {
	Redirects int `json:"redirects"`
	Relays    int `json:"relays"`
	Routers   int `json:"routers"`
	Tables    int `json:"tables"`
	Hosts     int `json:"hosts"`
	HostsUp   int `json:"hosts_up"`

	// NotActive lists the degraded redirects, relays and routers: those
	// whose status is not plain "active", so down, disabled, or a redirect
	// on its backup table (which is active, but degraded).
	NotActive []Row `json:"not_active,omitempty"`
	// TablesDown lists tables that are not active or have a host not up.
	TablesDown []TableDown `json:"tables_down,omitempty"`
	// HostsDown lists hosts that are not up: down, unknown (no check has
	// completed since start, reload or enable) or disabled.
	HostsDown []HostDown `json:"hosts_down,omitempty"`
}

// TableDown is a table that needs attention.
type TableDown struct {
	Ref
	Status  string `json:"status"`
	State   State  `json:"state"`
	Parents []Ref  `json:"parents,omitempty"` // the redirects, relays and routers that use it
	Hosts   int    `json:"hosts"`
	HostsUp int    `json:"hosts_up"`
}

// HostDown is a host that is not up.
type HostDown struct {
	Ref
	Status       string   `json:"status"`
	State        State    `json:"state"`
	Availability *float64 `json:"availability,omitempty"`
	ParentID     uint32   `json:"parent_id,omitempty"`
	Checks       *Checks  `json:"checks,omitempty"`  // from show hosts: check counts and the last error
	Table        Ref      `json:"table"`             // host ids are unique, so a host is in one table
	Parents      []Ref    `json:"parents,omitempty"` // the users of that table
}

// Healthy says nothing needs attention.
func (d Digest) Healthy() bool {
	return len(d.NotActive) == 0 && len(d.TablesDown) == 0 && len(d.HostsDown) == 0
}

// Digest sums up a show summary. show summary does not print check counts
// or errors, so hosts, when not empty, is the `show hosts` output taken
// with it: each host down gets its Checks from there, by host id. States
// come from s, which may be a moment older or newer than hosts.
func (s Summary) Digest(hosts Summary) Digest {
	checks := map[uint32]*Checks{}
	hosts.walk(func(_ Ref, _ *Table, h *Host) {
		if h != nil && h.Checks != nil && checks[h.ID] == nil {
			checks[h.ID] = h.Checks
		}
	})

	d := Digest{Redirects: len(s.Redirects), Relays: len(s.Relays), Routers: len(s.Routers)}
	for _, r := range s.parents() {
		if r.Status != string(StateActive) {
			d.NotActive = append(d.NotActive, r)
		}
	}

	type tableSeen struct {
		td   TableDown
		down bool
	}
	var tables []*tableSeen
	tableByID := map[uint32]*tableSeen{}
	hostByID := map[uint32]bool{}
	var hostsDown []HostDown
	s.walk(func(parent Ref, t *Table, h *Host) {
		ts := tableByID[t.ID]
		if ts == nil {
			ts = &tableSeen{td: TableDown{Ref: t.Ref, Status: t.Status, State: t.State}, down: t.State != StateActive}
			tableByID[t.ID] = ts
			tables = append(tables, ts)
		}
		if h == nil {
			if parent.Type != "" && !containsRef(ts.td.Parents, parent) {
				ts.td.Parents = append(ts.td.Parents, parent)
			}
			return
		}
		if hostByID[h.ID] {
			return
		}
		hostByID[h.ID] = true
		ts.td.Hosts++
		if h.State == StateUp {
			ts.td.HostsUp++
			return
		}
		ts.down = true
		hostsDown = append(hostsDown, HostDown{
			Ref: h.Ref, Status: h.Status, State: h.State, Availability: h.Availability,
			ParentID: h.ParentID, Checks: checks[h.ID], Table: t.Ref,
		})
	})
	for _, ts := range tables {
		d.Hosts += ts.td.Hosts
		d.HostsUp += ts.td.HostsUp
		if ts.down {
			d.TablesDown = append(d.TablesDown, ts.td)
		}
	}
	d.Tables = len(tables)
	for _, h := range hostsDown {
		h.Parents = tableByID[h.Table.ID].td.Parents
		d.HostsDown = append(d.HostsDown, h)
	}
	return d
}

func containsRef(refs []Ref, r Ref) bool {
	for _, x := range refs {
		if x == r {
			return true
		}
	}
	return false
}

// parents lists the redirect, relay and router rows in print order.
func (s Summary) parents() []Row {
	var rows []Row
	for _, r := range s.Redirects {
		rows = append(rows, r.Row)
	}
	for _, r := range s.Relays {
		rows = append(rows, r.Row)
	}
	for _, r := range s.Routers {
		rows = append(rows, r.Row)
	}
	return rows
}

// walk calls fn for every table (with h nil) and then each of its hosts,
// in print order, with the row the table was printed under (the zero Ref
// for show hosts).
func (s Summary) walk(fn func(parent Ref, t *Table, h *Host)) {
	each := func(parent Ref, tables []Table) {
		for i := range tables {
			t := &tables[i]
			fn(parent, t, nil)
			for j := range t.Hosts {
				fn(parent, t, &t.Hosts[j])
			}
		}
	}
	for _, r := range s.Redirects {
		each(r.Ref, r.Tables)
	}
	for _, r := range s.Relays {
		each(r.Ref, r.Tables)
	}
	for _, r := range s.Routers {
		each(r.Ref, r.Tables)
	}
	each(Ref{}, s.Tables)
}

// Diff is what changed between two summaries, for checking a reload.
// Objects are matched by type and name, not id: relayd numbers objects in
// the order of the configuration, so an edited file can renumber them.
type Diff struct {
	Added   []Ref    `json:"added,omitempty"`   // redirects, relays and routers only after
	Removed []Ref    `json:"removed,omitempty"` // only before
	Changed []Change `json:"changed,omitempty"` // same object, another status
	// Hosts lists every host whose state changed, appeared or went away,
	// matched by the names of its parent, table and host.
	Hosts []HostChange `json:"hosts,omitempty"`
}

// Change is a redirect, relay or router whose status changed.
type Change struct {
	Ref           // as after
	Before string `json:"before"`
	After  string `json:"after"`
}

// HostChange is one host whose state differs. Before is "" for a host that
// is new, After "" for one that is gone. Refs are from after, or from
// before for a host that is gone.
type HostChange struct {
	Parent Ref   `json:"parent"` // zero for show hosts output
	Table  Ref   `json:"table"`
	Host   Ref   `json:"host"`
	Before State `json:"before"`
	After  State `json:"after"`
}

// SameObjects says both summaries have the same redirects, relays and
// routers (by type and name), whatever their states.
func (d Diff) SameObjects() bool {
	return len(d.Added) == 0 && len(d.Removed) == 0
}

// CameUp lists the hosts that are up now and were there before, not up.
func (d Diff) CameUp() []HostChange {
	return d.hosts(func(c HostChange) bool { return c.Before != "" && c.After == StateUp })
}

// WentDown lists the hosts that are down now and were there before, not
// down. A host that is unknown after a reload has not been checked yet; it
// is in Hosts but not here.
func (d Diff) WentDown() []HostChange {
	return d.hosts(func(c HostChange) bool { return c.Before != "" && c.After == StateDown })
}

func (d Diff) hosts(keep func(HostChange) bool) []HostChange {
	var out []HostChange
	for _, c := range d.Hosts {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}

// Compare says what changed from before to after. A name printed twice
// (a table under two redirects) is matched occurrence by occurrence.
func Compare(before, after Summary) Diff {
	var d Diff

	type objKey struct {
		t    Type
		name string
		n    int
	}
	objKeys := func(rows []Row) []objKey {
		seen := map[objKey]int{}
		keys := make([]objKey, len(rows))
		for i, r := range rows {
			k := objKey{t: r.Type, name: r.Name}
			k.n = seen[k]
			seen[k]++
			keys[i] = k
		}
		return keys
	}
	bRows, aRows := before.parents(), after.parents()
	bKeys, aKeys := objKeys(bRows), objKeys(aRows)
	bObj := map[objKey]Row{}
	for i, k := range bKeys {
		bObj[k] = bRows[i]
	}
	aObj := map[objKey]bool{}
	for i, k := range aKeys {
		aObj[k] = true
		b, ok := bObj[k]
		switch {
		case !ok:
			d.Added = append(d.Added, aRows[i].Ref)
		case b.Status != aRows[i].Status:
			d.Changed = append(d.Changed, Change{Ref: aRows[i].Ref, Before: b.Status, After: aRows[i].Status})
		}
	}
	for i, k := range bKeys {
		if !aObj[k] {
			d.Removed = append(d.Removed, bRows[i].Ref)
		}
	}

	bHosts, bOrder := hostsByPath(before)
	aHosts, aOrder := hostsByPath(after)
	for _, k := range aOrder {
		a := aHosts[k]
		b, ok := bHosts[k]
		if !ok || b.Before != a.Before {
			d.Hosts = append(d.Hosts, HostChange{Parent: a.Parent, Table: a.Table, Host: a.Host, Before: b.Before, After: a.Before})
		}
	}
	for _, k := range bOrder {
		if _, ok := aHosts[k]; !ok {
			b := bHosts[k]
			d.Hosts = append(d.Hosts, HostChange{Parent: b.Parent, Table: b.Table, Host: b.Host, Before: b.Before})
		}
	}
	return d
}

// hostPath names a printed host: the n-th host of that name, in a table
// of that name, under a parent of that type and name.
type hostPath struct {
	parentType          Type
	parent, table, host string
	n                   int
}

// hostsByPath keys every printed host by its path, with its state in
// Before. The keys come back in print order.
func hostsByPath(s Summary) (map[hostPath]HostChange, []hostPath) {
	byPath := map[hostPath]HostChange{}
	var order []hostPath
	seen := map[hostPath]int{}
	s.walk(func(parent Ref, t *Table, h *Host) {
		if h == nil {
			return
		}
		k := hostPath{parentType: parent.Type, parent: parent.Name, table: t.Name, host: h.Name}
		n := seen[k]
		seen[k]++
		k.n = n
		byPath[k] = HostChange{Parent: parent, Table: t.Ref, Host: h.Ref, Before: h.State}
		order = append(order, k)
	})
	return byPath, order
}
