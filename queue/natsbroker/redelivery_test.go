package natsbroker_test

import (
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
)

// TestRedeliveredPackRunsOnlyUnfinishedTasks: a worker claims a pack,
// records the outcomes of five of its tasks and goes silent; when the
// server delivers the pack again (AckWait), another broker hands out only
// the eleven tasks without an outcome, as a redelivery (attempt 2), and
// once they finish the queue is empty.
func TestRedeliveredPackRunsOnlyUnfinishedTasks(t *testing.T) {
	t.Parallel()
	js, a, c, ctx := testBroker(t, natsbroker.Config{Prefix: "redeliv", AckWait: 500 * time.Millisecond, IdleRecheck: 50 * time.Millisecond})
	b := newBroker(t, js, natsbroker.Config{Prefix: "redeliv", AckWait: 500 * time.Millisecond, IdleRecheck: 50 * time.Millisecond})
	batch, err := queue.EnqueueBatch(ctx, c, procKind, ints(packN))
	if err != nil {
		t.Fatal(err)
	}
	first := make([]queue.Delivery, 16)
	if n := claimSome(t, ctx, a, time.Hour, first); n != 16 {
		t.Fatalf("claimed %d tasks, want a pack of 16", n)
	}
	completeWith(t, ctx, a, first[:5], double)
	finished := map[int]bool{}
	for _, d := range first[:5] {
		finished[d.Index] = true
	}
	unfinished := map[int]bool{}
	for _, d := range first[5:] {
		unfinished[d.Index] = true
	}

	// Claimed and finished as they come, so that no lease of b's runs out.
	dst := make([]queue.Delivery, 64)
	for got := 0; got < packN-5; {
		n := claimSome(t, ctx, b, time.Hour, dst)
		for i := range dst[:n] {
			d := &dst[i]
			switch {
			case finished[d.Index]:
				t.Fatalf("task %d handed out again (attempt %d) though its outcome is recorded", d.Index, d.Attempt)
			case unfinished[d.Index]:
				checkDelivery(t, d, batch.ID(), 2)
			default:
				checkDelivery(t, d, batch.ID(), 1)
			}
			finished[d.Index] = true
		}
		completeWith(t, ctx, b, dst[:n], double)
		got += n
	}
	checkDrained(t, ctx, js, b, "redeliv", batch.ID())
}
