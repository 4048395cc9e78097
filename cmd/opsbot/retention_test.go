package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/postgres/pgtest"
	"github.com/opsbot/opsbot/bot"
)

func TestAuditPrune_SQLite(t *testing.T) {
	testAuditPrune(t, filepath.Join(t.TempDir(), "opsbot.db"))
}

func TestAuditPrune_PostgreSQL(t *testing.T) {
	testAuditPrune(t, pgtest.Database(t))
}

// testAuditPrune: opsbot audit prune with audit.retain 400d writes the
// older records to a private JSON-lines file in audit.export, then removes
// exactly those, leaves a "pruned" record, and a second run changes
// nothing and says so. With no export directory nothing is removed.
func testAuditPrune(t *testing.T, database string) {
	clearEnv(t)
	dir := t.TempDir()
	archive := filepath.Join(dir, "archive")
	policy := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(policy, []byte("audit:\n  retain: 400d\n  export: "+archive+"\n"), 0o600))
	t.Setenv("OPSBOT_DATABASE", database)
	t.Setenv("OPSBOT_CONFIG", policy)

	st, _, err := openStore(t.Context(), database)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	now := time.Now()
	var oldSeqs []int64
	for i, age := range []time.Duration{900, 500, 401, 399, 1} {
		seq, err := st.AppendAudit(t.Context(), bot.AuditRecord{Time: now.Add(-age * 24 * time.Hour), Kind: bot.AuditRequest,
			Platform: "slack", User: "U1", Line: "/scan web01", Hosts: []string{"web01"}, Result: "ok", RequestID: bot.NewID(), Duration: time.Duration(i) * time.Second})
		require.NoError(t, err)
		if age > 400 {
			oldSeqs = append(oldSeqs, seq)
		}
	}

	code, out, errOut := run(t, "config", "check")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "audit: records older than 400d are written to "+archive+", then removed")
	assert.Contains(t, errOut, "warning: audit.export "+archive+" is not a directory here")

	// No export directory yet: nothing is removed, and it says what to do.
	code, _, errOut = run(t, "audit", "prune")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "audit.export "+archive+" is not a directory")
	recs, err := st.Audit(t.Context(), bot.AuditQuery{})
	require.NoError(t, err)
	require.Len(t, recs, 5, "a failed export removes nothing")

	require.NoError(t, os.Mkdir(archive, 0o700))
	code, out, errOut = run(t, "audit", "prune")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "removed 3 audit records older than ")
	files, err := filepath.Glob(filepath.Join(archive, "opsbot-audit-*.jsonl"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	assert.Contains(t, out, files[0])
	fi, err := os.Stat(files[0])
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the export is as private as the store")

	// The file holds the removed records, whole, in the export format.
	f, err := os.Open(files[0])
	require.NoError(t, err)
	defer f.Close()
	var exported []auditLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l auditLine
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), sc.Text())
		exported = append(exported, l)
	}
	require.Len(t, exported, 3)
	for i, l := range exported {
		assert.Equal(t, oldSeqs[i], l.Seq)
		assert.Equal(t, "/scan web01", l.Line)
		assert.Equal(t, []string{"web01"}, l.Hosts)
	}

	recs, err = st.Audit(t.Context(), bot.AuditQuery{})
	require.NoError(t, err)
	require.Len(t, recs, 3, "two young records and the record of the prune")
	for _, r := range recs[:2] {
		assert.NotContains(t, oldSeqs, r.Seq)
		assert.Less(t, now.Sub(r.Time), 400*24*time.Hour)
	}
	last := recs[2]
	assert.Equal(t, bot.AuditPruned, last.Kind)
	assert.Contains(t, last.Message, "removed 3 audit records older than")
	assert.Contains(t, last.Message, files[0])

	// Again: nothing is that old any more; no new file.
	code, out, errOut = run(t, "audit", "prune")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "nothing removed")
	files, err = filepath.Glob(filepath.Join(archive, "*"))
	require.NoError(t, err)
	assert.Len(t, files, 1)
}

func TestAuditPrune_NoRetentionSaysSo(t *testing.T) {
	clearEnv(t)
	t.Setenv("OPSBOT_DATABASE", filepath.Join(t.TempDir(), "opsbot.db"))
	code, _, errOut := run(t, "audit", "prune")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "the policy sets no audit.retain")
}

// serve applies audit.retain at start: the old records go to the export
// directory and out of the store, with no command typed.
func TestServe_AppliesAuditRetentionAtStart(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(dir, "archive")
	require.NoError(t, os.Mkdir(archive, 0o700))
	policy := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(policy, []byte("audit:\n  retain: 30d\n  export: "+archive+"\n"), 0o600))
	db := filepath.Join(dir, "opsbot.db")
	st, _, err := openStore(t.Context(), db)
	require.NoError(t, err)
	for _, age := range []time.Duration{90 * 24 * time.Hour, time.Hour} {
		_, err := st.AppendAudit(t.Context(), bot.AuditRecord{Time: time.Now().Add(-age), Kind: bot.AuditRequest, Platform: "mattermost", Line: "/scan x", Result: "ok", RequestID: bot.NewID()})
		require.NoError(t, err)
	}
	require.NoError(t, st.Close())

	mm := newFakeMattermost(t)
	addr := freePort(t)
	env := append(os.Environ(), "OPSBOT_CONFIG="+policy, "OPSBOT_DATABASE="+db, "OPSBOT_HTTP_ADDR="+addr,
		"OPSBOT_MATTERMOST_URL="+mm.URL, "OPSBOT_MATTERMOST_TOKEN="+mmBotToken, "OPSBOT_MATTERMOST_COMMAND_TOKENS="+mmCmdToken,
		"OPSBOT_MATTERMOST_ACTION_SECRET="+mmSecret, "OPSBOT_MATTERMOST_REGISTER=")
	startServe(t, env, addr, "/healthz")
	c := &cli{t: t, bin: opsbotBinary(t), env: env}
	require.Eventually(t, func() bool {
		out, code := c.run("audit", "export")
		return code == 0 && strings.Count(out, `"line":"/scan x"`) == 1 && strings.Contains(out, `"kind":"pruned"`)
	}, 20*time.Second, 100*time.Millisecond, "the 90-day-old record is removed at start, the young one stays")
	files, err := filepath.Glob(filepath.Join(archive, "opsbot-audit-*.jsonl"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	b, err := os.ReadFile(files[0])
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(string(b), "\n"), "one record exported")
	assert.Contains(t, string(b), `"line":"/scan x"`)
}
