package routertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/postgres"
	"github.com/opsbot/opsbot/adapters/postgres/pgtest"
	"github.com/opsbot/opsbot/adapters/sqlite"
	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/internal/testenv"
)

// Audit before action: an action that changes something is recorded as
// started before it acts; when the store cannot record it, nothing runs
// and the asker is told why, while read-only checks run with the failed
// audit write logged and counted.

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// changeCmd changes something (it does not implement bot.Changer).
type changeCmd struct{ runs atomic.Int32 }

func (*changeCmd) Name() string    { return "restart" }
func (*changeCmd) Summary() string { return "restarts" }
func (*changeCmd) Usage() string   { return "/restart HOST" }
func (c *changeCmd) Run(context.Context, bot.Request) (bot.Reply, error) {
	c.runs.Add(1)
	return bot.Reply{Status: bot.StatusOK, Title: "restarted"}, nil
}

// lookCmd only looks.
type lookCmd struct{ runs atomic.Int32 }

func (*lookCmd) Name() string        { return "look" }
func (*lookCmd) Summary() string     { return "looks" }
func (*lookCmd) Usage() string       { return "/look HOST" }
func (*lookCmd) Changes(string) bool { return false }
func (c *lookCmd) Run(context.Context, bot.Request) (bot.Reply, error) {
	c.runs.Add(1)
	return bot.Reply{Status: bot.StatusOK, Title: "looked"}, nil
}

// countObs counts failed audit writes by kind.
type countObs struct {
	bot.NopObserver
	mu     sync.Mutex
	failed map[string]int
}

func (o *countObs) AuditFailed(kind string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failed == nil {
		o.failed = map[string]int{}
	}
	o.failed[kind]++
}

func (o *countObs) count(kind string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.failed[kind]
}

type auditRig struct {
	r      *bot.Router
	change *changeCmd
	look   *lookCmd
	obs    *countObs
	notes  *notes
	log    *lockedBuffer
}

func newAuditRig(st bot.Store) *auditRig {
	g := &auditRig{change: &changeCmd{}, look: &lookCmd{}, obs: &countObs{}, notes: &notes{}, log: &lockedBuffer{}}
	g.r = bot.NewRouter(bot.RouterConfig{Commands: []bot.Command{g.change, g.look}, Store: st, Observer: g.obs, Notifier: g.notes,
		Log: slog.New(slog.NewTextHandler(g.log, nil))})
	return g
}

// lockedBuffer is a log destination safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (g *auditRig) ask(line string) bot.Reply {
	return g.r.Handle(context.Background(), bot.Request{Platform: "chat", User: "alice", Channel: "inc", Line: line})
}

// refused checks that a change was refused for want of an audit record,
// that a read-only check still ran, and that its lost record was counted.
func (g *auditRig) refused(t *testing.T, why string) {
	t.Helper()
	before := g.change.runs.Load()
	out := g.ask("/restart web01")
	assert.Equal(t, bot.StatusFailed, out.Status)
	assert.Contains(t, out.Title, `nothing ran: the audit log could not record that "restart" is starting (`+why+`), and opsbot changes nothing it cannot audit`)
	assert.Equal(t, before, g.change.runs.Load(), "the change did not run")
	assert.Equal(t, 1, g.obs.count(bot.AuditStarted))

	assert.Contains(t, g.log.String(), "audit write failed: the action did not run")

	look := g.ask("/look web01")
	assert.Equal(t, bot.StatusOK, look.Status, "a read-only check runs")
	assert.Equal(t, int32(1), g.look.runs.Load())
	assert.Positive(t, g.obs.count(bot.AuditRequest), "its lost audit record is counted")
	assert.Regexp(t, `audit write failed" err=.* record=.*Kind:request .*Line:/look web01`, g.log.String(), "and logged, whole")
}

func TestAuditBeforeAction_StartIsRecordedBeforeTheActionRuns(t *testing.T) {
	st := openStore(t)
	g := newAuditRig(st)
	var seen []string
	g.r.Add(&probeCmd{fn: func() {
		recs, err := st.Audit(context.Background(), bot.AuditQuery{})
		require.NoError(t, err)
		for _, r := range recs {
			seen = append(seen, r.Kind+" "+r.Line)
		}
	}})
	out := g.ask("/probe web01")
	assert.Equal(t, bot.StatusOK, out.Status)
	assert.Equal(t, []string{"started /probe web01"}, seen, "durably in the log while the action runs")
	recs, err := st.Audit(context.Background(), bot.AuditQuery{})
	require.NoError(t, err)
	require.Len(t, recs, 2)
	assert.Equal(t, bot.AuditStarted, recs[0].Kind)
	assert.Equal(t, bot.AuditRequest, recs[1].Kind)
	assert.Equal(t, recs[0].RequestID, recs[1].RequestID)

	g.ask("/look web01")
	recs, err = st.Audit(context.Background(), bot.AuditQuery{})
	require.NoError(t, err)
	assert.Equal(t, bot.AuditRequest, recs[len(recs)-1].Kind, "a read-only check has no started record")
	assert.Len(t, recs, 3)
}

// probeCmd changes something, and calls fn while it acts.
type probeCmd struct{ fn func() }

func (*probeCmd) Name() string    { return "probe" }
func (*probeCmd) Summary() string { return "" }
func (*probeCmd) Usage() string   { return "" }
func (p *probeCmd) Run(context.Context, bot.Request) (bot.Reply, error) {
	p.fn()
	return bot.Reply{Status: bot.StatusOK, Title: "done"}, nil
}

