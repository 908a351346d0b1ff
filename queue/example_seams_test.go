package queue_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// An Observer counts what a client and a worker did.
func ExampleObserverFunc() {
	ctx := context.Background()
	broker, _ := membroker.New(nil)
	defer broker.Close()
	var mu sync.Mutex
	counts := map[queue.EventType]int{}
	obs := queue.ObserverFunc(func(e queue.Event) {
		mu.Lock()
		counts[e.Type]++
		mu.Unlock()
	})
	square := queue.NewKind[int, int]("square")
	w, _ := queue.NewWorker(broker, &queue.WorkerConfig{Concurrency: 2, Observer: obs})
	queue.HandleFunc(w, square, func(ctx context.Context, n int) (int, error) { return n * n, nil })
	_ = w.Start()
	defer w.Shutdown(ctx)
	c, _ := queue.NewClient(broker, &queue.ClientConfig{Observer: obs})
	b, _ := queue.EnqueueBatch(ctx, c, square, []int{1, 2, 3})
	out, _ := b.Await(ctx)
	fmt.Println(out)
	mu.Lock()
	defer mu.Unlock()
	for _, t := range []queue.EventType{queue.EventEnqueued, queue.EventStarted, queue.EventSucceeded, queue.EventBatchAwaited} {
		fmt.Println(t, counts[t])
	}
	// Output:
	// [1 4 9]
	// enqueued 1
	// started 3
	// succeeded 3
	// batch_awaited 1
}

// A broker that implements Inspector lists its queues and batches.
func ExampleInspector() {
	ctx := context.Background()
	broker, _ := membroker.New(nil)
	defer broker.Close()
	c, _ := queue.NewClient(broker, nil)
	square := queue.NewKind[int, int]("square")
	first, _ := queue.EnqueueBatch(ctx, c, square, []int{1, 2})
	_, _ = queue.Enqueue(ctx, c, square, 3, queue.WithQueue("urgent"), queue.WithPriority(queue.PriorityHigh))

	var in queue.Inspector = broker
	queues, _ := in.Queues(ctx)
	for _, q := range queues {
		fmt.Println(q.Name, q.Depth, q.InFlight)
	}
	page, next, _ := in.Batches(ctx, queue.BatchFilter{Limit: 10})
	for _, b := range page {
		fmt.Println(b.Queue, b.Kind, b.Size, b.Finished())
	}
	fmt.Printf("next %q\n", next)
	d, _ := in.Batch(ctx, first.ID())
	fmt.Println(d.States)
	// Output:
	// default [0 2 0 0] 0
	// urgent [0 0 1 0] 0
	// urgent square 1 false
	// default square 2 false
	// next ""
	// [pending pending]
}
