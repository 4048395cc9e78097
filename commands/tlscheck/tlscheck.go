// Package tlscheck finds what a TLS server serves: the handshake it
// chooses, the protocol versions it accepts, the certificate chain as sent,
// whether that chain verifies and matches a name, and whether an OCSP
// response is stapled. It returns typed facts; turning them into words is
// the /tls command's job. It speaks STARTTLS for SMTP, IMAP and POP3.
//
// Go's crypto/tls is the client, so what it cannot speak is not tested:
// SSLv3 and SSLv2, cipher suites Go does not implement (DHE key exchange,
// CCM, CAMELLIA, ARIA, export and NULL suites), TLS 1.3 suite choice. The
// version probes offer Go's insecure suites too (RC4, 3DES, RSA key
// exchange), so a server is not called "refused" for lack of them.
package tlscheck

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Versions are the protocol versions a check tries, oldest first.
var Versions = []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13}

// StartTLS protocols.
const (
	SMTP = "smtp"
	IMAP = "imap"
	POP3 = "pop3"
)

// StartTLSProtocols are the accepted words after "starttls".
var StartTLSProtocols = []string{SMTP, IMAP, POP3}

// Options say how to reach the server and what to check against.
type Options struct {
	SNI      string         // the name sent and matched; "" sends none and matches Addr's address
	StartTLS string         // "", smtp, imap, pop3
	Timeout  time.Duration  // per connection, connect to the end of the handshake
	Roots    *x509.CertPool // nil: the system roots
	Now      time.Time      // the time verification uses; zero: time.Now()
	// Dial opens the TCP connection; nil dials from here. /apache passes
	// one that connects from the Apache host itself.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Cert is one certificate as served.
type Cert struct {
	Subject     string
	Issuer      string
	SANs        []string
	NotBefore   time.Time
	NotAfter    time.Time
	Key         string // "RSA 2048", "ECDSA P-256", "Ed25519"
	SHA256      string // hex, upper case, colon-separated as openssl prints it
	SelfSigned  bool   // issued by itself: subject is issuer and its own key signs it
	IsCA        bool
	Certificate *x509.Certificate
}

// VersionResult says whether the server completed a handshake at one
// protocol version.
type VersionResult struct {
	Version  uint16
	Accepted bool
	Err      string // why not (an alert, a reset), "" when accepted
}

// Result is what one address served.
type Result struct {
	Addr       netip.AddrPort
	SNI        string
	StartTLS   string
	Greeting   string // the server's first line before STARTTLS
	Version    uint16
	Cipher     uint16
	ALPN       string
	Chain      []Cert
	Verified   bool
	VerifyErr  string // why the chain does not verify
	NameOK     bool
	NameErr    string // why the name does not match
	OCSPStaple bool
	// InsecureOnly: a current client's handshake (Go's default suites)
	// failed and one offering insecure suites too succeeded.
	InsecureOnly bool
	Versions     []VersionResult
	Handshake    time.Duration
}

// NoTLSError is a port that answered, but not with TLS, or did not answer
// the handshake at all. Message is a sentence for the user.
type NoTLSError struct{ Message string }

func (e *NoTLSError) Error() string { return e.Message }

// HandshakeError is a TLS server that refused the handshake; Message
// says what the client saw (the alert, and what it likely means).
type HandshakeError struct {
	Message string
	Err     error
	refused bool // at the ClientHello, before any ServerHello
}

func (e *HandshakeError) Error() string { return e.Message }
func (e *HandshakeError) Unwrap() error { return e.Err }

// VersionName is "TLS 1.2" for tls.VersionTLS12.
func VersionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLS 1.0"
	case tls.VersionTLS11:
		return "TLS 1.1"
	case tls.VersionTLS12:
		return "TLS 1.2"
	case tls.VersionTLS13:
		return "TLS 1.3"
	case tls.VersionSSL30: //nolint:staticcheck // named, never offered
		return "SSL 3.0"
	}
	return fmt.Sprintf("version 0x%04x", v)
}

// allSuites is every TLS 1.0-1.2 suite Go implements, the insecure ones
// too: a probe of which versions a server accepts must not fail only for
// lack of a suite the server would take.
func allSuites() []uint16 {
	var ids []uint16
	for _, s := range tls.CipherSuites() {
		ids = append(ids, s.ID)
	}
	for _, s := range tls.InsecureCipherSuites() {
		ids = append(ids, s.ID)
	}
	return ids
}

