package membroker_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
	"github.com/gather-go/gather/queue/queuetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queue.Broker {
		b, err := membroker.New(&membroker.Config{QueueMaxDepth: map[string]int{"bounded": 100}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}, queuetest.InBubble(), queuetest.BoundedQueue("bounded", 100))
}

// TestConformanceRealClock runs the suite the way network brokers do, on the
// real clock, to keep that mode of the suite honest.
func TestConformanceRealClock(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queue.Broker {
		b, err := membroker.New(&membroker.Config{QueueMaxDepth: map[string]int{"bounded": 100}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}, queuetest.BoundedQueue("bounded", 100))
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	_, err := membroker.New(&membroker.Config{MaxDepth: -1, Retention: -1, MaxFinished: -2, QueueMaxDepth: map[string]int{"q": 0}})
	if _, err := membroker.New(&membroker.Config{Retention: 1}); !errors.Is(err, queue.ErrBadConfig) || !strings.Contains(err.Error(), "at least 1s") {
		t.Errorf("a Retention of 1 ns: %v, want ErrBadConfig saying at least 1s", err)
	}
	if err == nil {
		t.Fatal("New accepted a negative MaxDepth")
	}
	if !errors.Is(err, queue.ErrBadConfig) {
		t.Errorf("New's error %q does not wrap queue.ErrBadConfig", err)
	}
	for _, want := range []string{"MaxDepth is -1", "Retention is -1ns", "MaxFinished is -2", `QueueMaxDepth["q"] is 0`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// finishOne enqueues a batch of one task with the given ID, claims it and
// completes it, and returns the batch ID.
func finishOne(t *testing.T, ctx context.Context, b *membroker.Broker, batchID string) string {
	t.Helper()
	s := &queue.Submission{BatchID: batchID, Queue: queue.DefaultQueue, Kind: "k",
		Priority: queue.PriorityNormal, MaxAttempts: 1, Payloads: [][]byte{[]byte("1")}}
	id, err := b.Enqueue(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	var d [1]queue.Delivery
	if n, err := b.Claim(ctx, queue.DefaultQueue, queue.PriorityNormal, time.Hour, d[:]); n != 1 || err != nil {
		t.Fatalf("Claim = %d, %v", n, err)
	}
	if err := b.Complete(ctx, []queue.Completion{{Delivery: &d[0], Outcome: queue.Outcome{Output: []byte("2")}}}); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestMaxFinished: past MaxFinished finished batches, the oldest is
// forgotten first, within Retention.
func TestMaxFinished(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b, err := membroker.New(&membroker.Config{MaxFinished: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var ids []string
	for i := range 3 {
		ids = append(ids, finishOne(t, ctx, b, fmt.Sprint("fin-", i)))
	}
	for i, id := range ids {
		sub, err := b.Subscribe(ctx, id)
		if i == 0 {
			if !errors.Is(err, queue.ErrNotFound) {
				t.Fatalf("the oldest of 3 finished batches with MaxFinished 2: Subscribe = %v, want ErrNotFound", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("finished batch %d of 3 with MaxFinished 2: %v", i, err)
		}
		sub.Close()
	}
}

// finishBatch enqueues a batch of n tasks with the given ID, claims and
// completes them all, and returns the batch ID.
func finishBatch(tb testing.TB, ctx context.Context, b *membroker.Broker, batchID string, n int, out []byte) string {
	tb.Helper()
	s := &queue.Submission{BatchID: batchID, Queue: queue.DefaultQueue, Kind: "k",
		Priority: queue.PriorityNormal, MaxAttempts: 1, Payloads: make([][]byte, n)}
	id, err := b.Enqueue(ctx, s)
	if err != nil {
		tb.Fatal(err)
	}
	var ds [256]queue.Delivery
	var cs [256]queue.Completion
	for left := n; left > 0; {
		k, err := b.Claim(ctx, queue.DefaultQueue, queue.PriorityNormal, time.Hour, ds[:])
		if k == 0 || err != nil {
			tb.Fatalf("Claim = %d, %v with %d tasks left", k, err, left)
		}
		for i := range k {
			cs[i] = queue.Completion{Delivery: &ds[i], Outcome: queue.Outcome{Output: out}}
		}
		if err := b.Complete(ctx, cs[:k]); err != nil {
			tb.Fatal(err)
		}
		left -= k
	}
	return id
}

// TestMaxFinishedCountsTasks: MaxFinished bounds the finished tasks kept,
// not the batches: a large batch pushes out as many small ones as it must,
// and the newest finished batch is kept even when larger than the bound.
func TestMaxFinishedCountsTasks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b, err := membroker.New(&membroker.Config{MaxFinished: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	known := func(id string) bool {
		sub, err := b.Subscribe(ctx, id)
		if errors.Is(err, queue.ErrNotFound) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		sub.Close()
		return true
	}
	a := finishBatch(t, ctx, b, "a", 4, nil)
	bb := finishBatch(t, ctx, b, "b", 4, nil)
	if !known(a) || !known(bb) {
		t.Fatal("8 finished tasks with MaxFinished 10: a batch was forgotten")
	}
	c := finishBatch(t, ctx, b, "c", 4, nil)
	if known(a) || !known(bb) || !known(c) {
		t.Fatalf("12 finished tasks with MaxFinished 10: kept a %v, b %v, c %v; want b and c", known(a), known(bb), known(c))
	}
	big := finishBatch(t, ctx, b, "big", 25, nil)
	if known(bb) || known(c) || !known(big) {
		t.Fatalf("a finished batch of 25 with MaxFinished 10: kept b %v, c %v, big %v; want big alone", known(bb), known(c), known(big))
	}
	if d := finishOne(t, ctx, b, "d"); !known(d) || known(big) {
		t.Fatal("after a batch of one: want it kept and the batch of 25 forgotten")
	}
}

// BenchmarkFinishedMemory measures the heap a finished task holds while its
// batch is kept for Retention, with outputs shared (so not counted), in
// batches of 1 and of 1,000:
//
//	go test -run '^$' -bench FinishedMemory -benchtime 1x ./queue/membroker/
func BenchmarkFinishedMemory(b *testing.B) {
	for _, size := range []int{1, 1000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			const tasks = 1 << 17
			ctx := context.Background()
			out := []byte("42")
			for b.Loop() {
				br, err := membroker.New(&membroker.Config{MaxFinished: tasks})
				if err != nil {
					b.Fatal(err)
				}
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				for i := range tasks / size {
					finishBatch(b, ctx, br, fmt.Sprintf("%032x", i), size, out)
				}
				runtime.GC()
				runtime.ReadMemStats(&m1)
				held := float64(m1.HeapAlloc) - float64(m0.HeapAlloc)
				b.ReportMetric(held/tasks, "B/task")
				b.ReportMetric(held/tasks*1e6/(1<<20), "MiB/Mtasks")
				runtime.KeepAlive(br)
				br.Close()
			}
		})
	}
}

// TestRetention: a finished batch can be subscribed to for Retention, and is
// forgotten after, in finishing order, across many of the finished list's
// blocks.
func TestRetention(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		b, err := membroker.New(&membroker.Config{Retention: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		finish := func(n int) []string {
			var ids []string
			for i := range n {
				ids = append(ids, finishOne(t, ctx, b, fmt.Sprintf("%d-%d", time.Now().Unix(), i)))
			}
			return ids
		}
		known := func(id string) bool {
			sub, err := b.Subscribe(ctx, id)
			if errors.Is(err, queue.ErrNotFound) {
				return false
			}
			if err != nil {
				t.Fatal(err)
			}
			sub.Close()
			return true
		}
		old := finish(1300)
		time.Sleep(40 * time.Second)
		recent := finish(700)
		time.Sleep(30 * time.Second)
		finish(1) // brokers forget on their next operation
		for _, id := range old {
			if known(id) {
				t.Fatalf("batch %s is kept past Retention", id)
			}
		}
		for _, id := range recent {
			if !known(id) {
				t.Fatalf("batch %s is forgotten within Retention", id)
			}
		}
	})
}
