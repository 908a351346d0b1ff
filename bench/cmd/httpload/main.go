// Command httpload is issue 14's load test of the gather program in the shape
// users deploy: `gather serve` in its own process with no built-in workers,
// two (-workers) `gather worker` processes connected to its NATS port, and
// this process as the producers, all over 127.0.0.1 TCP with tokens on both
// the API and NATS. bench/httpload.sh builds the binary and runs it.
//
// It runs these phases, each on a fresh server and fresh workers:
//
//	load      -tasks echo tasks in batches of -batch, from -producers
//	          goroutines each posting a batch with ?wait and awaiting it (202
//	          means: wait again on GET); throughput, p50/p99 of a batch's await
//	          (from its POST to its last result), every result checked
//	          against its input, and the server's memory at the start, the
//	          middle and the end, once its results have expired
//	          (-result-ttl, -retention), and after one more batch (the API
//	          forgets expired batches when one is submitted)
//	sse       with -sse N: the same again with N server-sent event streams
//	          open on -sse-path (the dashboard's) the whole time, read to the
//	          end, and the throughput against load's; -rounds N runs load
//	          and sse N times in turn, and the table ends with the median
//	          of the ratios
//	overload  with -overload D: a server whose queue is bounded (serve
//	          --max-depth), producers that submit without waiting for
//	          results, as fast as they can for D, and do not honor
//	          Retry-After (they press, to keep the queue at its bound); every
//	          429 is counted with whether it carried Retry-After, memory is
//	          sampled, and every accepted batch is then awaited and checked
//
// The server's memory is its resident set (VmRSS and its peak VmHWM from
// /proc/PID/status) and its Go heap in use (go_memstats_heap_inuse_bytes of
// /metrics). On stdout: one JSON object per phase (result), then the
// Markdown rows of the phases. Messages for a person go to stderr. Exit
// status 0 when every phase ran and nothing was lost or wrong, 1 otherwise,
// 2 on bad usage. Every process it starts is stopped when it ends, on
// SIGINT or SIGTERM too, and killed by the kernel if it dies (Pdeathsig).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// config is the command line.
type config struct {
	gather       string
	tasks        int
	batch        int
	producers    int
	workers      int
	concurrency  int
	resultTTL    time.Duration
	retention    time.Duration
	sse          int
	ssePath      string
	overload     time.Duration
	maxDepth     int
	overloadTask time.Duration
	pause        time.Duration
	settle       time.Duration
	rounds       int
	timeout      time.Duration
	dir          string
}

