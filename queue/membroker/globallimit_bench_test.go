package membroker_test

import (
	"context"
	"testing"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// BenchmarkThroughputGlobalLimit: batches of 10,000 no-op tasks on one
// worker, with no global limit, with one on their kind that is never
// reached, and with a rate never reached (issue 15: at most 10% fewer tasks/s).
func BenchmarkThroughputGlobalLimit(b *testing.B) {
	noop := queue.NewKind[int, int]("bench.noop")
	for _, v := range []struct {
		name string
		cfg  *queue.WorkerConfig
	}{
		{"limit=none", &queue.WorkerConfig{}},
		{"limit=unreached", &queue.WorkerConfig{GlobalLimits: []queue.GlobalLimit{{Queue: queue.DefaultQueue, Kind: noop.Name(), Max: 64}}}},
		{"rate=unreached", &queue.WorkerConfig{GlobalRates: []queue.GlobalRate{{Queue: queue.DefaultQueue, Kind: noop.Name(), PerSecond: 1e8, Burst: 1 << 16}}}},
	} {
		cfg := v.cfg
		b.Run(v.name, func(b *testing.B) {
			br, err := membroker.New(nil)
			if err != nil {
				b.Fatal(err)
			}
			defer br.Close()
			w, err := queue.NewWorker(br, cfg)
			if err != nil {
				b.Fatal(err)
			}
			queue.HandleFunc(w, noop, func(ctx context.Context, n int) (int, error) { return n, nil })
			if err := w.Start(); err != nil {
				b.Fatal(err)
			}
			defer w.Shutdown(context.Background())
			c, _ := queue.NewClient(br, nil)
			ctx := context.Background()
			in := make([]int, 10000)
			b.ReportAllocs()
			for b.Loop() {
				batch, err := queue.EnqueueBatch(ctx, c, noop, in)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := batch.Await(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(in)*b.N)/b.Elapsed().Seconds(), "tasks/s")
		})
	}
}
