package commands

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/tlscheck"
	"github.com/opsbot/opsbot/commands/tlscheck/tlstest"
)

// tlsRouter wires /tls and /portcheck as main does, with roots as the
// trusted CAs (nil: the system's) and DNS replaced by a recorder that
// knows *.test names as loopback. checks counts TLS checks started.
func tlsRouter(t *testing.T, roots *x509.CertPool, warnDays int) (*bot.Router, *int) {
	t.Helper()
	res := &recordingResolver{names: map[string][]netip.Addr{
		"www.test":  {netip.MustParseAddr("127.0.0.1")},
		"self.test": {netip.MustParseAddr("127.0.0.1")},
		"meta.test": {netip.MustParseAddr("169.254.169.254")},
	}}
	targets, err := bot.NewTargets(bot.DefaultPolicy().Targets, res, nil)
	require.NoError(t, err)
	tc := NewTLS(targets, TLSConfig{Roots: roots, CABundle: "ca.pem", WarnDays: warnDays})
	var mu sync.Mutex
	checks := 0
	tc.check = func(ctx context.Context, a netip.AddrPort, o tlscheck.Options) (tlscheck.Result, error) {
		mu.Lock()
		checks++
		mu.Unlock()
		return tlscheck.Check(ctx, a, o)
	}
	pc := NewPortcheck(targets, 100).WithTLS(tc)
	return bot.NewRouter(bot.RouterConfig{Commands: []bot.Command{pc, tc}}), &checks
}

func TestTLS_BadInputIsOneLineAndNothingConnects(t *testing.T) {
	for _, tc := range []struct {
		line string
		exit int
		want string
	}{
		{"/tls", 2, "no host given: usage /tls HOST [PORT]"},
		{"/tls 127.0.0.1 443 sni 'www example com'", 2, `sni "www example com" contains spaces: a server name is a DNS name`},
		{"/tls 127.0.0.1 443 sni", 2, "sni needs a value, like sni www.example.com"},
		{"/tls 127.0.0.1 443 sni a;b", 2, `sni "a;b" is not a DNS name`},
		{"/tls 127.0.0.1 443 sni 10.0.0.1", 2, "sni 10.0.0.1 is an address: TLS sends only names as SNI"},
		{"/tls 127.0.0.1 21 starttls ftp", 2, `starttls "ftp" is not supported: accepted are smtp, imap and pop3`},
		{"/tls 127.0.0.1 starttls", 2, "starttls needs a value"},
		{"/tls 127.0.0.1 443,8443", 2, `"443,8443": /tls checks one port, not a list or range`},
		{"/tls 127.0.0.1 443 8443", 2, `"8443": /tls checks one port`},
		{"/tls 127.0.0.1 0", 2, "port 0 is out of range"},
		{"/tls 127.0.0.1 httpz", 2, `"httpz" is not a port or a known tcp service name`},
		{"/tls 127.0.0.1 timeout 2h", 2, "timeout 2h is out of range"},
		{"/tls 'a b'", 2, `invalid host "a b"`},
		{"/tls 8.8.8.8", 3, "not in targets.allow"},
		{"/tls meta.test", 3, "169.254.169.254"},
		{"/portcheck 127.0.0.1 443 tls starttls ftp", 2, `starttls "ftp" is not supported`},
		{"/portcheck 127.0.0.1 443 tls sni 'a b'", 2, "contains spaces"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			r, checks := tlsRouter(t, nil, 14)
			reply := r.Handle(context.Background(), bot.Request{Platform: "shell", User: "t", Line: tc.line})
			assert.Equal(t, tc.exit, reply.Status.ExitCode(), reply.Title)
			assert.Contains(t, reply.Title, tc.want)
			assert.NotContains(t, reply.Title, "\n", "one-line error")
			assert.Zero(t, *checks, "nothing connects")
		})
	}
}

