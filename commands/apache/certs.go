package apache

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/hostcmd"
	"github.com/opsbot/opsbot/commands/tlscheck"
)

// handshakeTimeout bounds one TLS handshake with a virtual host.
const handshakeTimeout = 5 * time.Second

// TLSSite is one virtual host with SSLEngine on, as its config block says.
type TLSSite struct {
	VHost     VHost
	CertFiles []string // SSLCertificateFile, relative paths resolved against ServerRoot
}

// Label is "www.example.com 127.0.0.1:443".
func (s TLSSite) Label() string {
	return s.VHost.ServerName + " " + net.JoinHostPort(s.dialHost(), strconv.Itoa(s.port()))
}

func (s TLSSite) dialHost() string {
	if s.VHost.Address == "" || s.VHost.Address == "*" {
		return "127.0.0.1"
	}
	return s.VHost.Address
}

func (s TLSSite) port() int {
	if s.VHost.Port == 0 {
		return 443
	}
	return s.VHost.Port
}

// sni is the name sent: the ServerName, unless Apache made one up.
func (s TLSSite) sni() string {
	n := s.VHost.ServerName
	if n == "" || n == "bogus_host_without_reverse_dns" || net.ParseIP(n) != nil {
		return ""
	}
	return n
}

// ParseVHostTLS reads the <VirtualHost> block that starts at line (1-based,
// as apache2ctl -S gives it) of a config file: whether it has SSLEngine on
// (or optional) and its SSLCertificateFile values as written. Includes
// inside the block and a certificate set outside it are not followed.
func ParseVHostTLS(conf []byte, line int) (tlsOn bool, certFiles []string) {
	sc := bufio.NewScanner(bytes.NewReader(conf))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		if n < line {
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch d := strings.ToLower(f[0]); {
		case n > line && strings.HasPrefix(d, "</virtualhost"):
			return tlsOn, certFiles
		case d == "sslengine" && len(f) > 1:
			v := strings.ToLower(unquote(f[1]))
			tlsOn = v == "on" || v == "optional"
		case d == "sslcertificatefile" && len(f) > 1:
			certFiles = append(certFiles, unquote(strings.Join(f[1:], " ")))
		}
	}
	return tlsOn, certFiles
}

// tlsSites asks Apache for its virtual hosts (apache2ctl -S, the config on
// disk) and reads each one's block for SSLEngine and SSLCertificateFile.
func (h hostIO) tlsSites(ctx context.Context) ([]TLSSite, error) {
	out, err := h.ctl(ctx, "-S")
	if err != nil {
		return nil, err
	}
	if out.ExitCode != 0 {
		return nil, fmt.Errorf("%s -S exited %d: %s", strings.Join(h.set.ctl, " "), out.ExitCode, firstLine(out.Stderr, out.Stdout))
	}
	vh, _ := ParseVHosts(out.Stdout)
	root := ""
	for _, s := range vh.Settings {
		if s.Key == "ServerRoot" {
			root = s.Value
		}
	}
	files := map[string][]byte{}
	var sites []TLSSite
	for _, v := range vh.VHosts {
		if v.File == "" || v.Line < 1 {
			continue
		}
		conf, ok := files[v.File]
		if !ok {
			o, err := h.readFile(ctx, v.File)
			if err != nil {
				return sites, err
			}
			if o.ExitCode != 0 {
				return sites, fmt.Errorf("cannot read %s: %s", v.File, firstLine(o.Stderr))
			}
			conf = o.Stdout
			files[v.File] = conf
		}
		on, certs := ParseVHostTLS(conf, v.Line)
		if !on {
			continue
		}
		for i, c := range certs {
			if !path.IsAbs(c) && root != "" {
				certs[i] = path.Join(root, c)
			}
		}
		sites = append(sites, TLSSite{VHost: v, CertFiles: certs})
	}
	return sites, nil
}

// siteCert is what one TLS virtual host serves, and what its certificate
// file holds, at one moment.
type siteCert struct {
	Site      TLSSite
	Served    *tlscheck.Cert
	ServedErr error
	Files     []fileCert
	At        time.Time // when it was read, for the days left
}

type fileCert struct {
	Path string
	Cert *tlscheck.Cert
	Err  error
}

