package sshrun

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// UnknownHostKeyError says that known_hosts has no key for the host. The
// runner never trusts a key on first use: an operator checks the
// fingerprint out of band and adds Line to the file.
type UnknownHostKeyError struct {
	Addr        string // host:port as dialled
	KnownHosts  string // the file that was searched
	Fingerprint string // SHA256 fingerprint of the key the host offered
	Line        string // the known_hosts line that would trust it
}

func (e *UnknownHostKeyError) Error() string {
	host, port, _ := net.SplitHostPort(e.Addr)
	return fmt.Sprintf("host key for %s unknown: not in %s; the host offered %s; "+
		"check that fingerprint out of band, then add the line from `ssh-keyscan -p %s %s`: %s",
		e.Addr, e.KnownHosts, e.Fingerprint, port, host, e.Line)
}

// HostKeyChangedError says that the host offered a key other than the one
// known_hosts has for it. Nothing is sent to such a host: it may be a
// man-in-the-middle.
type HostKeyChangedError struct {
	Addr     string
	Expected []string // SHA256 fingerprints known_hosts has for the host
	Got      string   // SHA256 fingerprint the host offered
	Where    []string // known_hosts file:line of the expected keys
}

func (e *HostKeyChangedError) Error() string {
	return fmt.Sprintf("host key for %s changed: possible man-in-the-middle; expected %s, got %s (known_hosts %s); not connecting",
		e.Addr, strings.Join(e.Expected, " or "), e.Got, strings.Join(e.Where, ", "))
}

// hostKeys reads the known_hosts file afresh (so a line an operator adds
// takes effect without a restart) and returns the checking callback and the
// host key algorithms to ask addr for.
func hostKeys(file, addr string) (ssh.HostKeyCallback, []string, error) {
	check, err := knownhosts.New(file)
	if err != nil {
		return nil, nil, fmt.Errorf("known_hosts: %w", err)
	}
	callback := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := check(hostname, remote, key)
		var keyErr *knownhosts.KeyError
		if !errors.As(err, &keyErr) {
			if err != nil {
				return fmt.Errorf("known_hosts: %w", err)
			}
			return nil
		}
		if len(keyErr.Want) == 0 {
			return &UnknownHostKeyError{
				Addr:        hostname,
				KnownHosts:  file,
				Fingerprint: ssh.FingerprintSHA256(key),
				Line:        knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key),
			}
		}
		changed := &HostKeyChangedError{Addr: hostname, Got: ssh.FingerprintSHA256(key)}
		for _, k := range keyErr.Want {
			changed.Expected = append(changed.Expected, ssh.FingerprintSHA256(k.Key))
			changed.Where = append(changed.Where, k.Filename+":"+strconv.Itoa(k.Line))
		}
		return changed
	}
	return callback, knownAlgorithms(check, addr), nil
}

// knownAlgorithms lists the host key algorithms of the keys known_hosts has
// for addr. Asking the server only for those means a host known by its
// ed25519 key is not reported as changed when it would rather show its RSA
// key. knownhosts has no lookup, so it is asked about a key nobody has and
// answers with the keys it knows. Nil (the library's default) when the host
// is unknown.
func knownAlgorithms(check ssh.HostKeyCallback, addr string) []string {
	probe, err := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	if err != nil {
		return nil
	}
	var keyErr *knownhosts.KeyError
	if !errors.As(check(addr, &net.TCPAddr{}, probe), &keyErr) {
		return nil
	}
	var algos []string
	for _, k := range keyErr.Want {
		for _, a := range algorithmsFor(k.Key.Type()) {
			if !slices.Contains(algos, a) {
				algos = append(algos, a)
			}
		}
	}
	return algos
}

// algorithmsFor maps a key type to the host key algorithms that use it: an
// RSA key signs with SHA-2 nowadays.
func algorithmsFor(keyType string) []string {
	switch keyType {
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	case ssh.CertAlgoRSAv01:
		return []string{ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.CertAlgoRSAv01}
	default:
		return []string{keyType}
	}
}
