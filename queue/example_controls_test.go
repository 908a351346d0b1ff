package queue_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// At most 2 calls to a partner's API at once, and at most 50 a second,
// across every worker that shares the broker.
func ExampleGlobalLimit() {
	ctx := context.Background()
	broker, _ := membroker.New(nil)
	defer broker.Close()
	call := queue.NewKind[int, int]("partner.call")
	worker, err := queue.NewWorker(broker, &queue.WorkerConfig{
		Concurrency:  8,
		GlobalLimits: []queue.GlobalLimit{{Queue: queue.DefaultQueue, Kind: call.Name(), Max: 2}},
		GlobalRates:  []queue.GlobalRate{{Queue: queue.DefaultQueue, Kind: call.Name(), PerSecond: 50, Burst: 5}},
	})
	if err != nil {
		panic(err)
	}
	queue.HandleFunc(worker, call, func(ctx context.Context, n int) (int, error) { return n * n, nil })
	_ = worker.Start()
	defer worker.Shutdown(ctx)

	client, _ := queue.NewClient(broker, nil)
	batch, _ := queue.EnqueueBatch(ctx, client, call, []int{1, 2, 3, 4})
	out, err := batch.Await(ctx)
	fmt.Println(out, err)
	// Output: [1 4 9 16] <nil>
}

// Pause a queue: enqueues are accepted, nothing runs until Resume.
func ExamplePauser() {
	ctx := context.Background()
	broker, _ := membroker.New(nil)
	defer broker.Close()
	echo := queue.NewKind[string, string]("echo")
	worker, _ := queue.NewWorker(broker, nil)
	queue.HandleFunc(worker, echo, func(ctx context.Context, s string) (string, error) { return s, nil })
	_ = worker.Start()
	defer worker.Shutdown(ctx)

	_ = broker.Pause(ctx, queue.DefaultQueue)
	client, _ := queue.NewClient(broker, nil)
	task, _ := queue.Enqueue(ctx, client, echo, "after the pause")
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err := task.Await(short)
	cancel()
	fmt.Println("while paused:", err)
	_ = broker.Resume(ctx, queue.DefaultQueue)
	fmt.Println(task.Await(ctx))
	// Output:
	// while paused: context deadline exceeded
	// after the pause <nil>
}

// A task every 10 milliseconds, from a scheduler that any number of
// processes could run at once: each tick is enqueued once.
func ExamplePeriodic() {
	ctx := context.Background()
	broker, _ := membroker.New(nil)
	defer broker.Close()
	beat := queue.NewKind[string, string]("beat")
	got := make(chan string, 1)
	worker, _ := queue.NewWorker(broker, nil)
	queue.HandleFunc(worker, beat, func(ctx context.Context, s string) (string, error) {
		select {
		case got <- s:
		default:
		}
		return s, nil
	})
	_ = worker.Start()
	defer worker.Shutdown(ctx)

	sched, _ := queue.NewScheduler(broker, nil)
	every, _ := queue.Every(10 * time.Millisecond)
	_ = queue.Periodic(sched, "beat", every, beat, "tick")
	_ = sched.Start()
	defer sched.Shutdown(ctx)
	fmt.Println(<-got)
	// Output: tick
}
