package testenv

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
)

// recorder stands in for a testing.T: Fatal and Skip end the goroutine as
// the real ones do (runtime.Goexit), after recording what was said.
type recorder struct {
	fatal, skip string
}

func (r *recorder) Helper()           {}
func (r *recorder) Fatal(args ...any) { r.fatal = fmt.Sprint(args...); runtime.Goexit() }
func (r *recorder) Skip(args ...any)  { r.skip = fmt.Sprint(args...); runtime.Goexit() }

func missing(format string, args ...any) *recorder {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Missing(r, format, args...)
	}()
	<-done
	return r
}

func TestMissing_SkipsOutsideCI(t *testing.T) {
	t.Setenv("CI", "")
	r := missing("needs %s", "promtool")
	assert.Equal(t, "needs promtool", r.skip)
	assert.Empty(t, r.fatal)
	assert.False(t, CI())
}

func TestMissing_FailsInCI(t *testing.T) {
	t.Setenv("CI", "true")
	r := missing("needs %s", "promtool")
	assert.Empty(t, r.skip)
	assert.Contains(t, r.fatal, "needs promtool")
	assert.Contains(t, r.fatal, "CI=true")
	assert.True(t, CI())
}

func TestMissing_OnlyTrueMeansCI(t *testing.T) {
	t.Setenv("CI", "1")
	assert.Equal(t, "x", missing("x").skip)
}
