package natsbroker_test

import (
	"context"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/queuetest"
)

// TestCancelSeenByOtherBrokers: the cancel of a batch reaches every broker.
// One that already holds tasks of it learns from the notice, which closes
// their Canceled channels and those of the tasks it claims next; one that
// claims a task of it for the first time (listening since before the
// cancel, or started after it) reads the batch record, so that task comes
// cancelled at once. So does one that serves a worker: it reads the record
// ahead, on the enqueue's wake-up, likely before the cancel, and its first
// claim takes the notice, which came before the claim's tasks.
func TestCancelSeenByOtherBrokers(t *testing.T) {
	t.Parallel()
	s := embedded(t, false)
	cfg := natsbroker.Config{Prefix: "notice"}
	producer := newBroker(t, connect(t, s), cfg)
	early := newBroker(t, connect(t, s), cfg)
	heard := newBroker(t, connect(t, s), cfg)
	serving := newBroker(t, connect(t, s), cfg)
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(2*time.Minute))
	defer cancel()
	if _, err := serving.Notify(ctx, []string{queue.DefaultQueue}); err != nil { // as an idle worker
		t.Fatal(err)
	}
	c, err := queue.NewClient(producer, nil)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := queue.EnqueueBatch(ctx, c, procKind, ints(300)) // packed: 4 tasks a message
	if err != nil {
		t.Fatal(err)
	}
	claim := func(name string, b *natsbroker.Broker) []queue.Delivery {
		t.Helper()
		dst := make([]queue.Delivery, 8)
		n := claimSome(t, ctx, b, time.Minute, dst)
		for _, d := range dst[:n] {
			if d.BatchID != batch.ID() {
				t.Fatalf("%s broker claimed task %s of another batch", name, d.ID())
			}
		}
		return dst[:n]
	}
	held := claim("early", early)
	for _, d := range held {
		if closedWithin(d.Canceled, 0) {
			t.Fatalf("task %s marked cancelled before its batch was", d.ID())
		}
	}
	if err := batch.Cancel(ctx); err != nil { // returns once its notice is flushed
		t.Fatal(err)
	}
	late := newBroker(t, connect(t, s), cfg)
	for _, b := range []struct {
		name string
		ds   []queue.Delivery
		wait time.Duration
	}{
		{"early (held before the cancel)", held, 5 * time.Second},
		{"early (claimed after)", claim("early", early), 5 * time.Second},
		{"listening, first claim", claim("heard", heard), 0},
		{"serving, first claim", claim("serving", serving), 0},
		{"started after, first claim", claim("late", late), 0},
	} {
		for _, d := range b.ds {
			if !closedWithin(d.Canceled, b.wait) {
				t.Fatalf("%s: task %s of a cancelled batch is not marked cancelled", b.name, d.ID())
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
