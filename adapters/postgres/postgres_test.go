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
	assert.Equal(t, 1, versions)
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
