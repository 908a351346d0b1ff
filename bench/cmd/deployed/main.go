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
//
// With GATHER_BENCH_CPUPROFILE set to a directory, every role but drive writes a
// CPU profile of its whole life there, ROLE-PID.pprof, and when it ends the
// allocations it made, ROLE-PID.allocs.pprof: where each process of a system
// spends its time (go tool pprof -top DIR/worker-*.pprof).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout)) }

// run runs the role args[0] with the flags after it and returns the exit status.
func run(args []string, stdout io.Writer) int {
	if len(args) < 1 {
		return usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if dir := os.Getenv("GATHER_BENCH_CPUPROFILE"); dir != "" && args[0] != "drive" {
		stopProfile, err := cpuProfile(dir, args[0])
		if err != nil {
			fmt.Fprintf(os.Stderr, "deployed %s: %v\n", args[0], err)
			return 1
		}
		defer stopProfile()
	}
	var err error
	switch args[0] {
	case "drive":
		err = drive(ctx, args[1:], stdout)
	case "natsd":
		err = natsd(ctx, args[1:])
	case "worker":
		err = worker(ctx, args[1:])
	case "produce":
		err = produce(ctx, args[1:])
	default:
		return usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "deployed %s: %v\n", args[0], err)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

// cpuProfile starts a CPU profile written to dir/ROLE-PID.pprof and returns
// what stops it and writes the allocations profile beside it.
func cpuProfile(dir, role string) (func(), error) {
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", role, os.Getpid())))
	if err != nil {
		return nil, fmt.Errorf("GATHER_BENCH_CPUPROFILE: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("GATHER_BENCH_CPUPROFILE: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		if a, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.allocs.pprof", role, os.Getpid()))); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(a, 0)
			a.Close()
		}
	}, nil
}

// errUsage marks an error in the command line.
var errUsage = errors.New("usage")

func usage() int {
	fmt.Fprintln(os.Stderr, "usage: deployed drive|natsd|worker|produce [flags]  (deployed ROLE -h for the flags)")
	return 2
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
