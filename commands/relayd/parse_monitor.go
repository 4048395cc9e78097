package relayd

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Event is one message of `relayctl monitor`: a header line, then TAB
// indented lines. host_status comes after every check of every host, not
// only on a change; compare State with the host's previous one to see a
// change, or watch for ctl_table_changed.
type Event struct {
	Line   int       `json:"line"` // of the header line
	Name   string    `json:"name"` // host_status, ctl_table_changed, ctl_host_disable, sync, <unknown>, ...
	Type   uint32    `json:"type"` // imsg type; the numbers change between relayd releases
	Len    uint32    `json:"len"`
	PeerID uint32    `json:"peer_id"`
	PID    int32     `json:"pid"`
	Time   time.Time `json:"time"`             // zero when the timestamp line is missing
	ID     uint32    `json:"id,omitempty"`     // the host, table or redirect; ids start at 1
	Object string    `json:"object,omitempty"` // the name, when the message carried one
	State  State     `json:"state,omitempty"`  // host_status: up, down or unknown
}

var (
	monitorRE      = regexp.MustCompile(`^(\S+): imsg type (\d+) len (\d+) peerid (\d+) pid (-?\d+)$`)
	monitorTimeRE  = regexp.MustCompile(`^\ttimestamp: (-?\d+), .*$`) // then ctime(), which repeats it in relayd's time zone
	monitorIDRE    = regexp.MustCompile(`^\tid: (\d+)$`)
	monitorNameRE  = regexp.MustCompile(`^\tname: (.+)$`)
	monitorStateRE = regexp.MustCompile(`^\tstate: (up|down|unknown)$`)
)

// ParseMonitor parses what `relayctl monitor` printed before it was
// stopped. monitor runs until killed (it even waits forever for a missing
// socket), so the caller bounds it with a timeout and the last line may be
// cut short: it is then reported as unknown.
func ParseMonitor(out []byte) ([]Event, []Line) {
	lines := splitLines(out)
	var events []Event
	var unknown []Line
	var ev *Event // the event whose detail lines come next
	var seen map[string]bool
	bad := func(i int, reason string) {
		unknown = append(unknown, Line{N: i + 1, Text: lines[i], Reason: reason})
	}
	for i, raw := range lines {
		line := rtrim(raw)
		if blank(line) {
			continue
		}
		if !strings.HasPrefix(line, "\t") {
			ev = nil
			e, ok := parseMonitorHeader(line)
			if !ok {
				bad(i, "not a line monitor prints")
				continue
			}
			e.Line = i + 1
			events = append(events, e)
			ev, seen = &events[len(events)-1], map[string]bool{}
			continue
		}
		if ev == nil {
			bad(i, "detail line without a message line above it")
			continue
		}
		key, ok := monitorDetail(ev, line, seen)
		switch {
		case !ok:
			bad(i, "not a detail line monitor prints")
		case seen[key]:
			bad(i, "a second "+key+" line for one message")
		default:
			seen[key] = true
		}
	}
	return events, unknown
}

func parseMonitorHeader(line string) (Event, bool) {
	m := monitorRE.FindStringSubmatch(line)
	if m == nil {
		return Event{}, false
	}
	typ, err1 := strconv.ParseUint(m[2], 10, 32)
	length, err2 := strconv.ParseUint(m[3], 10, 32)
	peer, err3 := strconv.ParseUint(m[4], 10, 32)
	pid, err4 := strconv.ParseInt(m[5], 10, 32)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return Event{}, false
	}
	return Event{Name: m[1], Type: uint32(typ), Len: uint32(length), PeerID: uint32(peer), PID: int32(pid)}, true
}

// monitorDetail fills one detail line into ev unless seen says that kind
// was there already; it returns the kind.
func monitorDetail(ev *Event, line string, seen map[string]bool) (string, bool) {
	if m := monitorTimeRE.FindStringSubmatch(line); m != nil {
		sec, err := strconv.ParseInt(m[1], 10, 64)
		// Years past 9999 do not marshal to JSON; relayd prints no such time.
		if err != nil || sec < 0 || sec > 253402300799 {
			return "", false
		}
		if !seen["timestamp"] {
			ev.Time = time.Unix(sec, 0).UTC()
		}
		return "timestamp", true
	}
	if m := monitorIDRE.FindStringSubmatch(line); m != nil {
		id, err := strconv.ParseUint(m[1], 10, 32)
		if err != nil {
			return "", false
		}
		if !seen["id"] {
			ev.ID = uint32(id)
		}
		return "id", true
	}
	if m := monitorNameRE.FindStringSubmatch(line); m != nil {
		if !seen["name"] {
			ev.Object = m[1]
		}
		return "name", true
	}
	if m := monitorStateRE.FindStringSubmatch(line); m != nil {
		if !seen["state"] {
			ev.State = State(m[1])
		}
		return "state", true
	}
	return "", false
}
