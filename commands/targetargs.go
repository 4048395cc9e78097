package commands

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/probe"
	"github.com/opsbot/opsbot/internal/text"
)

// Timeouts a user may ask for. Below 10 ms even loopback answers can be
// missed; above a minute nobody is waiting in a chat channel.
const (
	minTimeout = 10 * time.Millisecond
	maxTimeout = 60 * time.Second
)

// ncFlags are the netcat flags people type out of habit: -z (scan), -v
// (verbose), -n (no DNS), -u (UDP), -4/-6 (address family), -w SECONDS.
var ncFlags = bot.FlagSpec{Bools: "zvnu46", Values: "w"}

// targetArgs is what /portcheck and /scan share:
// HOST [PORTS ...] [tcp|udp] [timeout D], with nc flags anywhere.
type targetArgs struct {
	host    string
	ports   []uint16
	proto   probe.Proto
	timeout time.Duration // 0: the probe's default
	family  int           // 0 any, 4 or 6
	spec    string        // the port words as typed, for titles
	vantage string        // the inventory host or group after "from"; "" = the bot's own host
}

func parseTargetArgs(args []string, synopsis string) (targetArgs, error) {
	var ta targetArgs
	f, err := bot.ParseFlags(args, ncFlags)
	if err != nil {
		return ta, err
	}
	if len(f.Args) == 0 {
		return ta, bot.Errorf(bot.EINVALID, "no host given: usage %s", synopsis)
	}
	if f.Args, ta.vantage, err = cutVantage(f.Args, synopsis); err != nil {
		return ta, err
	}
	ta.host = f.Args[0]
	// A subnet is counted and checked against the policy when expanded
	// (manyTargets); here only its form.
	if isSubnet(ta.host) {
		if _, err := netip.ParsePrefix(ta.host); err != nil {
			return ta, notASubnet(ta.host)
		}
	} else {
		_, name, err := bot.ParseHost(ta.host)
		if err != nil {
			return ta, err
		}
		if name != "" && f.Has('n') {
			return ta, bot.Errorf(bot.EINVALID, "-n means no name lookups, but %q is a name: give an address or drop -n", ta.host)
		}
	}
	ta.proto = probe.TCP
	if f.Has('u') {
		ta.proto = probe.UDP
	}
	switch {
	case f.Has('4') && f.Has('6'):
		return ta, bot.Errorf(bot.EINVALID, "-4 and -6 together leave no address family: give one of them")
	case f.Has('4'):
		ta.family = 4
	case f.Has('6'):
		ta.family = 6
	}
	if w, ok := f.Value('w'); ok {
		if ta.timeout, err = parseDuration("timeout", w, minTimeout, maxTimeout); err != nil {
			return ta, err
		}
	}
	var portWords []string
	rest := f.Args[1:]
	for i := 0; i < len(rest); i++ {
		w := strings.ToLower(rest[i])
		switch {
		case w == "tcp" || w == "udp":
			p, _ := probe.ParseProto(w)
			if f.Has('u') && p == probe.TCP {
				return ta, bot.Errorf(bot.EINVALID, "-u asks for UDP but the command also says tcp: give one")
			}
			ta.proto = p
		case w == "timeout" || strings.HasPrefix(w, "timeout="):
			v, ok := strings.CutPrefix(w, "timeout=")
			if !ok {
				if i+1 >= len(rest) {
					return ta, bot.Errorf(bot.EINVALID, "timeout needs a duration, like timeout 3s")
				}
				i++
				v = rest[i]
			}
			if ta.timeout, err = parseDuration("timeout", v, minTimeout, maxTimeout); err != nil {
				return ta, err
			}
		case unsupportedProtos[w]:
			return ta, protoError(w)
		default:
			portWords = append(portWords, rest[i])
		}
	}
	set := map[uint16]bool{}
	for _, w := range portWords {
		if err := parsePortSpec(w, ta.proto, set); err != nil {
			if looksLikeTarget(w) {
				return ta, bot.Errorf(bot.EINVALID, "%q after %s looks like a second target: one host, subnet or group per request (usage %s)", text.TruncateRunes(w, 60), text.TruncateRunes(ta.host, 60), synopsis)
			}
			return ta, err
		}
	}
	ta.ports = sortedPorts(set)
	ta.spec = strings.Join(portWords, " ")
	return ta, nil
}

// looksLikeTarget reports whether a word that is not a port is an address
// or a subnet.
func looksLikeTarget(w string) bool {
	if _, err := netip.ParsePrefix(w); err == nil {
		return true
	}
	_, err := netip.ParseAddr(strings.Trim(w, "[]"))
	return err == nil
}

// cutVantage takes a trailing "from VANTAGE" off words (the host comes
// first, so a host named "from" stays a host). VANTAGE must look like an
// inventory host or group name; whether it is one, and whether the asker
// may use it, is decided later.
func cutVantage(words []string, synopsis string) ([]string, string, error) {
	for i := 1; i < len(words); i++ {
		if !strings.EqualFold(words[i], "from") {
			continue
		}
		switch {
		case i == len(words)-1:
			return nil, "", bot.Errorf(bot.EINVALID, "from needs a vantage point: an inventory host or group, as in %s ... from web01 (/opsbot hosts lists them)", strings.Fields(synopsis)[0])
		case i < len(words)-2:
			return nil, "", bot.Errorf(bot.EINVALID, "from VANTAGE comes last: %q follows it; usage %s", text.TruncateRunes(words[i+2], 40), synopsis)
		}
		if err := bot.CheckHostName(words[i+1]); err != nil {
			return nil, "", err
		}
		return words[:i], words[i+1], nil
	}
	return words, "", nil
}

// pickFamily keeps the addresses of the asked family.
func pickFamily(addrs []netip.Addr, family int) []netip.Addr {
	if family == 0 {
		return addrs
	}
	var out []netip.Addr
	for _, a := range addrs {
		if (family == 4) == a.Is4() {
			out = append(out, a)
		}
	}
	return out
}

// target is the host's addresses: for an approved run (req.Bound) the
// first n bound ones (all with n < 1), checked against policy but never
// resolved again; otherwise resolve's.
func target(ctx context.Context, targets *bot.Targets, ta targetArgs, bound []string, n int) (bot.Target, error) {
	if len(bound) == 0 {
		return resolve(ctx, targets, ta)
	}
	if n > 0 && len(bound) > n {
		bound = bound[:n]
	}
	return targets.Bound(ctx, ta.host, bound)
}

// resolve checks the host against policy and keeps the asked family.
func resolve(ctx context.Context, targets *bot.Targets, ta targetArgs) (bot.Target, error) {
	tg, err := targets.Resolve(ctx, ta.host)
	if err != nil {
		return tg, err
	}
	tg.Addrs = pickFamily(tg.Addrs, ta.family)
	if len(tg.Addrs) == 0 {
		return tg, bot.Errorf(bot.ENOTFOUND, "%s has no IPv%d address", ta.host, ta.family)
	}
	return tg, nil
}
