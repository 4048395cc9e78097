// Package pgtest owns the real PostgreSQL that tests run against; only tests
// import it. With OPSBOT_TEST_POSTGRES=postgres://... it uses that server;
// else, as root with Debian's postgresql package installed, it starts a
// private throwaway server (initdb in a temporary directory, run as the
// postgres user, on a free loopback port, fsync off) the first time a test
// asks, and stops it when the test binary ends. Without either it skips,
// naming the package to install — and with CI=true it fails instead.
//
// Each call of Database creates a fresh database on that server and drops
// it when the test ends.
//
// A package whose tests use it stops the private server from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// Without that the server still dies with the test binary (it gets SIGINT
// when its parent exits), but its temporary directory stays behind.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/opsbot/opsbot/internal/testenv"
)

// EnvURL names the variable that points the tests at an existing server.
// Its user must be allowed to CREATE DATABASE.
const EnvURL = "OPSBOT_TEST_POSTGRES"

const install = "apt-get install postgresql"

var (
	mu      sync.Mutex
	private *server // the throwaway server, once started
	failed  error   // why it could not start, once tried
)

// Check skips t (fails it with CI=true) when no PostgreSQL can be had, and
// starts nothing.
func Check(t testing.TB) {
	t.Helper()
	if why := unavailable(); why != "" {
		missing(t, why)
	}
}

// Database returns the URL of a new, empty database, dropped when t ends.
func Database(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		if why := unavailable(); why != "" {
			missing(t, why)
		}
		srv, err := start()
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		base = srv.url
	}
	admin, err := url.Parse(base)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", EnvURL, err)
	}

	name := "opsbot_test_" + randomHex(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := adminExec(ctx, base, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := adminExec(ctx, base, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u := *admin
	u.Path = "/" + name
	return u.String()
}

// Main runs the tests, then stops the private server if one was started.
func Main(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if private != nil {
		if err := private.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stop PostgreSQL: %v\n", err)
		}
		private = nil
	}
	return code
}

func missing(t testing.TB, why string) {
	t.Helper()
	testenv.Missing(t, "pgtest: %s", why)
}

// unavailable says why no server can be had, or "".
func unavailable() string {
	if os.Getenv(EnvURL) != "" {
		return ""
	}
	if os.Geteuid() != 0 {
		return "no PostgreSQL for the store tests: run them as root with Debian's postgresql installed (" + install + "), or set " + EnvURL + "=postgres://..."
	}
	if _, err := binDir(); err != nil {
		return "PostgreSQL is not installed: " + install + " (or set " + EnvURL + "=postgres://...)"
	}
	if _, err := user.Lookup("postgres"); err != nil {
		return "no postgres user: " + install + " (or set " + EnvURL + "=postgres://...)"
	}
	return ""
}

// binDir is the newest /usr/lib/postgresql/N/bin with a server in it.
func binDir() (string, error) {
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(found) == 0 {
		return "", errors.New("no /usr/lib/postgresql/*/bin/postgres")
	}
	version := func(p string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		return v
	}
	slices.SortFunc(found, func(a, b string) int { return version(a) - version(b) })
	return filepath.Dir(found[len(found)-1]), nil
}

func randomHex(t testing.TB) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return hex.EncodeToString(b)
}

func adminExec(ctx context.Context, dbURL, sql string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	_, err = conn.Exec(ctx, sql)
	return err
}

