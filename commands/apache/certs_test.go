package apache_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/apache"
	"github.com/opsbot/opsbot/commands/apache/apachetest"
	"github.com/opsbot/opsbot/commands/tlscheck"
	"github.com/opsbot/opsbot/commands/tlscheck/tlstest"
)

func fingerprint(c tlstest.Cert) string { return tlscheck.Describe(c.X509).SHA256 }

func short(fp string) string { return fp[:23] }

func field(r bot.Reply, prefix string) string {
	var out []string
	for _, f := range r.Fields {
		if strings.HasPrefix(f.Name, prefix) {
			out = append(out, f.Name+": "+f.Value)
		}
	}
	return strings.Join(out, "\n")
}

// Debian's Apache with mod_ssl: a certificate replaced in place is served
// only after a reload (graceful loads it), status tells what is served
// from what the file holds, and the reload's post-check shows the new
// fingerprint served.
func TestCerts_ReplacedInPlaceReloadServesTheNewOne(t *testing.T) {
	t.Parallel()
	b := newBed(t, []string{"web1"}, "", 1)
	s := b.servers["web1"]
	ca := tlstest.NewCA(t)
	now := time.Now()
	certA := ca.Leaf(t, now.Add(-time.Hour), now.Add(60*24*time.Hour), "www.test")
	certFile, keyFile, chainFile := tlstest.WriteFiles(t, s.Dir, "www", certA, ca)
	port := freePort(t)
	s.EnableModule(t, "socache_shmcb", "ssl")
	s.WriteConf(t, "sites-enabled/tls.conf", fmt.Sprintf(`Listen 127.0.0.1:%d
<VirtualHost 127.0.0.1:%d>
	ServerName www.test
	SSLEngine on
	SSLCertificateFile "%s"
	SSLCertificateKeyFile %s
	SSLCertificateChainFile %s
</VirtualHost>
`, port, port, certFile, keyFile, chainFile))
	site := fmt.Sprintf("TLS www.test 127.0.0.1:%d", port)

	// The first reload loads mod_ssl and the site: nothing served before.
	rep := b.run(t, "/apache reload web1")
	require.Equal(t, bot.StatusOK, rep.Status, text(rep))
	assert.Contains(t, field(rep, site), "before not served; now SHA-256 "+short(fingerprint(certA)))
	assert.Contains(t, field(rep, site), "same as the file on disk")

	rep = b.run(t, "/apache status web1")
	require.Equal(t, bot.StatusOK, rep.Status, text(rep))
	assert.Contains(t, field(rep, site), "SHA-256 "+short(fingerprint(certA)))
	assert.Contains(t, field(rep, site), "(59 days left); same as the file on disk")

	// Replaced in place: still the old one served, which status calls a
	// mismatch with the full fingerprints.
	certB := ca.Leaf(t, now.Add(-time.Hour), now.Add(90*24*time.Hour), "www.test")
	tlstest.WriteFiles(t, s.Dir, "www", certB, ca)
	rep = b.run(t, "/apache status web1")
	assert.Equal(t, bot.StatusNegative, rep.Status, text(rep))
	assert.Contains(t, field(rep, site), "NOT the certificate in its file on disk")
	assert.Contains(t, rep.Text, fmt.Sprintf("CERTIFICATE MISMATCH: %s serves %s, but %s holds %s", site, fingerprint(certA), certFile, fingerprint(certB)))

	// A graceful reload loads it.
	rep = b.run(t, "/apache reload web1")
	require.Equal(t, bot.StatusOK, rep.Status, text(rep))
	assert.Contains(t, field(rep, site), "before "+short(fingerprint(certA))+"…; now SHA-256 "+short(fingerprint(certB)))
	assert.Contains(t, field(rep, site), "(89 days left), same as the file on disk")

	rep = b.run(t, "/apache status web1")
	assert.Equal(t, bot.StatusOK, rep.Status, text(rep))
	assert.Contains(t, field(rep, site), short(fingerprint(certB)))

	// A restart shows the same before and after.
	certC := ca.Leaf(t, now.Add(-time.Hour), now.Add(10*24*time.Hour), "www.test")
	tlstest.WriteFiles(t, s.Dir, "www", certC, ca)
	rep = b.run(t, "/apache restart web1")
	require.Equal(t, bot.StatusOK, rep.Status, text(rep))
	assert.Contains(t, field(rep, site), "before "+short(fingerprint(certB))+"…; now SHA-256 "+short(fingerprint(certC)))
	assert.Contains(t, field(rep, site), "(9 days left), same as the file on disk")
}

