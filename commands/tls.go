package commands

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/probe"
	"github.com/opsbot/opsbot/commands/tlscheck"
	"github.com/opsbot/opsbot/internal/text"
)

// TLS is /tls: which certificate does this port serve, and is it good?
// The evidence `openssl s_client` gives, read for the user.
type TLS struct {
	targets  *bot.Targets
	roots    *x509.CertPool // nil: the system roots
	rootName string         // "the system roots" or the policy's CA bundle
	warn     int            // days before expiry that count as expiring soon
	now      func() time.Time
	check    func(context.Context, netip.AddrPort, tlscheck.Options) (tlscheck.Result, error)
}

// TLSConfig is what /tls takes from policy.
type TLSConfig struct {
	Roots    *x509.CertPool // nil: the system roots
	CABundle string         // the file Roots came from, for replies
	WarnDays int            // expiring soon: fewer days left than this; 0 never warns
}

// NewTLS checks TLS servers the target policy allows.
func NewTLS(targets *bot.Targets, cfg TLSConfig) *TLS {
	t := &TLS{targets: targets, roots: cfg.Roots, rootName: "the system roots", warn: cfg.WarnDays, now: time.Now, check: tlscheck.Check}
	if cfg.CABundle != "" {
		t.rootName = "the CA bundle " + cfg.CABundle
	}
	return t
}

var (
	_ bot.Command  = (*TLS)(nil)
	_ bot.Preparer = (*TLS)(nil)
	_ bot.Changer  = (*TLS)(nil)
)

const tlsSynopsis = "/tls HOST [PORT] [sni NAME] [starttls smtp|imap|pop3] [timeout 5s]"

// Name implements bot.Command.
func (*TLS) Name() string { return "tls" }

// Changes implements bot.Changer: a handshake changes nothing.
func (*TLS) Changes(string) bool { return false }

// Summary implements bot.Command.
func (*TLS) Summary() string {
	return "which certificate is served, and is it good? (openssl s_client)"
}

// Usage implements bot.Command.
func (t *TLS) Usage() string {
	return tlsSynopsis + `
  /tls www.example.com                       port 443, SNI www.example.com
  /tls 10.0.0.10 8443 sni www.example.com    the name sent and checked
  /tls mail.example.com 25 starttls smtp     also: starttls imap (143), starttls pop3 (110)
  /portcheck www.example.com 443 tls         the same check

Tells: the handshake a current client gets (version, cipher suite, ALPN),
which of TLS 1.0, 1.1, 1.2 and 1.3 the server accepts (one handshake each),
the certificate chain as served (subject, names, issuer, validity and days
left, key, SHA-256 fingerprint), whether it verifies against ` + t.rootName + `
(and why not), whether it is valid for the SNI name (for an address without
sni: for the address), and whether an OCSP response is stapled. Expired,
expiring within ` + fmt.Sprint(t.warn) + ` days (tls.expiry_warn_days), not yet valid, self-signed,
name mismatch, an unverifiable chain, only insecure cipher suites and
TLS 1.0/1.1 accepted are named at the top. A failed handshake says whether
the server asked for a client certificate or refused the ClientHello. A
name is resolved once and checked against the target policy; the first
allowed address is checked.

Cannot tell: SSLv3 and SSLv2 (the client is Go's crypto/tls, which does not
speak them), cipher suites Go does not implement (DHE key exchange, CCM,
CAMELLIA, ARIA, export, NULL; RC4 and 3DES it does try), the full list
of suites a server accepts, revocation (no OCSP or CRL
fetch; only whether a staple is there), client-certificate requirements
beyond the handshake. STARTTLS is SMTP, IMAP and POP3 only.
Exit status of opsbot run: 0 when the chain verifies, matches the name,
is not expiring soon and TLS 1.0/1.1 are refused; 1 otherwise.`
}

// tlsArgs are /tls's validated words.
type tlsArgs struct {
	host     string
	port     uint16
	sni      string
	sniSet   bool
	starttls string
	timeout  time.Duration
}

var starttlsPorts = map[string]uint16{tlscheck.SMTP: 25, tlscheck.IMAP: 143, tlscheck.POP3: 110}

