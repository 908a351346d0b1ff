package natsbroker_test

import (
	"context"
	"testing"

	"github.com/gather-go/gather/queue"
)

// BenchmarkThroughputGlobalLimit: BenchmarkThroughput's batches of 10,000
// no-op tasks with no global control, with a global limit on their kind
// above what the worker runs at once, and with a global rate far above what
// it achieves (neither is ever reached): issue 15's goal is that an
// unreached limit costs at most 10% of the tasks/s over TCP. A runner keeps
// its slot across its claims (a slot call when it goes idle, and one a
// quarter of a second while it holds it); a rate costs a token call a
// claim (one round trip). worker-out/task counts the worker connection's
// messages, round trips included.
func BenchmarkThroughputGlobalLimit(b *testing.B) {
	for _, v := range []struct {
		name string
		cfg  *queue.WorkerConfig
	}{
		{"limit=none", nil},
		{"limit=unreached", &queue.WorkerConfig{GlobalLimits: []queue.GlobalLimit{{Queue: queue.DefaultQueue, Kind: noop.Name(), Max: 64}}}},
		{"rate=unreached", &queue.WorkerConfig{GlobalRates: []queue.GlobalRate{{Queue: queue.DefaultQueue, Kind: noop.Name(), PerSecond: 1e8, Burst: 1 << 16}}}},
	} {
		cfg := v.cfg
		b.Run(v.name, func(b *testing.B) {
			for _, conn := range benchConns[:2] { // in-process and loopback TCP
				b.Run("conn="+conn.name, func(b *testing.B) {
					r := newBenchRig(b, conn, cfg)
					ctx := context.Background()
					in := make([]int, 10000)
					c0 := r.counts()
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
					r.report(b, c0, len(in)*b.N)
				})
			}
		})
	}
}
