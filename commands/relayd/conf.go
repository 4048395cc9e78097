package relayd

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/hostcmd"
)

// confFile is the configuration relayd runs with: the -f file and the -D
// macros it was started with, which a reload loads again (relayd.c
// parent_reload falls back to the startup file; -D macros persist).
type confFile struct {
	Path   string
	Macros []string // name=value, as given to -D
	// From says where Path came from: "relayd_flags" (rcctl get relayd
	// flags), "relayd.config" (the inventory) or "default".
	From  string
	Notes []string // why the flags were not used, or disagree
}

// flagsTimeout bounds rcctl get, which reads rc.conf and returns.
const flagsTimeout = 15 * time.Second

// Flags relayd is started with that this file can use (relayd.c main:
// getopt "dD:nI:P:f:v"). A word outside these rules is not guessed at.
var (
	confPath = regexp.MustCompile(`^/[A-Za-z0-9._/+@:-]*$`)
	macroDef = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=[A-Za-z0-9._/+@:,-]*$`)
)

// parseFlags reads relayd's rc.d flags: -f FILE and -D name=value, in the
// forms getopt accepts (-fFILE, -f FILE, -dvf FILE). rc.subr passes the
// flags through a shell, so a quote or a $ is refused rather than
// interpreted.
func parseFlags(flags string) (path string, macros []string, err error) {
	if strings.ContainsAny(flags, "\"'`$\\;&|<>()*?[]{}~") {
		return "", nil, fmt.Errorf("relayd_flags %q hold shell quoting or expansion, which the bot does not interpret", flags)
	}
	words := strings.Fields(flags)
	for i := 0; i < len(words); i++ {
		w := words[i]
		if !strings.HasPrefix(w, "-") || w == "-" {
			return "", nil, fmt.Errorf("relayd_flags %q: %q is not an option (relayd takes no arguments)", flags, w)
		}
		opts := w[1:]
		for j := 0; j < len(opts); j++ {
			c := opts[j]
			switch c {
			case 'd', 'n', 'v':
				continue
			case 'f', 'D', 'I', 'P':
			default:
				return "", nil, fmt.Errorf("relayd_flags %q: -%c is not a relayd option", flags, c)
			}
			arg := opts[j+1:]
			if arg == "" {
				if i+1 >= len(words) {
					return "", nil, fmt.Errorf("relayd_flags %q: -%c needs an argument", flags, c)
				}
				i++
				arg = words[i]
			}
			switch c {
			case 'f':
				if !confPath.MatchString(arg) {
					return "", nil, fmt.Errorf("relayd_flags %q: -f %q is not an absolute path the bot accepts", flags, arg)
				}
				path = arg
			case 'D':
				if !macroDef.MatchString(arg) {
					return "", nil, fmt.Errorf("relayd_flags %q: -D %q is not a macro the bot accepts (name=value)", flags, arg)
				}
				macros = append(macros, arg)
			}
			break
		}
	}
	return path, macros, nil
}

// confFile finds the configuration relayd runs with: its rc.d flags when
// rcctl can tell them (rcctl get needs no root, so it runs without the
// host's become), else relayd.config from the inventory.
func (h hostIO) confFile(ctx context.Context) confFile {
	cf := confFile{Path: h.set.config, From: "relayd.config"}
	if !h.set.configSet {
		cf.From = "default"
	}
	plain := h
	plain.IO = h.Unprivileged()
	argv := h.set.flagsArgv()
	out, err := plain.Run(ctx, flagsTimeout, argv)
	fallback := func(why string) confFile {
		cf.Notes = append(cf.Notes, fmt.Sprintf("%s: %s, so the bot checked %s (%s) without -D macros", plain.Shown(argv), why, cf.Path, cf.From))
		return cf
	}
	switch {
	case err != nil:
		return fallback(hostcmd.ErrText(err))
	case out.ExitCode != 0:
		said := strings.Join(append(nonBlank(out.Stderr), nonBlank(out.Stdout)...), "; ")
		if said == "" {
			said = "no message"
		}
		return fallback(fmt.Sprintf("exited %d (%s)", out.ExitCode, said))
	}
	flags := strings.TrimSpace(string(out.Stdout))
	if flags == "NO" {
		return fallback("relayd is not enabled in rc.conf.local, so its flags do not say how it was started")
	}
	path, macros, perr := parseFlags(flags)
	if perr != nil {
		return fallback(perr.Error())
	}
	found := confFile{Path: DefaultConfig, Macros: macros, From: "relayd_flags"}
	if path != "" {
		found.Path = path
	}
	if cf.From == "relayd.config" && cf.Path != found.Path {
		found.Notes = append(found.Notes, fmt.Sprintf("relayd.config says %s, but relayd_flags start relayd with %s, which a reload loads: the bot checked that", cf.Path, found.Path))
	}
	return found
}

// shown says which file was checked and where that came from.
func (cf confFile) shown() string {
	s := cf.Path
	if len(cf.Macros) > 0 {
		s += " with -D " + strings.Join(cf.Macros, " -D ")
	}
	switch cf.From {
	case "relayd_flags":
		return s + " (from relayd_flags)"
	case "relayd.config":
		return s + " (relayd.config)"
	}
	return s + " (relayd's default)"
}

// readConf reads the configuration through the runner: cat of each file
// (with the host's become; relayd.conf is root's), never a shell.
func (h hostIO) readConf(ctx context.Context, cf confFile) (Conf, error) {
	read := func(path string) ([]byte, error) {
		if !confPath.MatchString(path) {
			return nil, bot.Errorf(bot.EFAILED, "%q is not an absolute path the bot reads", path)
		}
		out, err := h.Run(ctx, flagsTimeout, []string{Cat, path})
		if err != nil {
			return nil, err
		}
		if out.ExitCode != 0 {
			said := strings.Join(nonBlank(out.Stderr), "; ")
			if said == "" {
				said = "no message"
			}
			return nil, bot.Errorf(bot.EFAILED, "%s exited %d: %s", h.Shown([]string{Cat, path}), out.ExitCode, said)
		}
		if out.Truncated {
			return nil, bot.Errorf(bot.EFAILED, "%s printed more than the runner keeps", h.Shown([]string{Cat, path}))
		}
		return out.Stdout, nil
	}
	return ReadConf(cf.Path, cf.Macros, read)
}
