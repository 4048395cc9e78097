package probe_test

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/commands/probe"
	"github.com/opsbot/opsbot/commands/probe/testbed"
)

// Three scans at once on one small budget, against a target that drops
// every probe (so each socket stays open until its timeout), hold no more
// sockets together than the budget: measured as the process's open
// descriptors, sampled while they run.
func TestScan_ConcurrentScansStayWithinTheBudget(t *testing.T) {
	env, child := testbed.Child()
	if !child {
		bed := testbed.New(t, testbed.Options{})
		bed.Target(1).Nft(t, defaultDropRuleset)
		// Refused ports too: a connector keeps a refused try's socket for
		// its next try, and those sockets count against the budget.
		bed.Target(1).Nft(t, "table inet refuse {\n chain input {\n  type filter hook input priority -10; policy accept;\n  tcp dport 2000-2099 reject with tcp reset\n }\n}\n")
		for _, p := range []uint16{22, 80, 443} {
			bed.Target(1).ListenTCP(t, p)
		}
		bed.RunInProbe(t, t.Name())
		return
	}
	const total = 96
	b := probe.NewBudget(total, time.Minute)
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		require.NoError(t, err)
		return len(ents)
	}
	base := fds()
	var peak atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			if n := int64(fds() - base); n > peak.Load() {
				peak.Store(n)
			}
		}
	})
	var wg sync.WaitGroup
	results := make([]probe.ScanResult, 3)
	for i := range results {
		wg.Go(func() {
			res, err := probe.Scan(context.Background(), probe.ScanSpec{Target: env.Target(1).Addr(false), Proto: probe.TCP,
				Ports: append(append(portRange(1000, 1199), portRange(2000, 2099)...), 22, 80, 443), Timeout: 200 * time.Millisecond, Sockets: b}, nil)
			assert.NoError(t, err)
			results[i] = res
		})
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	for _, res := range results {
		assert.Equal(t, []uint16{22, 80, 443}, res.Ports(probe.Open))
		assert.Equal(t, 200, res.Count(probe.Filtered), "every port decided: the target drops the rest")
		assert.Equal(t, 100, res.Count(probe.Closed), "and refuses 2000-2099")
	}
	t.Logf("peak descriptors over the baseline: %d (budget %d); took %s", peak.Load(), total, results[0].Duration)
	// The sampler's own ReadDir holds one descriptor.
	assert.LessOrEqual(t, peak.Load(), int64(total+1), "the scans together stay within the budget")
	assert.Greater(t, peak.Load(), int64(total/2), "the sampler saw the scans hold sockets")
	held, holders := b.InUse()
	assert.Zero(t, held)
	assert.Zero(t, holders)
}