func run(t *testing.T, r *bot.Router, line string) bot.Reply {
	t.Helper()
	reply := r.Handle(context.Background(), bot.Request{Platform: "shell", User: "t", Line: line})
	t.Logf("%s\n%s\n%s\n%s", line, reply.Title, strings.Join(reply.Lines, "\n"), reply.Text)
	return reply
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func TestTLS_CallsOutProblemsAtTheTop(t *testing.T) {
	ca := tlstest.NewCA(t)
	now := time.Now()
	serve := func(c tls.Certificate, minVersion uint16) string {
		return port(tlstest.Serve(t, &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: minVersion, NextProtos: []string{"h2", "http/1.1"}}))
	}
	good := serve(ca.Chain(ca.Leaf(t, now.Add(-time.Hour), now.AddDate(0, 0, 90), "www.test")), 0)
	soon := serve(ca.Chain(ca.Leaf(t, now.AddDate(0, -3, 0), now.AddDate(0, 0, 5).Add(time.Hour), "www.test")), 0)
	expired := serve(ca.Chain(ca.Leaf(t, now.AddDate(0, -3, 0), now.AddDate(0, 0, -2), "www.test")), 0)
	self := serve(tlstest.Single(tlstest.SelfSigned(t, "self.test")), 0)
	old := serve(ca.Chain(ca.Leaf(t, now.Add(-time.Hour), now.AddDate(1, 0, 0), "www.test")), tls.VersionTLS10)
	r, _ := tlsRouter(t, ca.Pool(), 14)

	reply := run(t, r, "/tls www.test "+good)
	assert.Equal(t, 0, reply.Status.ExitCode())
	assert.Equal(t, fmt.Sprintf("www.test:%s: TLS 1.3, certificate valid, 89 days left", good), reply.Title)
	body := strings.Join(reply.Lines, "\n")
	assert.Contains(t, body, "address 127.0.0.1:"+good+", SNI www.test")
	assert.Contains(t, body, "handshake: TLS 1.3, TLS_")
	assert.Contains(t, body, "ALPN h2")
	assert.Contains(t, body, "versions: TLS 1.0 refused, TLS 1.1 refused, TLS 1.2 accepted, TLS 1.3 accepted")
	assert.Contains(t, body, "verification: the chain verifies against the CA bundle ca.pem")
	assert.Contains(t, body, "name: www.test matches the certificate")
	assert.Contains(t, body, "OCSP staple: none")
	assert.Contains(t, body, "chain as served (2):")
	assert.Contains(t, body, "0 subject: CN=www.test\n  names: www.test\n  issuer: CN=opsbot test intermediate")
	assert.Contains(t, body, "1 subject: CN=opsbot test intermediate")
	assert.Contains(t, body, "  key: ECDSA P-256\n  SHA-256: ")
	assert.Contains(t, reply.Text, "Checked 127.0.0.1:"+good+" (www.test).")

	// The same check through /portcheck.
	same := run(t, r, "/portcheck www.test "+good+" tls")
	assert.Equal(t, reply.Title, same.Title)

	for _, tc := range []struct{ line, first string }{
		{"/tls www.test " + soon, "EXPIRES SOON: the certificate expires in 5 days, on "},
		{"/tls www.test " + expired, "EXPIRED: the certificate expired 2 days ago, on "},
		{"/tls self.test " + self, "SELF-SIGNED: the certificate is issued by itself (CN=self.test)"},
		{"/tls www.test " + good + " sni other.test", "NAME MISMATCH: other.test is not among the certificate's names (www.test)"},
		{"/tls 127.0.0.1 " + good, "NAME MISMATCH: 127.0.0.1 is not among the certificate's names (www.test)"},
		{"/tls www.test " + old, "OLD PROTOCOLS: accepts TLS 1.0 and TLS 1.1 (deprecated by RFC 8996)"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			reply := run(t, r, tc.line)
			assert.Equal(t, 1, reply.Status.ExitCode(), reply.Title)
			require.NotEmpty(t, reply.Lines)
			assert.Contains(t, reply.Lines[0], tc.first, "called out first")
			assert.Contains(t, reply.Title, "1 problem")
		})
	}

	// The private chain against the system roots: not trusted, and why.
	sys, _ := tlsRouter(t, nil, 14)
	reply = run(t, sys, "/tls www.test "+good)
	assert.Equal(t, 1, reply.Status.ExitCode())
	assert.Contains(t, reply.Lines[0], "NOT TRUSTED: the chain does not lead to a trusted root (issuer CN=opsbot test root unknown)")
}

