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

// opsbot run '/portcheck HOST PORT until open': 0 when the state was
// reached, 1 when the time ran out.
func TestE2E_PortcheckUntilExitCodes(t *testing.T) {
	clearEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	open := tlsPort(t, ln.Addr().String())
	closedLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := tlsPort(t, closedLn.Addr().String())
	require.NoError(t, closedLn.Close())

	code, out, errOut := run(t, "run", "/portcheck 127.0.0.1 "+open+" until open for 1m")
	assert.Equal(t, 0, code, out+errOut)
	assert.Contains(t, out, "127.0.0.1 "+open+"/tcp is already open")
	code, out, errOut = run(t, "run", "/portcheck 127.0.0.1 "+closed+" until open for 1s")
	assert.Equal(t, 1, code, out+errOut)
	assert.Contains(t, out, "still closed after")
	assert.Contains(t, out, "checks): not open")
	code, out, errOut = run(t, "run", "/portcheck 127.0.0.1 "+closed+" until open for 100d")
	assert.Equal(t, 2, code, out+errOut)
	assert.Contains(t, out+errOut, `for "100d" is not a duration`)
}
