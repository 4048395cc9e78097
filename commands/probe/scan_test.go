package probe

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Listeners of other tests and processes come and go on this machine's
// loopback, all on ephemeral ports (32768 and up) or PostgreSQL test ports
// (20000-31999). This test listens on fixed ports below both and scans a
// range around them, so the open set must be exactly its own. The whole
// 1-65535 range is scanned in a private namespace in netns_test.go.
func TestScan_TCPRangeFindsExactlyTheListeners(t *testing.T) {
	listeners := fixedTCPListeners(t, 12000, 16000, 4)
	lo, hi := slices.Min(listeners)-50, slices.Max(listeners)+50
	ports := portRange(lo, hi)
	res, err := Scan(context.Background(), ScanSpec{Target: loopback, Proto: TCP, Ports: ports}, nil)
	require.NoError(t, err)
	slices.Sort(listeners)
	assert.Equal(t, listeners, res.Ports(Open))
	assert.Len(t, res.Results, len(ports))
	assert.Equal(t, len(ports)-len(listeners), res.Count(Closed))
	assert.False(t, res.Canceled)
	assert.True(t, slices.IsSortedFunc(res.Results, func(a, b Result) int { return int(a.Target.Port()) - int(b.Target.Port()) }))
}

func TestScan_TCPLeaksNoDescriptors(t *testing.T) {
	tcpListeners(t, 2)
	before := openFDs(t)
	_, err := Scan(context.Background(), ScanSpec{Target: loopback, Proto: TCP, Ports: portRange(20000, 24000)}, nil)
	require.NoError(t, err)
	_, err = Scan(context.Background(), ScanSpec{Target: loopback, Proto: UDP, Ports: portRange(20000, 20200), Timeout: 50 * time.Millisecond}, nil)
	require.NoError(t, err)
	// Not more than before: a descriptor of an earlier test (a listener
	// being torn down) may close meanwhile, none of the scans' may stay.
	assert.LessOrEqual(t, openFDs(t), before)
}

func TestScan_CancelStopsAndMarksCanceled(t *testing.T) {
	for _, proto := range []Proto{TCP, UDP} {
		t.Run(proto.String(), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
			done := make(chan ScanResult, 1)
			go func() {
				// 200 probes a second over 65535 ports would take minutes.
				res, err := Scan(ctx, ScanSpec{Target: loopback, Proto: proto, Ports: portRange(1, 65535), Rate: 200}, nil)
				assert.NoError(t, err)
				done <- res
			}()
			select {
			case res := <-done:
				assert.True(t, res.Canceled)
				assert.Less(t, len(res.Results), 65535)
				for _, r := range res.Results {
					assert.NotZero(t, r.State, "port %d", r.Target.Port())
				}
			case <-time.After(30 * time.Second):
				t.Fatal("scan did not stop after cancel")
			}
		})
	}
}

func TestScan_ProgressIsMonotonicAndEndsDone(t *testing.T) {
	listeners := tcpListeners(t, 1)
	ports := append(portRange(30000, 30299), listeners...)
	var mu sync.Mutex
	var seen []Progress
	res, err := Scan(context.Background(), ScanSpec{Target: loopback, Proto: TCP, Ports: ports, Rate: 1000}, func(p Progress) {
		mu.Lock()
		seen = append(seen, p)
		mu.Unlock()
	})
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, seen)
	for i := 1; i < len(seen); i++ {
		assert.GreaterOrEqual(t, seen[i].Done, seen[i-1].Done)
		assert.GreaterOrEqual(t, seen[i].Open, seen[i-1].Open)
	}
	last := seen[len(seen)-1]
	assert.Equal(t, len(res.Results), last.Total)
	assert.Equal(t, last.Total, last.Done)
	assert.Equal(t, res.Count(Open), last.Open)
}

func TestScan_RejectsBadSpecs(t *testing.T) {
	tests := map[string]ScanSpec{
		"no ports":    {Target: loopback, Proto: TCP},
		"no target":   {Proto: TCP, Ports: []uint16{80}},
		"no protocol": {Target: loopback, Ports: []uint16{80}},
		"port zero":   {Target: loopback, Proto: UDP, Ports: []uint16{0, 80}},
	}
	for name, spec := range tests {
		_, err := Scan(context.Background(), spec, nil)
		assert.Error(t, err, name)
	}
}

func TestScanResult_CountAndPorts(t *testing.T) {
	r := ScanResult{Results: []Result{
		{Target: netip.AddrPortFrom(loopback, 22), State: Open},
		{Target: netip.AddrPortFrom(loopback, 23), State: Closed},
		{Target: netip.AddrPortFrom(loopback, 80), State: Open},
	}}
	assert.Equal(t, 2, r.Count(Open))
	assert.Equal(t, []uint16{22, 80}, r.Ports(Open))
	assert.Empty(t, r.Ports(Filtered))
}
