package probe

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBudget_ScansShareAndLeaveRoomForChecks(t *testing.T) {
	b := NewBudget(572, 20*time.Millisecond) // RLIMIT_NOFILE 700 less the reserve
	var leases []*Lease
	held := 0
	for {
		l, err := b.Reserve(context.Background(), 1024)
		if err != nil {
			var busy *BusyError
			require.ErrorAs(t, err, &busy)
			assert.Equal(t, len(leases), busy.Holders)
			assert.Equal(t, held, busy.Held)
			assert.Contains(t, err.Error(), "busy: ")
			break
		}
		if len(leases) > 0 {
			assert.Less(t, l.N(), leases[len(leases)-1].N()+1, "a later scan gets no more than an earlier one")
		}
		assert.GreaterOrEqual(t, l.N(), ScanMinimum)
		leases = append(leases, l)
		held += l.N()
	}
	assert.Equal(t, 268, leases[0].N(), "the first scan takes half of what is free, not all of it")
	assert.Greater(t, len(leases), 4, "several scans run at once")
	assert.LessOrEqual(t, held, 572-b.headroom, "scans leave the headroom to single checks")

	// Single checks still find sockets while scans are refused.
	one, err := b.One(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, one.N())
	one.Release()

	// A scan that waits starts once another returns its share.
	got := make(chan *Lease)
	b.wait = time.Hour
	go func() {
		l, err := b.Reserve(context.Background(), 1024)
		assert.NoError(t, err)
		got <- l
	}()
	leases[0].Release()
	leases[0].Release() // twice is harmless
	l := <-got
	assert.GreaterOrEqual(t, l.N(), ScanMinimum)
	l.Release()
	for _, l := range leases[1:] {
		l.Release()
	}
	h, n := b.InUse()
	assert.Zero(t, h)
	assert.Zero(t, n)
}

// exhaust reserves shares until the budget refuses one; release gives
// them back.
func exhaust(t *testing.T, b *Budget) (release func()) {
	t.Helper()
	wait := b.wait
	b.wait = time.Millisecond
	var leases []*Lease
	for {
		l, err := b.Reserve(context.Background(), 1000)
		if err != nil {
			break
		}
		leases = append(leases, l)
	}
	b.wait = wait
	return func() {
		for _, l := range leases {
			l.Release()
		}
	}
}

func TestBudget_WaitEndsWithTheContext(t *testing.T) {
	b := NewBudget(40, time.Hour)
	defer exhaust(t, b)()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := b.Reserve(ctx, 1000)
		done <- err
	}()
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
}

func TestBudget_SmallScansTakeWhatTheyNeed(t *testing.T) {
	b := NewBudget(10000, time.Second)
	l, err := b.Reserve(context.Background(), 3)
	require.NoError(t, err)
	assert.Equal(t, 3, l.N(), "a 3-port scan holds 3 sockets, not 16")
	l.Release()
}

func TestScan_BusyBudgetRefusesWithoutProbing(t *testing.T) {
	b := NewBudget(40, 10*time.Millisecond)
	defer exhaust(t, b)()
	_, err := Scan(context.Background(), ScanSpec{Target: netip.MustParseAddr("127.0.0.1"), Proto: TCP, Ports: []uint16{1, 2, 3}, Sockets: b}, nil)
	var busy *BusyError
	require.True(t, errors.As(err, &busy), "%v", err)
	assert.Positive(t, busy.Holders)
	assert.Equal(t, 3, busy.Want)
}

func TestScan_CanceledWhileWaitingForSocketsIsCanceled(t *testing.T) {
	b := NewBudget(40, time.Hour)
	defer exhaust(t, b)()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := Scan(ctx, ScanSpec{Target: netip.MustParseAddr("127.0.0.1"), Proto: TCP, Ports: []uint16{1, 2, 3}, Sockets: b}, nil)
	require.NoError(t, err)
	assert.True(t, res.Canceled)
	assert.Empty(t, res.Results)
}

// A single check that finds no free socket still asks the port: a
// verdict is never given for a port nobody probed.
func TestCheck_OverBudgetStillProbes(t *testing.T) {
	ports := tcpListeners(t, 1)
	b := NewBudget(2*ScanMinimum, 20*time.Millisecond)
	full, err := b.Reserve(context.Background(), 1<<20)
	require.NoError(t, err)
	defer full.Release()
	for {
		l, err := b.One(context.Background())
		if err != nil {
			break // nothing left, not even headroom
		}
		defer l.Release()
	}
	r := Check(context.Background(), netip.AddrPortFrom(loopback, ports[0]), TCP, Options{Timeout: time.Second, Sockets: b})
	assert.Equal(t, Open, r.State, "the listener answers")
	assert.Equal(t, 1, r.Tries)
}