func TestTLS_NoTLSIsATruthfulReply(t *testing.T) {
	ssh := port(tlstest.Raw(t, func(c net.Conn) {
		_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.2p1\r\n"))
		_, _ = c.Read(make([]byte, 1024))
	}))
	hang := port(tlstest.Raw(t, func(c net.Conn) { _, _ = c.Read(make([]byte, 64<<10)); time.Sleep(3 * time.Second) }))
	hangup := port(tlstest.Raw(t, func(c net.Conn) { _, _ = c.Read(make([]byte, 64<<10)) }))
	closed, err := probeFreePort()
	require.NoError(t, err)
	ca := tlstest.NewCA(t)
	mtls := port(tlstest.Serve(t, &tls.Config{Certificates: []tls.Certificate{ca.Chain(ca.Leaf(t, time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0), "www.test"))},
		MaxVersion: tls.VersionTLS12, ClientAuth: tls.RequireAnyClientCert}))
	weak := port(tlstest.Serve(t, &tls.Config{Certificates: []tls.Certificate{ca.Chain(ca.Leaf(t, time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0), "www.test"))},
		MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}}))
	r, _ := tlsRouter(t, nil, 14)
	reply := run(t, r, "/tls 127.0.0.1 "+weak+" sni www.test")
	assert.Equal(t, 1, reply.Status.ExitCode())
	assert.Contains(t, reply.Title, "TLS 1.2")
	assert.Contains(t, strings.Join(reply.Lines, "\n"), "WEAK CIPHERS: the server accepts only cipher suites current clients refuse; it chose TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256")
	for _, tc := range []struct{ line, title, line0 string }{
		{"/tls 127.0.0.1 " + ssh, "127.0.0.1:" + ssh + ": no TLS", `not TLS: the port speaks SSH ("SSH-2.0-OpenSSH_9.2p1")`},
		{"/tls 127.0.0.1 " + hang + " timeout 200ms", "127.0.0.1:" + hang + ": no TLS", "no TLS handshake in 200ms"},
		{"/tls 127.0.0.1 " + closed, "127.0.0.1:" + closed + ": no connection", "connection refused"},
		{"/tls 127.0.0.1 " + hangup, "127.0.0.1:" + hangup + ": no TLS", "the server closed the connection without answering the ClientHello"},
		{"/tls 127.0.0.1 " + mtls, "127.0.0.1:" + mtls + ": TLS handshake failed", "(the server asks for a client certificate, which /tls does not have)"},
		{"/tls 127.0.0.1 " + ssh + " starttls smtp", "no TLS", `SMTP: the greeting is not 220, it answered "SSH-2.0-OpenSSH_9.2p1"`},
	} {
		t.Run(tc.line, func(t *testing.T) {
			reply := run(t, r, tc.line)
			assert.Equal(t, 1, reply.Status.ExitCode())
			assert.Contains(t, reply.Title, tc.title)
			require.NotEmpty(t, reply.Lines)
			assert.Contains(t, reply.Lines[0], tc.line0)
		})
	}
}

func TestTLS_HelpSaysWhatItCannotTell(t *testing.T) {
	r, checks := tlsRouter(t, nil, 14)
	reply := run(t, r, "/tls help")
	assert.Equal(t, 0, reply.Status.ExitCode())
	all := reply.Title + reply.Text + strings.Join(reply.Lines, "\n") + reply.Code
	assert.Contains(t, all, "Cannot tell: SSLv3 and SSLv2")
	assert.Contains(t, all, "expiring within 14 days (tls.expiry_warn_days)")
	assert.Contains(t, all, "verifies against the CA bundle ca.pem")
	assert.Zero(t, *checks)
}

func TestTLS_StartTLSDefaultsToTheProtocolsPort(t *testing.T) {
	a, err := parseTLSArgs([]string{"mail.test", "starttls", "SMTP"})
	require.NoError(t, err)
	assert.Equal(t, uint16(25), a.port)
	assert.Equal(t, "smtp", a.starttls)
	a, err = parseTLSArgs([]string{"mail.test", "starttls", "imap"})
	require.NoError(t, err)
	assert.Equal(t, uint16(143), a.port)
	a, err = parseTLSArgs([]string{"mail.test", "https"})
	require.NoError(t, err)
	assert.Equal(t, uint16(443), a.port)

	ca := tlstest.NewCA(t)
	leaf := ca.Leaf(t, time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0), "www.test")
	addr := tlstest.StartTLS(t, "smtp", &tls.Config{Certificates: []tls.Certificate{ca.Chain(leaf)}}, true)
	r, _ := tlsRouter(t, ca.Pool(), 14)
	reply := run(t, r, "/tls www.test "+port(addr)+" starttls smtp")
	assert.Equal(t, 0, reply.Status.ExitCode(), reply.Title)
	assert.Contains(t, strings.Join(reply.Lines, "\n"), "SNI www.test, STARTTLS SMTP")
	assert.Contains(t, strings.Join(reply.Lines, "\n"), "ALPN not offered (STARTTLS)")
}
