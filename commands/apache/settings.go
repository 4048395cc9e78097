package apache

import (
	"errors"
	"net/url"
	"regexp"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/opsbot/opsbot/bot"
)

// key is /apache's block in an inventory host's entry.
const key = "apache"

// Debian's defaults, for hosts whose inventory entry leaves them out.
const (
	DefaultCtl       = "apache2ctl"
	DefaultStatusURL = "http://127.0.0.1/server-status?auto"
	DefaultProbeURL  = "http://127.0.0.1/"
	DefaultErrorLog  = "/var/log/apache2/error.log"
	DefaultPidFile   = "/var/run/apache2/apache2.pid"
)

// Settings is /apache's settings block in an inventory host's entry
// (apache: {ctl, status_url, probe_url, error_log}), for the policy's load:
// decoded strictly and validated here.
func Settings() bot.HostBlock { return bot.HostBlock{Key: key, Decode: decodeSettings} }

// block is the apache: block as written. Empty fields take Debian's
// defaults.
type block struct {
	Ctl       words  `yaml:"ctl"`        // apache2ctl, apachectl, or a command with arguments
	StatusURL string `yaml:"status_url"` // mod_status in machine form (?auto), fetched from the host itself
	ProbeURL  string `yaml:"probe_url"`  // a URL that must answer after a reload
	ErrorLog  string `yaml:"error_log"`  // read for fatal AH codes after a reload
}

var (
	safeWord = regexp.MustCompile(`^[A-Za-z0-9_./=:,+@%-]+$`)
	httpURL  = regexp.MustCompile(`^https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$`)
	absPath  = regexp.MustCompile(`^/[A-Za-z0-9_./@+-]*$`)
)

func decodeSettings(s bot.HostSettings) (any, error) {
	var b block
	if err := s.Decode(&b); err != nil {
		return nil, err
	}
	var errs []error
	for _, w := range b.Ctl {
		if !safeWord.MatchString(w) {
			errs = append(errs, s.Errorf("ctl", "hosts: %q has apache.ctl word %q: a command and its arguments, without shell characters", s.Host, w))
		}
	}
	for _, u := range []struct{ key, url string }{{"status_url", b.StatusURL}, {"probe_url", b.ProbeURL}} {
		if u.url != "" && !httpURL.MatchString(u.url) {
			errs = append(errs, s.Errorf(u.key, "hosts: %q has apache.%s %q: write an http:// or https:// URL", s.Host, u.key, u.url))
		}
	}
	if b.ErrorLog != "" && !absPath.MatchString(b.ErrorLog) {
		errs = append(errs, s.Errorf("error_log", "hosts: %q has apache.error_log %q: write an absolute path", s.Host, b.ErrorLog))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return b.settings(), nil
}

// settings fills in the defaults.
func (b block) settings() settings {
	s := settings{ctl: []string{DefaultCtl}, statusURL: DefaultStatusURL, probeURL: DefaultProbeURL, errorLog: b.ErrorLog}
	if len(b.Ctl) > 0 {
		s.ctl = b.Ctl
	}
	if b.StatusURL != "" {
		s.statusURL = autoURL(b.StatusURL)
	}
	if b.ProbeURL != "" {
		s.probeURL = b.ProbeURL
	}
	return s
}

// words is a command written either as one string ("apache2ctl") or as a
// list (["env", "APACHE_CONFDIR=/etc/apache2-web", "apache2ctl"]).
type words []string

// UnmarshalYAML implements yaml.BytesUnmarshaler: a string is split on
// spaces, a list is taken as it is.
func (w *words) UnmarshalYAML(b []byte) error {
	var list []string
	if err := yaml.Unmarshal(b, &list); err == nil {
		*w = list
		return nil
	}
	var s string
	if err := yaml.Unmarshal(b, &s); err != nil {
		return err
	}
	*w = strings.Fields(s)
	return nil
}

// settings are one host's Apache settings with the defaults filled in.
type settings struct {
	ctl       []string
	statusURL string
	probeURL  string
	errorLog  string // "" = ask Apache (DUMP_RUN_CFG), then DefaultErrorLog
}

// settingsOf is h's apache: block as the policy's load decoded it, or
// Debian's defaults.
func settingsOf(h bot.Host) settings {
	if s, ok := h.Settings[key].(settings); ok {
		return s
	}
	return block{}.settings()
}

// autoURL adds ?auto to a server-status URL written without it: the HTML
// page is the commonest mistake, and ?auto is the only form we read.
func autoURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.RawQuery != "" || !strings.HasSuffix(u.Path, "/server-status") {
		return raw
	}
	u.RawQuery = "auto"
	return u.String()
}
