package main

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/sqlite"
	"github.com/opsbot/opsbot/bot"
)

// opsbot backup copies the SQLite store while another process writes to
// it; the copy opens as a store and holds what was written before.
func TestBackup_OnlineCopyOfTheSQLiteStore(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "opsbot.db")
	t.Setenv("OPSBOT_DATABASE", db)
	live, err := sqlite.Open(t.Context(), db)
	require.NoError(t, err)
	t.Cleanup(func() { _ = live.Close() })
	for i := range 50 {
		_, err := live.AppendAudit(t.Context(), bot.AuditRecord{Time: time.Now(), Kind: bot.AuditRequest, Platform: "shell", User: "alice", Line: "/scan before", Result: "ok", RequestID: bot.NewID(), Message: string(rune('a' + i%26))})
		require.NoError(t, err)
	}
	// Writers keep going during the backup: it is online.
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var during atomic.Int64
	wg.Go(func() {
		for ctx.Err() == nil {
			if _, err := live.AppendAudit(context.Background(), bot.AuditRecord{Time: time.Now(), Kind: bot.AuditRequest, Platform: "shell", User: "bob", Line: "/scan during", Result: "ok", RequestID: bot.NewID()}); err == nil {
				during.Add(1)
			}
		}
	})
	file := filepath.Join(dir, "backup.db")
	code, out, errOut := run(t, "backup", file)
	stop()
	wg.Wait()
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "backed up sqlite "+db+" to "+file)
	assert.Positive(t, during.Load(), "the store took writes while it was copied")
	fi, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the audit log stays private")

	copyStore, err := sqlite.Open(t.Context(), file)
	require.NoError(t, err, "the backup is a store: OPSBOT_DATABASE may point at it")
	defer copyStore.Close()
	recs, err := copyStore.Audit(t.Context(), bot.AuditQuery{})
	require.NoError(t, err)
	before := 0
	for _, r := range recs {
		if r.Line == "/scan before" {
			before++
		}
	}
	assert.Equal(t, 50, before, "everything written before the backup is in it")

	code, _, errOut = run(t, "backup", file)
	assert.Equal(t, 1, code, "an existing file is never overwritten")
	assert.Contains(t, errOut, "the file exists; give a new file name")

	t.Setenv("OPSBOT_DATABASE", "postgres://opsbot@db.invalid/opsbot")
	code, _, errOut = run(t, "backup", filepath.Join(dir, "pg.db"))
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "pg_dump -Fc -f opsbot.dump")
}
