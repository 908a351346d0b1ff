package natsbroker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/queuetest"
)

// TestAhead: a batch this broker enqueued, up to preSize tasks, is followed
// on the results feed from before its first task is published, so that its
// Subscribe replays nothing; the results held that way until Subscribe
// takes them stay within preBytes, the oldest dropped past it, and the
// Subscribe of a dropped one reads the stream instead and misses nothing.
func TestAhead(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(time.Minute))
	defer cancel()
	js := startJS(ctx, t)
	b, c := clientBroker(ctx, t, js, &Config{Prefix: "ahead"})
	kind := queue.NewKind[int, string]("natsbroker.ahead")
	w, err := queue.NewWorker(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	queue.HandleFunc(w, kind, func(_ context.Context, n int) (string, error) { return strings.Repeat("x", n), nil })
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	ahead := func(id string) (held, total int, ok bool) {
		b.fmu.Lock()
		defer b.fmu.Unlock()
		s := b.pre[id]
		if s != nil {
			held = s.held
		}
		return held, b.preHeld, s != nil
	}
	awaitAll := func(batch *queue.Batch[string], n, size int) {
		t.Helper()
		outs, err := batch.Await(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(outs) != n {
			t.Fatalf("%d outputs, want %d", len(outs), n)
		}
		for i, o := range outs {
			if len(o) != size {
				t.Fatalf("output %d is %d bytes, want %d", i, len(o), size)
			}
		}
	}

	// The feed starts with the first Subscribe.
	first, err := queue.EnqueueBatch(ctx, c, kind, []int{1})
	if err != nil {
		t.Fatal(err)
	}
	awaitAll(first, 1, 1)

	// Larger than the 4,096 tasks that used to be the limit: followed
	// ahead, and handed over whole.
	in := make([]int, 5000)
	for i := range in {
		in[i] = 1
	}
	big, err := queue.EnqueueBatch(ctx, c, kind, in)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := ahead(big.ID()); !ok {
		t.Fatalf("batch of %d tasks not followed ahead", len(in))
	}
	awaitAll(big, len(in), 1)
	if held, total, ok := ahead(big.ID()); ok || held != 0 || total != 0 {
		t.Fatalf("after Await: still ahead %v, holding %d of %d bytes; want none", ok, held, total)
	}

	// Results past preBytes before anyone awaits: dropped, and read from
	// the stream by the Subscribe that comes later.
	const size = 900 << 10
	n := preBytes/size + 4
	in = make([]int, n)
	for i := range in {
		in[i] = size
	}
	heavy, err := queue.EnqueueBatch(ctx, c, kind, in)
	if err != nil {
		t.Fatal(err)
	}
	polled(ctx, t, "results held ahead past the budget", func() (bool, any) {
		held, total, ok := ahead(heavy.ID())
		if total > preBytes {
			t.Fatalf("%d bytes held ahead, over the budget of %d", total, preBytes)
		}
		return !ok, held
	})
	awaitAll(heavy, n, size)
}