// matches: the served certificate is the one in a certificate file.
// known is false when no file could be read or nothing was served.
func (s siteCert) matches() (match, known bool) {
	if s.Served == nil {
		return false, false
	}
	for _, f := range s.Files {
		if f.Cert != nil {
			known = true
			if f.Cert.SHA256 == s.Served.SHA256 {
				return true, true
			}
		}
	}
	return false, known
}

// certs reads what each site serves (one handshake from the host itself,
// with the ServerName as SNI) and what its files hold, all sites at once.
func (h hostIO) certs(ctx context.Context, sites []TLSSite) []siteCert {
	out := make([]siteCert, len(sites))
	var wg sync.WaitGroup
	for i, s := range sites {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = h.siteCert(ctx, s)
		}()
	}
	wg.Wait()
	return out
}

func (h hostIO) siteCert(ctx context.Context, s TLSSite) siteCert {
	sc := siteCert{Site: s, At: time.Now()}
	sc.Served, sc.ServedErr = h.served(ctx, s)
	for _, f := range s.CertFiles {
		c, err := h.fileCert(ctx, f)
		sc.Files = append(sc.Files, fileCert{Path: f, Cert: c, Err: err})
	}
	return sc
}

func (h hostIO) served(ctx context.Context, s TLSSite) (*tlscheck.Cert, error) {
	addr, err := netip.ParseAddr(s.dialHost())
	if err != nil {
		return nil, fmt.Errorf("the virtual host's address %q is not an IP address", s.VHost.Address)
	}
	o := tlscheck.Options{SNI: s.sni(), Timeout: handshakeTimeout, Dial: h.dialFunc()}
	if o.Dial == nil {
		return nil, errors.New("the runner cannot open connections from the host")
	}
	res, err := tlscheck.Served(ctx, netip.AddrPortFrom(addr, uint16(s.port())), o) //nolint:gosec // a port from -S
	if err != nil {
		return nil, err
	}
	if len(res.Chain) == 0 {
		return nil, errors.New("the server sent no certificate")
	}
	return &res.Chain[0], nil
}

// fileCert reads the first certificate of a PEM file on the host.
func (h hostIO) fileCert(ctx context.Context, file string) (*tlscheck.Cert, error) {
	o, err := h.readFile(ctx, file)
	if err != nil {
		return nil, err
	}
	if o.ExitCode != 0 {
		return nil, fmt.Errorf("cannot read %s: %s", file, firstLine(o.Stderr))
	}
	rest := o.Stdout
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, fmt.Errorf("%s holds no PEM certificate", file)
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		d := tlscheck.Describe(c)
		return &d, nil
	}
}

// dialFunc opens connections from the host itself, as page fetches do;
// nil when the runner cannot.
func (h hostIO) dialFunc() func(ctx context.Context, network, addr string) (net.Conn, error) {
	dialer, ok := h.Runner.(bot.HostDialer)
	if !ok {
		return nil
	}
	return func(ctx context.Context, _, addr string) (net.Conn, error) {
		return dialer.DialHost(ctx, h.Host, addr)
	}
}

// certProblems are the failed post-checks of the certificates after an
// action: a site that serves nothing, or serves another certificate than
// its file holds.
func certProblems(certs []siteCert, action string) []string {
	var out []string
	for _, c := range certs {
		if c.ServedErr != nil {
			out = append(out, fmt.Sprintf("TLS %s does not answer after the %s: %s", c.Site.Label(), action, hostcmd.ErrText(c.ServedErr)))
			continue
		}
		if m := mismatchText(c); m != "" {
			out = append(out, m)
		}
	}
	return out
}

// mismatchText is the evidence of a site serving a certificate its file
// does not hold; "" when they match or the file could not be read.
func mismatchText(c siteCert) string {
	match, known := c.matches()
	if match || !known {
		return ""
	}
	var files []string
	for _, f := range c.Files {
		if f.Cert != nil {
			files = append(files, fmt.Sprintf("%s holds %s", f.Path, f.Cert.SHA256))
		}
	}
	return fmt.Sprintf("CERTIFICATE MISMATCH: TLS %s serves %s, but %s", c.Site.Label(), c.Served.SHA256, strings.Join(files, " and "))
}

// shortFP is the first 8 bytes of a fingerprint: enough to tell two
// certificates apart at a glance; a mismatch shows the whole one.
func shortFP(fp string) string {
	if len(fp) > 23 {
		return fp[:23] + "…"
	}
	return fp
}

