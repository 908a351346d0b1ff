// Command gather runs the task queue as a system: serve, worker, submit and
// the inspection commands. Run "gather --help" for the list; package cli
// holds the commands, for building a gather binary with your own kinds.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/gather-go/gather/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
