package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/sqlite"
	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/bot/storetest"
)

func open(t *testing.T) bot.Store {
	t.Helper()
	path := storetest.Database(t, func() string { return filepath.Join(t.TempDir(), "opsbot.db") })
	s, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, open)
}

func TestOpen_CreatesPrivateDirectoryAndFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "opsbot", "opsbot.db")
	s, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	defer func() { _ = s.Close() }()

	dir, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), dir.Mode().Perm())
	file, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), file.Mode().Perm())
}

func TestOpen_RejectsPathWithQuestionMark(t *testing.T) {
	_, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "what?.db"))
	assert.ErrorContains(t, err, "'?'")
}

func TestOpen_ManyProcessesAtOnceOnANewFile(t *testing.T) {
	// Several bot processes starting together on a file none has created:
	// each migration is applied once and none fails on a lock.
	path := filepath.Join(t.TempDir(), "opsbot.db")
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := sqlite.Open(context.Background(), path)
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		assert.NoError(t, err)
	}

	db := rawDB(t, path)
	var versions int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM schema_version`).Scan(&versions))
	assert.Equal(t, 7, versions, "0001 to 0007, each once")
	var mode string
	require.NoError(t, db.QueryRow(`PRAGMA journal_mode`).Scan(&mode))
	assert.Equal(t, "wal", mode)
}

func TestOpen_RefusesANewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "opsbot.db")
	s, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = rawDB(t, path).Exec(`INSERT INTO schema_version (version, name, applied) VALUES (9999, 'future.sql', 0)`)
	require.NoError(t, err)

	_, err = sqlite.Open(t.Context(), path)
	assert.ErrorContains(t, err, "newer than this opsbot knows")
}

func TestAudit_UpdateAndDeleteFail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "opsbot.db")
	s, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	defer func() { _ = s.Close() }()
	seq, err := s.AppendAudit(t.Context(), bot.AuditRecord{Time: time.Now(), Kind: bot.AuditRequest, Message: "original"})
	require.NoError(t, err)

	db := rawDB(t, path)
	_, err = db.Exec(`UPDATE audit SET message = 'forged' WHERE seq = ?`, seq)
	assert.ErrorContains(t, err, "audit is append-only")
	_, err = db.Exec(`DELETE FROM audit WHERE seq = ?`, seq)
	assert.ErrorContains(t, err, "audit is append-only")
	_, err = db.Exec(`DELETE FROM audit`)
	assert.ErrorContains(t, err, "audit is append-only")

	log, err := s.Audit(t.Context(), bot.AuditQuery{})
	require.NoError(t, err)
	require.Len(t, log, 1)
	assert.Equal(t, "original", log[0].Message)
}

func TestDefaultPath_FollowsXDGStateHome(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/var/lib/someone/state")
	assert.Equal(t, "/var/lib/someone/state/opsbot/opsbot.db", sqlite.DefaultPath())
}

func TestDefaultPath_FallsBackToHome(t *testing.T) {
	for _, xdg := range []string{"", "relative/state"} {
		t.Setenv("XDG_STATE_HOME", xdg)
		t.Setenv("HOME", "/home/alice")
		assert.Equal(t, "/home/alice/.local/state/opsbot/opsbot.db", sqlite.DefaultPath(), "XDG_STATE_HOME=%q", xdg)
	}
}

// rawDB opens the file behind the store's back, as an operator with the
// sqlite3 shell would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_busy_timeout=10000")
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestOpen_UpgradeGivesRunningRequestsALease(t *testing.T) {
	// A database of the version before leases, with a request running:
	// migration 0002 gives it an hour's lease, so it cannot stay running
	// forever if the replica of the old version died with it.
	path := filepath.Join(t.TempDir(), "opsbot.db")
	init, err := os.ReadFile("migrations/0001_init.sql")
	require.NoError(t, err)
	db := rawDB(t, path)
	_, err = db.Exec(string(init))
	require.NoError(t, err)
	_, err = db.Exec(`CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied INTEGER NOT NULL) STRICT;
		INSERT INTO schema_version VALUES (1, '0001_init.sql', 0);
		INSERT INTO approvals (id, state, command, line, args, hosts, digest, impact, requester_platform, requester_user,
			requester_name, requester_channel, request_id, needed, created, expires)
		VALUES ('0123456789ab', 'running', 'scan', '/scan 10.0.0.1', '["10.0.0.1"]', '["10.0.0.1"]', 'd', '', 'slack', 'U1', 'alice', 'C1', 'r', 1, 0, 0)`)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	before := time.Now()
	s, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	defer func() { _ = s.Close() }()
	a, err := s.Approval(t.Context(), "0123456789ab")
	require.NoError(t, err)
	assert.Equal(t, bot.ApprovalRunning, a.State)
	assert.Equal(t, "unknown (claimed before leases)", a.Lease.Holder)
	assert.WithinRange(t, a.Lease.Until, before.Add(time.Hour-time.Minute), time.Now().Add(time.Hour+time.Minute))

	gone, err := s.AbandonLapsed(t.Context(), a.Lease.Until.Add(time.Second))
	require.NoError(t, err)
	require.Len(t, gone, 1)
	assert.Contains(t, gone[0].Outcome.Title, "abandoned: replica unknown (claimed before leases) stopped")
}

// Deliveries are committed together with whatever else waits (audit
// records, other deliveries): many at once in one process still give
// exactly one first delivery per key, and each distinct key is fresh.
func TestFirstDelivery_ManyAtOnceInOneProcess(t *testing.T) {
	s := open(t)
	ctx, now := t.Context(), time.Now()
	var (
		wg           sync.WaitGroup
		mu           sync.Mutex
		same, unique int
	)
	for i := range 50 {
		wg.Go(func() {
			ok, err := s.FirstDelivery(ctx, []string{"trigger:same"}, now, now.Add(time.Minute))
			assert.NoError(t, err)
			mine, err := s.FirstDelivery(ctx, []string{"trigger:" + string(rune('A'+i))}, now, now.Add(time.Minute))
			assert.NoError(t, err)
			_, err = s.AppendAudit(ctx, bot.AuditRecord{Time: now, Kind: bot.AuditRequest, User: "u", Line: "/portcheck x 1"})
			assert.NoError(t, err)
			mu.Lock()
			if ok {
				same++
			}
			if mine {
				unique++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	assert.Equal(t, 1, same, "one of 50 deliveries of one key is the first")
	assert.Equal(t, 50, unique, "each distinct key is fresh")
}
