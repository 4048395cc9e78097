package testbed

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RunInProbe runs the test named testName (t.Name() form: "TestX" or
// "TestX/sub") again, in a child process of this test binary inside the
// probe namespace, with the bed described in the environment (see Child).
// The child's output is relayed through t.Log as it comes; t fails if the
// child fails, and skips if the child skipped the test.
//
// A whole process in the namespace is the only safe way to run code that
// opens sockets from many goroutines there: a socket belongs to the
// namespace of the OS thread that creates it.
func (b *Bed) RunInProbe(t testing.TB, testName string) {
	t.Helper()
	exe, err := os.Executable() // not /proc/self/exe: ip would resolve that to itself
	if err != nil {
		t.Fatalf("testbed: test binary: %v", err)
	}
	env, err := json.Marshal(b.Env())
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	args := []string{"netns", "exec", b.Probe, exe,
		"-test.run", runPattern(testName, flagValue("test.run")), "-test.v", "-test.count=1"}
	if skip := flagValue("test.skip"); skip != "" {
		args = append(args, "-test.skip", skip)
	}
	ctx := t.Context()
	if dt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := dt.Deadline(); ok {
			// Leave the parent time to report what the child printed.
			timeout := time.Until(d) * 9 / 10
			args = append(args, "-test.timeout="+timeout.Round(time.Millisecond).String())
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, d.Add(-time.Until(d)/20))
			defer cancel()
		}
	}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	cmd := exec.CommandContext(ctx, b.ipPath, args...)
	// The race runtime sleeps 1 s at exit by default; the child's races
	// are reported before it exits all the same.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), EnvVar+"="+string(env), "GORACE="+gorace)
	cmd.WaitDelay = 5 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw

	// The child dies with us: a test binary killed by its -timeout must not
	// leave a child probing in a namespace nobody will remove. The signal
	// follows the thread that started the child, so keep to that thread.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("testbed: start child in %s: %v", b.Probe, err)
	}
	lines := make(chan []string, 1)
	go func() {
		var all []string
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			all = append(all, line)
			t.Log("child| " + line)
		}
		_, _ = io.Copy(io.Discard, pr)
		lines <- all
	}()
	waitErr := cmd.Wait()
	_ = pw.Close()
	out := <-lines

	top, _, _ := strings.Cut(testName, "/")
	ran, skipped := false, false
	for _, l := range out {
		if strings.HasPrefix(l, "=== RUN   "+top) {
			ran = true
		}
		if strings.HasPrefix(strings.TrimSpace(l), "--- SKIP: "+testName+" ") {
			skipped = true
		}
	}
	var exitErr *exec.ExitError
	switch {
	case errors.As(waitErr, &exitErr):
		t.Fatalf("testbed: child test %s in %s failed (%v, after %v)", testName, b.Probe, waitErr, time.Since(start).Round(time.Millisecond))
	case waitErr != nil:
		t.Fatalf("testbed: child test %s in %s: %v", testName, b.Probe, waitErr)
	case !ran:
		t.Fatalf("testbed: child ran no test matching %s", testName)
	case skipped:
		t.Skipf("testbed: child skipped %s (see its output above)", testName)
	}
}

// runPattern gives the child's -test.run: testName with each level
// anchored (-test.run matches "/"-separated levels separately), followed
// by the levels of the parent's own -run pattern that go deeper, so that
// `go test -run 'TestX/sub/leaf'` narrows the child's work as well.
func runPattern(testName, parentRun string) string {
	parts := strings.Split(testName, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	if parentRun != "" {
		if levels := splitRegexp(parentRun); len(levels) > len(parts) {
			parts = append(parts, levels[len(parts):]...)
		}
	}
	return strings.Join(parts, "/")
}

// splitRegexp splits a -test.run pattern into levels the way package
// testing does: at slashes outside brackets and parentheses.
func splitRegexp(s string) []string {
	var out []string
	brackets, parens := 0, 0
	for i := 0; i < len(s); {
		switch s[i] {
		case '[':
			brackets++
		case ']':
			if brackets--; brackets < 0 {
				brackets = 0
			}
		case '(':
			if brackets == 0 {
				parens++
			}
		case ')':
			if brackets == 0 {
				parens--
			}
		case '\\':
			i++
		case '/':
			if brackets == 0 && parens == 0 {
				out = append(out, s[:i])
				s = s[i+1:]
				i = 0
				continue
			}
		}
		i++
	}
	return append(out, s)
}

// flagValue reads a flag of the test binary ("" when not defined or unset).
func flagValue(name string) string {
	if f := flag.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}