// Check connects to addr, completes one handshake as a modern client
// would (any version, ALPN h2 and http/1.1), then one handshake per
// protocol version, all at once. The error is a *NoTLSError when the
// port does not speak TLS, or a connection error.
func Check(ctx context.Context, addr netip.AddrPort, o Options) (Result, error) {
	res, err := Served(ctx, addr, o)
	if err != nil {
		return res, err
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	res.Versions = versions(ctx, addr, o)
	return res, nil
}

// Served completes one handshake as a modern client would and returns
// what was served (the chain, its verification and name match), without
// the per-version probes: what a before/after comparison needs.
func Served(ctx context.Context, addr netip.AddrPort, o Options) (Result, error) {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	res := Result{Addr: addr, SNI: o.SNI, StartTLS: o.StartTLS}
	cfg := &tls.Config{
		ServerName:         o.SNI,
		InsecureSkipVerify: true, //nolint:gosec // verified below, with the reason kept
		MinVersion:         tls.VersionTLS10,
		MaxVersion:         tls.VersionTLS13,
	}
	if o.StartTLS == "" {
		cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	start := time.Now()
	st, greeting, err := handshake(ctx, addr, o, cfg)
	var he *HandshakeError
	if errors.As(err, &he) && he.refused {
		// Refused at the ClientHello: try once more with every suite Go
		// has, which tells "only insecure suites" from "nothing Go speaks".
		weak := cfg.Clone()
		weak.CipherSuites = allSuites()
		if st2, _, err2 := handshake(ctx, addr, o, weak); err2 == nil {
			st, err, res.InsecureOnly = st2, nil, true
		}
	}
	res.Greeting = greeting
	if err != nil {
		return res, err
	}
	res.Handshake = time.Since(start)
	res.Version, res.Cipher, res.ALPN = st.Version, st.CipherSuite, st.NegotiatedProtocol
	res.OCSPStaple = len(st.OCSPResponse) > 0
	for _, c := range st.PeerCertificates {
		res.Chain = append(res.Chain, describe(c))
	}
	verify(&res, st.PeerCertificates, o)
	return res, nil
}

// versions tries one handshake per protocol version, all at once.
func versions(ctx context.Context, addr netip.AddrPort, o Options) []VersionResult {
	out := make([]VersionResult, len(Versions))
	var wg sync.WaitGroup
	for i, v := range Versions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vc := &tls.Config{
				ServerName:         o.SNI,
				InsecureSkipVerify: true, //nolint:gosec // only the version is asked
				MinVersion:         v,
				MaxVersion:         v,
			}
			if v < tls.VersionTLS13 {
				vc.CipherSuites = allSuites()
			}
			_, _, err := handshake(ctx, addr, o, vc)
			out[i] = VersionResult{Version: v, Accepted: err == nil}
			if err != nil {
				out[i].Err = err.Error()
			}
		}()
	}
	wg.Wait()
	return out
}

// handshake dials, speaks STARTTLS when asked, and completes one TLS
// handshake, all within o.Timeout and ctx.
func handshake(ctx context.Context, addr netip.AddrPort, o Options, cfg *tls.Config) (tls.ConnectionState, string, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	dial := o.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	raw, err := dial(ctx, "tcp", addr.String())
	if err != nil {
		return tls.ConnectionState{}, "", err
	}
	defer func() { _ = raw.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	rec := &recorder{Conn: raw}
	greeting := ""
	if o.StartTLS != "" {
		if greeting, err = startTLS(rec, o.StartTLS); err != nil {
			if isTimeout(err) {
				return tls.ConnectionState{}, greeting, &NoTLSError{Message: fmt.Sprintf("no %s answer in %s: the port accepted the connection but the server did not speak %s", strings.ToUpper(o.StartTLS), o.Timeout, strings.ToUpper(o.StartTLS))}
			}
			return tls.ConnectionState{}, greeting, err
		}
		rec.buf = rec.buf[:0]
	}
	asked := false
	cfg = cfg.Clone()
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		asked = true
		return &tls.Certificate{}, nil
	}
	c := tls.Client(rec, cfg)
	err = c.HandshakeContext(ctx)
	if err != nil {
		err = explain(err, rec, o.Timeout)
		var alert tls.AlertError
		if errors.As(err, &alert) || strings.Contains(err.Error(), "remote error") {
			switch {
			case asked:
				err = &HandshakeError{Message: err.Error() + " (the server asks for a client certificate, which /tls does not have)", Err: err}
			case len(rec.buf) > 0 && rec.buf[0] == 0x15: // the first record is an alert: no ServerHello
				err = &HandshakeError{Message: err.Error() + " (the server refused the ClientHello: none of the versions TLS 1.0-1.3 and cipher suites Go has suit it, or it wants another SNI name)", Err: err, refused: true}
			}
		}
		return tls.ConnectionState{}, greeting, err
	}
	return c.ConnectionState(), greeting, nil
}

