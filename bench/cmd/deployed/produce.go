package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gather-go/gather/bench/internal/peers"
)

// addrs are the servers' addresses, given to workers and producers as flags.
type addrs struct {
	nats     string // NATS client URL
	redis    string // host:port
	postgres string // connection URL
}

func (a *addrs) register(fs *flag.FlagSet) {
	fs.StringVar(&a.nats, "nats", "", "NATS client URL, such as nats://127.0.0.1:4222")
	fs.StringVar(&a.redis, "redis", "", "redis-server address, host:port")
	fs.StringVar(&a.postgres, "postgres", "", "PostgreSQL URL")
}

// rig is a connected producer: gather enqueues n no-op tasks as one batch and
// returns once the producer knows that every one finished. It is used by one
// goroutine.
type rig interface {
	gather(ctx context.Context, n int) error
	close()
}

// goSystem is a queue whose workers and producer are in this program.
type goSystem struct {
	// server is what the system connects to: "nats", "redis", "postgres", or ""
	// when the producer runs everything in its own process.
	server string
	// work starts one worker in this process; stop shuts it down gracefully.
	work func(ctx context.Context, a addrs) (stop func(context.Context) error, err error)
	// producer connects a producer. workers is how many worker processes the
	// driver started (the in-process system starts that many workers itself).
	producer func(ctx context.Context, a addrs, workers int) (rig, error)
}

var goSystems = map[string]goSystem{
	"natsbroker":           {server: "nats", work: natsbrokerWorker(nil), producer: natsbrokerProducer(nil)},
	"natsbroker-unpacked":  {server: "nats", work: natsbrokerWorker(unpacked), producer: natsbrokerProducer(unpacked)},
	"natsbroker-inprocess": {producer: inprocessProducer},
	"jetstream":            {server: "nats", work: jetstreamWorker, producer: jetstreamProducer},
	"asynq":                {server: "redis", work: asynqWorker, producer: asynqProducer},
	"river":                {server: "postgres", work: riverWorker, producer: riverProducer},
}

// result is one measurement, printed as a JSON line. The Python and Node producers
// in bench/peers print the same fields; the driver adds shape, workers, speed and
// round.
type result struct {
	System string  `json:"system"`
	Op     string  `json:"op"` // "await" (a batch of N awaited) or "throughput"
	N      int     `json:"n"`  // tasks per iteration
	Iters  int     `json:"iters"`
	TasksS float64 `json:"tasks_per_s"`
	P50ms  float64 `json:"p50_ms"` // per iteration, nearest rank
	P99ms  float64 `json:"p99_ms"`
}

// measureFlags are the producer's measuring flags, which the driver passes on to
// every producer, in Go, Python or Node.
type measureFlags struct {
	sizes     string
	chunk     int
	benchtime time.Duration
	timeout   time.Duration
}

func (m *measureFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.sizes, "sizes", "1,1000,10000", "comma-separated batch sizes to await")
	fs.IntVar(&m.chunk, "chunk", 10000, "batch size of the throughput measurement")
	fs.DurationVar(&m.benchtime, "benchtime", 2*time.Second, "how long each measurement repeats its batch")
	fs.DurationVar(&m.timeout, "timeout", 2*time.Minute, "longest wait for one batch before the producer fails")
}

// ns returns the batch sizes to measure: the await sizes and the chunk, ascending.
func (m *measureFlags) ns() ([]int, error) {
	if m.chunk < 1 {
		return nil, fmt.Errorf("%w: -chunk is %d: want a positive integer", errUsage, m.chunk)
	}
	if m.benchtime < 0 || m.timeout <= 0 {
		return nil, fmt.Errorf("%w: -benchtime %v, -timeout %v: want 0 or more and more than 0", errUsage, m.benchtime, m.timeout)
	}
	ns := []int{m.chunk}
	for f := range strings.SplitSeq(m.sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%w: -sizes: %q is not a positive integer", errUsage, f)
		}
		if !slices.Contains(ns, n) {
			ns = append(ns, n)
		}
	}
	slices.Sort(ns)
	return ns, nil
}

// produce is the producer role: connect to a Go system, measure, print JSON lines.
func produce(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	name := fs.String("system", "", "the system: natsbroker, natsbroker-unpacked, natsbroker-inprocess, jetstream, asynq or river")
	workers := fs.Int("workers", 1, "how many worker processes the driver started")
	var a addrs
	a.register(fs)
	var m measureFlags
	m.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	sys, ok := goSystems[*name]
	if !ok {
		return fmt.Errorf("%w: -system %q: want one of %s", errUsage, *name, strings.Join(goSystemNames(), ", "))
	}
	ns, err := m.ns()
	if err != nil {
		return err
	}
	if *workers < 1 {
		return fmt.Errorf("%w: -workers %d: want 1 or more", errUsage, *workers)
	}
	setup, cancel := context.WithTimeout(ctx, time.Minute)
	r, err := sys.producer(setup, a, *workers)
	cancel()
	if err != nil {
		return fmt.Errorf("%s: connecting the producer: %w", *name, err)
	}
	defer r.close()
	enc := json.NewEncoder(os.Stdout)
	for _, n := range ns {
		res, err := measure(ctx, r, n, &m)
		if err != nil {
			return fmt.Errorf("%s: batches of %d: %w", *name, n, err)
		}
		res.System = *name
		if err := enc.Encode(res); err != nil {
			return err
		}
		if n == m.chunk {
			res.Op = "throughput"
			if err := enc.Encode(res); err != nil {
				return err
			}
		}
	}
	return nil
}

func goSystemNames() []string {
	var names []string
	for n := range goSystems {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// measure gathers batches of n tasks, one at a time, for m.benchtime (at least
// once), after one untimed warm-up batch of min(n, 1000) tasks.
func measure(ctx context.Context, r rig, n int, m *measureFlags) (result, error) {
	call := func(n int) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(ctx, m.timeout)
		defer cancel()
		start := time.Now()
		err := r.gather(ctx, n)
		return time.Since(start), err
	}
	if _, err := call(min(n, 1000)); err != nil {
		return result{}, fmt.Errorf("warm-up: %w", err)
	}
	var lat []time.Duration
	start := time.Now()
	for len(lat) == 0 || time.Since(start) < m.benchtime {
		d, err := call(n)
		if err != nil {
			return result{}, err
		}
		lat = append(lat, d)
	}
	elapsed := time.Since(start)
	slices.Sort(lat)
	return result{
		Op:     "await",
		N:      n,
		Iters:  len(lat),
		TasksS: float64(n) * float64(len(lat)) / elapsed.Seconds(),
		P50ms:  peers.Percentile(lat, 50).Seconds() * 1e3,
		P99ms:  peers.Percentile(lat, 99).Seconds() * 1e3,
	}, nil
}
