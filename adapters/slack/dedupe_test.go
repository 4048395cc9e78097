package slack

import (
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/sqlite"
)

// Two replicas share the store: a retry or a replay that reaches the
// other replica is recognised there too, and runs nothing.
func TestDedupe_RetryToAnotherReplicaRunsNothing(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "opsbot.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	h := &fakeHandler{}
	shared := func(c *Config) { c.Deliveries = st }
	a := newTestAdapter(t, h, shared)
	b := newTestAdapter(t, h, shared)

	body := a.slashBody("/portcheck", "10.0.0.1 80", "U1", "trig-shared")
	status, resp := a.post(t, "/slack/commands", body, nil)
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, resp, "in_channel", "the first delivery is answered")
	status, resp = b.post(t, "/slack/commands", body, func(r *http.Request) {
		r.Header.Set("X-Slack-Retry-Num", "1")
		r.Header.Set("X-Slack-Retry-Reason", "http_timeout")
	})
	assert.Equal(t, http.StatusOK, status, "a retry gets 200 so Slack stops")
	assert.Empty(t, resp)
	assert.EqualValues(t, 1, h.calls.Load(), "ran once across the two replicas")

	// A replay of the same body under another trigger, to the other replica.
	click := a.clickBody(t, "U2", "/opsbot approve 0123456789ab", "Approve", "trig-click", "1700000000.000100")
	status, _ = b.post(t, "/slack/interactions", click, nil)
	require.Equal(t, http.StatusOK, status)
	require.Eventually(t, func() bool { return h.calls.Load() == 2 }, waitFor, tick, "the click is handled")
	status, _ = a.post(t, "/slack/interactions", click, nil)
	assert.Equal(t, http.StatusOK, status)
	require.NoError(t, a.Wait(t.Context()))
	require.NoError(t, b.Wait(t.Context()))
	assert.EqualValues(t, 2, h.calls.Load(), "the replayed click ran nothing on the other replica")

	// Without the shared store, the other replica would have run it.
	alone := newTestAdapter(t, h, nil)
	status, _ = alone.post(t, "/slack/commands", body, func(r *http.Request) { r.Header.Set("X-Slack-Retry-Num", "2") })
	assert.Equal(t, http.StatusOK, status)
	require.Eventually(t, func() bool { return h.calls.Load() == 3 }, waitFor, tick, "a replica that does not share the store cannot tell")
	assert.EqualValues(t, 3, h.calls.Load())
}
