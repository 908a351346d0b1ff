package queue_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// copiesBroker stands for a broker that delivered a copy of every odd task
// elsewhere, whose outcome (minus the index) is recorded by the time a
// runner reaches the task here: Finished records it, as the other copy's
// runner did, and settles the delivery.
type copiesBroker struct {
	*membroker.Broker
	ctx context.Context
}

func (b *copiesBroker) Finished(d *queue.Delivery) bool {
	if d.Index%2 == 0 {
		return false
	}
	out := []byte(strconv.Itoa(-d.Index))
	if err := b.Complete(b.ctx, []queue.Completion{{Delivery: d, Outcome: queue.Outcome{Index: d.Index, Output: out}}}); err != nil {
		panic(err)
	}
	return true
}

// TestRecheckedCopiesDoNotRun: a worker on a Rechecker asks before it runs
// each claimed task, and one whose outcome is recorded already neither runs
// nor reports an event.
func TestRecheckedCopiesDoNotRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mb, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &copiesBroker{Broker: mb, ctx: ctx}
	var (
		mu      sync.Mutex
		ran     []int
		started int
	)
	kind := queue.NewKind[int, int]("queue_test.recheck")
	w, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 2, Observer: queue.ObserverFunc(func(e queue.Event) {
		if e.Type == queue.EventStarted {
			mu.Lock()
			started++
			mu.Unlock()
		}
	})})
	if err != nil {
		t.Fatal(err)
	}
	queue.HandleFunc(w, kind, func(_ context.Context, i int) (int, error) {
		mu.Lock()
		ran = append(ran, i)
		mu.Unlock()
		return 2 * i, nil
	})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := w.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	}()
	c, err := queue.NewClient(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	ins := make([]int, n)
	for i := range ins {
		ins[i] = i
	}
	batch, err := queue.EnqueueBatch(ctx, c, kind, ins)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := batch.Await(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range outs {
		want := 2 * i
		if i%2 == 1 {
			want = -i
		}
		if o != want {
			t.Fatalf("task %d: %d, want %d", i, o, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ran) != n/2 || started != n/2 {
		t.Fatalf("%d tasks ran and %d started, want %d: the even ones", len(ran), started, n/2)
	}
	for _, i := range ran {
		if i%2 == 1 {
			t.Fatalf("task %d ran, though a copy of it had finished", i)
		}
	}
}
