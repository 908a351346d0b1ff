package natsbroker_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
)

var noop = queue.NewKind[int, int]("bench.noop")

// benchSetup starts an embedded server (file store), a worker on its own
// connection and a client on another, as a producer and a worker process
// would have.
func benchSetupT(b testing.TB) *queue.Client {
	b.Helper()
	s := embedded(b, false)
	wb := newBroker(b, connect(b, s), natsbroker.Config{Prefix: "bench"})
	w, err := queue.NewWorker(wb, nil)
	if err != nil {
		b.Fatal(err)
	}
	queue.HandleFunc(w, noop, func(ctx context.Context, n int) (int, error) { return n, nil })
	if err := w.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Shutdown(ctx)
	})
	c, err := queue.NewClient(newBroker(b, connect(b, s), natsbroker.Config{Prefix: "bench"}), nil)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func benchSetup(b *testing.B) *queue.Client { return benchSetupT(b) }

// reportLatency reports the p50 and p99 of ds in unit.
func reportLatency(b *testing.B, ds []time.Duration, unit time.Duration, name string) {
	slices.Sort(ds)
	if len(ds) == 0 {
		return
	}
	at := func(q float64) float64 { return float64(ds[int(q*float64(len(ds)-1))]) / float64(unit) }
	b.ReportMetric(at(0.50), "p50-"+name)
	b.ReportMetric(at(0.99), "p99-"+name)
}

// BenchmarkRoundTrip: enqueue one no-op task and wait for its result, on an
// embedded server with a worker on another connection (issue 4's goal: p50
// under 200 µs).
func BenchmarkRoundTrip(b *testing.B) {
	c := benchSetup(b)
	ctx := context.Background()
	ds := make([]time.Duration, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		task, err := queue.Enqueue(ctx, c, noop, 1)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := task.Await(ctx); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	reportLatency(b, ds, time.Microsecond, "µs")
}

// BenchmarkAwait1000: enqueue a batch of 1,000 no-op tasks and await it
// (issue 4's goal: p50 under 15 ms).
func BenchmarkAwait1000(b *testing.B) {
	c := benchSetup(b)
	ctx := context.Background()
	in := make([]int, 1000)
	var ds []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		batch, err := queue.EnqueueBatch(ctx, c, noop, in)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := batch.Await(ctx); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	reportLatency(b, ds, time.Millisecond, "ms")
	b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "tasks/s")
}
