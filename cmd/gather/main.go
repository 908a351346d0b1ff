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
	// A reader that goes away ("gather demo | head") ends the output, not
	// the process: writes then fail with EPIPE, and every command stops
	// writing to a stream that fails (and drains what it runs) instead of
	// dying from SIGPIPE halfway through a shutdown.
	signal.Ignore(syscall.SIGPIPE)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
