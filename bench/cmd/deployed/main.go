// Command deployed measures task queues in the shape they are deployed in: the
// server in its own OS process, the workers in others, the producer in another,
// all connected over loopback TCP. bench/deployed.sh builds it, starts Redis and
// PostgreSQL, runs it and prints the table (bench/cmd/deployedtable).
//
// It is one program in four roles, chosen by its first argument:
//
//	deployed drive [flags]    start, for every system and worker count, a server
//	                          process when the system needs one, the worker processes
//	                          and a producer process; print the producer's figures
//	deployed natsd -dir D     a nats-server with JetStream (gather's natsserver)
//	                          listening on a free loopback port
//	deployed worker [flags]   one worker process of a Go system, until SIGTERM
//	deployed produce [flags]  the producer of a Go system: measure and print
//
// Celery and BullMQ have their workers and producers in bench/peers (Python and
// Node); the driver starts them the same way. The output of drive, on stdout, is one
// JSON object per line per measurement (see result), and comment lines starting with
// "#"; every message for a person goes to stderr. Exit status: 0 when every system
// ran, 1 when one failed (its figures are missing and a "# FAILED" line says why),
// 2 on bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch os.Args[1] {
	case "drive":
		err = drive(ctx, os.Args[2:])
	case "natsd":
		err = natsd(ctx, os.Args[2:])
	case "worker":
		err = worker(ctx, os.Args[2:])
	case "produce":
		err = produce(ctx, os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "deployed %s: %v\n", os.Args[1], err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// errUsage marks an error in the command line.
var errUsage = errors.New("usage")

func usage() {
	fmt.Fprintln(os.Stderr, "usage: deployed drive|natsd|worker|produce [flags]  (deployed ROLE -h for the flags)")
	os.Exit(2)
}

// parse parses a role's flags, mapping a bad command line to errUsage.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	return nil
}
