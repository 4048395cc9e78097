package bench

import (
	"os"
	"testing"

	"github.com/opsbot/opsbot/adapters/postgres/pgtest"
)

// TestMain stops the private PostgreSQL that (f2) may have started.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
