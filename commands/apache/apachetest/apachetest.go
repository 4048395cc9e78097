// Package apachetest runs private instances of Debian's Apache httpd for
// tests: a copy of /etc/apache2 in a temporary directory with its own
// envvars (pid file, run, lock and log directories), listening on a
// loopback port of its own, controlled through Debian's apache2ctl.
package apachetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opsbot/opsbot/internal/testenv"
)

const (
	ctl     = "/usr/sbin/apache2ctl"
	confDir = "/etc/apache2"
	install = "apt-get install apache2"
)

// Server is one private Apache.
type Server struct {
	Dir       string // the config directory (APACHE_CONFDIR) and everything else
	Port      int
	Ctl       string // a wrapper running Debian's apache2ctl for this instance
	Docs      string // the DocumentRoot
	StatusURL string
	ProbeURL  string
	ErrorLog  string
	PidFile   string
}

// Check skips t (fails it with CI=true) when no private Apache can run.
func Check(t testing.TB) {
	t.Helper()
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "a private Apache (Debian package apache2) needs root here: its children switch to www-data"
	default:
		if _, err := os.Stat(ctl); err != nil {
			why = ctl + " is missing: " + install
		} else if _, err := os.Stat(filepath.Join(confDir, "envvars")); err != nil {
			why = confDir + " is missing: " + install
		}
	}
	if why == "" {
		return
	}
	testenv.Missing(t, "apachetest: no private Apache: %s", why)
}

// Start copies Debian's config, points it at a free loopback port and a
// document root of its own, starts it, and stops it when t ends.
//
// The port is free when it is picked and taken by Apache a moment later;
// under parallel tests another listener can take it in between, so a start
// that fails is tried again on a new port, up to three times. Call it from
// the test's goroutine (it may fail t).
func Start(t testing.TB) *Server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s := New(t)
		out, err := exec.Command(s.Ctl, "start").CombinedOutput() //nolint:gosec // our wrapper
		if err == nil && s.up(10*time.Second) {
			return s
		}
		s.Kill()
		if attempt == 3 {
			t.Fatalf("apachetest: Apache did not start on port %d (attempt %d): %v\n%s\nerror log:\n%s", s.Port, attempt, err, out, s.Log())
		}
	}
}

