package natsbroker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
)

// TestBoundedQueueDelayedTasks: delayed tasks wait in a stream of their own,
// so a bounded queue whose places are all taken by delayed tasks still runs
// them when they come due, and a delayed task that comes due while the
// levels are full is promoted once a place frees.
func TestBoundedQueueDelayedTasks(t *testing.T) {
	t.Parallel()
	_, b, c, ctx := testBroker(t, natsbroker.Config{MaxDepth: 2, AckWait: 2 * time.Second})
	// Both places of the delay stream, then both of the levels.
	delayed, err := queue.EnqueueBatch(ctx, c, procKind, []int{1, 2}, queue.WithDelay(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := queue.Enqueue(ctx, c, procKind, 3, queue.WithDelay(time.Minute)); !errors.Is(err, queue.ErrQueueFull) {
		t.Fatalf("a third delayed task in a queue bounded at 2: %v, want ErrQueueFull", err)
	}
	ready, err := queue.EnqueueBatch(ctx, c, procKind, []int{4, 5})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := b.Depth(ctx, queue.DefaultQueue); err != nil || d != ([queue.NumPriorities]int{0, 4, 0, 0}) {
		t.Fatalf("Depth = %v, %v; want 4 tasks at the normal level", d, err)
	}
	// Hold the two ready tasks past the delayed ones' due time: the levels
	// stay full, and the promotion must wait for a place, not fail for good.
	var held [2]queue.Delivery
	if n := claimSome(t, ctx, b, time.Minute, held[:]); n != 2 {
		t.Fatalf("claimed %d ready tasks, want 2", n)
	}
	time.Sleep(500 * time.Millisecond) // past the delayed tasks' due time; nothing to wait on
	var none [2]queue.Delivery
	if n, err := b.Claim(ctx, queue.DefaultQueue, queue.PriorityNormal, time.Minute, none[:]); n != 0 || err != nil {
		t.Fatalf("Claim while the levels are full = %d, %v; want nothing yet", n, err)
	}
	completeWith(t, ctx, b, held[:], func(i int) int { return 2 * []int{4, 5}[i] })
	w, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	queue.HandleFunc(w, procKind, func(ctx context.Context, n int) (procOut, error) { return procOut{V: 2 * n}, nil })
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(context.Background())
	got, err := delayed.Await(ctx)
	if err != nil || len(got) != 2 || got[0].V != 2 || got[1].V != 4 {
		t.Fatalf("delayed batch: %+v, %v; want 2 and 4", got, err)
	}
	if got, err := ready.Await(ctx); err != nil || got[0].V != 8 || got[1].V != 10 {
		t.Fatalf("ready batch: %+v, %v; want 8 and 10", got, err)
	}
}

// TestDelayedEnqueueRollback: an enqueue of delayed tasks that fails (here:
// its batch ID is in use) takes back its own tasks from the delayed tasks'
// stream, and nothing of the batch that holds the ID.
func TestDelayedEnqueueRollback(t *testing.T) {
	t.Parallel()
	const prefix = "rollback"
	js, b, _, ctx := testBroker(t, natsbroker.Config{Prefix: prefix})
	sub := func(runAt time.Time) *queue.Submission {
		return &queue.Submission{BatchID: "A", Queue: queue.DefaultQueue, Kind: procKind.Name(), Priority: queue.PriorityNormal,
			MaxAttempts: 1, RunAt: runAt, Payloads: [][]byte{[]byte("1"), []byte("2"), []byte("3")}}
	}
	if _, err := b.Enqueue(ctx, sub(time.Time{})); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Enqueue(ctx, sub(time.Now().Add(time.Hour))); err == nil {
		t.Fatal("a second batch with ID A was accepted")
	}
	waitSubjects(t, ctx, js, prefix, queue.DefaultQueue, map[string]uint64{prefix + ".q.default.1": 3})
	var dst [4]queue.Delivery
	if n := claimSome(t, ctx, b, time.Minute, dst[:]); n != 3 {
		t.Fatalf("claimed %d tasks of batch A, want its 3", n)
	}
}

// TestPromotionPartlyFails: delayed tasks come due while the levels have
// room for one of them: the one promoted leaves the delayed tasks' stream at
// once (no double count, its place there freed), the other waits there and
// is promoted once a place frees.
func TestPromotionPartlyFails(t *testing.T) {
	t.Parallel()
	const prefix = "partly"
	js, b, c, ctx := testBroker(t, natsbroker.Config{Prefix: prefix, MaxDepth: 2, AckWait: 2 * time.Second})
	delayed, err := queue.EnqueueBatch(ctx, c, procKind, []int{1, 2}, queue.WithDelay(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	filler, err := queue.Enqueue(ctx, c, procKind, 3) // one of the levels' two places
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // past the delayed tasks' due time; nothing to wait on
	var dst [4]queue.Delivery
	n, err := b.Claim(ctx, queue.DefaultQueue, queue.PriorityNormal, time.Minute, dst[:]) // promotes what fits
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, d := range dst[:n] {
		got[d.ID()] = true
	}
	if !got[filler.ID()] || n != 2 {
		t.Fatalf("claimed %v; want the ready task and one promoted task", got)
	}
	waitSubjects(t, ctx, js, prefix, queue.DefaultQueue, map[string]uint64{prefix + ".q.default.1": 2, prefix + ".qd.default.1": 1})
	completeWith(t, ctx, b, dst[:n], func(i int) int { return 2 * []int{1, 2}[i] })
	// The place freed, the other delayed task is promoted (retried within
	// about a second) and runs.
	var rest [1]queue.Delivery
	if n := claimSome(t, ctx, b, time.Minute, rest[:]); n != 1 || rest[0].BatchID != delayed.ID() || rest[0].Attempt != 1 {
		t.Fatalf("claimed %d: %+v; want the other delayed task at attempt 1", n, rest[0].Message)
	}
}