func run(args []string, stdout, stderr io.Writer) int {
	var c config
	fs := flag.NewFlagSet("httpload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.gather, "gather", "", "path of the gather binary (go build ./cmd/gather); required")
	fs.IntVar(&c.tasks, "tasks", 1_000_000, "tasks of the load phase (and of the sse phase)")
	fs.IntVar(&c.batch, "batch", 1000, "tasks a batch")
	fs.IntVar(&c.producers, "producers", 4, "producer goroutines, each with one batch in flight")
	fs.IntVar(&c.workers, "workers", 2, "gather worker processes")
	fs.IntVar(&c.concurrency, "concurrency", 0, "each worker's --concurrency; 0 for gather's default (one per CPU)")
	fs.DurationVar(&c.resultTTL, "result-ttl", 5*time.Second, "serve --result-ttl: how long the API keeps a finished batch in memory")
	fs.DurationVar(&c.retention, "retention", 10*time.Second, "serve and worker --retention: how long the streams keep results")
	fs.IntVar(&c.sse, "sse", 0, "server-sent event streams to hold open on -sse-path in a second run of the load (0: no sse phase)")
	fs.IntVar(&c.rounds, "rounds", 1, "how many times the load phase (and the sse phase after it) runs")
	fs.StringVar(&c.ssePath, "sse-path", "/dashboard/events", "path of the event stream -sse opens")
	fs.DurationVar(&c.overload, "overload", 20*time.Second, "length of the overload phase (0: none)")
	fs.IntVar(&c.maxDepth, "max-depth", 20_000, "serve --max-depth of the overload phase: the queue's bound, in tasks")
	fs.DurationVar(&c.overloadTask, "overload-task", 2*time.Millisecond, "how long each task of the overload phase sleeps, so that the workers fall behind the producers")
	fs.DurationVar(&c.pause, "overload-pause", 5*time.Millisecond, "how long an overload producer pauses after a 429 before it tries again (it presses on, whatever Retry-After says)")
	fs.DurationVar(&c.settle, "settle", 0, "more time to wait, after results expire (2×-result-ttl or -retention, whichever is longer, plus 2s), before the expired sample")
	fs.DurationVar(&c.timeout, "timeout", time.Hour, "the whole run ends with an error after this")
	fs.StringVar(&c.dir, "dir", "", "directory for the servers' stores (default: a temporary one, removed at the end)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := c.check(fs.NArg()); err != nil {
		fmt.Fprintf(stderr, "httpload: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if c.dir == "" {
		d, err := os.MkdirTemp("", "httpload-")
		if err != nil {
			fmt.Fprintf(stderr, "httpload: %v\n", err)
			return 1
		}
		defer os.RemoveAll(d)
		c.dir = d
	}
	rs, err := phases(ctx, &c, stdout, stderr)
	writeMarkdown(stdout, &c, rs)
	if err != nil {
		fmt.Fprintf(stderr, "httpload: %v\n", err)
		return 1
	}
	for _, r := range rs {
		if r.Wrong > 0 || r.Lost > 0 || r.Errors > 0 || r.MissingRetryAfter > 0 {
			fmt.Fprintf(stderr, "httpload: phase %s: %d wrong, %d lost, %d errors, %d 429s without Retry-After\n", r.Phase, r.Wrong, r.Lost, r.Errors, r.MissingRetryAfter)
			return 1
		}
	}
	return 0
}

func (c *config) check(nargs int) error {
	var errs []error
	if nargs > 0 {
		errs = append(errs, errors.New("unexpected arguments: httpload takes flags only"))
	}
	if c.gather == "" {
		errs = append(errs, errors.New("-gather: give the path of the gather binary"))
	}
	if c.tasks < 1 || c.batch < 1 || c.producers < 1 || c.workers < 1 || c.rounds < 1 {
		errs = append(errs, errors.New("-tasks, -batch, -producers, -workers and -rounds: want at least 1"))
	}
	if c.concurrency < 0 || c.sse < 0 || c.overload < 0 || c.overloadTask <= 0 || c.pause < 0 || c.settle < 0 {
		errs = append(errs, errors.New("-concurrency, -sse and -overload: want 0 or more; -overload-task: want more than 0; -overload-pause, -settle: want 0 or more"))
	}
	if c.resultTTL < time.Second || c.retention < time.Second {
		errs = append(errs, errors.New("-result-ttl and -retention: want at least 1s (serve's least)"))
	}
	if c.overload > 0 && c.maxDepth < c.batch {
		errs = append(errs, fmt.Errorf("-max-depth %d: want at least -batch (%d), or no batch fits", c.maxDepth, c.batch))
	}
	return errors.Join(errs...)
}

// phases runs every phase in turn and returns their results.
func phases(ctx context.Context, c *config, stdout, stderr io.Writer) ([]*result, error) {
	var rs []*result
	emit := func(r *result) {
		rs = append(rs, r)
		writeJSON(stdout, r)
	}
	for i := range c.rounds {
		// Each round's sse run follows its load run, so that the machine's
		// drift shows in the spread of the ratios rather than in one.
		r, err := loadPhase(ctx, c, "load", i+1, 0, stderr)
		if err != nil {
			return rs, fmt.Errorf("load (round %d): %w", i+1, err)
		}
		emit(r)
		if c.sse > 0 {
			s, err := loadPhase(ctx, c, "sse", i+1, c.sse, stderr)
			if err != nil {
				return rs, fmt.Errorf("sse (round %d): %w", i+1, err)
			}
			s.VsLoad = s.TasksPerSec / r.TasksPerSec
			emit(s)
		}
	}
	if c.overload > 0 {
		o, err := overloadPhase(ctx, c, stderr)
		if err != nil {
			return rs, fmt.Errorf("overload: %w", err)
		}
		emit(o)
	}
	return rs, nil
}
