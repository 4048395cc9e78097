package commands

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/commands/apache/apachetest"
	"github.com/opsbot/opsbot/commands/tlscheck/tlstest"
)

func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

// A private Debian Apache with mod_ssl on two loopback ports: one with
// three name-based virtual hosts (a private CA's chain, a self-signed
// certificate, an expired one) and TLS 1.2+ only, one that accepts every
// version OpenSSL lets it (SSLProtocol all at security level 0). /tls
// reads each as a client would.
func TestTLS_DebianApacheWithModSSL(t *testing.T) {
	s := apachetest.New(t)
	ca := tlstest.NewCA(t)
	now := time.Now()
	wwwCert, wwwKey, wwwChain := tlstest.WriteFiles(t, s.Dir, "www", ca.Leaf(t, now.Add(-time.Hour), now.AddDate(0, 0, 60), "www.test"), ca)
	selfCert, selfKey, _ := tlstest.WriteFiles(t, s.Dir, "self", tlstest.SelfSigned(t, "self.test"), nil)
	oldCert, oldKey, oldChain := tlstest.WriteFiles(t, s.Dir, "old", ca.Leaf(t, now.AddDate(0, -2, 0), now.AddDate(0, 0, -3), "old.test"), ca)
	modern, legacy, debian := freeTCPPort(t), freeTCPPort(t), freeTCPPort(t)

	s.EnableModule(t, "socache_shmcb", "ssl")
	vhost := func(port int, name, cert, key, chain, extra string) string {
		c := ""
		if chain != "" {
			c = "\tSSLCertificateChainFile " + chain + "\n"
		}
		return fmt.Sprintf("<VirtualHost 127.0.0.1:%d>\n\tServerName %s\n\tDocumentRoot %s\n\tSSLEngine on\n\tSSLCertificateFile %s\n\tSSLCertificateKeyFile %s\n%s%s</VirtualHost>\n", port, name, s.Docs, cert, key, c, extra)
	}
	conf := fmt.Sprintf("Listen 127.0.0.1:%d\nListen 127.0.0.1:%d\nListen 127.0.0.1:%d\n", modern, legacy, debian) +
		vhost(debian, "www.test", wwwCert, wwwKey, wwwChain, "\tSSLProtocol all\n") +
		vhost(modern, "www.test", wwwCert, wwwKey, wwwChain, "\tSSLProtocol -all +TLSv1.2 +TLSv1.3\n") +
		vhost(modern, "self.test", selfCert, selfKey, "", "") +
		vhost(modern, "old.test", oldCert, oldKey, oldChain, "") +
		vhost(legacy, "www.test", wwwCert, wwwKey, wwwChain, "\tSSLProtocol all\n\tSSLCipherSuite ALL:@SECLEVEL=0\n")
	s.WriteConf(t, "sites-enabled/tls.conf", conf)
	s.Must(t, "start")
	s.WaitUp(t)

	r, _ := tlsRouter(t, ca.Pool(), 14)
	m, l := strconv.Itoa(modern), strconv.Itoa(legacy)

	reply := run(t, r, "/tls 127.0.0.1 "+m+" sni www.test")
	assert.Equal(t, 0, reply.Status.ExitCode(), reply.Title)
	assert.Contains(t, reply.Title, "127.0.0.1:"+m+": TLS 1.3, certificate valid, 5")
	body := strings.Join(reply.Lines, "\n")
	assert.Contains(t, body, "versions: TLS 1.0 refused, TLS 1.1 refused, TLS 1.2 accepted, TLS 1.3 accepted")
	assert.Contains(t, body, "ALPN http/1.1", "Debian's Apache without mod_http2 speaks HTTP/1.1")
	assert.Contains(t, body, "chain as served (2):", "SSLCertificateChainFile is served")
	assert.Contains(t, body, "verification: the chain verifies")
	assert.Contains(t, body, "OCSP staple: none")

	for _, tc := range []struct{ line, first string }{
		{"/tls 127.0.0.1 " + m + " sni self.test", "SELF-SIGNED: the certificate is issued by itself (CN=self.test)"},
		{"/tls 127.0.0.1 " + m + " sni old.test", "EXPIRED: the certificate expired 3 days ago"},
		{"/tls 127.0.0.1 " + m + " sni other.test", "NAME MISMATCH: other.test is not among the certificate's names (www.test)"},
	} {
		reply := run(t, r, tc.line)
		assert.Equal(t, 1, reply.Status.ExitCode(), reply.Title)
		require.NotEmpty(t, reply.Lines)
		assert.Contains(t, reply.Lines[0], tc.first)
	}

	// SSLProtocol all, at OpenSSL security level 0: TLS 1.0 is accepted.
	reply = run(t, r, "/tls 127.0.0.1 "+l+" sni www.test")
	assert.Equal(t, 1, reply.Status.ExitCode(), reply.Title)
	assert.Contains(t, reply.Lines[0], "OLD PROTOCOLS: accepts TLS 1.0 and TLS 1.1")
	assert.Contains(t, strings.Join(reply.Lines, "\n"), "versions: TLS 1.0 accepted, TLS 1.1 accepted, TLS 1.2 accepted, TLS 1.3 accepted")

	// SSLProtocol all with Debian's cipher setting (HIGH:!aNULL) and
	// OpenSSL's default security level: OpenSSL itself refuses TLS 1.0 and
	// 1.1 (their handshake signatures use SHA-1).
	reply = run(t, r, fmt.Sprintf("/tls 127.0.0.1 %d sni www.test", debian))
	assert.Equal(t, 0, reply.Status.ExitCode(), reply.Title)
	assert.Contains(t, strings.Join(reply.Lines, "\n"), "versions: TLS 1.0 refused, TLS 1.1 refused, TLS 1.2 accepted, TLS 1.3 accepted")

	// Apache's plain HTTP port.
	reply = run(t, r, fmt.Sprintf("/tls 127.0.0.1 %d", s.Port))
	assert.Equal(t, 1, reply.Status.ExitCode())
	assert.Contains(t, reply.Title, ": no TLS")
	assert.Contains(t, reply.Lines[0], "not TLS: the port speaks plain HTTP")
}
