package golden

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is a TB that keeps what a check reported; FailNow stops the
// check as the testing package does, by unwinding.
type recorder struct{ errors []string }

type stopped struct{}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) FailNow() { panic(stopped{}) }
func (r *recorder) Helper()  {}

func run(f func(*recorder)) (r *recorder) {
	r = &recorder{}
	defer func() {
		if p := recover(); p != nil {
			if _, ok := p.(stopped); !ok {
				panic(p)
			}
		}
	}()
	f(r)
	return r
}

func TestCheck_PassesOnlyOnTheSameBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.json")
	require.NoError(t, os.WriteFile(path, []byte("{}\n"), 0o600))
	assert.Empty(t, run(func(r *recorder) { Check(r, path, []byte("{}\n")) }).errors)

	r := run(func(r *recorder) { Check(r, path, []byte("{ }\n")) })
	require.Len(t, r.errors, 1)
	assert.Contains(t, r.errors[0], "differs: review the change, then rerun the test with -update")

	r = run(func(r *recorder) { Check(r, filepath.Join(t.TempDir(), "missing.json"), []byte("{}")) })
	require.Len(t, r.errors, 1)
	assert.Contains(t, r.errors[0], "run the test with -update to write it")
}

func TestCheck_UpdateWritesTheFileAndItsDirectories(t *testing.T) {
	defer func(was bool) { *update = was }(*update)
	*update = true
	path := filepath.Join(t.TempDir(), "testdata", "golden", "b.json")
	assert.Empty(t, run(func(r *recorder) { Check(r, path, []byte("new\n")) }).errors)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "new\n", string(b))

	*update = false
	assert.NotEmpty(t, run(func(r *recorder) { Check(r, path, []byte("newer\n")) }).errors, "without -update a change fails")
}

func TestJSON_IndentedUnescapedWithNewline(t *testing.T) {
	got := JSON(t, map[string]any{"text": "<b>&</b>", "n": []int{1}})
	assert.Equal(t, "{\n  \"n\": [\n    1\n  ],\n  \"text\": \"<b>&</b>\"\n}\n", string(got))
}
