package queue_test

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// TestWorkerConcurrencyDefault checks that a zero WorkerConfig.Concurrency
// means the default, GOMAXPROCS, as every other zero field of the config
// does: GOMAXPROCS tasks that each wait for all of them to be running finish.
// A negative one is an error that says what is accepted.
func TestWorkerConcurrencyDefault(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	broker, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()

	_, err = queue.NewWorker(broker, &queue.WorkerConfig{Concurrency: -1})
	if want := "queue: bad config: WorkerConfig.Concurrency is -1: want 0 (default GOMAXPROCS) to 65536"; err == nil ||
		err.Error() != want || !errors.Is(err, queue.ErrBadConfig) {
		t.Errorf("Concurrency -1: error %v, want %q", err, want)
	}

	w, err := queue.NewWorker(broker, &queue.WorkerConfig{Concurrency: 0, MaxClaim: 1})
	if err != nil {
		t.Fatalf("Concurrency 0: %v, want the default", err)
	}
	n := runtime.GOMAXPROCS(0)
	var running atomic.Int32
	all := make(chan struct{})
	kind := queue.NewKind[int, int]("barrier")
	queue.HandleFunc(w, kind, func(ctx context.Context, i int) (int, error) {
		if int(running.Add(1)) == n {
			close(all)
		}
		select {
		case <-all:
			return i, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(ctx)
	c, err := queue.NewClient(broker, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := queue.EnqueueBatch(ctx, c, kind, make([]int, n))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Await(ctx); err != nil {
		t.Fatalf("%d tasks waiting for each other on a worker of default concurrency: %v (%d ran at once)", n, err, running.Load())
	}
}
