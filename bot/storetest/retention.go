package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
)

// appendAt appends one record per offset from t0 and returns their seqs.
func appendAt(t *testing.T, s bot.Store, offsets ...time.Duration) []int64 {
	t.Helper()
	var seqs []int64
	for _, off := range offsets {
		seq, err := s.AppendAudit(t.Context(), newRecord(bot.AuditRequest, t0.Add(off)))
		require.NoError(t, err)
		seqs = append(seqs, seq)
	}
	return seqs
}

func seqsOf(recs []bot.AuditRecord) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

// testPruneExportsThenRemovesOnlyOld: records older than the cutoff go to
// export, whole, oldest first, and only those are removed; at most limit
// per call.
func testPruneExportsThenRemovesOnlyOld(t *testing.T, open func(t *testing.T) bot.Store) {
	s := open(t)
	ctx := t.Context()
	seqs := appendAt(t, s, -3*time.Hour, -2*time.Hour, -time.Hour, 0)
	before, err := s.Audit(ctx, bot.AuditQuery{})
	require.NoError(t, err)

	var exported []bot.AuditRecord
	export := func(recs []bot.AuditRecord) error { exported = append(exported, recs...); return nil }
	cutoff := t0.Add(-90 * time.Minute)

	n, err := s.PruneAudit(ctx, cutoff, 1, export)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "at most limit records per call")
	n, err = s.PruneAudit(ctx, cutoff, 100, export)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	n, err = s.PruneAudit(ctx, cutoff, 100, export)
	require.NoError(t, err)
	assert.Equal(t, 0, n, "nothing older than the cutoff is left")

	assert.Equal(t, before[:2], exported, "the removed records were exported whole, oldest first")
	after, err := open(t).Audit(ctx, bot.AuditQuery{})
	require.NoError(t, err)
	assert.Equal(t, seqs[2:], seqsOf(after), "only records older than the cutoff were removed")

	// The log goes on after a prune.
	more := appendAt(t, s, time.Hour)
	assert.Greater(t, more[0], seqs[3])

	_, err = s.PruneAudit(ctx, cutoff, 0, export)
	requireCode(t, err, bot.EINVALID)
}

// testPruneFailedExportRemovesNothing: export is the gate.
func testPruneFailedExportRemovesNothing(t *testing.T, open func(t *testing.T) bot.Store) {
	s := open(t)
	ctx := t.Context()
	seqs := appendAt(t, s, -2*time.Hour, -time.Hour)
	n, err := s.PruneAudit(ctx, t0, 100, func([]bot.AuditRecord) error { return errors.New("disk full") })
	require.ErrorContains(t, err, "disk full")
	assert.Equal(t, 0, n)
	after, err := s.Audit(ctx, bot.AuditQuery{})
	require.NoError(t, err)
	assert.Equal(t, seqs, seqsOf(after), "a failed export removes nothing")
}

// testPruneConcurrentHandlesExportEachOnce: replicas pruning at once never
// export or remove a record twice, and together remove every old one.
func testPruneConcurrentHandlesExportEachOnce(t *testing.T, open func(t *testing.T) bot.Store) {
	s := open(t)
	offsets := make([]time.Duration, 40)
	for i := range offsets {
		offsets[i] = -time.Duration(len(offsets)-i) * time.Minute
	}
	seqs := appendAt(t, s, offsets...)
	appendAt(t, s, time.Minute) // young: stays

	stores := openMany(t, open, 4)
	var (
		mu       sync.Mutex
		exported = map[int64]int{}
		removed  int
		wg       sync.WaitGroup
	)
	for _, st := range stores {
		wg.Go(func() {
			for {
				n, err := st.PruneAudit(t.Context(), t0, 3, func(recs []bot.AuditRecord) error {
					mu.Lock()
					defer mu.Unlock()
					for _, r := range recs {
						exported[r.Seq]++
					}
					return nil
				})
				if !assert.NoError(t, err) || n == 0 {
					return
				}
				mu.Lock()
				removed += n
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, len(seqs), removed)
	assert.Len(t, exported, len(seqs))
	for seq, times := range exported {
		assert.Equal(t, 1, times, "record %d exported once", seq)
	}
	left, err := s.Audit(t.Context(), bot.AuditQuery{})
	require.NoError(t, err)
	assert.Len(t, left, 1)
}
