//go:build !unix

package local

import "os/exec"

// inOwnProcessGroup is a no-op where there are no process groups: a cancel
// kills the command itself (exec.CommandContext's default).
func inOwnProcessGroup(*exec.Cmd) {}
