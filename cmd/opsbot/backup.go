package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

const pgDumpHint = `opsbot backup: the store is PostgreSQL: back it up with its own tools, e.g. pg_dump -Fc -f opsbot.dump "$OPSBOT_DATABASE" (deploy/README.md, "Backups, upgrades and rollbacks")`

// backuper is a store that can copy itself while in use (SQLite).
type backuper interface {
	Backup(ctx context.Context, path string) error
}

// backupCmd is `opsbot backup FILE`: an online copy of the SQLite store,
// taken while serve runs. PostgreSQL has its own tools.
func backupCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("opsbot backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: opsbot backup FILE   (a new file: the SQLite store of OPSBOT_DATABASE, copied while it is in use)")
		return 2
	}
	env, err := loadEnv()
	if err != nil {
		return configError(stderr, err)
	}
	if strings.HasPrefix(env.Database, "postgres://") || strings.HasPrefix(env.Database, "postgresql://") {
		fmt.Fprintln(stderr, pgDumpHint)
		return 2
	}
	st, name, err := openStore(ctx, env.Database)
	if err != nil {
		return configError(stderr, err)
	}
	defer func() { _ = st.Close() }()
	b, ok := st.(backuper)
	if !ok {
		fmt.Fprintln(stderr, pgDumpHint)
		return 2
	}
	start := time.Now()
	if err := b.Backup(ctx, fs.Arg(0)); err != nil {
		fmt.Fprintln(stderr, "opsbot backup:", err)
		return 1
	}
	fmt.Fprintf(stdout, "backed up %s to %s in %s\n", name, fs.Arg(0), time.Since(start).Round(time.Millisecond))
	return 0
}
