// Package tlstest makes certificates for tests (a private root CA, an
// intermediate, leaves valid, expired, for a wrong name, self-signed) and
// small servers: TLS over Go's crypto/tls, and STARTTLS for SMTP, IMAP
// and POP3.
package tlstest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var serial atomic.Int64

// Cert is a certificate with its key.
type Cert struct {
	X509 *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// PEM is the certificate in PEM.
func (c Cert) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.X509.Raw})
}

// KeyPEM is the key in PEM.
func (c Cert) KeyPEM() []byte {
	der, err := x509.MarshalECPrivateKey(c.Key)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// CA is a private root with one intermediate that issues leaves.
type CA struct {
	Root, Intermediate Cert
}

func make1(t testing.TB, tmpl *x509.Certificate, parent *Cert) Cert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano() + serial.Add(1))
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.X509, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return Cert{X509: c, Key: key}
}

// NewCA makes a root "opsbot test root" and an intermediate "opsbot test
// intermediate", valid from an hour ago for ten years.
func NewCA(t testing.TB) *CA {
	t.Helper()
	now := time.Now()
	root := make1(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "opsbot test root"}, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil)
	inter := make1(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "opsbot test intermediate"}, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, &root)
	return &CA{Root: root, Intermediate: inter}
}

// Pool is a pool holding the root only.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Root.X509)
	return p
}

// Leaf issues a server certificate for names (DNS names or addresses),
// valid from notBefore to notAfter, signed by the intermediate.
func (ca *CA) Leaf(t testing.TB, notBefore, notAfter time.Time, names ...string) Cert {
	t.Helper()
	tmpl := &x509.Certificate{
		Subject: pkix.Name{CommonName: names[0]}, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	addNames(tmpl, names)
	return make1(t, tmpl, &ca.Intermediate)
}

// SelfSigned makes a self-signed server certificate for names.
func SelfSigned(t testing.TB, names ...string) Cert {
	t.Helper()
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject: pkix.Name{CommonName: names[0]}, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	addNames(tmpl, names)
	return make1(t, tmpl, nil)
}

func addNames(tmpl *x509.Certificate, names []string) {
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
}

// Chain is the leaf followed by the intermediate, as a server sends it.
func (ca *CA) Chain(leaf Cert) tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{leaf.X509.Raw, ca.Intermediate.X509.Raw}, PrivateKey: leaf.Key, Leaf: leaf.X509}
}

// Single is a certificate sent alone.
func Single(c Cert) tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.X509.Raw}, PrivateKey: c.Key, Leaf: c.X509}
}

// WriteFiles writes cert.pem, key.pem (and chain.pem, the intermediate,
// when ca is not nil) under dir, readable by Apache's children, and
// returns their paths.
func WriteFiles(t testing.TB, dir, name string, c Cert, ca *CA) (certFile, keyFile, chainFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	write(t, certFile, c.PEM())
	write(t, keyFile, c.KeyPEM())
	if ca != nil {
		chainFile = filepath.Join(dir, name+"-chain.crt")
		write(t, chainFile, ca.Intermediate.PEM())
	}
	return certFile, keyFile, chainFile
}

func write(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil { //nolint:gosec // test files Apache reads
		t.Fatal(err)
	}
}

// Serve runs a TLS server with cfg on a loopback port until t ends and
// returns its address. Each connection completes a handshake and closes.
func Serve(t testing.TB, cfg *tls.Config) string {
	t.Helper()
	return Raw(t, func(c net.Conn) {
		tc := tls.Server(c, cfg)
		_ = tc.Handshake()
		_, _ = tc.Read(make([]byte, 1))
	})
}

// Raw runs a plain TCP server that hands each connection to fn.
func Raw(t testing.TB, fn func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				fn(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// StartTLS runs a mail server speaking proto (smtp, imap, pop3) far
// enough to agree to STARTTLS, then TLS with cfg. With offer false an
// SMTP server leaves STARTTLS out of its EHLO answer.
func StartTLS(t testing.TB, proto string, cfg *tls.Config, offer bool) string {
	t.Helper()
	return Raw(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		say := func(s string) { _, _ = c.Write([]byte(s + "\r\n")) }
		read := func() string { l, _ := r.ReadString('\n'); return strings.TrimRight(l, "\r\n") }
		switch proto {
		case "smtp":
			say("220-mail.test ESMTP opsbot test")
			say("220 mail.test ready")
			if !strings.HasPrefix(read(), "EHLO") {
				return
			}
			say("250-mail.test")
			say("250-PIPELINING")
			if offer {
				say("250-STARTTLS")
			}
			say("250 8BITMIME")
			if read() != "STARTTLS" {
				say("502 no")
				return
			}
			say("220 go ahead")
		case "imap":
			say("* OK [CAPABILITY IMAP4rev1 STARTTLS] opsbot test ready")
			tag, _, _ := strings.Cut(read(), " ")
			say("* a note")
			say(tag + " OK begin TLS now")
		case "pop3":
			say("+OK opsbot test POP3 ready")
			if read() != "STLS" {
				return
			}
			say("+OK begin TLS")
		}
		tc := tls.Server(c, cfg)
		if tc.Handshake() == nil {
			_, _ = tc.Read(make([]byte, 1))
		}
	})
}
