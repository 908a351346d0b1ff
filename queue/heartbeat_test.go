package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// lateReader is a broker whose Extend reads the deliveries after the inner broker's
// lock is released, as a networked broker does while it talks to its server: nothing
// orders those reads with what the worker does next.
type lateReader struct{ *membroker.Broker }

func (b lateReader) Extend(ctx context.Context, lease time.Duration, ds []*queue.Delivery) error {
	err := b.Broker.Extend(ctx, lease, ds)
	for _, d := range ds {
		_ = d.ID() + d.Queue
	}
	return err
}

// TestHeartbeatWhileRunnersReclaim keeps runners claiming short groups while the
// heartbeat extends leases every few milliseconds: under -race, a heartbeat that read
// a runner's delivery buffer while the runner reused it for its next claim showed here.
func TestHeartbeatWhileRunnersReclaim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mb, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	broker := lateReader{mb}
	kind := queue.NewKind[int, int]("beat")
	w, err := queue.NewWorker(broker, &queue.WorkerConfig{Concurrency: 2, Lease: 15 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	queue.HandleFunc(w, kind, func(ctx context.Context, n int) (int, error) {
		if n%50 == 0 {
			time.Sleep(time.Millisecond) // hold some groups across a heartbeat; not a wait for an event
		}
		return n, nil
	})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(ctx)
	c, err := queue.NewClient(broker, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := make([]int, 200)
	for i := range in {
		in[i] = i
	}
	for deadline := time.Now().Add(150 * time.Millisecond); time.Now().Before(deadline); {
		b, err := queue.EnqueueBatch(ctx, c, kind, in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := b.Await(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range out {
			if v != i {
				t.Fatalf("result %d = %d", i, v)
			}
		}
	}
}
