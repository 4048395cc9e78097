package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	if os.Getenv("OPSBOT_DATABASE") == "" {
		t.Setenv("OPSBOT_DATABASE", filepath.Join(t.TempDir(), "opsbot.db"))
	}
	var out, errw bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(""), &out, &errw)
	return code, out.String(), errw.String()
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

func TestConfigCheck(t *testing.T) {
	t.Setenv("OPSBOT_CONFIG", "")
	code, out, _ := run(t, "config", "check")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "built-in default policy")

	code, out, errOut := run(t, "config", "check", "--config", "../../deploy/policy.example.yaml")
	assert.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "policy OK: ../../deploy/policy.example.yaml")
	assert.Contains(t, out, "permissions: 5 roles, 3 users")
	assert.Contains(t, out, "inventory: 4 hosts (1 local, 3 over ssh), 1 groups")
	assert.Contains(t, out, "store: sqlite ")
	if os.Getenv("OPSBOT_SSH_KEY") == "" {
		assert.Contains(t, errOut, "warning: the inventory has ssh hosts, but no SSH key is configured", "valid, but this environment cannot reach the ssh hosts yet")
	}

	bad := writeFile(t, "targets:\n  allow: [10.0.0.0/8]\n  alow: [1.2.3.4]\n")
	code, _, errOut = run(t, "config", "check", "--config", bad)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, bad+":3:3: unknown field \"alow\"")
}

func TestRun_PortcheckOnAListeningPort(t *testing.T) {
	t.Setenv("OPSBOT_CONFIG", "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	code, out, _ := run(t, "run", "--as", "alice", fmt.Sprintf("/portcheck 127.0.0.1 %d", port))
	assert.Equal(t, 0, code)
	assert.Regexp(t, fmt.Sprintf(`Connection to 127\.0\.0\.1 %d port \[tcp/[^\]]+\] succeeded! \(\d+(\.\d)? ms\)`, port), out)

	ln.Close()
	code, out, _ = run(t, "run", fmt.Sprintf("/portcheck 127.0.0.1 %d", port))
	assert.Equal(t, 1, code, "a closed port is a negative result")
	assert.Contains(t, out, "closed: connection refused")
}

func TestRun_ExitCodes(t *testing.T) {
	t.Setenv("OPSBOT_CONFIG", "")
	for _, tc := range []struct {
		line string
		code int
	}{
		{"help", 0},
		{"/portcheck 127.0.0.1 0", 2},
		{"/portcheck 169.254.169.254 80", 3},
		{"/nosuch", 2},
	} {
		code, out, _ := run(t, "run", tc.line)
		assert.Equal(t, tc.code, code, tc.line+": "+out)
	}
	code, _, errOut := run(t, "run")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "give a command line")

	bad := writeFile(t, "limits: {scan_ports: 0.5}\n")
	code, _, _ = run(t, "run", "--config", bad, "help")
	assert.Equal(t, 2, code, "a broken policy is a config error, not a silent default")
}

func TestRun_PolicyFileNarrowsTargets(t *testing.T) {
	p := writeFile(t, "targets:\n  allow: [10.0.0.0/8]\n")
	code, out, _ := run(t, "run", "--config", p, "/portcheck 127.0.0.1 22")
	assert.Equal(t, 3, code)
	assert.Contains(t, out, "127.0.0.1 is not in targets.allow (10.0.0.0/8)")
}

func TestShell_ReadsLinesUntilEOF(t *testing.T) {
	t.Setenv("OPSBOT_CONFIG", "")
	t.Setenv("OPSBOT_DATABASE", filepath.Join(t.TempDir(), "opsbot.db"))
	var out, errw bytes.Buffer
	code := Run(context.Background(), []string{"shell", "--as", "carol"}, strings.NewReader("help\n/portcheck 127.0.0.1 0\n"), &out, &errw)
	assert.Equal(t, 0, code)
	assert.Contains(t, out.String(), "as shell:carol")
	assert.Contains(t, out.String(), "/portcheck")
	assert.Contains(t, out.String(), "port 0 is out of range")
}

func TestServe_ConfigErrorsExit2(t *testing.T) {
	t.Setenv("OPSBOT_CONFIG", "")
	t.Setenv("OPSBOT_LOG_LEVEL", "warn") // serve would set info in the process otherwise
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{nil, "no chat platform is configured"},
		{map[string]string{"OPSBOT_MATTERMOST_URL": "http://127.0.0.1:1"}, "OPSBOT_MATTERMOST_TOKEN is empty"},
		{map[string]string{"OPSBOT_MATTERMOST_URL": "http://127.0.0.1:1", "OPSBOT_MATTERMOST_TOKEN": "x", "OPSBOT_MATTERMOST_ACTION_SECRET": "0123456789abcdef0123", "OPSBOT_MATTERMOST_REGISTER": "ops"}, "OPSBOT_MATTERMOST_REGISTER needs OPSBOT_PUBLIC_URL"},
		{map[string]string{"OPSBOT_MATTERMOST_URL": "http://127.0.0.1:1", "OPSBOT_MATTERMOST_TOKEN": "x", "OPSBOT_MATTERMOST_ACTION_SECRET": "0123456789abcdef0123", "OPSBOT_MATTERMOST_REGISTER": "ops:all", "OPSBOT_PUBLIC_URL": "https://o.example.com"}, "each optionally NAME:single"},
		{map[string]string{"OPSBOT_SLACK_BOT_TOKEN": "xoxb-x"}, "OPSBOT_SLACK_SIGNING_SECRET"},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		code, _, errOut := run(t, "serve")
		assert.Equal(t, 2, code, errOut)
		assert.Contains(t, errOut, tc.want)
		for k := range tc.env {
			t.Setenv(k, "")
		}
	}
}
