// Package golden compares what a test produced (a rendered message, a
// parsed output) with a file under the test's testdata/, and rewrites the
// files instead when the tests run with -update:
//
//	go test ./adapters/slack -update
//
// Review the diff of testdata/ before committing what -update wrote. Only
// tests import this package.
package golden

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ instead of comparing with them")

// Update reports whether this run rewrites the golden files.
func Update() bool { return *update }

// TB is the part of testing.TB that Check and JSON use.
type TB interface {
	require.TestingT
	Helper()
}

// JSON is v as golden files hold it: indented by two spaces, with <, >
// and & as they are (not \u003c), and a final newline.
func JSON(t TB, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	require.NoError(t, enc.Encode(v))
	return b.Bytes()
}

// Check compares got with the golden file at path (relative to the test's
// package directory, e.g. testdata/golden/digest.json). With -update it
// writes got there first, creating the directories.
func Check(t TB, path string, got []byte) {
	t.Helper()
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755)) //nolint:gosec // testdata is for reading by everyone
		require.NoError(t, os.WriteFile(path, got, 0o644))         //nolint:gosec // as above
	}
	want, err := os.ReadFile(path) //nolint:gosec // a test's own testdata path
	require.NoError(t, err, "golden file %s: run the test with -update to write it", path)
	assert.Equal(t, string(want), string(got), "%s differs: review the change, then rerun the test with -update to rewrite it", path)
}
