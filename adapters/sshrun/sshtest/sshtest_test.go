package sshtest

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A picked port that something else holds by the time sshd binds it (a
// scan's source port, another test's server) is picked again: the server
// listens on the new port, and its config and known_hosts name that one.
func TestStart_APickedPortTakenMeanwhileIsPickedAgain(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = taken.Close() }()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	picks := 0
	pickPort = func(t testing.TB) int {
		picks++
		if picks == 1 {
			return takenPort
		}
		return freePort(t)
	}
	defer func() { pickPort = freePort }()

	s := Start(t)
	assert.Equal(t, 2, picks, "the taken port was given up for another")
	assert.NotEqual(t, takenPort, s.Port)
	conn, err := net.Dial("tcp", s.Addr())
	require.NoError(t, err, "the server listens on its new port")
	_ = conn.Close()
	config, err := os.ReadFile(s.config)
	require.NoError(t, err)
	assert.Contains(t, string(config), "Port "+strconv.Itoa(s.Port)+"\n")
	known, err := os.ReadFile(s.KnownHosts)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(known), "[127.0.0.1]:"+strconv.Itoa(s.Port)+" "), "known_hosts names the new port: %s", known)
}
