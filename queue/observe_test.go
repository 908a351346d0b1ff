package queue_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// recorder keeps every event it observes.
type recorder struct {
	mu     sync.Mutex
	events []queue.Event
}

func (r *recorder) Observe(e queue.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) all() []queue.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]queue.Event(nil), r.events...)
}

// TestObserverEvents runs a batch whose tasks succeed, fail once then succeed,
// fail for good, and have no handler, and checks the events each reported,
// in the order the Event contract gives.
func TestObserverEvents(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	broker, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	rec := &recorder{}
	var other atomic.Int32 // MultiObserver passes events to both
	obs := queue.MultiObserver(rec, nil, queue.ObserverFunc(func(queue.Event) { other.Add(1) }))

	kind := queue.NewKind[string, string]("observed")
	w, err := queue.NewWorker(broker, &queue.WorkerConfig{Concurrency: 2, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	var flaky atomic.Int32
	queue.HandleFunc(w, kind, func(ctx context.Context, in string) (string, error) {
		switch in {
		case "flaky":
			if flaky.Add(1) == 1 {
				return "", errors.New("first attempt fails")
			}
		case "broken":
			return "", queue.Permanent(errors.New("never works"))
		}
		return in, nil
	})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(ctx)
	c, err := queue.NewClient(broker, &queue.ClientConfig{Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	b, err := queue.EnqueueBatch(ctx, c, kind, []string{"fine", "flaky", "broken"},
		queue.WithMaxAttempts(3), queue.WithBackoff(time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AwaitSettled(ctx); err != nil {
		t.Fatal(err)
	}
	// A kind nobody handles: dead-lettered without running.
	nobody := queue.NewKind[string, string]("unhandled")
	task, err := queue.Enqueue(ctx, c, nobody, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := task.Await(ctx); !errors.Is(err, queue.ErrUnknownKind) {
		t.Fatalf("task of an unhandled kind: %v, want ErrUnknownKind", err)
	}

	events := rec.all()
	if int(other.Load()) != len(events) {
		t.Errorf("MultiObserver: second observer saw %d events, the first %d", other.Load(), len(events))
	}
	perTask := map[int][]queue.EventType{}
	count := map[queue.EventType]int{}
	for _, e := range events {
		count[e.Type]++
		switch e.Type {
		case queue.EventEnqueued, queue.EventBatchAwaited:
			if e.Queue != queue.DefaultQueue || e.BatchID == "" {
				t.Errorf("batch event %+v lacks its queue or batch ID", e)
			}
			continue
		}
		if e.BatchID == b.ID() {
			if e.Kind != "observed" || e.Queue != queue.DefaultQueue || e.Attempt < 1 {
				t.Errorf("task event %+v: wrong kind, queue or attempt", e)
			}
			perTask[e.Index] = append(perTask[e.Index], e.Type)
		}
		if (e.Type == queue.EventFailed || e.Type == queue.EventDeadLettered) && e.Err == nil {
			t.Errorf("%v event without its error: %+v", e.Type, e)
		}
	}
	s, ok, f, r, d := queue.EventStarted, queue.EventSucceeded, queue.EventFailed, queue.EventRetried, queue.EventDeadLettered
	want := map[int][]queue.EventType{
		0: {s, ok},
		1: {s, f, r, s, ok},
		2: {s, f, d},
	}
	for i, w := range want {
		if got := perTask[i]; !equal(got, w) {
			t.Errorf("task %d reported %v, want %v", i, got, w)
		}
	}
	wantCount := map[queue.EventType]int{
		queue.EventEnqueued: 2, queue.EventBatchAwaited: 2, s: 4, ok: 2, f: 2, r: 1, d: 2, // d: "broken" and the unhandled task
	}
	for typ, n := range wantCount {
		if count[typ] != n {
			t.Errorf("%v reported %d times, want %d", typ, count[typ], n)
		}
	}
	for _, e := range events {
		if e.Type == queue.EventEnqueued && e.BatchID == b.ID() && e.Count != 3 {
			t.Errorf("EventEnqueued of the batch counts %d tasks, want 3", e.Count)
		}
	}
}

func equal(a, b []queue.EventType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestEventTypeString(t *testing.T) {
	t.Parallel()
	if got := queue.EventDeadLettered.String(); got != "dead_lettered" {
		t.Errorf("EventDeadLettered.String() = %q", got)
	}
	if got := queue.EventType(200).String(); got != "EventType(200)" {
		t.Errorf("EventType(200).String() = %q", got)
	}
	if queue.MultiObserver(nil, nil) != nil {
		t.Error("MultiObserver of nothing is not nil")
	}
}

// runBatch enqueues n no-op tasks and awaits them: the whole path a task
// takes through a client, a membroker and a worker.
func runBatch(tb testing.TB, ctx context.Context, c *queue.Client, n int) {
	b, err := queue.EnqueueBatch(ctx, c, noop, make([]int, n))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := b.Await(ctx); err != nil {
		tb.Fatal(err)
	}
}

var noop = queue.NewKind[int, int]("noop")

// observed starts a worker and a client on a fresh membroker, both with
// observer obs (nil for none), stopped at cleanup.
func observed(tb testing.TB, obs queue.Observer) *queue.Client {
	broker, err := membroker.New(nil)
	if err != nil {
		tb.Fatal(err)
	}
	w, err := queue.NewWorker(broker, &queue.WorkerConfig{Concurrency: 1, Observer: obs})
	if err != nil {
		tb.Fatal(err)
	}
	queue.HandleFunc(w, noop, func(ctx context.Context, n int) (int, error) { return n, nil })
	if err := w.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		w.Shutdown(context.Background())
		broker.Close()
	})
	c, err := queue.NewClient(broker, &queue.ClientConfig{Observer: obs})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// TestObserverAllocs proves that events cost no allocation per task, with
// no observer and with one: the allocations of a batch of 2,000 tasks, less
// those of a batch of 20, spread over the 1,980 tasks between them, stay
// well under one a task. (The path itself allocates per claim and per
// output buffer, never per task.) Not parallel: AllocsPerRun counts every
// goroutine's allocations.
func TestObserverAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("measures allocations over a few thousand tasks")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var seen atomic.Int64
	for _, tc := range []struct {
		name string
		obs  queue.Observer
	}{
		{"none", nil},
		{"counting", queue.ObserverFunc(func(queue.Event) { seen.Add(1) })},
	} {
		c := observed(t, tc.obs)
		runBatch(t, ctx, c, 2000) // warm up: buffers, pools, maps
		small := testing.AllocsPerRun(20, func() { runBatch(t, ctx, c, 20) })
		large := testing.AllocsPerRun(20, func() { runBatch(t, ctx, c, 2000) })
		perTask := (large - small) / 1980
		t.Logf("observer %s: %.0f allocations a batch of 20, %.0f a batch of 2,000: %.3f a task", tc.name, small, large, perTask)
		if perTask > 0.25 {
			t.Errorf("observer %s: %.3f allocations a task, want none (well under 1)", tc.name, perTask)
		}
	}
	if seen.Load() == 0 {
		t.Error("the counting observer saw no event")
	}
}

// BenchmarkObserver runs batches of 100 no-op tasks through a membroker,
// without an observer and with one that counts, reporting allocations.
func BenchmarkObserver(b *testing.B) {
	for _, bc := range []struct {
		name string
		obs  queue.Observer
	}{
		{"none", nil},
		{"counting", queue.ObserverFunc(func(queue.Event) {})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			c := observed(b, bc.obs)
			b.ReportAllocs()
			for b.Loop() {
				runBatch(b, ctx, c, 100)
			}
			b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "tasks/s")
		})
	}
}
