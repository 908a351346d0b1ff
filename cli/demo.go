package cli

import (
	"context"

	"github.com/gather-go/gather/demo"
)

// demoCmd runs "gather demo": the whole system on embedded defaults (package
// demo): simulated venues over NATS, consistent snapshots, calculations
// fanned out through the queue.
func demoCmd(ctx context.Context, e *env, args []string) int {
	return demo.RunConfig(ctx, demo.Config{Args: args, Stdout: e.stdout, Stderr: e.stderr})
}
