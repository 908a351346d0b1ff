package queue_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// farBroker is a broker behind a slow link: each Claim and Complete takes
// rtt more (in a synctest bubble, fake time). It records the most tasks a
// claim asked for.
type farBroker struct {
	*membroker.Broker
	rtt time.Duration

	mu       sync.Mutex
	maxAsked int
}

func (b *farBroker) Claim(ctx context.Context, q string, l queue.Priority, lease time.Duration, dst []queue.Delivery) (int, error) {
	b.mu.Lock()
	b.maxAsked = max(b.maxAsked, len(dst))
	b.mu.Unlock()
	time.Sleep(b.rtt) // the link's round trip, on the bubble's clock
	return b.Broker.Claim(ctx, q, l, lease, dst)
}

func (b *farBroker) Complete(ctx context.Context, cs []queue.Completion) error {
	time.Sleep(b.rtt)
	return b.Broker.Complete(ctx, cs)
}

// TestClaimSizeFollowsTheLink: a worker sizes its claims by how long its
// handlers run against how long it waits on the broker. Tasks much shorter
// than a broker round trip are claimed MaxClaim at a time, however slow the
// link (claims of one task each once a round trip passed 50 µs were a cliff:
// four round trips a task over TCP); tasks much longer than a round trip
// are claimed one at a time, so that a claim does not hold back work other
// runners could start.
func TestClaimSizeFollowsTheLink(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		rtt, task time.Duration
		want      func(maxAsked int) bool
		wantText  string
	}{
		{"fast tasks, slow link", 5 * time.Millisecond, 0, func(n int) bool { return n == 16 }, "16 (MaxClaim)"},
		{"fast tasks, slower link", 50 * time.Millisecond, 0, func(n int) bool { return n == 16 }, "16 (MaxClaim)"},
		{"slow tasks, fast link", 10 * time.Microsecond, 10 * time.Millisecond, func(n int) bool { return n == 1 }, "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				mb, err := membroker.New(nil)
				if err != nil {
					t.Fatal(err)
				}
				defer mb.Close()
				b := &farBroker{Broker: mb, rtt: tc.rtt}
				kind := queue.NewKind[int, int]("far")
				w, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 1, MaxClaim: 16})
				if err != nil {
					t.Fatal(err)
				}
				queue.HandleFunc(w, kind, func(ctx context.Context, n int) (int, error) {
					time.Sleep(tc.task) // the handler's work, on the bubble's clock
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
				got := b.maxAsked
				b.mu.Unlock()
				if !tc.want(got) {
					t.Errorf("largest claim asked for %d tasks, want %s", got, tc.wantText)
				}
			})
		})
	}
}
