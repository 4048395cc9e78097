package bot

import (
	"context"
	"time"
)

// Host is one inventory host, as the runners need it.
type Host struct {
	Name    string        // the inventory name ("web01")
	Address string        // address or DNS name; "" for via local
	Via     string        // "local" or "ssh"
	User    string        // ssh user
	Port    int           // ssh port; 0 = 22
	Become  string        // "", "sudo" or "doas": privilege escalation, prefixed as argv
	Timeout time.Duration // per command; 0 = the runner's default
}

// Output is what a command printed and how it ended. Stdout and Stderr are
// kept apart and bounded; Truncated says a bound was hit.
type Output struct {
	Stdout, Stderr []byte
	ExitCode       int // -1 when the command did not exit normally (signal, timeout)
	Truncated      bool
	Duration       time.Duration
}

// Runner runs a fixed argv on an inventory host: never a shell string built
// from chat text. A non-zero exit is not an error (Output.ExitCode says
// it); an error means the command could not be run or did not finish
// (unreachable host, unknown host key, timeout, cancel).
type Runner interface {
	Run(ctx context.Context, host Host, argv []string) (Output, error)
}
