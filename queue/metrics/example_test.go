package metrics_test

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
	"github.com/gather-go/gather/queue/metrics"
)

// A Collector is registered with a registry, given to the worker and client
// as their Observer, and watches the broker's depth.
func Example() {
	ctx := context.Background()
	broker, _ := membroker.New(nil)
	defer broker.Close()
	m := metrics.New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	_ = m.Watch(broker)

	square := queue.NewKind[int, int]("square")
	w, _ := queue.NewWorker(broker, &queue.WorkerConfig{Concurrency: 2, Observer: m})
	queue.HandleFunc(w, square, func(ctx context.Context, n int) (int, error) { return n * n, nil })
	_ = w.Start()
	defer w.Shutdown(ctx)
	c, _ := queue.NewClient(broker, &queue.ClientConfig{Observer: m})
	b, _ := queue.EnqueueBatch(ctx, c, square, []int{1, 2, 3})
	_, _ = b.Await(ctx)

	families, _ := reg.Gather()
	for _, f := range families {
		if f.GetName() == "gather_queue_tasks_succeeded_total" {
			fmt.Println(f.GetName(), f.GetMetric()[0].GetCounter().GetValue())
		}
	}
	// Output: gather_queue_tasks_succeeded_total 3
}
