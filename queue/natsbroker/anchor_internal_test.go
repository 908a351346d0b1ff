package natsbroker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/queuetest"
)

// anchors returns how many anchors queue q's stream holds.
func anchors(ctx context.Context, t *testing.T, b *Broker, q *bqueue) uint64 {
	t.Helper()
	info, err := q.stream.Info(ctx, jetstream.WithSubjectFilter(b.anchorSubj(q)))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[b.anchorSubj(q)]
}

// polled calls cond every 10 ms until it reports true, for at most 30 s
// (scaled by queuetest.Liveness): for what follows an acknowledgement, which
// nothing signals. It fails the test with what and cond's last value.
func polled(ctx context.Context, t *testing.T, what string, cond func() (bool, any)) {
	t.Helper()
	deadline := time.Now().Add(queuetest.Liveness(30 * time.Second))
	for {
		ok, v := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("%s: %v after %v", what, v, queuetest.Liveness(30*time.Second))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAnchor: an unbounded queue on files keeps one anchor in its stream,
// which nothing claims or counts; it moves once a megabyte of tasks came
// after it, leaving one; a second broker finds it; of two brokers moving it
// at once one does; a bounded queue and a queue in memory have none.
func TestAnchor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(time.Minute))
	defer cancel()
	js := startJS(ctx, t)
	b, c := clientBroker(ctx, t, js, &Config{Prefix: "anc", QueueMaxDepth: map[string]int{"bounded": 10}})
	kind := queue.NewKind[string, int]("natsbroker.anchor")
	w, err := queue.NewWorker(b, &queue.WorkerConfig{Queues: []string{queue.DefaultQueue, "bounded"}})
	if err != nil {
		t.Fatal(err)
	}
	queue.HandleFunc(w, kind, func(_ context.Context, s string) (int, error) { return len(s), nil })
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := w.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	}()
	await := func(name string, ins []string) {
		t.Helper()
		batch, err := queue.EnqueueBatch(ctx, c, kind, ins, queue.WithQueue(name))
		if err != nil {
			t.Fatal(err)
		}
		outs, err := batch.Await(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range outs {
			if n != len(ins[i]) {
				t.Fatalf("task %d: %d, want %d", i, n, len(ins[i]))
			}
		}
	}
	await(queue.DefaultQueue, []string{"one"})
	q, err := b.queue(ctx, queue.DefaultQueue)
	if err != nil {
		t.Fatal(err)
	}
	first := q.anchor.Load()
	if n := anchors(ctx, t, b, q); n != 1 || first == 0 {
		t.Fatalf("the queue's stream holds %d anchors (sequence %d), want one", n, first)
	}
	// The task's acknowledgement may reach the server just after its
	// outcome reached the awaiter.
	polled(ctx, t, "the depth of a queue holding only its anchor", func() (bool, any) {
		d, err := b.Depth(ctx, queue.DefaultQueue)
		if err != nil {
			t.Fatal(err)
		}
		return d == [queue.NumPriorities]int{}, d
	})

	// A megabyte and a bit of tasks: the anchor moves, and one is left.
	ins := make([]string, 1100)
	for i := range ins {
		ins[i] = strings.Repeat("x", 1000+i%7)
	}
	await(queue.DefaultQueue, ins)
	for deadline := time.Now().Add(queuetest.Liveness(20 * time.Second)); ; {
		// The move runs beside the enqueue that started it: poll.
		now := q.anchor.Load()
		if now > first && !q.anchoring.Load() && anchors(ctx, t, b, q) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the anchor at %d (first at %d) with %d anchors in the stream, want one moved", now, first, anchors(ctx, t, b, q))
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Another broker finds it; of two moving it at once, one does.
	b2, _ := clientBroker(ctx, t, js, &Config{Prefix: "anc"})
	q2, err := b2.queue(ctx, queue.DefaultQueue)
	if err != nil {
		t.Fatal(err)
	}
	if q2.anchor.Load() != q.anchor.Load() {
		t.Fatalf("a second broker found the anchor at %d, want %d", q2.anchor.Load(), q.anchor.Load())
	}
	old := q.anchor.Load()
	if moved := b.storeAnchor(ctx, q, old); moved == b2.storeAnchor(ctx, q2, old) {
		t.Fatalf("two brokers moving the anchor at %d: both reported %v, want one move", old, moved)
	}
	if a, a2 := q.anchor.Load(), q2.anchor.Load(); a != a2 || a <= old {
		t.Fatalf("after a move the brokers know the anchor at %d and %d, want one sequence after %d", a, a2, old)
	}

	// A bounded queue has none (its bound counts messages), nor does a
	// queue in memory.
	await("bounded", []string{"two"})
	qb, err := b.queue(ctx, "bounded")
	if err != nil {
		t.Fatal(err)
	}
	if n := anchors(ctx, t, b, qb); n != 0 || qb.anchor.Load() != 0 {
		t.Fatalf("a bounded queue's stream holds %d anchors, want none", n)
	}
	bm, _ := clientBroker(ctx, t, js, &Config{Prefix: "ancm", Memory: true})
	qm, err := bm.queue(ctx, queue.DefaultQueue)
	if err != nil {
		t.Fatal(err)
	}
	if n := anchors(ctx, t, bm, qm); n != 0 {
		t.Fatalf("a queue in memory holds %d anchors, want none", n)
	}
}
