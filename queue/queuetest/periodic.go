package queuetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
)

// testPeriodic: two schedulers run the same schedule, ticking every unit,
// on the broker; one stops midway (as a process that dies). Every tick
// from the first seen to the last gets exactly one task: never two for one
// tick (the broker's idempotency keys), none lost when one scheduler is
// gone.
func testPeriodic(t *testing.T, e *env) {
	ctx := e.ctx()
	const q, ticks = "queuetest-periodic", 20
	var mu sync.Mutex
	runs := map[string]int{} // by tick
	var last time.Time
	progress := make(chan struct{}, 1)
	seeTick := func(next queue.RunFunc) queue.RunFunc {
		return func(ctx context.Context, m *queue.Message, dst []byte) ([]byte, error) {
			if m.Payload != nil && string(m.Payload) == `"fence"` {
				return next(ctx, m, dst)
			}
			tk := m.Headers[queue.HeaderPeriodicTick]
			at, err := time.Parse(time.RFC3339Nano, tk)
			if err != nil || m.Headers[queue.HeaderPeriodic] != "beat" {
				t.Errorf("a periodic task with headers %v: want the schedule's name and tick", m.Headers)
			}
			mu.Lock()
			runs[tk]++
			if at.After(last) {
				last = at
			}
			mu.Unlock()
			select {
			case progress <- struct{}{}:
			default:
			}
			return next(ctx, m, dst)
		}
	}
	e.worker(&queue.WorkerConfig{Concurrency: 2, Queues: []string{q}, Middleware: []queue.Middleware{seeTick}}, func(w *queue.Worker) {
		queue.HandleFunc(w, echo, func(ctx context.Context, s string) (string, error) { return s, nil })
	})
	every := try(queue.Every(e.unit)).get(t)
	var scheds []*queue.Scheduler
	for range 2 {
		s := try(queue.NewScheduler(e.b, nil)).get(t)
		if err := queue.Periodic(s, "beat", every, echo, "tick", queue.WithQueue(q)); err != nil {
			t.Fatal(err)
		}
		if err := queue.Periodic(s, "beat", every, echo, "again"); err == nil {
			t.Fatal("a second schedule of the same name was accepted")
		}
		scheds = append(scheds, s)
	}
	for _, s := range scheds {
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	}
	start := time.Now()
	// waitTick waits until a task of a tick at least n units after start ran.
	waitTick := func(n int) {
		for {
			mu.Lock()
			done := !last.Before(start.Add(time.Duration(n) * e.unit))
			mu.Unlock()
			if done {
				return
			}
			select {
			case <-progress:
			case <-ctx.Done():
				t.Fatalf("no tick %d units on: %v", n, ctx.Err())
			}
		}
	}
	waitTick(ticks / 2)
	if err := scheds[0].Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitTick(ticks)
	if err := scheds[1].Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Let the tasks of the last ticks enqueued run: one more batch through
	// the same queue and worker, awaited, comes after them.
	b := try(queue.EnqueueBatch(ctx, e.c, echo, []string{"fence"}, queue.WithQueue(q))).get(t)
	try(b.Await(ctx)).get(t)
	mu.Lock()
	defer mu.Unlock()
	var first, end time.Time
	for tk, n := range runs {
		at, _ := time.Parse(time.RFC3339Nano, tk)
		if n != 1 {
			t.Errorf("tick %s ran %d times, want once", tk, n)
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(end) {
			end = at
		}
	}
	want := int(end.Sub(first)/e.unit) + 1
	if len(runs) != want || want < ticks {
		t.Fatalf("%d ticks ran from %v to %v, want every one of %d (at least %d)", len(runs), first, end, want, ticks)
	}
}