// Two virtual hosts with the same name on one port: Apache serves the
// first for that name, so the second's certificate file is never served.
// The reload's post-check fails with the evidence.
func TestCerts_AFileThatIsNotServedFailsThePostCheck(t *testing.T) {
	t.Parallel()
	b := newBed(t, []string{"web1"}, "", 1)
	s := b.servers["web1"]
	ca := tlstest.NewCA(t)
	now := time.Now()
	first := ca.Leaf(t, now.Add(-time.Hour), now.Add(30*24*time.Hour), "www.test")
	shadow := ca.Leaf(t, now.Add(-time.Hour), now.Add(30*24*time.Hour), "www.test")
	c1, k1, _ := tlstest.WriteFiles(t, s.Dir, "first", first, nil)
	c2, k2, _ := tlstest.WriteFiles(t, s.Dir, "shadow", shadow, nil)
	port := freePort(t)
	s.EnableModule(t, "socache_shmcb", "ssl")
	s.WriteConf(t, "sites-enabled/tls.conf", fmt.Sprintf("Listen 127.0.0.1:%d\n", port)+
		fmt.Sprintf(tlsVHost, port, c1, k1)+fmt.Sprintf(tlsVHost, port, c2, k2))

	rep := b.run(t, "/apache reload web1")
	require.Equal(t, bot.StatusFailed, rep.Status, text(rep))
	assert.Contains(t, rep.Title, "CERTIFICATE MISMATCH")
	assert.Contains(t, text(rep), fmt.Sprintf("serves %s, but %s holds %s", fingerprint(first), c2, fingerprint(shadow)))
	assert.True(t, s.Alive(), "the server runs: only the certificate check failed")
}

// tlsVHost is a TLS virtual host www.test: its port, certificate file and
// key file.
const tlsVHost = "<VirtualHost 127.0.0.1:%d>\n\tServerName www.test\n\tSSLEngine on\n\tSSLCertificateFile %s\n\tSSLCertificateKeyFile %s\n</VirtualHost>\n"

// serveTLS has s serve a certificate from ca valid for another validFor
// as www.test on a free port (mod_ssl on), from its next reload.
func serveTLS(t *testing.T, s *apachetest.Server, ca *tlstest.CA, validFor time.Duration) {
	t.Helper()
	now := time.Now()
	leaf := ca.Leaf(t, now.Add(-time.Hour), now.Add(validFor), "www.test")
	certFile, keyFile, _ := tlstest.WriteFiles(t, s.Dir, "www", leaf, nil)
	port := freePort(t)
	s.EnableModule(t, "socache_shmcb", "ssl")
	s.WriteConf(t, "sites-enabled/tls.conf", fmt.Sprintf("Listen 127.0.0.1:%d\n", port)+fmt.Sprintf(tlsVHost, port, certFile, keyFile))
}

// A group's status has a row per host; its certificates column gives the
// days left of what each host serves.
func TestCerts_GroupStatusShowsEachHostsDaysLeft(t *testing.T) {
	t.Parallel()
	b := newBed(t, []string{"web1", "web2"}, "groups:\n  web: [web1, web2]\n", 1)
	s := b.servers["web1"]
	serveTLS(t, s, tlstest.NewCA(t), 60*24*time.Hour)
	rep := b.run(t, "/apache reload web1")
	require.Equal(t, bot.StatusOK, rep.Status, text(rep))

	rep = b.run(t, "/apache status web")
	require.Equal(t, bot.StatusOK, rep.Status, text(rep))
	require.NotNil(t, rep.Table)
	assert.Equal(t, "certificates", rep.Table.Header[len(rep.Table.Header)-1])
	require.Len(t, rep.Table.Rows, 2)
	assert.Equal(t, []string{"web1", "up"}, rep.Table.Rows[0][:2])
	assert.Equal(t, "59 days left", rep.Table.Rows[0][len(rep.Table.Rows[0])-1], "served for 60 days less the moment since")
	assert.Equal(t, "-", rep.Table.Rows[1][len(rep.Table.Rows[1])-1], "web2 has no TLS virtual host")
}

func TestParseVHostTLS(t *testing.T) {
	conf := []byte(`Listen 443
<VirtualHost *:80>
	ServerName plain
</VirtualHost>
<VirtualHost *:443>
	# SSLCertificateFile /commented.pem
	sslengine On
	SSLCertificateFile "/etc/ssl/a b.pem"
	SSLCertificateFile ecdsa.pem
</VirtualHost>
`)
	on, files := apache.ParseVHostTLS(conf, 2)
	assert.False(t, on)
	assert.Empty(t, files)
	on, files = apache.ParseVHostTLS(conf, 5)
	assert.True(t, on)
	assert.Equal(t, []string{"/etc/ssl/a b.pem", "ecdsa.pem"}, files)
}

func TestHelp_SaysWhatTheCertificateCheckCanAndCannotTell(t *testing.T) {
	u := apache.New(apache.Config{}).Usage()
	assert.Contains(t, u, "certificate served (SHA-256, days left)")
	assert.Contains(t, u, "SSLCertificateFile after the\naction is a failed check")
	assert.Contains(t, u, "Not followed: Include")
}
