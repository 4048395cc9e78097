package tlscheck_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/commands/tlscheck"
	"github.com/opsbot/opsbot/commands/tlscheck/tlstest"
)

func ap(t *testing.T, addr string) netip.AddrPort {
	t.Helper()
	a, err := netip.ParseAddrPort(addr)
	require.NoError(t, err)
	return a
}

func accepted(r tlscheck.Result) map[string]bool {
	m := map[string]bool{}
	for _, v := range r.Versions {
		m[tlscheck.VersionName(v.Version)] = v.Accepted
	}
	return m
}

func TestCheck_PrivateCAChainVerifiesWithItsRoot(t *testing.T) {
	ca := tlstest.NewCA(t)
	now := time.Now()
	leaf := ca.Leaf(t, now.Add(-time.Hour), now.AddDate(0, 0, 90), "www.test", "127.0.0.1")
	addr := tlstest.Serve(t, &tls.Config{Certificates: []tls.Certificate{ca.Chain(leaf)}, NextProtos: []string{"h2"}})

	r, err := tlscheck.Check(context.Background(), ap(t, addr), tlscheck.Options{SNI: "www.test", Roots: ca.Pool(), Timeout: 5 * time.Second})
	require.NoError(t, err)
	assert.True(t, r.Verified, r.VerifyErr)
	assert.True(t, r.NameOK, r.NameErr)
	assert.Equal(t, uint16(tls.VersionTLS13), r.Version)
	assert.Equal(t, "h2", r.ALPN)
	assert.False(t, r.OCSPStaple)
	require.Len(t, r.Chain, 2)
	assert.Equal(t, "CN=www.test", r.Chain[0].Subject)
	assert.Equal(t, []string{"www.test", "127.0.0.1"}, r.Chain[0].SANs)
	assert.Equal(t, "CN=opsbot test intermediate", r.Chain[0].Issuer)
	assert.Equal(t, "ECDSA P-256", r.Chain[0].Key)
	assert.Len(t, r.Chain[0].SHA256, 95)
	// Go's server refuses TLS 1.0 and 1.1 by default.
	assert.Equal(t, map[string]bool{"TLS 1.0": false, "TLS 1.1": false, "TLS 1.2": true, "TLS 1.3": true}, accepted(r))

	// The same chain against the system roots: the private root is unknown.
	r, err = tlscheck.Check(context.Background(), ap(t, addr), tlscheck.Options{SNI: "www.test", Timeout: 5 * time.Second})
	require.NoError(t, err)
	assert.False(t, r.Verified)
	assert.Contains(t, r.VerifyErr, "does not lead to a trusted root")

	// A name the certificate does not hold.
	r, err = tlscheck.Check(context.Background(), ap(t, addr), tlscheck.Options{SNI: "other.test", Roots: ca.Pool(), Timeout: 5 * time.Second})
	require.NoError(t, err)
	assert.True(t, r.Verified)
	assert.False(t, r.NameOK)
	assert.Contains(t, r.NameErr, "other.test is not among the certificate's names (www.test, 127.0.0.1)")
}

func TestCheck_OCSPStapleSeen(t *testing.T) {
	ca := tlstest.NewCA(t)
	c := ca.Chain(ca.Leaf(t, time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0), "www.test"))
	c.OCSPStaple = []byte{0x30, 0x03, 0x0a, 0x01, 0x00} // what a server staples; the check only sees that one is there
	addr := tlstest.Serve(t, &tls.Config{Certificates: []tls.Certificate{c}})
	r, err := tlscheck.Check(context.Background(), ap(t, addr), tlscheck.Options{SNI: "www.test", Roots: ca.Pool(), Timeout: 5 * time.Second})
	require.NoError(t, err)
	assert.True(t, r.OCSPStaple)
}

func TestCheck_OldVersionsAcceptedWhenTheServerAllowsThem(t *testing.T) {
	ca := tlstest.NewCA(t)
	leaf := ca.Leaf(t, time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0), "old.test")
	addr := tlstest.Serve(t, &tls.Config{Certificates: []tls.Certificate{ca.Chain(leaf)}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS12})
	r, err := tlscheck.Check(context.Background(), ap(t, addr), tlscheck.Options{SNI: "old.test", Roots: ca.Pool(), Timeout: 5 * time.Second})
	require.NoError(t, err)
	assert.Equal(t, map[string]bool{"TLS 1.0": true, "TLS 1.1": true, "TLS 1.2": true, "TLS 1.3": false}, accepted(r))
	assert.Equal(t, uint16(tls.VersionTLS12), r.Version)
}