// parseTLSArgs validates the words; it touches neither DNS nor the network.
func parseTLSArgs(args []string) (tlsArgs, error) {
	var a tlsArgs
	if len(args) == 0 {
		return a, bot.Errorf(bot.EINVALID, "no host given: usage %s", tlsSynopsis)
	}
	a.host = args[0]
	if _, _, err := bot.ParseHost(a.host); err != nil {
		return a, err
	}
	rest := args[1:]
	value := func(i int, what, example string) (string, error) {
		if i+1 >= len(rest) {
			return "", bot.Errorf(bot.EINVALID, "%s needs a value, like %s", what, example)
		}
		return rest[i+1], nil
	}
	for i := 0; i < len(rest); i++ {
		w := strings.ToLower(rest[i])
		switch w {
		case "sni":
			v, err := value(i, "sni", "sni www.example.com")
			if err != nil {
				return a, err
			}
			i++
			if strings.ContainsAny(v, " \t\r\n") {
				return a, bot.Errorf(bot.EINVALID, "sni %q contains spaces: a server name is a DNS name like www.example.com", truncate(v, 60))
			}
			addr, name, err := bot.ParseHost(v)
			if err != nil {
				return a, bot.Errorf(bot.EINVALID, "sni %q is not a DNS name: accepted is a name like www.example.com", truncate(v, 60))
			}
			if addr.IsValid() {
				return a, bot.Errorf(bot.EINVALID, "sni %s is an address: TLS sends only names as SNI; leave sni out to check the certificate against the address", v)
			}
			a.sni, a.sniSet = name, true
		case "starttls":
			v, err := value(i, "starttls", "starttls smtp")
			if err != nil {
				return a, err
			}
			i++
			p := strings.ToLower(v)
			if !slices.Contains(tlscheck.StartTLSProtocols, p) {
				return a, bot.Errorf(bot.EINVALID, "starttls %q is not supported: accepted are smtp, imap and pop3", truncate(v, 40))
			}
			a.starttls = p
		case "timeout":
			v, err := value(i, "timeout", "timeout 5s")
			if err != nil {
				return a, err
			}
			i++
			if a.timeout, err = parseDuration("timeout", v, minTimeout, maxTimeout); err != nil {
				return a, err
			}
		default:
			if a.port != 0 {
				return a, bot.Errorf(bot.EINVALID, "%q: /tls checks one port; usage %s", truncate(rest[i], 40), tlsSynopsis)
			}
			if strings.ContainsAny(w, ",-") && len(w) > 1 && w[0] != '-' {
				return a, bot.Errorf(bot.EINVALID, "%q: /tls checks one port, not a list or range; usage %s", truncate(rest[i], 40), tlsSynopsis)
			}
			p, err := parsePort(w, probe.TCP)
			if err != nil {
				return a, err
			}
			a.port = p
		}
	}
	if a.port == 0 {
		a.port = 443
		if p, ok := starttlsPorts[a.starttls]; ok {
			a.port = p
		}
	}
	if a.timeout == 0 {
		a.timeout = 5 * time.Second
	}
	return a, nil
}

func truncate(s string, n int) string { return text.TruncateRunes(s, n) }

// Prepare validates and resolves without connecting, for an approval
// request: the check is bound to the one address it will reach.
func (t *TLS) Prepare(ctx context.Context, req bot.Request) (bot.Prepared, error) {
	a, err := parseTLSArgs(req.Args)
	if err != nil {
		return bot.Prepared{}, err
	}
	tg, err := target(ctx, t.targets, targetArgs{host: a.host}, req.Bound, 1)
	if err != nil {
		return bot.Prepared{}, err
	}
	return bot.Prepared{Hosts: []string{tg.Addrs[0].String()},
		Impact: fmt.Sprintf("Makes 5 TLS handshakes with %s port %d.", tg.Addrs[0], a.port)}, nil
}

// Run resolves once, checks policy, and reports what the first allowed
// address serves.
func (t *TLS) Run(ctx context.Context, req bot.Request) (bot.Reply, error) {
	a, err := parseTLSArgs(req.Args)
	if err != nil {
		return bot.Reply{}, err
	}
	tg, err := target(ctx, t.targets, targetArgs{host: a.host}, req.Bound, 0)
	if err != nil {
		return bot.Reply{}, err
	}
	sni := a.sni
	if !a.sniSet {
		sni = tg.Name
	}
	addr := netip.AddrPortFrom(tg.Addrs[0], a.port)
	res, err := t.check(ctx, addr, tlscheck.Options{SNI: sni, StartTLS: a.starttls, Timeout: a.timeout, Roots: t.roots, Now: t.now()})
	return tlsReply(tg, a, res, err, t.now(), t.warn, t.rootName), nil
}

