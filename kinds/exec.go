package kinds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gather-go/gather/queue"
)

// DefaultExecMaxOutput bounds what the exec kind keeps of stdout and of
// stderr.
const DefaultExecMaxOutput = 1 << 20

// ExecWaitDelay is how long the exec kind waits, once its command has
// exited or been killed, for the command's output to close (a background
// child may hold it open); then it closes the output and returns.
const ExecWaitDelay = 5 * time.Second

// ExecConfig configures the exec kind.
type ExecConfig struct {
	// Allow lists the commands tasks may run, by the exact name they give
	// (looked up in PATH) or absolute path. A command runs with the
	// worker's environment less its GATHER_ variables, in a process group
	// of its own that is killed when the task is cancelled or times out. Default nil: every exec task
	// fails permanently, and a server refuses them.
	Allow []string
	// MaxOutput bounds what is kept of stdout and of stderr, each.
	// Default DefaultExecMaxOutput.
	MaxOutput int
}

// execEnv returns the environment of a command the exec kind runs: the
// worker's, without its GATHER_ variables, which may hold the program's
// tokens and passwords.
func execEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GATHER_") })
}

// ExecInput is an exec task: a command from the allow-list, its
// arguments (never through a shell) and its standard input.
type ExecInput struct {
	Command string   `json:"command"`
	Args    []string `json:"args,omitempty"`
	Stdin   string   `json:"stdin,omitempty"`
}

// ExecOutput is an exec task's result.
type ExecOutput struct {
	ExitCode  int    `json:"exit_code"`
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
}

// Exec returns the kind "exec": it runs a command of the allow-list with
// the input's arguments and stdin, and returns its exit code and output.
// A command outside the list fails permanently; a non-zero exit fails the
// attempt with the end of stderr. Cancelling the task kills the command.
func Exec(cfg ExecConfig) Def {
	if cfg.MaxOutput <= 0 {
		cfg.MaxOutput = DefaultExecMaxOutput
	}
	allow := slices.Clone(cfg.Allow)
	k := queue.NewKind[ExecInput, ExecOutput]("exec")
	return Func(k, "runs an allowed command {\"command\",\"args\",\"stdin\"}; refused without an allow-list",
		func(ctx context.Context, in ExecInput) (ExecOutput, error) {
			var out ExecOutput
			if len(allow) == 0 {
				return out, queue.Permanent(errors.New("exec is disabled on this worker: start it with an allow-list of commands (--exec-allow)"))
			}
			if !slices.Contains(allow, in.Command) {
				return out, queue.Permanent(fmt.Errorf("command %q is not allowed: want one of %s", in.Command, strings.Join(allow, ", ")))
			}
			cmd := exec.CommandContext(ctx, in.Command, in.Args...)
			cmd.Stdin = strings.NewReader(in.Stdin)
			cmd.Env = execEnv()
			cmd.WaitDelay = ExecWaitDelay
			killGroup(cmd)
			stdout := &capped{max: cfg.MaxOutput}
			stderr := &capped{max: cfg.MaxOutput}
			cmd.Stdout, cmd.Stderr = stdout, stderr
			err := cmd.Run()
			out.Stdout, out.Stderr = stdout.String(), stderr.String()
			out.Truncated = stdout.cut || stderr.cut
			var ee *exec.ExitError
			switch {
			case errors.As(err, &ee):
				out.ExitCode = ee.ExitCode()
				return out, fmt.Errorf("%s exited with status %d: %s", in.Command, out.ExitCode, tail(out.Stderr))
			case err != nil:
				if ctx.Err() != nil {
					return out, context.Cause(ctx)
				}
				return out, queue.Permanent(err)
			}
			return out, nil
		})
}

// capped keeps the first max bytes written to it.
type capped struct {
	buf bytes.Buffer
	max int
	cut bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room < len(p) {
		c.cut = true
		c.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return c.buf.Write(p)
}

func (c *capped) String() string {
	if utf8.Valid(c.buf.Bytes()) {
		return c.buf.String()
	}
	return strings.ToValidUTF8(c.buf.String(), "\uFFFD")
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 500 {
		s = "..." + s[len(s)-500:]
	}
	return s
}