// recorder keeps the first bytes the server sent, to show what a port
// that does not speak TLS said instead.
type recorder struct {
	net.Conn
	buf []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	if room := 80 - len(r.buf); room > 0 && n > 0 {
		r.buf = append(r.buf, p[:min(n, room)]...)
	}
	return n, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
}

// explain turns a failed handshake into what the user needs: plain text
// where TLS was expected (an HTTP server, an SSH banner), silence, or the
// server's alert.
func explain(err error, rec *recorder, timeout time.Duration) error {
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		said := printable(rec.buf)
		switch {
		case strings.HasPrefix(said, "SSH-"):
			return &NoTLSError{Message: fmt.Sprintf("not TLS: the port speaks SSH (%q)", said)}
		case strings.HasPrefix(said, "HTTP/"):
			return &NoTLSError{Message: fmt.Sprintf("not TLS: the port speaks plain HTTP (it answered the handshake with %q)", said)}
		case said != "":
			return &NoTLSError{Message: fmt.Sprintf("not TLS: the port answered in plain text: %q", said)}
		}
		return &NoTLSError{Message: "not TLS: the port answered with something that is not a TLS record"}
	}
	if isTimeout(err) {
		if len(rec.buf) > 0 {
			return &NoTLSError{Message: fmt.Sprintf("no TLS handshake in %s: the port sent %q and then waited (not TLS)", timeout, printable(rec.buf))}
		}
		return &NoTLSError{Message: fmt.Sprintf("no TLS handshake in %s: the port accepted the connection but never answered the ClientHello (not TLS, or a server that waits for the client to speak another protocol first)", timeout)}
	}
	if len(rec.buf) == 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)) {
		return &NoTLSError{Message: "the server closed the connection without answering the ClientHello (not TLS, or it refuses every version and suite Go offers)"}
	}
	return err
}

func printable(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		if r < 0x20 || r > 0x7e {
			return '.'
		}
		return r
	}, string(b))
	return strings.TrimSpace(s)
}

// startTLS reads the greeting and asks for TLS, in the protocol's words.
// It returns the greeting's first line.
func startTLS(conn net.Conn, proto string) (string, error) {
	r := bufio.NewReaderSize(conn, 4096)
	line := func() (string, error) {
		s, err := r.ReadString('\n')
		if len(s) > 4096 {
			s = s[:4096]
		}
		return strings.TrimRight(s, "\r\n"), err
	}
	send := func(s string) error {
		_, err := io.WriteString(conn, s+"\r\n")
		return err
	}
	greeting, err := line()
	if err != nil {
		return printable([]byte(greeting)), err
	}
	greeting = printable([]byte(greeting))
	fail := func(what, got string) error {
		return &NoTLSError{Message: fmt.Sprintf("%s: %s answered %q", strings.ToUpper(proto), what, printable([]byte(got)))}
	}
	switch proto {
	case SMTP:
		if !strings.HasPrefix(greeting, "220") {
			return greeting, fail("the greeting is not 220, it", greeting)
		}
		// A multi-line greeting (220-) ends with "220 ".
		for strings.HasPrefix(greeting, "220-") {
			if greeting, err = line(); err != nil {
				return greeting, err
			}
		}
		if err := send("EHLO opsbot"); err != nil {
			return greeting, err
		}
		starttls := false
		for {
			l, err := line()
			if err != nil {
				return greeting, err
			}
			if !strings.HasPrefix(l, "250") {
				return greeting, fail("EHLO", l)
			}
			if strings.EqualFold(strings.TrimSpace(l[4:]), "STARTTLS") {
				starttls = true
			}
			if len(l) < 4 || l[3] == ' ' {
				break
			}
		}
		if !starttls {
			return greeting, &NoTLSError{Message: "SMTP: the server does not offer STARTTLS (not in its EHLO answer)"}
		}
		if err := send("STARTTLS"); err != nil {
			return greeting, err
		}
		l, err := line()
		if err != nil {
			return greeting, err
		}
		if !strings.HasPrefix(l, "220") {
			return greeting, fail("STARTTLS", l)
		}
	case IMAP:
		if !strings.HasPrefix(greeting, "* OK") {
			return greeting, fail("the greeting is not * OK, it", greeting)
		}
		if err := send("a1 STARTTLS"); err != nil {
			return greeting, err
		}
		for {
			l, err := line()
			if err != nil {
				return greeting, err
			}
			if strings.HasPrefix(l, "a1 ") {
				if !strings.HasPrefix(l, "a1 OK") {
					return greeting, fail("STARTTLS", l)
				}
				break
			}
		}
	case POP3:
		if !strings.HasPrefix(greeting, "+OK") {
			return greeting, fail("the greeting is not +OK, it", greeting)
		}
		if err := send("STLS"); err != nil {
			return greeting, err
		}
		l, err := line()
		if err != nil {
			return greeting, err
		}
		if !strings.HasPrefix(l, "+OK") {
			return greeting, fail("STLS", l)
		}
	default:
		return greeting, fmt.Errorf("starttls %q: accepted are %s", proto, strings.Join(StartTLSProtocols, ", "))
	}
	if r.Buffered() > 0 {
		return greeting, &NoTLSError{Message: strings.ToUpper(proto) + ": the server sent more after agreeing to STARTTLS (a protocol error, or an injection attempt): not continuing"}
	}
	return greeting, nil
}

