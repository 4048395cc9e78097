package apache

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/opsbot/opsbot/internal/text"
)

// server-status?auto: the machine-readable status page of mod_status.

// ErrNotAutoStatus is wrapped by ParseStatus when the body is not mod_status's
// machine-readable page: the HTML status page (the URL lacks ?auto), a 403 or
// 404 page, or the site itself (the URL points at the wrong path).
var ErrNotAutoStatus = errors.New("not a server-status?auto page")

// Status is what mod_status reports on server-status?auto. Fields that a page
// may leave out have a Has flag, so that absent is not read as zero.
type Status struct {
	// Host is the bare first line of the page: the name the server answered
	// as (its ServerName, or the address it was asked on).
	Host          string
	ServerVersion string // "Apache/2.4.71 (Debian) OpenSSL/3.0.19"
	MPM           string // "event", "worker" or "prefork"
	Built         string // "Server Built: 2026-11-12T08:58:41"
	CurrentTime   string // as printed: "Wednesday, 25-Nov-2026 10:50:03 UTC"
	RestartTime   string // the last start or hard restart (a graceful keeps it); same format

	// Generation is ParentServerConfigGeneration: one more after every
	// graceful or restart that loaded a config. It starts at 1.
	Generation    int
	MPMGeneration int // ParentServerMPMGeneration
	HasGeneration bool

	Uptime    time.Duration // ServerUptimeSeconds (or Uptime): since RestartTime
	HasUptime bool

	// TotalAccesses and TotalKBytes count since RestartTime (a graceful
	// keeps counting); ExtendedStatus Off leaves them out (HasTotals false).
	TotalAccesses int64
	TotalKBytes   int64
	HasTotals     bool

	// ReqPerSec is TotalAccesses over the uptime. Apache prints it only when
	// the uptime is at least a second, and without a leading zero (".272727").
	ReqPerSec    float64
	HasReqPerSec bool

	BusyWorkers     int
	IdleWorkers     int
	GracefulWorkers int
	Processes       int
	Stopping        int // processes of an older generation still finishing requests
	ConnsTotal      int
	Scoreboard      string

	// Fields holds every "Key: value" line as printed, including those with
	// no field above (Load1, CPULoad, the TLS session cache's Cache* lines).
	Fields map[string]string
}

