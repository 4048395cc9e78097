package main

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/commands/tlscheck/tlstest"
)

// tls.ca_bundle is read by config check and by /tls: opsbot run exits 0
// for a chain that verifies against it, 1 for one with a problem.
func TestE2E_TLSWithThePolicysCABundle(t *testing.T) {
	clearEnv(t)
	ca := tlstest.NewCA(t)
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(bundle, ca.Root.PEM(), 0o600))
	policy := writeFile(t, "tls: {ca_bundle: "+bundle+", expiry_warn_days: 30}\n")

	code, out, errOut := run(t, "config", "check", "--config", policy)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "policy OK")
	code, _, errOut = run(t, "config", "check", "--config", writeFile(t, "tls: {ca_bundle: /nonexistent.pem}\n"))
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "tls.ca_bundle: cannot read /nonexistent.pem")

	now := time.Now()
	good := tlstest.Serve(t, &tls.Config{Certificates: []tls.Certificate{ca.Chain(ca.Leaf(t, now.Add(-time.Hour), now.AddDate(0, 0, 90), "127.0.0.1"))}})
	soon := tlstest.Serve(t, &tls.Config{Certificates: []tls.Certificate{ca.Chain(ca.Leaf(t, now.Add(-time.Hour), now.AddDate(0, 0, 20), "127.0.0.1"))}})

	code, out, errOut = run(t, "run", "--config", policy, "/tls 127.0.0.1 "+tlsPort(t, good))
	assert.Equal(t, 0, code, out+errOut)
	assert.Contains(t, out, "certificate valid, 89 days left")
	assert.Contains(t, out, "the chain verifies against the CA bundle "+bundle)
	code, out, errOut = run(t, "run", "--config", policy, "/portcheck 127.0.0.1 "+tlsPort(t, soon)+" tls")
	assert.Equal(t, 1, code, out+errOut)
	assert.Contains(t, out, "EXPIRES SOON: the certificate expires in 19 days")
	assert.Contains(t, out, "(policy warns at 30 days)")
}

func tlsPort(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	return p
}