// tmpfs mounts a tmpfs of size bytes for t; it needs root.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

func TestAuditBeforeAction_FullDiskRefusesTheChange_SQLite(t *testing.T) {
	dir := tmpfs(t, "2m")
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "opsbot.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	g := newAuditRig(st)
	require.Equal(t, bot.StatusOK, g.ask("/restart web01").Status, "with room, the change runs")
	require.Equal(t, int32(1), g.change.runs.Load())

	// Fill the disk.
	f, err := os.Create(filepath.Join(dir, "filler"))
	require.NoError(t, err)
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			require.True(t, errors.Is(err, syscall.ENOSPC), "%v", err)
			break
		}
	}
	require.NoError(t, f.Close())
	g.refused(t, "its disk is full")
}

func TestAuditBeforeAction_DatabaseDownRefusesTheChange_PostgreSQL(t *testing.T) {
	url, stop := pgtest.Stoppable(t)
	st, err := postgres.Open(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	g := newAuditRig(st)
	require.Equal(t, bot.StatusOK, g.ask("/restart web01").Status, "with the database up, the change runs")
	stop()
	g.refused(t, "the database is unreachable")
}

func TestAuditBeforeAction_ReadOnlyFileRefusesToOpen_SQLite(t *testing.T) {
	dir := tmpfs(t, "4m")
	path := filepath.Join(dir, "opsbot.db")
	st, err := sqlite.Open(context.Background(), path)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	_, err = sqlite.Open(context.Background(), path)
	require.Error(t, err, "a store that cannot write is not opened: nothing can act without an audit log")
	assert.Contains(t, err.Error(), "read-only file system")
}

// ext4 mounts a small ext4 file system (a loop device over a file) with
// errors=remount-ro, and returns its mount point and a function that makes
// it fail as a disk does: the kernel records a file-system error and turns
// it read-only under whoever has files open on it. (A tmpfs cannot be made
// read-only while a file is open for writing: remount says busy.) It needs
// root, losetup and mkfs.ext4.
func ext4(t *testing.T) (dir string, fail func()) {
	t.Helper()
	need := func(what string) { testenv.Missing(t, "%s", what) }
	if os.Geteuid() != 0 {
		need("a loop-mounted ext4 needs root")
	}
	for _, tool := range []string{"losetup", "mkfs.ext4", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			need(tool + " is not installed (util-linux, e2fsprogs)")
		}
	}
	img := filepath.Join(t.TempDir(), "fs.img")
	require.NoError(t, os.WriteFile(img, nil, 0o600))
	require.NoError(t, os.Truncate(img, 16<<20))
	out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput()
	require.NoError(t, err, "%s", out)
	out, err = exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		need(fmt.Sprintf("no loop device: %v %s", err, out))
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v %s", dev, err, out)
		}
	})
	dir = t.TempDir()
	out, err = exec.Command("mount", "-t", "ext4", "-o", "errors=remount-ro", dev, dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir, func() {
		require.NoError(t, os.WriteFile("/sys/fs/ext4/"+filepath.Base(dev)+"/trigger_fs_error", []byte("1"), 0o200))
		err := os.WriteFile(filepath.Join(dir, "probe"), []byte("x"), 0o600)
		require.ErrorIs(t, err, syscall.EROFS, "the file system is read-only now")
	}
}

func TestAuditBeforeAction_FileSystemTurnedReadOnlyRefusesTheChange_SQLite(t *testing.T) {
	dir, fail := ext4(t)
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "opsbot.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	g := newAuditRig(st)
	require.Equal(t, bot.StatusOK, g.ask("/restart web01").Status, "writable, the change runs")
	require.Equal(t, int32(1), g.change.runs.Load())

	fail() // while the store is open
	g.refused(t, "the database is read-only")
}

func TestAuditBeforeAction_LapsedStartIsRecordedInterruptedOnceAndAnnounced(t *testing.T) {
	st := openStore(t)
	started := time.Now().Add(-time.Hour)
	_, err := st.BeginAction(context.Background(), bot.AuditRecord{Time: started, Kind: bot.AuditStarted, RequestID: "0123456789ab",
		Platform: "chat", User: "alice", Channel: "inc", Line: "/restart web01", Command: "restart"},
		bot.Lease{Holder: "replica-dead/42/abcdef", Until: started.Add(time.Minute)})
	require.NoError(t, err)
	g := newAuditRig(st)
	g.r.ExpireApprovals(context.Background())
	other := newAuditRig(st)
	other.r.ExpireApprovals(context.Background())
	g.r.ExpireApprovals(context.Background())

	got := append(g.notes.all(), other.notes.all()...)
	require.Len(t, got, 1, "announced once, by whichever replica swept first")
	assert.Equal(t, "Interrupted: /restart web01", got[0].Title)
	assert.Equal(t, bot.StatusFailed, got[0].Status)
	assert.Contains(t, got[0].Text, "replica replica-dead/42/abcdef stopped after it started this and before it recorded how it ended")
	assert.Contains(t, got[0].Text, "outcome unknown")

	recs, err := st.Audit(context.Background(), bot.AuditQuery{})
	require.NoError(t, err)
	var kinds []string
	for _, r := range recs {
		kinds = append(kinds, r.Kind)
	}
	assert.Equal(t, []string{"started", "interrupted"}, kinds)
	assert.True(t, strings.HasPrefix(recs[1].Message, "interrupted: replica replica-dead/42/abcdef"))
}
