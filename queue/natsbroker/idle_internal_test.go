package natsbroker

import (
	"context"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/queuetest"
)

// run enqueues one task and awaits its result.
func run(ctx context.Context, c *queue.Client, k queue.Kind[int, int], in int) (int, error) {
	task, err := queue.Enqueue(ctx, c, k, in)
	if err != nil {
		return 0, err
	}
	return task.Await(ctx)
}

// TestIdlePull: a task enqueued while the worker waits for work comes to it
// through the idle pull it has out (see idlePull), not by a claim that a
// wake-up started; a batch's first message does, and the claim that takes
// it asks for the rest. Every result is right.
func TestIdlePull(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(time.Minute))
	defer cancel()
	js := startJS(ctx, t)
	wb, _ := clientBroker(ctx, t, js, &Config{Prefix: "idle"}) // the worker's
	_, c := clientBroker(ctx, t, js, &Config{Prefix: "idle"})  // the producer's
	kind := queue.NewKind[int, int]("natsbroker.idle")
	w, err := queue.NewWorker(wb, &queue.WorkerConfig{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	queue.HandleFunc(w, kind, func(_ context.Context, x int) (int, error) { return 2 * x, nil })
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := w.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	}()
	// idle waits until the worker waits for work with its idle pull out:
	// the broker has no signal for it, so it is polled.
	idle := func() {
		t.Helper()
		for ctx.Err() == nil {
			wb.mu.Lock()
			q := wb.queues[queue.DefaultQueue]
			wb.mu.Unlock()
			if q != nil && q.waiting(queue.PriorityNormal, time.Now().UnixNano()) {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatal("the worker never had an idle pull out")
	}
	// The queue exists once the worker claimed from it: start with a task.
	if _, err := run(ctx, c, kind, 1); err != nil {
		t.Fatal(err)
	}
	// A request can expire just as its task comes (then the wake-up
	// brings it): of three lone tasks, at least one comes to an idle pull.
	before := wb.idleTasks.Load()
	for i := range 3 {
		idle()
		if got, err := run(ctx, c, kind, 10+i); err != nil || got != 20+2*i {
			t.Fatalf("lone task %d: %d, %v; want %d", i, got, err, 20+2*i)
		}
	}
	if n := wb.idleTasks.Load() - before; n < 1 || n > 3 {
		t.Fatalf("three lone tasks to an idle worker: %d task messages came to idle pulls, want 1 to 3", n)
	}
	idle()
	before = wb.idleTasks.Load()
	in := make([]int, 300)
	for i := range in {
		in[i] = i
	}
	batch, err := queue.EnqueueBatch(ctx, c, kind, in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := batch.Await(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != 2*i {
			t.Fatalf("batch: result %d = %d, want %d", i, v, 2*i)
		}
	}
	// Its first message comes to an idle pull, and the claim that takes it
	// fetches the rest; on a loaded machine the worker may find the level
	// empty for a moment, and go idle again, in the middle.
	if n := wb.idleTasks.Load() - before; n < 1 {
		t.Fatalf("a batch to an idle worker: %d task messages came to idle pulls, want at least its first", n)
	}
}

// TestIdleMoveBack: a task an idle pull brought that no runner takes goes
// back to its level without its delivery counted as an attempt, once even
// when moved twice (its acknowledgement lost), and keeps the attempts made
// before: delivered a second time (a retry) and moved, it runs as attempt 2.
func TestIdleMoveBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(time.Minute))
	defer cancel()
	b, c := clientBroker(ctx, t, startJS(ctx, t), &Config{Prefix: "moveback"})
	kind := queue.NewKind[int, int]("natsbroker.moveback")
	task, err := queue.Enqueue(ctx, c, kind, 7)
	if err != nil {
		t.Fatal(err)
	}
	level := queue.PriorityNormal
	q, err := b.queue(ctx, queue.DefaultQueue)
	if err != nil {
		t.Fatal(err)
	}
	fetch := func() taskMsg {
		t.Helper()
		var msgs []taskMsg
		for len(msgs) == 0 && ctx.Err() == nil {
			if msgs, err = b.pull.fetch(ctx, q.next[level], 1, time.Second, 5*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		return msgs[0]
	}
	if err := fetch().Nak(); err != nil { // the first attempt, handed back
		t.Fatal(err)
	}
	f := fetched{msg: fetch(), at: time.Now().UnixNano(), idle: true}
	b.moveBack(f)
	b.moveBack(f) // as if the first move's acknowledgement was lost: its copy is a duplicate
	info, err := q.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Msgs - anchors(ctx, t, b, q); n != 1 {
		t.Fatalf("after two moves of one message the stream holds %d task messages, want its one copy", n)
	}
	dst := make([]queue.Delivery, 4)
	var n int
	for n == 0 && ctx.Err() == nil {
		if n, err = b.Claim(ctx, queue.DefaultQueue, level, time.Minute, dst); err != nil {
			t.Fatal(err)
		}
	}
	if n != 1 || dst[0].ID() != task.ID() || dst[0].Attempt != 2 {
		t.Fatalf("claimed %d tasks, first %s at attempt %d; want task %s at attempt 2", n, dst[0].ID(), dst[0].Attempt, task.ID())
	}
	if err := b.Complete(ctx, []queue.Completion{{Delivery: &dst[0], Outcome: queue.Outcome{Output: []byte("14")}}}); err != nil {
		t.Fatal(err)
	}
	if got, err := task.Await(ctx); err != nil || got != 14 {
		t.Fatalf("result %d, %v; want 14", got, err)
	}
}