// server is a private PostgreSQL cluster in a temporary directory.
type server struct {
	dir    string
	url    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// start starts the private server once; later calls return it, or the
// error of the first try.
func start() (*server, error) {
	mu.Lock()
	defer mu.Unlock()
	if private != nil {
		return private, nil
	}
	if failed != nil {
		return nil, failed
	}
	srv, err := newServer()
	if err != nil {
		failed = fmt.Errorf("start a private PostgreSQL: %w", err)
		return nil, failed
	}
	private = srv
	return srv, nil
}

func newServer() (*server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.ParseUint(pg.Uid, 10, 32)
	gid, _ := strconv.ParseUint(pg.Gid, 10, 32)
	// initdb and postgres refuse to run as root: run them as postgres, in
	// a directory it owns.
	asPostgres := &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
		// If the test binary dies, so does the server.
		Pdeathsig: syscall.SIGINT,
	}
	dir, err := os.MkdirTemp("", "opsbot-pg-")
	if err != nil {
		return nil, err
	}
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	env := []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "HOME=" + dir}

	initdb := exec.Command(filepath.Join(bin, "initdb"), //nolint:gosec // Debian's initdb, found by binDir
		"-D", data, "-U", "postgres", "-A", "trust", "--no-locale", "-E", "UTF8", "--no-sync")
	initdb.Dir, initdb.Env, initdb.SysProcAttr = dir, env, asPostgres
	if out, err := initdb.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}

	// A port below the ephemeral range, where a TIME_WAIT connection cannot
	// hold it; another process may still take it between our check and the
	// server's bind, so try a few.
	var lastErr error
	for range 10 {
		port, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		srv, err := run(bin, dir, data, port, env, asPostgres)
		if err == nil {
			return srv, nil
		}
		lastErr = err
		if errors.Is(err, errNotReady) {
			break
		}
	}
	_ = os.RemoveAll(dir)
	return nil, lastErr
}

func freePort() (int, error) {
	b := make([]byte, 2)
	if _, err := rand.Read(b); err != nil {
		return 0, err
	}
	port := 20000 + (int(b[0])<<8|int(b[1]))%12000 // 20000-31999
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0, fmt.Errorf("port %d: %w", port, err)
	}
	return port, l.Close()
}

var errNotReady = errors.New("not ready")

// run starts postgres in the foreground as a child and waits until it
// accepts connections.
func run(bin, dir, data string, port int, env []string, attr *syscall.SysProcAttr) (*server, error) {
	logPath := filepath.Join(dir, fmt.Sprintf("postgres-%d.log", port))
	logFile, err := os.Create(logPath) //nolint:gosec // in our own temporary directory
	if err != nil {
		return nil, err
	}
	defer func() { _ = logFile.Close() }()                          // the child keeps its own descriptor
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, //nolint:gosec // Debian's postgres, found by binDir
		"-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		// The exactly-once tests hold about 60 connections at once.
		"-c", "max_connections=300")
	cmd.Dir, cmd.Env, cmd.SysProcAttr = dir, env, attr
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	srv := &server{
		dir:    dir,
		url:    fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
		cmd:    cmd,
		exited: make(chan struct{}),
	}
	go func() { _ = cmd.Wait(); close(srv.exited) }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, srv.url)
		cancel()
		if err == nil {
			_ = conn.Close(context.Background())
			return srv, nil
		}
		select {
		case <-srv.exited:
			log, _ := os.ReadFile(logPath) //nolint:gosec // in our own temporary directory
			return nil, fmt.Errorf("postgres on port %d exited: %s", port, strings.TrimSpace(string(log)))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			srv.kill()
			log, _ := os.ReadFile(logPath) //nolint:gosec // in our own temporary directory
			return nil, fmt.Errorf("postgres on port %d: %w in 30s: %w\n%s", port, errNotReady, err, log)
		}
	}
}

// stop shuts the server down and removes its directory.
func (s *server) stop() error {
	s.kill()
	return os.RemoveAll(s.dir)
}

// kill asks for a fast shutdown and kills after 10 s.
func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// Stoppable starts a PostgreSQL server of t's own (never the shared one)
// and returns its URL and stop, which shuts the server down: for tests of
// a database that goes away under a running bot. It needs root and
// Debian's postgresql package whether or not EnvURL is set. The server
// is stopped, if it still runs, when t ends.
func Stoppable(t testing.TB) (dbURL string, stop func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "a PostgreSQL server of the test's own needs root, with Debian's postgresql installed ("+install+")")
	}
	if _, err := binDir(); err != nil {
		missing(t, "PostgreSQL is not installed: "+install)
	}
	srv, err := newServer()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			if err := srv.stop(); err != nil {
				t.Errorf("pgtest: stop PostgreSQL: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return srv.url, stop
}
