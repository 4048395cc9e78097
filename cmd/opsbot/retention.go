package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/opsbot/opsbot/bot"
)

// Retention runs.
const (
	pruneBatch = 1000 // records per transaction: one export write and fsync, one delete
	// pruneEvery is how often serve applies audit.retain; the first run is
	// at start.
	pruneEvery = time.Hour
)

// pruneResult is what one retention run did.
type pruneResult struct {
	Removed int
	Cutoff  time.Time
	File    string // "" when nothing was old enough
}

// pruneAudit applies pol at now: the records older than now - pol.Retain
// are appended to a new file in pol.Export (JSON lines, the format of
// opsbot audit export), the file is fsynced, and only then are they
// removed, pruneBatch at a time. A failed export removes nothing and
// leaves no partial line. The run is itself audited (kind "pruned").
func pruneAudit(ctx context.Context, st bot.Store, pol bot.AuditPolicy, now time.Time) (pruneResult, error) {
	res := pruneResult{Cutoff: now.Add(-pol.Retain.D).UTC()}
	if pol.Retain.D == 0 {
		return res, bot.Errorf(bot.ECONFIG, "the policy sets no audit.retain: records are kept forever (see README, Audit retention)")
	}
	if fi, err := os.Stat(pol.Export); err != nil || !fi.IsDir() {
		return res, bot.Errorf(bot.ECONFIG, "audit.export %s is not a directory this process can reach: create it (mode 0700, owned by the bot's user)", pol.Export)
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	name := filepath.Join(pol.Export, fmt.Sprintf("opsbot-audit-%s-%s.jsonl", now.UTC().Format("20060102T150405Z"), hex.EncodeToString(suffix[:])))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // the policy names the directory
	if err != nil {
		return res, fmt.Errorf("audit export: %w", err)
	}
	var size int64
	dirSynced := false
	export := func(recs []bot.AuditRecord) error {
		err := writeLines(f, recs)
		if err == nil {
			err = f.Sync()
		}
		if err == nil && !dirSynced {
			err = syncDir(pol.Export)
			dirSynced = err == nil
		}
		if err != nil {
			// Leave no partial batch: these records stay in the store.
			_ = f.Truncate(size)
			return err
		}
		if size, err = f.Seek(0, io.SeekCurrent); err != nil {
			return err
		}
		return nil
	}
	var runErr error
	for {
		n, err := st.PruneAudit(ctx, res.Cutoff, pruneBatch, export)
		res.Removed += n
		if err != nil {
			runErr = err
			break
		}
		if n < pruneBatch {
			break
		}
	}
	if err := f.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("audit export %s: %w", name, err)
	}
	if size == 0 {
		_ = os.Remove(name)
	} else {
		res.File = name
	}
	if res.Removed > 0 {
		msg := fmt.Sprintf("removed %d audit records older than %s (audit.retain %s) after writing them to %s",
			res.Removed, res.Cutoff.Format(time.RFC3339), formatAge(pol.Retain.D), name)
		_, err := st.AppendAudit(ctx, bot.AuditRecord{Time: now.UTC(), Kind: bot.AuditPruned, Platform: "retention",
			Line: pol.Export, Result: "ok", Message: msg})
		if err != nil && runErr == nil {
			runErr = err
		}
	}
	return res, runErr
}

func writeLines(w io.Writer, recs []bot.AuditRecord) error {
	enc := json.NewEncoder(w)
	for _, r := range recs {
		if err := enc.Encode(toAuditLine(r)); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir) //nolint:gosec // the policy names the directory
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// formatAge writes whole days as "400d".
func formatAge(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// auditPruneCmd is `opsbot audit prune`: one retention run now, with the
// policy's audit key.
func auditPruneCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("opsbot audit prune", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := fs.String("config", "", "policy file (default $OPSBOT_CONFIG)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	m, err := NewMain(ctx, *cfg, io.Discard)
	if err != nil {
		return configError(stderr, err)
	}
	defer m.Close()
	res, err := pruneAudit(ctx, m.Store, m.Policy.Audit, time.Now())
	if err != nil {
		if bot.ErrorCode(err) == bot.ECONFIG {
			return configError(stderr, err)
		}
		fmt.Fprintf(stderr, "opsbot audit prune: %v (removed %d before the error)\n", err, res.Removed)
		return 1
	}
	if res.Removed == 0 {
		fmt.Fprintf(stdout, "no audit record is older than %s (audit.retain %s): nothing removed\n", res.Cutoff.Format(time.RFC3339), formatAge(m.Policy.Audit.Retain.D))
		return 0
	}
	fmt.Fprintf(stdout, "removed %d audit records older than %s; they are in %s\n", res.Removed, res.Cutoff.Format(time.RFC3339), res.File)
	return 0
}

// watchRetention applies audit.retain of the policy in force at start and
// every pruneEvery until ctx ends. Every replica may run it: each exports
// what it removes to its own file, and no record is removed twice.
func (m *Main) watchRetention(ctx context.Context) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		if pol := m.auditPolicy.Load(); pol != nil && pol.Retain.D > 0 {
			res, err := pruneAudit(ctx, m.Store, *pol, time.Now())
			switch {
			case err != nil && ctx.Err() == nil:
				m.Log.Error("audit retention failed; records past audit.retain stay until it succeeds", "err", err, "removed", res.Removed)
			case res.Removed > 0:
				m.Log.Info("audit retention", "removed", res.Removed, "older_than", res.Cutoff, "file", res.File)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