// up waits until server-status answers, at most d.
func (s *Server) up(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if _, err := s.Generation(); err == nil {
			return true
		}
		if time.Now().After(deadline) || (s.PID() != 0 && !s.Alive()) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// New prepares an instance without starting it.
func New(t testing.TB) *Server {
	t.Helper()
	Check(t)
	// Not t.TempDir: Apache's children run as www-data and must read the
	// document root, and TempDir's parent is private to root.
	dir, err := os.MkdirTemp("", "opsbot-apache-")
	if err != nil {
		t.Fatalf("apachetest: %v", err)
	}
	s := &Server{Dir: dir, Port: freePort(t), Docs: filepath.Join(dir, "htdocs")}
	t.Cleanup(func() {
		s.Kill()
		_ = os.RemoveAll(dir)
	})
	if out, err := exec.Command("cp", "-a", confDir+"/.", dir).CombinedOutput(); err != nil { //nolint:gosec // fixed paths
		t.Fatalf("apachetest: copy %s: %v: %s", confDir, err, out)
	}
	for _, d := range []string{"run", "lock", "log", "htdocs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil { //nolint:gosec // www-data must read the documents
			t.Fatalf("apachetest: %v", err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil { //nolint:gosec // as above
		t.Fatalf("apachetest: %v", err)
	}
	s.PidFile = filepath.Join(dir, "run", "apache2.pid")
	s.ErrorLog = filepath.Join(dir, "log", "error.log")
	s.StatusURL = fmt.Sprintf("http://127.0.0.1:%d/server-status?auto", s.Port)
	s.ProbeURL = fmt.Sprintf("http://127.0.0.1:%d/", s.Port)
	s.Ctl = filepath.Join(dir, "apache2ctl")
	s.write(t, "envvars", strings.Join([]string{
		"export APACHE_RUN_USER=www-data",
		"export APACHE_RUN_GROUP=www-data",
		"export APACHE_PID_FILE=" + s.PidFile,
		"export APACHE_RUN_DIR=" + filepath.Join(dir, "run"),
		"export APACHE_LOCK_DIR=" + filepath.Join(dir, "lock"),
		"export APACHE_LOG_DIR=" + filepath.Join(dir, "log"),
		"export LANG=C",
		"",
	}, "\n"))
	s.write(t, "ports.conf", fmt.Sprintf("Listen 127.0.0.1:%d\n", s.Port))
	s.write(t, "sites-available/000-default.conf", fmt.Sprintf(`<VirtualHost 127.0.0.1:%d>
	ServerName localhost
	DocumentRoot %s
	<Directory %s>
		Require all granted
	</Directory>
	ErrorLog ${APACHE_LOG_DIR}/error.log
	CustomLog ${APACHE_LOG_DIR}/access.log combined
</VirtualHost>
`, s.Port, s.Docs, s.Docs))
	s.write(t, "conf-enabled/zz-opsbot-test.conf", "ServerName localhost\n")
	s.write(t, "htdocs/index.html", "<html><body>opsbot test</body></html>\n")
	s.write(t, "apache2ctl", fmt.Sprintf("#!/bin/sh\nAPACHE_CONFDIR=%s exec %s \"$@\"\n", dir, ctl))
	if err := os.Chmod(s.Ctl, 0o755); err != nil { //nolint:gosec // an executable wrapper
		t.Fatalf("apachetest: %v", err)
	}
	return s
}

func (s *Server) write(t testing.TB, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(s.Dir, name), []byte(content), 0o644); err != nil { //nolint:gosec // Apache's children read these
		t.Fatalf("apachetest: %v", err)
	}
}

// WriteConf writes a file under the config directory (conf-enabled/x.conf)
// or the document root (htdocs/big.bin).
func (s *Server) WriteConf(t testing.TB, name, content string) {
	t.Helper()
	s.write(t, name, content)
}

// Remove deletes a file written with WriteConf.
func (s *Server) Remove(t testing.TB, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(s.Dir, name)); err != nil {
		t.Fatalf("apachetest: %v", err)
	}
}

// Must runs apache2ctl with args and fails t unless it exits 0.
func (s *Server) Must(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(s.Ctl, args...).CombinedOutput() //nolint:gosec // our wrapper
	if err != nil {
		t.Fatalf("apachetest: apache2ctl %s: %v\n%s\nerror log:\n%s", strings.Join(args, " "), err, out, s.Log())
	}
	return string(out)
}

// WaitUp waits until server-status answers.
func (s *Server) WaitUp(t testing.TB) {
	t.Helper()
	if !s.up(10 * time.Second) {
		t.Fatalf("apachetest: Apache on port %d not answering after 10s; error log:\n%s", s.Port, s.Log())
	}
}

var generation = regexp.MustCompile(`(?m)^ParentServerConfigGeneration: (\d+)$`)

// Generation reads ParentServerConfigGeneration.
func (s *Server) Generation() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.StatusURL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	buf := make([]byte, 64<<10)
	n, _ := readFull(resp, buf)
	m := generation.FindSubmatch(buf[:n])
	if m == nil {
		return 0, errors.New("no generation in server-status")
	}
	return strconv.Atoi(string(m[1]))
}

func readFull(resp *http.Response, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := resp.Body.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// PID is the parent's pid from the pid file, 0 when there is none.
func (s *Server) PID() int {
	b, err := os.ReadFile(s.PidFile)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// Alive reports whether the parent runs (a zombie does not).
func (s *Server) Alive() bool {
	pid := s.PID()
	if pid == 0 {
		return false
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...: the state follows the last ')'.
	i := strings.LastIndexByte(string(stat), ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}

// Log is the error log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.ErrorLog)
	return string(b)
}

// Kill stops the instance whatever its state: the parent and every child
// still running from this config directory.
func (s *Server) Kill() {
	if pid := s.PID(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		pids := s.processes()
		if len(pids) == 0 || time.Now().After(deadline) {
			for _, p := range pids {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processes are the live (not zombie) apache2 processes started with -d Dir.
func (s *Server) processes() []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmd), s.Dir) || !strings.Contains(string(cmd), "apache2") {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// HoldPort listens on a free loopback port until t ends, for a Listen
// directive that must fail.
func HoldPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("apachetest: %v", err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("apachetest: %v", err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

// EnableModule does what a2enmod does, in this instance's directory.
func (s *Server) EnableModule(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		for _, ext := range []string{".load", ".conf"} {
			src := filepath.Join(s.Dir, "mods-available", name+ext)
			if _, err := os.Stat(src); err != nil {
				continue
			}
			dst := filepath.Join(s.Dir, "mods-enabled", name+ext)
			if err := os.Symlink(src, dst); err != nil && !os.IsExist(err) {
				t.Fatalf("apachetest: %v", err)
			}
		}
	}
}

// SelfSigned writes a new self-signed certificate and its key for
// localhost under the instance's directory and returns their paths. Two
// calls give two unrelated pairs: the cert of one and the key of the other
// make the mismatch Apache only notices when it loads them (AH02565).
func (s *Server) SelfSigned(t testing.TB, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("apachetest: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("apachetest: %v", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("apachetest: %v", err)
	}
	certFile, keyFile = filepath.Join(s.Dir, name+".crt"), filepath.Join(s.Dir, name+".key")
	s.write(t, name+".crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	s.write(t, name+".key", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})))
	return certFile, keyFile
}
