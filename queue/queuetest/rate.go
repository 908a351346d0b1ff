package queuetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
)

// testGlobalRate: three workers share a global rate of 200 tasks a second
// with a burst of 10 on a kind, over 410 tasks (two seconds). No process
// starts them faster: the last starts at least (410-10)/200 s after the
// enqueue. On the fake clock (InBubble) also: in every stretch of time at
// most burst + rate×length start, and the whole runs within 5% of the
// rate; on the real clock the achieved rate is logged.
func testGlobalRate(t *testing.T, e *env) {
	if _, ok := e.b.(queue.RateLimiter); !ok {
		t.Skipf("%T does not implement queue.RateLimiter", e.b)
	}
	const q, n = "queuetest-rated", 410
	rate := queue.GlobalRate{Queue: q, Kind: limited.Name(), PerSecond: 200, Burst: 10}
	ctx := e.ctx()
	var mu sync.Mutex
	var starts []time.Time
	for range 3 {
		e.worker(&queue.WorkerConfig{Concurrency: 4, Queues: []string{q}, GlobalRates: []queue.GlobalRate{rate}}, func(w *queue.Worker) {
			queue.HandleFunc(w, limited, func(ctx context.Context, n int) (int, error) {
				mu.Lock()
				starts = append(starts, time.Now())
				mu.Unlock()
				return n, nil
			})
		})
	}
	enq := time.Now()
	b := try(queue.EnqueueBatch(ctx, e.c, limited, ints(n), queue.WithQueue(q))).get(t)
	if got := try(b.Await(ctx)).get(t); len(got) != n {
		t.Fatalf("%d results, want %d", len(got), n)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	if len(starts) != n {
		t.Fatalf("%d starts recorded, want %d", len(starts), n)
	}
	per := time.Duration(float64(time.Second) / rate.PerSecond)
	least := time.Duration(n-rate.Burst) * per
	took := starts[n-1].Sub(enq)
	if took < least-time.Millisecond {
		t.Fatalf("%d tasks started within %v of the enqueue: a rate of %v/s with a burst of %d needs at least %v",
			n, took, rate.PerSecond, rate.Burst, least)
	}
	t.Logf("%d tasks started over %v after the enqueue: %.1f a second beyond the burst (limit %v)",
		n, took, float64(n-rate.Burst)/took.Seconds(), rate.PerSecond)
	if !e.bubble {
		return
	}
	for i := range starts {
		for j := i + rate.Burst; j < n; j++ {
			if in := j - i + 1; float64(in) > float64(rate.Burst)+rate.PerSecond*starts[j].Sub(starts[i]).Seconds()+1e-6 {
				t.Fatalf("%d tasks started within %v: want at most %d + %v/s", in, starts[j].Sub(starts[i]), rate.Burst, rate.PerSecond)
			}
		}
	}
	if took > least+least/20 {
		t.Fatalf("the tasks took %v to start: want within 5%% of %v", took, least)
	}
}

// testRateReturn: tokens given back are the bucket's again, never more than
// a full bucket; giving back to a bucket never used, or what was not
// taken, grants nothing beyond the burst; bad values are refused with
// ErrBadInput.
func testRateReturn(t *testing.T, e *env) {
	rl, ok := e.b.(queue.RateLimiter)
	if !ok {
		t.Skipf("%T does not implement queue.RateLimiter", e.b)
	}
	ctx := e.ctx()
	const name, rate, burst = "k:returned@queuetest", 0.001, 5 // a token every 1,000 s: none comes back by itself
	take := func(n int) int {
		t.Helper()
		took, _, err := rl.TakeTokens(ctx, name, n, rate, burst)
		if err != nil {
			t.Fatal(err)
		}
		return took
	}
	give := func(n int) {
		t.Helper()
		if err := rl.ReturnTokens(ctx, name, n, rate); err != nil {
			t.Fatal(err)
		}
	}
	give(3) // never used: nothing to give back to
	if got := take(burst + 1); got != burst {
		t.Fatalf("a fresh bucket gave %d tokens, want its burst %d", got, burst)
	}
	if got := take(1); got != 0 {
		t.Fatalf("an empty bucket gave %d tokens, want 0", got)
	}
	give(2)
	if got := take(burst); got != 2 {
		t.Fatalf("after giving 2 back, the bucket gave %d, want 2", got)
	}
	give(burst)
	give(100) // more than was taken: the bucket stays full
	if got := take(2 * burst); got != burst {
		t.Fatalf("after giving back more than was taken, the bucket gave %d, want its burst %d", got, burst)
	}
	for _, c := range []struct {
		n    int
		rate float64
	}{{0, 1}, {-1, 1}, {1, 0}, {1, -1}, {1, queue.MaxRate * 2}} {
		if err := rl.ReturnTokens(ctx, name, c.n, c.rate); !errors.Is(err, queue.ErrBadInput) {
			t.Errorf("ReturnTokens(n %d, rate %v) = %v, want ErrBadInput", c.n, c.rate, err)
		}
	}
}
