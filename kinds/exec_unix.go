//go:build unix

package kinds

import (
	"os/exec"
	"syscall"
)

// killGroup makes cmd the leader of a process group of its own, killed
// whole when the task is cancelled: its children die with it rather than
// hold its output open.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
