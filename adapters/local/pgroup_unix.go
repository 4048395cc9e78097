//go:build unix

package local

import (
	"os/exec"
	"syscall"
)

// inOwnProcessGroup makes the command the leader of a new process group and
// has a cancel kill that whole group, so that children the command started
// (apache2ctl starts httpd; a shell starts its pipeline) die with it.
func inOwnProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