// statusKey matches a "Key: value" line of the ?auto page; keys are words
// and spaces ("Total Accesses", "Server Built"). An IPv6 Host line ("::1")
// does not match.
var statusKey = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9 ]*):(?: |$)`)

// ParseStatus reads the body of server-status?auto. It fails, wrapping
// ErrNotAutoStatus and saying what it got instead, when the body is not that
// page; and when a known numeric field does not hold a number.
func ParseStatus(body []byte) (Status, error) {
	text := string(body)
	trimmed := strings.TrimSpace(text)
	if trimmed == "" {
		return Status{}, fmt.Errorf("%w: the body is empty", ErrNotAutoStatus)
	}
	if looksHTML(trimmed) {
		return Status{}, htmlPageError(trimmed)
	}
	st := Status{Fields: map[string]string{}}
	known, first := 0, true
	var haveServerUptime bool
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		m := statusKey.FindStringSubmatchIndex(line)
		if m == nil {
			// The Host line comes first; later bare lines are section
			// titles such as "TLSSessionCacheStatus".
			if first {
				st.Host = line
			}
			first = false
			continue
		}
		first = false
		key, val := line[:m[3]], strings.TrimSpace(line[m[1]:])
		st.Fields[key] = val
		isKnown, err := st.set(key, val, &haveServerUptime)
		if err != nil {
			return Status{}, err
		}
		if isKnown {
			known++
		}
	}
	if known == 0 {
		return Status{}, fmt.Errorf("%w: no server-status field in a body that starts %q", ErrNotAutoStatus, firstLineOf(trimmed, 80))
	}
	return st, nil
}

// set stores one field; it reports whether the key is one mod_status prints.
func (st *Status) set(key, val string, haveServerUptime *bool) (bool, error) {
	var err error
	switch key {
	case "ServerVersion":
		st.ServerVersion = val
	case "ServerMPM":
		st.MPM = val
	case "Server Built":
		st.Built = val
	case "CurrentTime":
		st.CurrentTime = val
	case "RestartTime":
		st.RestartTime = val
	case "Scoreboard":
		st.Scoreboard = val
	case "ParentServerConfigGeneration":
		st.Generation, err = statusInt(key, val)
		st.HasGeneration = true
	case "ParentServerMPMGeneration":
		st.MPMGeneration, err = statusInt(key, val)
		st.HasGeneration = true
	case "ServerUptimeSeconds", "Uptime":
		if key == "Uptime" && *haveServerUptime {
			return true, nil // the same number; ServerUptimeSeconds wins
		}
		*haveServerUptime = *haveServerUptime || key == "ServerUptimeSeconds"
		st.Uptime, err = statusSeconds(key, val)
		st.HasUptime = true
	case "Total Accesses":
		st.TotalAccesses, err = statusInt64(key, val)
		st.HasTotals = true
	case "Total kBytes":
		st.TotalKBytes, err = statusInt64(key, val)
		st.HasTotals = true
	case "ReqPerSec":
		st.ReqPerSec, err = statusFloat(key, val)
		st.HasReqPerSec = true
	case "BusyWorkers":
		st.BusyWorkers, err = statusInt(key, val)
	case "IdleWorkers":
		st.IdleWorkers, err = statusInt(key, val)
	case "GracefulWorkers":
		st.GracefulWorkers, err = statusInt(key, val)
	case "Processes":
		st.Processes, err = statusInt(key, val)
	case "Stopping":
		st.Stopping, err = statusInt(key, val)
	case "ConnsTotal":
		st.ConnsTotal, err = statusInt(key, val)
	default:
		return false, nil
	}
	return true, err
}

func statusNumberError(key, val string) error {
	return fmt.Errorf("server-status?auto: %s: %q is not a number", key, val)
}

func statusInt(key, val string) (int, error) {
	n, err := strconv.Atoi(val)
	if err != nil {
		return 0, statusNumberError(key, val)
	}
	return n, nil
}

func statusInt64(key, val string) (int64, error) {
	n, err := strconv.ParseInt(val, 10, 64)
	if err != nil {
		return 0, statusNumberError(key, val)
	}
	return n, nil
}

func statusSeconds(key, val string) (time.Duration, error) {
	n, err := strconv.ParseInt(val, 10, 64)
	if err != nil || n < 0 || n > int64(math.MaxInt64/time.Second) {
		return 0, statusNumberError(key, val)
	}
	return time.Duration(n) * time.Second, nil
}

// statusFloat reads Apache's %g, which drops the leading zero (".333333").
func statusFloat(key, val string) (float64, error) {
	f, err := strconv.ParseFloat(val, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, statusNumberError(key, val)
	}
	return f, nil
}

func looksHTML(s string) bool {
	head := strings.ToLower(s[:min(len(s), 512)])
	return strings.HasPrefix(head, "<") || strings.Contains(head, "<html") || strings.Contains(head, "<!doctype")
}

var htmlTitle = regexp.MustCompile(`(?is)<title>\s*(.*?)\s*</title>`)

func htmlPageError(page string) error {
	m := htmlTitle.FindStringSubmatch(page)
	if m == nil {
		return fmt.Errorf("%w: got an HTML page; the status URL should end in /server-status?auto", ErrNotAutoStatus)
	}
	title := strings.Join(strings.Fields(m[1]), " ")
	if title == "Apache Status" {
		return fmt.Errorf("%w: got mod_status's HTML page; add ?auto to the status URL", ErrNotAutoStatus)
	}
	return fmt.Errorf("%w: got an HTML page titled %q; the status URL should end in /server-status?auto", ErrNotAutoStatus, text.Truncate(title, 80))
}