func certText(c *tlscheck.Cert, now time.Time) string {
	days := int(c.NotAfter.Sub(now).Hours() / 24)
	left := fmt.Sprintf("%d days left", days)
	if c.NotAfter.Before(now) {
		left = fmt.Sprintf("EXPIRED %d days ago", int(now.Sub(c.NotAfter).Hours()/24))
	}
	return fmt.Sprintf("SHA-256 %s, expires %s (%s)", shortFP(c.SHA256), c.NotAfter.UTC().Format("2006-01-02"), left)
}

// servedText is what a site serves and whether its file holds it.
func servedText(c siteCert) string {
	if c.ServedErr != nil {
		return "no certificate served: " + hostcmd.ErrText(c.ServedErr)
	}
	return certText(c.Served, c.At) + "; " + fileText(c)
}

func fileText(c siteCert) string {
	match, known := c.matches()
	switch {
	case match:
		return "same as the file on disk"
	case known:
		return "NOT the certificate in its file on disk"
	}
	var why []string
	for _, f := range c.Files {
		if f.Err != nil {
			why = append(why, hostcmd.ErrText(f.Err))
		}
	}
	if len(why) == 0 {
		return "no SSLCertificateFile in its <VirtualHost> block to compare with"
	}
	return "not compared with the file: " + strings.Join(why, "; ")
}

// certFields are status's lines for the TLS virtual hosts, and the
// mismatches found.
func certFields(s snapshot) (fields []bot.Field, mismatches []string) {
	if s.SitesErr != nil {
		return []bot.Field{{Name: "TLS virtual hosts", Value: "unknown: " + hostcmd.ErrText(s.SitesErr)}}, nil
	}
	for _, c := range s.Certs {
		fields = append(fields, bot.Field{Name: "TLS " + c.Site.Label(), Value: servedText(c)})
		if m := mismatchText(c); m != "" {
			mismatches = append(mismatches, m)
		}
	}
	return fields, mismatches
}

// certCell is a group's status column for a host's TLS virtual hosts:
// the days left of the certificate served that expires first ("59 days
// left"; "EXPIRED" once one has), of how many, and how many serve none.
// "-" when the host has no TLS virtual host or nothing was read (Apache
// not running), "?" when its virtual hosts are unknown.
func certCell(s snapshot) string {
	switch {
	case s.SitesErr != nil:
		return "?"
	case len(s.Certs) == 0:
		return "-"
	}
	served, notServed := 0, 0
	var soonest siteCert
	for _, c := range s.Certs {
		if c.Served == nil {
			notServed++
			continue
		}
		if served == 0 || c.Served.NotAfter.Before(soonest.Served.NotAfter) {
			soonest = c
		}
		served++
	}
	var parts []string
	if served > 0 {
		left := fmt.Sprintf("%d days left", int(soonest.Served.NotAfter.Sub(soonest.At).Hours()/24))
		if soonest.Served.NotAfter.Before(soonest.At) {
			left = "EXPIRED"
		}
		if len(s.Certs) > 1 {
			left += fmt.Sprintf(" (soonest of %d)", len(s.Certs))
		}
		parts = append(parts, left)
	}
	if notServed > 0 {
		parts = append(parts, fmt.Sprintf("%d not served", notServed))
	}
	return strings.Join(parts, ", ")
}

// changeCertFields are a reload's or restart's certificates, before and
// after.
func changeCertFields(c change) []bot.Field {
	var out []bot.Field
	for i, after := range c.Certs {
		before := "not served"
		if i < len(c.Before.Certs) {
			if b := c.Before.Certs[i]; b.Served != nil {
				before = shortFP(b.Served.SHA256)
			}
		}
		now := "not served: "
		if after.ServedErr != nil {
			now += hostcmd.ErrText(after.ServedErr)
		} else {
			now = certText(after.Served, after.At) + ", " + fileText(after)
		}
		out = append(out, bot.Field{Name: "TLS " + after.Site.Label(), Value: "before " + before + "; now " + now})
	}
	return out
}

// readFile cats a file as the login user (config files and certificates
// are usually world-readable: no sudoers line needed), and with the host's
// sudo or doas only when that is refused.
func (h hostIO) readFile(ctx context.Context, file string) (bot.Output, error) {
	out, err := h.runUnprivileged(ctx, "cat", "--", file)
	if err == nil && out.ExitCode != 0 && h.Host.Become != "" && bytes.Contains(out.Stderr, []byte("Permission denied")) {
		return h.run(ctx, "cat", "--", file)
	}
	return out, err
}
