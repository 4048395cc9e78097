package testbed

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWAN checks the WAN link itself: the round trip is the configured
// delay both ways, random loss drops about the share asked for, and a
// bottleneck with a short queue drops a burst beyond the queue while
// passing what fits. Connections are made from the test process through
// Bed.DialContext.
func TestWAN(t *testing.T) {
	Require(t)
	if _, ok := Child(); ok {
		t.Skip("parent-only test")
	}
	t.Run("delay", func(t *testing.T) {
		bed := New(t, Options{Targets: []TargetOptions{{WAN: &Link{Delay: 20 * time.Millisecond}}}})
		tg := bed.Target(1)
		tg.ListenTCP(t, 7001)
		for _, v6 := range []bool{false, true} {
			addr := netip.AddrPortFrom(tg.Addr(v6), 7001).String()
			var rtts []time.Duration
			for range 5 {
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				start := time.Now()
				c, err := bed.DialContext(ctx, "tcp", addr)
				cancel()
				require.NoError(t, err, "connect to %s across the link", addr)
				rtts = append(rtts, time.Since(start))
				_ = c.Close()
			}
			slices.Sort(rtts)
			t.Logf("%s: connect times %v", addr, rtts)
			assert.GreaterOrEqual(t, rtts[0], 40*time.Millisecond, "a handshake takes one round trip: twice the one-way delay")
			assert.Less(t, rtts[2], 200*time.Millisecond, "median connect time")
		}
		out, back := tg.Stats()
		assert.Positive(t, out.Delivered)
		assert.Positive(t, back.Delivered)
		assert.Zero(t, out.Lost+out.Overflow+back.Lost+back.Overflow)
	})

	t.Run("loss_and_short_queue", func(t *testing.T) {
		bed := New(t, Options{Targets: []TargetOptions{
			{WAN: &Link{Delay: time.Millisecond, Loss: 0.2, LossBack: 0.2, Seed: 7}},
			// 1 Mbit/s: a 28-byte UDP datagram (56 bytes with headers)
			// takes 448 µs; a burst of 200 overflows a queue of 10.
			{WAN: &Link{Delay: time.Millisecond, Rate: 1_000_000, Queue: 10, Seed: 7}},
		}})
		for i, tg := range bed.Targets {
			// Dropped, not refused: no ICMP error comes back to fail a write.
			tg.Nft(t, "table inet sink {\n chain input {\n  type filter hook input priority 0; policy accept;\n  udp dport 9 drop\n }\n}\n")
			conn, err := bed.DialContext(t.Context(), "udp", netip.AddrPortFrom(tg.V4, 9).String())
			require.NoError(t, err)
			for range 200 {
				_, err := conn.Write(make([]byte, 28))
				require.NoError(t, err)
			}
			_ = conn.Close()
			deadline := time.Now().Add(3 * time.Second)
			var out LinkStats
			for time.Now().Before(deadline) {
				out, _ = tg.Stats()
				if out.Lost+out.Overflow+out.Delivered >= 200 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("target %d: %+v", i+1, out)
			require.GreaterOrEqual(t, out.Packets, int64(200))
			if i == 0 {
				assert.InDelta(t, 0.2, float64(out.Lost)/float64(out.Packets), 0.1, "random loss share")
				assert.Zero(t, out.Overflow)
			} else {
				assert.Zero(t, out.Lost)
				assert.Greater(t, out.Overflow, int64(100), "a burst overflows a short queue")
				assert.GreaterOrEqual(t, out.Delivered, int64(10))
			}
		}
	})
}
