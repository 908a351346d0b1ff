package natsbroker_test

import (
	"context"
	"testing"

	"github.com/gather-go/gather/queue"
)

// BenchmarkThroughputGlobalLimit: BenchmarkThroughput's batches of 10,000
// no-op tasks with no global limit, and with a global limit on their kind
// set above what the worker runs at once (so it is never reached): issue
// 15's goal is that the unreached limit costs at most 10% of the tasks/s
// over TCP. The limit costs a runner about two round trips a claim (taking
// and releasing its slot), plus a renewal per heartbeat.
func BenchmarkThroughputGlobalLimit(b *testing.B) {
	for _, limited := range []bool{false, true} {
		name := "limit=none"
		var cfg *queue.WorkerConfig
		if limited {
			name = "limit=unreached"
			cfg = &queue.WorkerConfig{GlobalLimits: []queue.GlobalLimit{{Queue: queue.DefaultQueue, Kind: noop.Name(), Max: 64}}}
		}
		b.Run(name, func(b *testing.B) {
			for _, conn := range benchConns[:2] { // in-process and loopback TCP
				b.Run("conn="+conn.name, func(b *testing.B) {
					r := newBenchRig(b, conn, cfg)
					ctx := context.Background()
					in := make([]int, 10000)
					b.ReportAllocs()
					for b.Loop() {
						batch, err := queue.EnqueueBatch(ctx, r.c, noop, in)
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
		})
	}
}
