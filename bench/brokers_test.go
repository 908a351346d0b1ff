package bench_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gather-go/gather/bench/internal/peers"
	"github.com/gather-go/gather/queue/natsbroker"
)

var (
	brokerSizes = flag.String("broker-sizes", "1,100,1000,10000", "comma-separated batch sizes for BenchmarkBroker/.../await")
	brokerChunk = flag.Int("broker-chunk", 10000, "tasks per iteration of BenchmarkBroker/.../throughput")
	// brokerTimeout bounds one iteration, so that a broker that loses a task fails the
	// benchmark instead of hanging it.
	brokerTimeout = flag.Duration("broker-timeout", 2*time.Minute, "longest iteration of BenchmarkBroker before it fails")
)

// The environment variables that brokers.sh sets; a benchmark whose server is not
// configured skips.
const (
	envRedis    = "GATHER_BENCH_REDIS"    // host:port of a redis-server that may be flushed
	envPostgres = "GATHER_BENCH_POSTGRES" // URL of a PostgreSQL database that may be reset
)

// brokerRig is one system under test, set up once per impl and closed by b.Cleanup.
// Its methods are called by one goroutine at a time.
type brokerRig interface {
	// reset empties the queue and whatever earlier iterations left behind.
	reset(ctx context.Context) error
	// pump enqueues n no-op tasks and returns once every one has run and the broker
	// has recorded its acknowledgement.
	pump(ctx context.Context, n int) error
	// gather enqueues n no-op tasks as one batch and returns once the producer has
	// learned that every one of them finished.
	gather(ctx context.Context, n int) error
}

type brokerImpl struct {
	name  string
	setup func(b *testing.B) brokerRig // skips when its server is not configured
}

var brokerImpls = []brokerImpl{
	{"natsbroker", func(b *testing.B) brokerRig { return setupNatsbroker(b, nil) }},
	// The same with one task per message, as JetStream's ceiling row has it.
	{"natsbroker-unpacked", func(b *testing.B) brokerRig { return setupNatsbroker(b, &natsbroker.Config{PackSize: 1}) }},
	{"jetstream", setupJetStream},
	{"asynq", setupAsynq},
	{"river", setupRiver},
}

// BenchmarkBroker measures task queues whose producers and workers talk through a
// server, all on this machine in one run (issue 4's "Speed"): gather's queue on
// queue/natsbroker, the raw JetStream ceiling it is built on, hibiken/asynq on Redis
// and riverqueue/river on PostgreSQL. brokers.sh starts the servers and prints the
// table; without them (envRedis and envPostgres unset) the asynq and river rows skip,
// so `go test ./...` still passes.
//
// Every task is a no-op. Each system runs one producer and one worker in this process,
// each with its own connection(s), as two processes would; the servers are real
// (nats-server embedded with a file store, redis-server and PostgreSQL on loopback).
// Sub-benchmarks, per system (impl=NAME):
//
//   - throughput: each iteration enqueues -broker-chunk tasks and returns once every one
//     of them has run and its acknowledgement is recorded by the broker (how each
//     system can tell is in its rig's pump). Reported: tasks/s.
//   - await/n=N: each iteration enqueues a batch of N tasks and returns once the
//     producer knows every one has finished: the latency of a distributed gather.
//     Reported: p50-ms and p99-ms over the iterations (nearest rank: with fewer than
//     100 iterations, p99 is the slowest), and tasks/s.
//
// Each sub-benchmark makes one untimed call first (streams, consumers, connections and
// prepared statements warmed up) and starts from an emptied queue.
func BenchmarkBroker(b *testing.B) {
	var sizes []int
	for f := range strings.SplitSeq(*brokerSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("-broker-sizes: %q is not a positive integer", f)
		}
		sizes = append(sizes, n)
	}
	if *brokerChunk < 1 {
		b.Fatalf("-broker-chunk: %d is not a positive integer", *brokerChunk)
	}
	for _, im := range brokerImpls {
		b.Run("impl="+im.name, func(b *testing.B) {
			rig := im.setup(b)
			b.Run("throughput", func(b *testing.B) {
				benchBrokerOp(b, rig, rig.pump, *brokerChunk, false)
			})
			for _, n := range sizes {
				b.Run(fmt.Sprintf("await/n=%d", n), func(b *testing.B) {
					benchBrokerOp(b, rig, rig.gather, n, true)
				})
			}
		})
	}
}

func benchBrokerOp(b *testing.B, rig brokerRig, op func(context.Context, int) error, n int, latency bool) {
	ctx := context.Background()
	call := func() {
		ctx, cancel := context.WithTimeout(ctx, *brokerTimeout)
		defer cancel()
		if err := op(ctx, n); err != nil {
			b.Fatal(err)
		}
	}
	ctx2, cancel := context.WithTimeout(ctx, *brokerTimeout)
	err := rig.reset(ctx2)
	cancel()
	if err != nil {
		b.Fatal("reset: ", err)
	}
	call() // warm-up, untimed
	var lat []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		call()
		lat = append(lat, time.Since(start))
	}
	tasks := float64(b.N) * float64(n)
	b.ReportMetric(tasks/b.Elapsed().Seconds(), "tasks/s")
	if latency {
		slices.Sort(lat)
		b.ReportMetric(peers.Percentile(lat, 50).Seconds()*1e3, "p50-ms")
		b.ReportMetric(peers.Percentile(lat, 99).Seconds()*1e3, "p99-ms")
	}
}

// brokerEnv returns the value of an environment variable that brokers.sh sets, or
// skips the benchmark.
func brokerEnv(b *testing.B, name string) string {
	v := os.Getenv(name)
	if v == "" {
		b.Skipf("%s is not set: bench/brokers.sh starts the server and sets it", name)
	}
	return v
}

// countdown is a counter that wakes one waiter when it reaches a target: how the rigs'
// workers tell a pumping producer that its chunk is done, without polling.
type countdown struct {
	n    atomic.Int64
	want atomic.Int64
	done chan struct{} // size 1: one waiter, one pending wake-up at most
}

func newCountdown() *countdown { return &countdown{done: make(chan struct{}, 1)} }

// expect returns the target for n more events and drains a stale wake-up.
func (s *countdown) expect(n int) {
	select {
	case <-s.done:
	default:
	}
	s.want.Store(s.n.Load() + int64(n))
}

func (s *countdown) add() {
	if s.n.Add(1) == s.want.Load() {
		select {
		case s.done <- struct{}{}:
		default:
		}
	}
}

func (s *countdown) wait(ctx context.Context) error {
	if s.n.Load() >= s.want.Load() {
		return nil
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d of the chunk's tasks missing: %w", s.want.Load()-s.n.Load(), ctx.Err())
	}
}
