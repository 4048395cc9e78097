// Package testenv holds the rule every test follows for a dependency it
// cannot find (root, a tool, a private server): it skips on a developer's
// machine and fails when CI=true, because CI must run every test.
package testenv

import (
	"fmt"
	"os"
)

// CI says whether the tests run in CI (CI=true).
func CI() bool { return os.Getenv("CI") == "true" }

// TB is the part of testing.TB that Missing uses.
type TB interface {
	Helper()
	Fatal(args ...any)
	Skip(args ...any)
}

// Missing reports a missing dependency: why, formatted, says what is
// missing and how to get it. With CI=true the test fails; otherwise it is
// skipped. Either way it does not return.
func Missing(t TB, format string, args ...any) {
	t.Helper()
	why := fmt.Sprintf(format, args...)
	if CI() {
		t.Fatal(why + " (CI=true: a missing dependency fails the test instead of skipping it)")
	}
	t.Skip(why)
}
