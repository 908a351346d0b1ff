//go:build !unix

package kinds

import "os/exec"

// killGroup leaves cmd as it is: cancelling kills the command alone, and
// ExecWaitDelay bounds the wait for its children's output.
func killGroup(cmd *exec.Cmd) {}
