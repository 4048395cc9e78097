package local_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/local"
	"github.com/opsbot/opsbot/bot"
)

var host = bot.Host{Name: "here", Via: "local"}

func TestRun_ArgvWordsReachTheCommandLiterally(t *testing.T) {
	t.Parallel()
	words := []string{"a b", `it's "quoted"`, "$(id)", "; rm -rf /", "`id`", "*", ""}
	out, err := (&local.Runner{}).Run(context.Background(), host, append([]string{"printf", `%s\n`}, words...))
	require.NoError(t, err)
	assert.Equal(t, strings.Join(words, "\n")+"\n", string(out.Stdout))
	assert.Equal(t, 0, out.ExitCode)
	assert.False(t, out.Truncated)
}

func TestRun_NonZeroExitIsNotAnError(t *testing.T) {
	t.Parallel()
	out, err := (&local.Runner{}).Run(context.Background(), host, []string{"sh", "-c", "exit 3"})
	require.NoError(t, err)
	assert.Equal(t, 3, out.ExitCode)
}

func TestRun_KilledBySignalIsExitCodeMinusOne(t *testing.T) {
	t.Parallel()
	out, err := (&local.Runner{}).Run(context.Background(), host, []string{"sh", "-c", "kill -KILL $$"})
	require.NoError(t, err)
	assert.Equal(t, -1, out.ExitCode)
}

func TestRun_StdoutAndStderrAreKeptApart(t *testing.T) {
	t.Parallel()
	out, err := (&local.Runner{}).Run(context.Background(), host, []string{"sh", "-c", "echo out; echo err >&2; echo out2"})
	require.NoError(t, err)
	assert.Equal(t, "out\nout2\n", string(out.Stdout))
	assert.Equal(t, "err\n", string(out.Stderr))
}

func TestRun_OutputIsTruncatedAtMaxOutputEach(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		script        string
		wantOut       int
		wantErr       int
		wantTruncated bool
	}{
		{"under the bound", "head -c 100 /dev/zero", 100, 0, false},
		{"exactly the bound", "head -c 1000 /dev/zero", 1000, 0, false},
		{"stdout over the bound", "head -c 300000 /dev/zero", 1000, 0, true},
		{"stderr over the bound", "head -c 300000 /dev/zero >&2; echo hi", 3, 1000, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &local.Runner{MaxOutput: 1000}
			out, err := r.Run(context.Background(), host, []string{"sh", "-c", tt.script})
			require.NoError(t, err)
			assert.Len(t, out.Stdout, tt.wantOut)
			assert.Len(t, out.Stderr, tt.wantErr)
			assert.Equal(t, tt.wantTruncated, out.Truncated)
			assert.Equal(t, 0, out.ExitCode, "the command is not blocked by a full pipe")
		})
	}
}

// The command forks a grandchild that would outlive it; the timeout must
// kill the whole process group, and Run must not wait for the grandchild
// (which holds stdout open).
func TestRun_TimeoutKillsTheWholeProcessGroup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		run     func(ctx context.Context, argv []string) (bot.Output, error)
		wantErr string
	}{
		{"host timeout", func(ctx context.Context, argv []string) (bot.Output, error) {
			h := host
			h.Timeout = 300 * time.Millisecond
			return (&local.Runner{}).Run(ctx, h, argv)
		}, "timed out after 300ms"},
		{"runner default timeout", func(ctx context.Context, argv []string) (bot.Output, error) {
			return (&local.Runner{DefaultTimeout: 300 * time.Millisecond}).Run(ctx, host, argv)
		}, "timed out after 300ms"},
		{"context cancel", func(ctx context.Context, argv []string) (bot.Output, error) {
			ctx, cancel := context.WithCancel(ctx)
			time.AfterFunc(300*time.Millisecond, cancel)
			return (&local.Runner{}).Run(ctx, host, argv)
		}, "canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			out, err := tt.run(context.Background(), []string{"sh", "-c", "sleep 31 & echo $!; sleep 32; echo never"})
			elapsed := time.Since(start)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.Equal(t, -1, out.ExitCode)
			assert.Less(t, elapsed, 2*time.Second)
			assert.NotContains(t, string(out.Stdout), "never")

			pid, perr := strconv.Atoi(strings.TrimSpace(string(out.Stdout)))
			require.NoError(t, perr, "stdout %q", out.Stdout)
			assert.Eventually(t, func() bool { return !alive(pid) }, 2*time.Second, 20*time.Millisecond,
				"grandchild %d still running", pid)
		})
	}
}

func TestRun_TimeoutErrorIsDeadlineExceeded(t *testing.T) {
	t.Parallel()
	h := host
	h.Timeout = 50 * time.Millisecond
	_, err := (&local.Runner{}).Run(context.Background(), h, []string{"sleep", "5"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// alive reports whether pid runs; a zombie waiting for init to reap it
// counts as gone.
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// A fake sudo and doas on PATH record their argv; Become must prefix the
// non-interactive flags and a "--" before the command.
func TestRun_BecomePrefixesArgv(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"sudo", "doas"} {
		script := "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\" > " + filepath.Join(dir, name+".argv") + "\n"
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755))
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))

	tests := []struct {
		become string
		want   []string
	}{
		{"sudo", []string{"sudo", "-n", "--", "apache2ctl", "-k", "graceful"}},
		{"doas", []string{"doas", "-n", "--", "apache2ctl", "-k", "graceful"}},
	}
	for _, tt := range tests {
		t.Run(tt.become, func(t *testing.T) {
			h := host
			h.Become = tt.become
			out, err := (&local.Runner{}).Run(context.Background(), h, []string{"apache2ctl", "-k", "graceful"})
			require.NoError(t, err)
			require.Equal(t, 0, out.ExitCode, "stderr: %s", out.Stderr)
			got, err := os.ReadFile(filepath.Join(dir, tt.become+".argv"))
			require.NoError(t, err)
			lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
			lines[0] = filepath.Base(lines[0])
			assert.Equal(t, tt.want, lines)
		})
	}
}

func TestRun_RefusesWhatItCannotRunSafely(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		host    bot.Host
		argv    []string
		wantErr string
	}{
		{"empty argv", host, nil, "empty command"},
		{"empty program", host, []string{""}, "empty command"},
		{"NUL in a word", host, []string{"echo", "a\x00b"}, "NUL byte"},
		{"unknown become", bot.Host{Name: "x", Become: "su"}, []string{"true"}, `unknown privilege escalation "su"`},
		{"host via ssh", bot.Host{Name: "x", Via: "ssh"}, []string{"true"}, `via "ssh"`},
		{"program not on PATH", host, []string{"opsbot-no-such-program"}, "executable file not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := (&local.Runner{}).Run(context.Background(), tt.host, tt.argv)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.Equal(t, -1, out.ExitCode)
			assert.False(t, errors.Is(err, context.DeadlineExceeded))
		})
	}
}
