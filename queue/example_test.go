package queue_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// The seed's third example, a task queue: enqueue items, let a worker
// process them, consume the processed results in input order.
func Example() {
	ctx := context.Background()
	broker, _ := membroker.New(nil)
	defer broker.Close()

	process := queue.NewKind[string, string]("process")
	worker, _ := queue.NewWorker(broker, &queue.WorkerConfig{Concurrency: 2})
	queue.HandleFunc(worker, process, func(ctx context.Context, item string) (string, error) {
		return "Processed: " + item, nil
	})
	if err := worker.Start(); err != nil {
		panic(err)
	}
	defer worker.Shutdown(ctx)

	client, _ := queue.NewClient(broker, nil)
	batch, err := queue.EnqueueBatch(ctx, client, process, []string{"Item 1", "Item 2", "Item 3"})
	if err != nil {
		panic(err)
	}
	results, err := batch.Await(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("Processed data: %q\n", results)
	// Output: Processed data: ["Processed: Item 1" "Processed: Item 2" "Processed: Item 3"]
}

// Enqueue one task and wait for its result.
func ExampleEnqueue() {
	ctx := context.Background()
	broker, _ := membroker.New(nil)
	defer broker.Close()
	upper := queue.NewKind[string, string]("upper")
	worker, _ := queue.NewWorker(broker, nil)
	queue.HandleFunc(worker, upper, func(ctx context.Context, s string) (string, error) {
		return strings.ToUpper(s), nil
	})
	_ = worker.Start()
	defer worker.Shutdown(ctx)

	client, _ := queue.NewClient(broker, nil)
	task, _ := queue.Enqueue(ctx, client, upper, "hello")
	out, err := task.Await(ctx)
	fmt.Println(out, err)
	// Output: HELLO <nil>
}

// AwaitSettled returns every outcome, index-aligned with the inputs, as
// asyncio.gather(..., return_exceptions=True) does.
func ExampleBatch_AwaitSettled() {
	ctx := context.Background()
	broker, _ := membroker.New(nil)
	defer broker.Close()
	half := queue.NewKind[int, int]("half")
	worker, _ := queue.NewWorker(broker, nil)
	queue.HandleFunc(worker, half, func(ctx context.Context, n int) (int, error) {
		if n%2 != 0 {
			return 0, queue.Permanent(fmt.Errorf("%d is odd", n))
		}
		return n / 2, nil
	})
	_ = worker.Start()
	defer worker.Shutdown(ctx)

	client, _ := queue.NewClient(broker, nil)
	batch, _ := queue.EnqueueBatch(ctx, client, half, []int{4, 7, 10})
	results, _ := batch.AwaitSettled(ctx)
	for i, r := range results {
		if r.Err != nil {
			fmt.Println(i, "failed:", errors.Is(r.Err, queue.ErrPermanent))
			continue
		}
		fmt.Println(i, r.Value)
	}
	// Output:
	// 0 2
	// 1 failed: true
	// 2 5
}