// tlsReply is the one place /tls results become words.
func tlsReply(tg bot.Target, a tlsArgs, r tlscheck.Result, err error, now time.Time, warnDays int, rootName string) bot.Reply {
	where := fmt.Sprintf("%s:%d", tg.Host, a.port)
	if tg.Name == "" && r.Addr.Addr().Is6() {
		where = fmt.Sprintf("[%s]:%d", tg.Host, a.port)
	}
	var notes []string
	if tg.Name != "" {
		notes = append(notes, fmt.Sprintf("Checked %s (%s).", r.Addr, tg.Name))
	}
	if len(tg.Addrs) > 1 {
		notes = append(notes, fmt.Sprintf("%s has %d allowed addresses; only the first was checked (name an address to check another).", tg.Host, len(tg.Addrs)))
	}
	if len(tg.Skipped) > 0 {
		notes = append(notes, "Not checked (policy): "+joinSemicolon(tg.Skipped))
	}
	if err != nil {
		var no *tlscheck.NoTLSError
		reply := bot.Reply{Status: bot.StatusNegative}
		switch {
		case errors.As(err, &no):
			reply.Title = where + ": no TLS"
			reply.Lines = []string{no.Message}
		case isDialError(err):
			reply.Title = where + ": no connection"
			reply.Lines = []string{connError(err)}
		default:
			reply.Title = where + ": TLS handshake failed"
			reply.Lines = []string{err.Error()}
		}
		if r.Greeting != "" {
			reply.Lines = append(reply.Lines, "greeting: "+r.Greeting)
		}
		reply.Text = strings.Join(notes, "\n")
		return reply
	}

	var problems []string
	var old []string
	for _, v := range r.Versions {
		if v.Accepted && v.Version < tls.VersionTLS12 {
			old = append(old, tlscheck.VersionName(v.Version))
		}
	}
	if len(r.Chain) > 0 {
		leaf := r.Chain[0]
		for i, c := range r.Chain {
			label := "the certificate"
			if i > 0 {
				label = fmt.Sprintf("chain certificate %d (%s)", i, c.Subject)
			}
			switch {
			case now.After(c.NotAfter):
				problems = append(problems, fmt.Sprintf("EXPIRED: %s expired %s ago, on %s", label, daysText(now.Sub(c.NotAfter)), dateOf(c.NotAfter)))
			case now.Before(c.NotBefore):
				problems = append(problems, fmt.Sprintf("NOT YET VALID: %s is valid from %s", label, dateOf(c.NotBefore)))
			case c.NotAfter.Sub(now) < time.Duration(warnDays)*24*time.Hour:
				problems = append(problems, fmt.Sprintf("EXPIRES SOON: %s expires in %s, on %s (policy warns at %d days)", label, daysText(c.NotAfter.Sub(now)), dateOf(c.NotAfter), warnDays))
			}
		}
		if leaf.SelfSigned {
			problems = append(problems, "SELF-SIGNED: the certificate is issued by itself ("+leaf.Subject+")")
		}
		if !r.NameOK {
			problems = append(problems, "NAME MISMATCH: "+r.NameErr)
		}
		if !r.Verified && !leaf.SelfSigned && !strings.Contains(r.VerifyErr, "expired") && !strings.Contains(r.VerifyErr, "not valid before") {
			problems = append(problems, "NOT TRUSTED: "+r.VerifyErr)
		}
	} else {
		problems = append(problems, "NO CERTIFICATE: the server sent none")
	}
	if r.InsecureOnly {
		problems = append(problems, "WEAK CIPHERS: the server accepts only cipher suites current clients refuse; it chose "+tls.CipherSuiteName(r.Cipher))
	}
	if len(old) > 0 {
		problems = append(problems, "OLD PROTOCOLS: accepts "+strings.Join(old, " and ")+" (deprecated by RFC 8996)")
	}

	reply := bot.Reply{Status: bot.StatusOK}
	days := ""
	if len(r.Chain) > 0 {
		days = fmt.Sprintf(", %s left", daysText(r.Chain[0].NotAfter.Sub(now)))
		if now.After(r.Chain[0].NotAfter) {
			days = ", expired"
		}
	}
	if len(problems) == 0 {
		reply.Title = fmt.Sprintf("%s: %s, certificate valid%s", where, tlscheck.VersionName(r.Version), days)
	} else {
		reply.Status = bot.StatusNegative
		word := "problem"
		if len(problems) > 1 {
			word = "problems"
		}
		reply.Title = fmt.Sprintf("%s: %s, %d %s%s", where, tlscheck.VersionName(r.Version), len(problems), word, days)
	}
	lines := append([]string(nil), problems...)
	if len(problems) > 0 {
		lines = append(lines, "")
	}
	sni := r.SNI
	if sni == "" {
		sni = "none (an address)"
	}
	via := ""
	if r.StartTLS != "" {
		via = ", STARTTLS " + strings.ToUpper(r.StartTLS)
	}
	lines = append(lines, fmt.Sprintf("address %s, SNI %s%s", r.Addr, sni, via))
	alpn := r.ALPN
	if alpn == "" {
		alpn = "none"
		if r.StartTLS != "" {
			alpn = "not offered (STARTTLS)"
		}
	}
	lines = append(lines, fmt.Sprintf("handshake: %s, %s, ALPN %s (%s)", tlscheck.VersionName(r.Version), tls.CipherSuiteName(r.Cipher), alpn, human(r.Handshake)))
	var vs []string
	for _, v := range r.Versions {
		state := "refused"
		if v.Accepted {
			state = "accepted"
		} else if v.Err != "" && !refusal(v.Err) {
			state = "failed (" + v.Err + ")"
		}
		vs = append(vs, tlscheck.VersionName(v.Version)+" "+state)
	}
	lines = append(lines, "versions: "+strings.Join(vs, ", "))
	if r.Verified {
		lines = append(lines, "verification: the chain verifies against "+rootName)
	} else {
		lines = append(lines, "verification: FAILED against "+rootName+": "+r.VerifyErr)
	}
	if r.NameOK {
		name := r.SNI
		if name == "" {
			name = r.Addr.Addr().String()
		}
		lines = append(lines, "name: "+name+" matches the certificate")
	} else {
		lines = append(lines, "name: "+r.NameErr)
	}
	if r.OCSPStaple {
		lines = append(lines, "OCSP staple: present (not checked)")
	} else {
		lines = append(lines, "OCSP staple: none")
	}
	lines = append(lines, fmt.Sprintf("chain as served (%d):", len(r.Chain)))
	for i, c := range r.Chain {
		lines = append(lines, fmt.Sprintf("%d subject: %s", i, c.Subject))
		if len(c.SANs) > 0 {
			lines = append(lines, "  names: "+strings.Join(c.SANs, ", "))
		}
		lines = append(lines, "  issuer: "+c.Issuer)
		left := daysText(c.NotAfter.Sub(now)) + " left"
		if now.After(c.NotAfter) {
			left = "expired " + daysText(now.Sub(c.NotAfter)) + " ago"
		}
		lines = append(lines, fmt.Sprintf("  valid: %s to %s (%s)", dateOf(c.NotBefore), dateOf(c.NotAfter), left))
		lines = append(lines, "  key: "+c.Key)
		lines = append(lines, "  SHA-256: "+c.SHA256)
	}
	reply.Lines = lines
	reply.Text = strings.Join(notes, "\n")
	return reply
}

// refusal tells a server's "no" to one version from a failure that says
// nothing about the version (a timeout, a reset).
func refusal(msg string) bool {
	for _, s := range []string{"protocol version", "handshake failure", "no supported versions", "unsupported", "insufficient security", "EOF", "connection reset", "illegal parameter", "internal error"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func connError(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "connection refused"):
		return "connection refused (nothing listens, or a firewall rejects)"
	case strings.Contains(msg, "i/o timeout") || errors.Is(err, context.DeadlineExceeded):
		return "no answer to the connection (a firewall drops it)"
	}
	return msg
}

func dateOf(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// daysText is "54 days", "1 day", "5 hours" below a day.
func daysText(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch days := int(d / (24 * time.Hour)); {
	case days >= 2:
		return fmt.Sprintf("%d days", days)
	case days == 1:
		return "1 day"
	}
	h := int(d / time.Hour)
	if h == 1 {
		return "1 hour"
	}
	return fmt.Sprintf("%d hours", h)
}