// describe reads the facts of one certificate.
func describe(c *x509.Certificate) Cert {
	sum := sha256.Sum256(c.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var fp strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			fp.WriteByte(':')
		}
		fp.WriteString(h[i : i+2])
	}
	out := Cert{
		Subject:     c.Subject.String(),
		Issuer:      c.Issuer.String(),
		NotBefore:   c.NotBefore,
		NotAfter:    c.NotAfter,
		Key:         keyName(c.PublicKey),
		SHA256:      fp.String(),
		IsCA:        c.IsCA,
		Certificate: c,
	}
	out.SANs = append(out.SANs, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out.SANs = append(out.SANs, ip.String())
	}
	for _, u := range c.URIs {
		out.SANs = append(out.SANs, u.String())
	}
	out.SANs = append(out.SANs, c.EmailAddresses...)
	out.SelfSigned = string(c.RawSubject) == string(c.RawIssuer) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
	return out
}

func keyName(k any) string {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", k)
}

// verify checks the chain against the roots (with the served certificates
// after the first as intermediates) and the name separately, so each
// failure has its own reason.
func verify(res *Result, chain []*x509.Certificate, o Options) {
	if len(chain) == 0 {
		res.VerifyErr = "the server sent no certificate"
		res.NameErr = "no certificate"
		return
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	leaf := chain[0]
	_, err := leaf.Verify(x509.VerifyOptions{Roots: o.Roots, Intermediates: inter, CurrentTime: o.Now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	res.Verified = err == nil
	if err != nil {
		res.VerifyErr = verifyReason(err, leaf, o.Now, len(chain))
	}
	name := o.SNI
	if name == "" {
		name = res.Addr.Addr().WithZone("").String()
	}
	if err := leaf.VerifyHostname(name); err != nil {
		res.NameErr = fmt.Sprintf("%s is not among the certificate's names (%s)", name, namesOf(leaf))
	} else {
		res.NameOK = true
	}
}

func namesOf(c *x509.Certificate) string {
	var n []string
	n = append(n, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		n = append(n, ip.String())
	}
	if len(n) == 0 {
		return "none: no subject alternative names, and the CN " + fmt.Sprintf("%q", c.Subject.CommonName) + " does not count"
	}
	return strings.Join(n, ", ")
}

func verifyReason(err error, leaf *x509.Certificate, now time.Time, n int) string {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		if now.After(ci.Cert.NotAfter) {
			return fmt.Sprintf("%s expired on %s", certName(ci.Cert), ci.Cert.NotAfter.UTC().Format("2006-01-02 15:04 MST"))
		}
		return fmt.Sprintf("%s is not valid before %s", certName(ci.Cert), ci.Cert.NotBefore.UTC().Format("2006-01-02 15:04 MST"))
	case errors.As(err, &ci) && ci.Reason == x509.IncompatibleUsage:
		return "the certificate is not for TLS servers (its extended key usage does not include serverAuth)"
	case errors.As(err, &ua):
		if string(leaf.RawSubject) == string(leaf.RawIssuer) && n == 1 {
			return "self-signed: no trusted authority vouches for it"
		}
		if n == 1 {
			return fmt.Sprintf("signed by an unknown authority (%s): not in the trusted roots, or the server does not send its intermediate certificates", leaf.Issuer)
		}
		return fmt.Sprintf("the chain does not lead to a trusted root (issuer %s unknown)", ua.Cert.Issuer)
	}
	return err.Error()
}

func certName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return c.Subject.String()
}

// Describe reads the facts of one certificate, as Result.Chain has them:
// a file's certificate compared with the one served.
func Describe(c *x509.Certificate) Cert { return describe(c) }