func TestCheck_ExpiredAndSelfSigned(t *testing.T) {
	ca := tlstest.NewCA(t)
	now := time.Now()
	expired := ca.Leaf(t, now.AddDate(0, -2, 0), now.AddDate(0, 0, -3), "old.test")
	addr := tlstest.Serve(t, &tls.Config{Certificates: []tls.Certificate{ca.Chain(expired)}})
	r, err := tlscheck.Check(context.Background(), ap(t, addr), tlscheck.Options{SNI: "old.test", Roots: ca.Pool(), Timeout: 5 * time.Second})
	require.NoError(t, err)
	assert.False(t, r.Verified)
	assert.Contains(t, r.VerifyErr, "old.test expired on ")

	self := tlstest.SelfSigned(t, "self.test")
	addr = tlstest.Serve(t, &tls.Config{Certificates: []tls.Certificate{tlstest.Single(self)}})
	r, err = tlscheck.Check(context.Background(), ap(t, addr), tlscheck.Options{SNI: "self.test", Timeout: 5 * time.Second})
	require.NoError(t, err)
	assert.True(t, r.Chain[0].SelfSigned)
	assert.Equal(t, "self-signed: no trusted authority vouches for it", r.VerifyErr)
	assert.True(t, r.NameOK)
}

func TestCheck_StartTLS(t *testing.T) {
	ca := tlstest.NewCA(t)
	leaf := ca.Leaf(t, time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0), "mail.test")
	cfg := &tls.Config{Certificates: []tls.Certificate{ca.Chain(leaf)}}
	for _, proto := range tlscheck.StartTLSProtocols {
		t.Run(proto, func(t *testing.T) {
			addr := tlstest.StartTLS(t, proto, cfg, true)
			r, err := tlscheck.Check(context.Background(), ap(t, addr), tlscheck.Options{SNI: "mail.test", StartTLS: proto, Roots: ca.Pool(), Timeout: 5 * time.Second})
			require.NoError(t, err)
			assert.True(t, r.Verified, r.VerifyErr)
			assert.Equal(t, "CN=mail.test", r.Chain[0].Subject)
			assert.NotEmpty(t, r.Greeting)
			assert.Empty(t, r.ALPN)
			assert.True(t, accepted(r)["TLS 1.3"])
		})
	}
	t.Run("smtp without STARTTLS offered", func(t *testing.T) {
		addr := tlstest.StartTLS(t, "smtp", cfg, false)
		_, err := tlscheck.Check(context.Background(), ap(t, addr), tlscheck.Options{StartTLS: "smtp", Timeout: 5 * time.Second})
		var no *tlscheck.NoTLSError
		require.ErrorAs(t, err, &no)
		assert.Contains(t, no.Message, "does not offer STARTTLS")
	})
	t.Run("imap starttls against a pop3 server", func(t *testing.T) {
		addr := tlstest.StartTLS(t, "pop3", cfg, true)
		_, err := tlscheck.Check(context.Background(), ap(t, addr), tlscheck.Options{StartTLS: "imap", Timeout: 5 * time.Second})
		var no *tlscheck.NoTLSError
		require.ErrorAs(t, err, &no)
		assert.Contains(t, no.Message, `IMAP: the greeting is not * OK`)
	})
}

func TestCheck_NotTLS(t *testing.T) {
	httpSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprint(w, "hi") }))
	t.Cleanup(httpSrv.Close)
	ssh := tlstest.Raw(t, func(c net.Conn) {
		_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"))
		_, _ = c.Read(make([]byte, 1024))
	})
	hang := tlstest.Raw(t, func(c net.Conn) { _, _ = c.Read(make([]byte, 64<<10)); time.Sleep(5 * time.Second) })

	cases := []struct {
		name, addr, want string
		timeout          time.Duration
	}{
		{"plain HTTP", httpSrv.Listener.Addr().String(), "not TLS: the port speaks plain HTTP", 5 * time.Second},
		{"SSH banner", ssh, `not TLS: the port speaks SSH ("SSH-2.0-OpenSSH_9.2p1 Debian-2")`, 5 * time.Second},
		{"hangs", hang, "no TLS handshake in 300ms: the port accepted the connection but never answered", 300 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := tlscheck.Check(context.Background(), ap(t, tc.addr), tlscheck.Options{Timeout: tc.timeout})
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("Check did not return: it hangs")
			}
			var no *tlscheck.NoTLSError
			require.True(t, errors.As(err, &no), "%v", err)
			assert.Contains(t, no.Message, tc.want)
		})
	}
}
