package portwords

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/probe"
)

func TestRanges_JoinsRunsOfPorts(t *testing.T) {
	assert.Equal(t, "22, 80-82, 443", Ranges([]uint16{22, 80, 81, 82, 443}))
	assert.Equal(t, "65534-65535", Ranges([]uint16{65534, 65535}))
	assert.Equal(t, "", Ranges(nil))
}

func TestPortNumber_SaysWhatIsAccepted(t *testing.T) {
	p, err := PortNumber("443")
	require.NoError(t, err)
	assert.Equal(t, uint16(443), p)
	for in, want := range map[string]string{
		"":      "a range needs two ports",
		"http":  `"http" is not a port number: ports are 1 to 65535`,
		"0":     "port 0 is out of range",
		"65536": "port 65536 is out of range",
	} {
		_, err := PortNumber(in)
		assert.Equal(t, bot.EINVALID, bot.ErrorCode(err), in)
		assert.Contains(t, bot.ErrorMessage(err), want, in)
	}
}

func TestDuration_TakesGoDurationsAndSeconds(t *testing.T) {
	d, err := Duration("timeout", "1.5", time.Second, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, 1500*time.Millisecond, d)
	d, err = Duration("timeout", "250ms", 10*time.Millisecond, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, 250*time.Millisecond, d)
	_, err = Duration("timeout", "2h", time.Second, time.Minute)
	assert.Equal(t, "timeout 2h is out of range: accepted 1s to 1m0s", bot.ErrorMessage(err))
	_, err = Duration("for", "soon", time.Second, time.Minute)
	assert.Equal(t, `for "soon" is not a duration: write 3s, 500ms or 2m`, bot.ErrorMessage(err))
}

func TestBusy_OnlyForTheSocketBudget(t *testing.T) {
	assert.NoError(t, Busy(context.Background(), errors.New("dial: refused")))
	err := Busy(context.Background(), &probe.BusyError{Holders: 3, Total: 100})
	assert.Equal(t, bot.EBUSY, bot.ErrorCode(err))
	assert.Contains(t, bot.ErrorMessage(err), "busy: 3 jobs running")
	assert.Contains(t, bot.ErrorMessage(err), "the 100 sockets")
}
