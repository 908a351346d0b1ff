package queue_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// awayBroker fails one report made in the middle of a claimed group, as a
// broker does while its server restarts, and records what the worker did
// after it.
type awayBroker struct {
	*membroker.Broker

	mu        sync.Mutex
	claimed   int  // tasks of the last claim
	ran       int  // of them run so far
	failed    bool // the one failure happened
	runsAfter int  // runs after the failure and before the next claim
	claimed2  bool // a claim came after the failure
}

// awayRTT is the broker's round trip: long next to a task, so that claims
// grow to groups of several tasks.
const awayRTT = 20 * time.Millisecond

func (b *awayBroker) Claim(ctx context.Context, q string, l queue.Priority, lease time.Duration, dst []queue.Delivery) (int, error) {
	time.Sleep(awayRTT) // the link's round trip, on the bubble's clock
	n, err := b.Broker.Claim(ctx, q, l, lease, dst)
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > 0 {
		b.claimed, b.ran = n, 0
		b.claimed2 = b.claimed2 || b.failed
	}
	return n, err
}

func (b *awayBroker) Complete(ctx context.Context, cs []queue.Completion) error {
	b.mu.Lock()
	fail := !b.failed && b.claimed >= 3 && b.ran < b.claimed
	b.failed = b.failed || fail
	b.mu.Unlock()
	time.Sleep(awayRTT)
	if fail {
		return errors.New("server is disconnected")
	}
	return b.Broker.Complete(ctx, cs)
}

func (b *awayBroker) run() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ran++
	if b.failed && !b.claimed2 {
		b.runsAfter++
	}
}

// TestReportFailedLeavesGroup: once a report fails in the middle of a
// claimed group, the runner starts no more tasks of that group besides the
// one whose start made the report (their leases
// likely lapse with the broker, which then hands them out again); they run
// once claimed again, and the batch finishes.
func TestReportFailedLeavesGroup(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mb, err := membroker.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer mb.Close()
		b := &awayBroker{Broker: mb}
		kind := queue.NewKind[int, int]("away")
		w, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 1, MaxClaim: 16, Lease: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		queue.HandleFunc(w, kind, func(ctx context.Context, n int) (int, error) {
			b.run()
			time.Sleep(5 * time.Millisecond) // longer than the runner's report interval
			return n, nil
		})
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		defer w.Shutdown(ctx)
		c, err := queue.NewClient(b, nil)
		if err != nil {
			t.Fatal(err)
		}
		batch, err := queue.EnqueueBatch(ctx, c, kind, make([]int, 200))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := batch.Await(ctx); err != nil {
			t.Fatal(err)
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if !b.failed {
			t.Fatal("no report failed mid-group: the test did not test")
		}
		// The task whose start made the report runs; no other does.
		if b.runsAfter > 1 {
			t.Errorf("%d tasks of the group ran after its report failed, before the next claim; want 1 at most", b.runsAfter)
		}
	})
}
