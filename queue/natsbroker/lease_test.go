package natsbroker_test

import (
	"context"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/queuetest"
)

// TestStaleRetryAfterServerRedelivery: a worker holds a task past AckWait
// without a heartbeat (its lease is as long as AckWait, so the server
// enforces it), the server delivers it again, and the first worker's late
// Extend and Retry must not touch the copy the second one runs (JetStream
// matches an acknowledgement to the message, not to the delivery).
func TestStaleRetryAfterServerRedelivery(t *testing.T) {
	t.Parallel()
	s := embedded(t, false)
	b := newBroker(t, connect(t, s), natsbroker.Config{Prefix: "stale", AckWait: 500 * time.Millisecond, IdleRecheck: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(2*time.Minute))
	defer cancel()
	c, err := queue.NewClient(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	task, err := queue.Enqueue(ctx, c, procKind, 21)
	if err != nil {
		t.Fatal(err)
	}
	var first, second, dst [1]queue.Delivery
	if n, err := b.Claim(ctx, queue.DefaultQueue, queue.PriorityNormal, time.Hour, first[:]); n != 1 || err != nil {
		t.Fatalf("Claim = %d, %v", n, err)
	}
	// claim waits for a wake-up (at the latest IdleRecheck) and claims.
	claim := func(d []queue.Delivery) int {
		t.Helper()
		ch, err := b.Notify(ctx, []string{queue.DefaultQueue})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatal("no wake-up")
		}
		n, err := b.Claim(ctx, queue.DefaultQueue, queue.PriorityNormal, time.Hour, d)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for claim(second[:]) == 0 {
	}
	if second[0].Attempt != 2 {
		t.Fatalf("redelivery Attempt %d, want 2", second[0].Attempt)
	}
	// The live copy's heartbeat, so that it stays leased while we look.
	if err := b.Extend(ctx, time.Hour, []*queue.Delivery{&second[0]}); err != nil {
		t.Fatal(err)
	}
	// The stale holder wakes up late.
	if err := b.Extend(ctx, time.Hour, []*queue.Delivery{&first[0]}); err != nil {
		t.Fatal(err)
	}
	if err := b.Retry(ctx, &first[0], time.Time{}, &queue.AttemptError{Attempt: 1, Error: "late"}); err != nil {
		t.Fatal(err)
	}
	// Had the stale retry handed the live copy back, it would be claimable
	// again within a few wake-ups.
	for range 3 {
		if n := claim(dst[:]); n != 0 {
			t.Fatalf("claimed task %s (attempt %d) while its live copy is leased: the stale retry handed it back", dst[0].ID(), dst[0].Attempt)
		}
	}
	out := []byte(`{"v":42}`)
	if err := b.Complete(ctx, []queue.Completion{{Delivery: &second[0], Outcome: queue.Outcome{Index: 0, Output: out}}}); err != nil {
		t.Fatal(err)
	}
	got, err := task.Await(ctx)
	if err != nil || got.V != 42 {
		t.Fatalf("Wait = %+v, %v; want 42", got, err)
	}
}
