package bench_test

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/alitto/pond/v2"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
	"github.com/panjf2000/ants/v2"
)

var queueSizes = flag.String("queue-sizes", "1,100,10000,1000000", "comma-separated batch sizes for BenchmarkQueue")

// noop is the queue benchmarks' task kind: an int in, its double out, with
// the default JSON codec.
var noop = queue.NewKind[int, int]("bench.noop")

// BenchmarkQueue measures a task queue end to end: enqueue a batch of N
// tasks, run a no-op handler on each, record each result, and await the
// batch in input order. queue.membroker runs it through gather's queue with
// the in-memory broker (priorities, retries, leases and results included);
// pond and ants submit the same N tasks to a long-lived pool and wait for
// them, as a program without a queue would. Every pool has GOMAXPROCS
// workers. Reported: tasks/s, ns/task and allocs/op.
func BenchmarkQueue(b *testing.B) {
	ctx := context.Background()
	procs := runtime.GOMAXPROCS(0)
	for f := range strings.SplitSeq(*queueSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("-queue-sizes: %q is not a positive integer", f)
		}
		in := make([]int, n)
		for i := range in {
			in[i] = i
		}
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.Run("impl=queue.membroker", func(b *testing.B) {
				broker := must(membroker.New(nil))
				defer broker.Close()
				w := must(queue.NewWorker(broker, &queue.WorkerConfig{Concurrency: procs}))
				queue.HandleFunc(w, noop, func(_ context.Context, i int) (int, error) { return i * 2, nil })
				must(0, w.Start())
				defer w.Shutdown(ctx)
				c := must(queue.NewClient(broker, nil))
				run := func() []int {
					return must(must(queue.EnqueueBatch(ctx, c, noop, in)).Await(ctx))
				}
				run()
				b.ReportAllocs()
				for b.Loop() {
					run()
				}
				reportTasks(b, n)
			})
			b.Run("impl=pond", func(b *testing.B) {
				p := pond.NewResultPool[int](procs)
				defer p.StopAndWait()
				run := func() []int {
					g := p.NewGroupContext(ctx)
					for _, i := range in {
						g.SubmitErr(func() (int, error) { return i * 2, nil })
					}
					return must(g.Wait())
				}
				run()
				b.ReportAllocs()
				for b.Loop() {
					run()
				}
				reportTasks(b, n)
			})
			b.Run("impl=ants", func(b *testing.B) {
				p := must(ants.NewPool(procs))
				defer p.Release()
				run := func() []int {
					out := make([]int, n)
					var wg sync.WaitGroup
					wg.Add(n)
					for k, i := range in {
						must(0, p.Submit(func() {
							out[k] = i * 2
							wg.Done()
						}))
					}
					wg.Wait()
					return out
				}
				run()
				b.ReportAllocs()
				for b.Loop() {
					run()
				}
				reportTasks(b, n)
			})
		})
	}
}

// BenchmarkQueueAwait measures awaiting a finished batch of 10,000 tasks:
// its allocs/op is what awaiting costs beyond the result slice (a fixed
// buffer and the subscription), nothing per task.
func BenchmarkQueueAwait(b *testing.B) {
	ctx := context.Background()
	broker := must(membroker.New(nil))
	defer broker.Close()
	w := must(queue.NewWorker(broker, nil))
	queue.HandleFunc(w, noop, func(_ context.Context, i int) (int, error) { return i * 2, nil })
	must(0, w.Start())
	defer w.Shutdown(ctx)
	c := must(queue.NewClient(broker, nil))
	in := make([]int, 10_000)
	batch := must(queue.EnqueueBatch(ctx, c, noop, in))
	must(batch.Await(ctx))
	b.ReportAllocs()
	for b.Loop() {
		must(batch.Await(ctx))
	}
	reportTasks(b, len(in))
}

func reportTasks(b *testing.B, n int) {
	tasks := float64(b.N) * float64(n)
	b.ReportMetric(tasks/b.Elapsed().Seconds(), "tasks/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/tasks, "ns/task")
}
