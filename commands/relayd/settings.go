package relayd

import (
	"errors"
	"regexp"

	"github.com/opsbot/opsbot/bot"
)

// key is /relayd's block in an inventory host's entry: a host without
// one is not a relayd host.
const key = "relayd"

// OpenBSD's defaults, for the fields a host's relayd settings leave out.
const (
	DefaultRelayctl  = "/usr/sbin/relayctl"
	DefaultRelayd    = "/usr/sbin/relayd"
	DefaultSocket    = "/var/run/relayd.sock" // RELAYD_SOCKET in relayd.h
	DefaultCarpGroup = "carp"
	DefaultDemote    = 50
	DefaultIfconfig  = "/sbin/ifconfig"
	DefaultRcctl     = "/usr/sbin/rcctl"
	DefaultConfig    = "/etc/relayd.conf" // CONF_FILE in relayd.h
	// Cat reads relayd.conf and the files it includes, through the
	// runner (and the host's become: relayd.conf is root's, mode 0600).
	Cat = "/bin/cat"
)

// Settings is /relayd's settings block in an inventory host's entry
// (relayd: {} takes OpenBSD's defaults), for the policy's load: decoded
// strictly and validated here.
func Settings() bot.HostBlock { return bot.HostBlock{Key: key, Decode: decodeSettings} }

// block is the relayd: block as written. Empty fields take OpenBSD's
// defaults.
type block struct {
	Relayctl  string `yaml:"relayctl"`   // /usr/sbin/relayctl
	Relayd    string `yaml:"relayd"`     // /usr/sbin/relayd, for relayd -n
	Socket    string `yaml:"socket"`     // relayctl -s; /var/run/relayd.sock
	CarpGroup string `yaml:"carp_group"` // interface group demoted during a restart; carp
	Demote    int    `yaml:"demote"`     // carpdemote value; 50
	Ifconfig  string `yaml:"ifconfig"`   // /sbin/ifconfig
	Rcctl     string `yaml:"rcctl"`      // /usr/sbin/rcctl
	Config    string `yaml:"config"`     // the relayd.conf relayd runs when its rc.d flags cannot say; /etc/relayd.conf
}

var (
	absPath   = regexp.MustCompile(`^/[A-Za-z0-9_./@+-]*$`)
	groupName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
)

func decodeSettings(s bot.HostSettings) (any, error) {
	var b block
	if err := s.Decode(&b); err != nil {
		return nil, err
	}
	var errs []error
	for _, f := range []struct{ key, path string }{
		{"relayctl", b.Relayctl}, {"relayd", b.Relayd}, {"socket", b.Socket},
		{"ifconfig", b.Ifconfig}, {"rcctl", b.Rcctl}, {"config", b.Config},
	} {
		if f.path != "" && !absPath.MatchString(f.path) {
			errs = append(errs, s.Errorf(f.key, "hosts: %q has relayd.%s %q: write an absolute path", s.Host, f.key, f.path))
		}
	}
	if b.CarpGroup != "" && !groupName.MatchString(b.CarpGroup) {
		errs = append(errs, s.Errorf("carp_group", "hosts: %q has relayd.carp_group %q: an interface group name such as carp", s.Host, b.CarpGroup))
	}
	if b.Demote < 0 || b.Demote > 1024 {
		errs = append(errs, s.Errorf("demote", "hosts: %q has relayd.demote %d: accepted 1 to 1024 (0 or nothing: 50)", s.Host, b.Demote))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return b.settings(), nil
}

// settings fills in the defaults.
func (b block) settings() settings {
	s := settings{
		relayctl: DefaultRelayctl, relayd: DefaultRelayd, socket: DefaultSocket,
		carpGroup: DefaultCarpGroup, demote: DefaultDemote, ifconfig: DefaultIfconfig, rcctl: DefaultRcctl,
		config: DefaultConfig, configSet: b.Config != "",
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&s.relayctl, b.Relayctl)
	set(&s.relayd, b.Relayd)
	set(&s.socket, b.Socket)
	set(&s.carpGroup, b.CarpGroup)
	set(&s.ifconfig, b.Ifconfig)
	set(&s.rcctl, b.Rcctl)
	set(&s.config, b.Config)
	if b.Demote > 0 {
		s.demote = b.Demote
	}
	return s
}

// settings are one host's relayd settings with the defaults filled in.
type settings struct {
	relayctl, relayd, socket string
	carpGroup                string
	demote                   int
	ifconfig, rcctl          string
	config                   string // relayd.config, or DefaultConfig
	configSet                bool   // relayd.config is set
}

// settingsOf is h's relayd: block as the policy's load decoded it, or
// OpenBSD's defaults.
func settingsOf(h bot.Host) settings {
	if s, ok := h.Settings[key].(settings); ok {
		return s
	}
	return block{}.settings()
}
