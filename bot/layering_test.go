package bot_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/internal/testenv"
)

// The core knows no plug-in: nothing bot imports, directly or not, is a
// command, an adapter or main (chat secrets live in cmd/opsbot, the
// stores' migrations in adapters/internal/sqlstore).
func TestBot_ImportsNoCommandOrAdapter(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		testenv.Missing(t, "the go command is not on PATH: go list reads the imports")
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").Output() //nolint:gosec // a fixed go list of this package
	require.NoError(t, err)
	for _, dep := range strings.Fields(string(out)) {
		for _, outer := range []string{"/commands", "/adapters", "/cmd"} {
			if strings.HasPrefix(dep, "github.com/opsbot/opsbot"+outer) {
				t.Errorf("bot depends on %s", dep)
			}
		}
	}
	require.Contains(t, strings.Fields(string(out)), "github.com/opsbot/opsbot/bot", "go list read this package")
}
