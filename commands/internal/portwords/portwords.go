// Package portwords holds the words that /portcheck, /scan and their
// checks from vantage hosts (package vantage) share: port numbers and
// durations read, port lists written compactly, and the answer of a bot
// whose socket budget is spent. It
// exists because package vantage cannot import package commands, which
// imports it.
package portwords

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/probe"
)

// Ranges writes a port list compactly: "22, 80, 8000-8003".
func Ranges(ports []uint16) string {
	var b strings.Builder
	for i := 0; i < len(ports); {
		j := i
		for j+1 < len(ports) && ports[j+1] == ports[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		if j > i {
			fmt.Fprintf(&b, "%d-%d", ports[i], ports[j])
		} else {
			fmt.Fprintf(&b, "%d", ports[i])
		}
		i = j + 1
	}
	return b.String()
}

// busyRetry is when to try again after the socket budget refused: shares
// come back as scans end, which on most paths takes seconds to a minute.
const busyRetry = "a minute"

// Busy turns the socket budget's refusal into a busy bot's answer (and
// counts it); nil when err is something else.
func Busy(ctx context.Context, err error) error {
	var busy *probe.BusyError
	if !errors.As(err, &busy) {
		return nil
	}
	bot.ObserveBusy(ctx, "sockets")
	return &bot.Error{Code: bot.EBUSY, Err: err, Message: fmt.Sprintf(
		"busy: %d jobs running (scans, checks, listeners) hold the %d sockets opsbot may use for probes, try again in %s",
		busy.Holders, busy.Total, busyRetry)}
}

// PortNumber reads one port number: 1 to 65535.
func PortNumber(s string) (uint16, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		if s == "" {
			return 0, bot.Errorf(bot.EINVALID, "a range needs two ports, like 8000-8100")
		}
		return 0, bot.Errorf(bot.EINVALID, "%q is not a port number: ports are 1 to 65535", s)
	}
	if n < 1 || n > 65535 {
		return 0, bot.Errorf(bot.EINVALID, "port %d is out of range: ports are 1 to 65535", n)
	}
	return uint16(n), nil
}

// Sorted lists a set of ports in ascending order.
func Sorted(set map[uint16]bool) []uint16 {
	return slices.Sorted(maps.Keys(set))
}

// Duration accepts Go durations (3s, 500ms, 5m) and, like nc -w, a bare
// number of seconds, from lo to hi; what names the value in the error.
func Duration(what, s string, lo, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.ParseFloat(s, 64)
		if nerr != nil {
			return 0, bot.Errorf(bot.EINVALID, "%s %q is not a duration: write 3s, 500ms or 2m", what, s)
		}
		d = time.Duration(n * float64(time.Second))
	}
	if d < lo || d > hi {
		return 0, bot.Errorf(bot.EINVALID, "%s %s is out of range: accepted %s to %s", what, s, lo, hi)
	}
	return d, nil
}
