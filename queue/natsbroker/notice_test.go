package natsbroker_test

import (
	"context"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
)

// TestCancelSeenByOtherBrokers: a broker that has not claimed a task of a
// batch yet learns of the batch's cancel either from the notice it heard
// (it was listening when the batch was enqueued: no record read) or, when
// it started listening after the batch was enqueued, from the batch
// record: either way the tasks it then claims come cancelled.
func TestCancelSeenByOtherBrokers(t *testing.T) {
	t.Parallel()
	s := embedded(t, false)
	cfg := natsbroker.Config{Prefix: "notice"}
	producerJS := connect(t, s)
	producer := newBroker(t, producerJS, cfg)
	earlyJS := connect(t, s)
	early := newBroker(t, earlyJS, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := queue.NewClient(producer, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The early broker listened a second before the batch (noticeSkew),
	// so its cancel notice is all it needs.
	time.Sleep(1100 * time.Millisecond)                           // the skew allowance is wall-clock time; nothing to wait on
	batch, err := queue.EnqueueBatch(ctx, c, procKind, ints(300)) // packed: 4 tasks a message
	if err != nil {
		t.Fatal(err)
	}
	if err := batch.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	// Let the notice reach the early broker's connection before it claims,
	// so that the claim finds the batch cancelled before first sight.
	if err := producerJS.Conn().FlushWithContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := earlyJS.Conn().FlushWithContext(ctx); err != nil {
		t.Fatal(err)
	}
	late := newBroker(t, connect(t, s), cfg)
	for _, b := range []struct {
		name string
		b    *natsbroker.Broker
		wait time.Duration
	}{{"early", early, 5 * time.Second}, {"late", late, 0}} {
		var dst [8]queue.Delivery
		n, err := b.b.Claim(ctx, queue.DefaultQueue, queue.PriorityNormal, time.Minute, dst[:])
		if err != nil || n == 0 {
			t.Fatalf("%s broker: Claim = %d, %v; want tasks", b.name, n, err)
		}
		for _, d := range dst[:n] {
			if d.BatchID != batch.ID() {
				t.Fatalf("%s broker claimed task %s of another batch", b.name, d.ID())
			}
			if !closedWithin(d.Canceled, b.wait) {
				t.Fatalf("%s broker: task %s of a cancelled batch is not marked cancelled", b.name, d.ID())
			}
		}
	}
}

// closedWithin reports whether ch is closed now or within d.
func closedWithin(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	default:
	}
	if d <= 0 {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}
