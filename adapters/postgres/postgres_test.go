package postgres_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/postgres"
	"github.com/opsbot/opsbot/adapters/postgres/pgtest"
	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/bot/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func open(t *testing.T) bot.Store {
	t.Helper()
	url := storetest.Database(t, func() string { return pgtest.Database(t) })
	s, err := postgres.Open(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestStore(t *testing.T) {
	pgtest.Check(t)
	storetest.Run(t, open)
}

func TestOpen_ReplicasStartingTogetherMigrateOnce(t *testing.T) {
	url := pgtest.Database(t)
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := postgres.Open(context.Background(), url)
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

	conn := rawConn(t, url)
	var versions int
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM schema_version`).Scan(&versions))
	assert.Equal(t, 7, versions, "0001 to 0007, each once")
}

func TestOpen_RefusesANewerSchema(t *testing.T) {
	url := pgtest.Database(t)
	s, err := postgres.Open(t.Context(), url)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = rawConn(t, url).Exec(t.Context(), `INSERT INTO schema_version (version, name) VALUES (9999, 'future.sql')`)
	require.NoError(t, err)

	_, err = postgres.Open(t.Context(), url)
	assert.ErrorContains(t, err, "newer than this opsbot knows")
}

func TestOpen_UnreachableServerFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := postgres.Open(ctx, "postgres://opsbot:s3cret@127.0.0.1:1/opsbot?connect_timeout=2")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret")
}

func TestAudit_UpdateDeleteAndTruncateFail(t *testing.T) {
	url := pgtest.Database(t)
	s, err := postgres.Open(t.Context(), url)
	require.NoError(t, err)
	defer func() { _ = s.Close() }()
	seq, err := s.AppendAudit(t.Context(), bot.AuditRecord{Time: time.Now(), Kind: bot.AuditRequest, Message: "original"})
	require.NoError(t, err)

	conn := rawConn(t, url)
	for _, sql := range []string{
		`UPDATE audit SET message = 'forged' WHERE seq = $1`,
		`DELETE FROM audit WHERE seq = $1`,
	} {
		_, err = conn.Exec(t.Context(), sql, seq)
		assert.ErrorContains(t, err, "audit is append-only", sql)
	}
	_, err = conn.Exec(t.Context(), `TRUNCATE audit`)
	assert.ErrorContains(t, err, "audit is append-only")

	log, err := s.Audit(t.Context(), bot.AuditQuery{})
	require.NoError(t, err)
	require.Len(t, log, 1)
	assert.Equal(t, "original", log[0].Message)
}

// rawConn connects behind the store's back, as an operator with psql would.
func rawConn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func TestOpen_UpgradeGivesRunningRequestsALease(t *testing.T) {
	// A database of the version before leases, with a request running:
	// migration 0002 gives it an hour's lease, so it cannot stay running
	// forever if the replica of the old version died with it.
	url := pgtest.Database(t)
	init, err := os.ReadFile("migrations/0001_init.sql")
	require.NoError(t, err)
	conn := rawConn(t, url)
	_, err = conn.Exec(t.Context(), string(init))
	require.NoError(t, err)
	_, err = conn.Exec(t.Context(), `CREATE TABLE schema_version (version integer PRIMARY KEY, name text NOT NULL, applied timestamptz NOT NULL DEFAULT now());
		INSERT INTO schema_version (version, name) VALUES (1, '0001_init.sql');
		INSERT INTO approvals (id, state, command, line, args, hosts, digest, impact, requester_platform, requester_user,
			requester_name, requester_channel, request_id, needed, created, expires)
		VALUES ('0123456789ab', 'running', 'scan', '/scan 10.0.0.1', '["10.0.0.1"]', '["10.0.0.1"]', 'd', '', 'slack', 'U1', 'alice', 'C1', 'r', 1, now(), now())`)
	require.NoError(t, err)

	before := time.Now()
	s, err := postgres.Open(t.Context(), url)
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
