package queuetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
)

var limited = queue.NewKind[int, int]("queuetest.limited")

// testGlobalLimit: three workers (each with four runners) share a global
// limit of 4 on a kind: at no instant do more than 4 of its tasks run,
// checked both by a counter and by the recorded start and end times of
// every execution, and 4 do run at once (the limit is reached, not
// merely respected). Another kind in the same queue is not held back.
func testGlobalLimit(t *testing.T, e *env) {
	if _, ok := e.b.(queue.Semaphore); !ok {
		t.Skipf("%T does not implement queue.Semaphore", e.b)
	}
	const q = "queuetest-limited"
	lim := queue.GlobalLimit{Queue: q, Kind: limited.Name(), Max: 4}
	ctx := e.ctx()
	var (
		inflight, peak atomic.Int32
		reached        = make(chan struct{})
		reachOnce      sync.Once
		mu             sync.Mutex
		spans          [][2]time.Time
	)
	handler := func(ctx context.Context, n int) (int, error) {
		start := time.Now()
		now := inflight.Add(1)
		for {
			p := peak.Load()
			if now <= p || peak.CompareAndSwap(p, now) {
				break
			}
		}
		if now >= int32(lim.Max) {
			reachOnce.Do(func() { close(reached) })
		}
		// Hold until the limit was reached once, so that reaching it does
		// not depend on scheduling luck, then a moment more: long enough
		// for the other runners to start tasks if nothing stopped them (the
		// hold makes a broken limit show; a working one passes however the
		// runners are scheduled).
		select {
		case <-reached:
		case <-ctx.Done():
		}
		hold := time.NewTimer(e.unit / 2)
		select {
		case <-hold.C:
		case <-ctx.Done():
			hold.Stop()
		}
		inflight.Add(-1)
		end := time.Now()
		mu.Lock()
		spans = append(spans, [2]time.Time{start, end})
		mu.Unlock()
		return n, nil
	}
	for range 3 {
		e.worker(&queue.WorkerConfig{Concurrency: 4, Queues: []string{q}, GlobalLimits: []queue.GlobalLimit{lim}}, func(w *queue.Worker) {
			queue.HandleFunc(w, limited, handler)
			queue.HandleFunc(w, double, doubleH)
		})
	}
	b := try(queue.EnqueueBatch(ctx, e.c, limited, ints(60), queue.WithQueue(q))).get(t)
	other := try(queue.EnqueueBatch(ctx, e.c, double, ints(20), queue.WithQueue(q))).get(t)
	if got := try(other.Await(ctx)).get(t); got[19] != 38 {
		t.Fatalf("the unlimited kind: %v", got)
	}
	got := try(b.Await(ctx)).get(t)
	if len(got) != 60 || got[59] != 59 {
		t.Fatalf("limited kind: %d results", len(got))
	}
	if p := peak.Load(); p != int32(lim.Max) {
		t.Fatalf("at most %d ran at once by the counter, want exactly %d", p, lim.Max)
	}
	mu.Lock()
	defer mu.Unlock()
	// Sweep the recorded spans: +1 at a start, -1 at an end, ends first
	// at equal times (a span ends before its slot is released).
	type ev struct {
		at time.Time
		d  int
	}
	var evs []ev
	for _, s := range spans {
		evs = append(evs, ev{s[0], 1}, ev{s[1], -1})
	}
	slices.SortFunc(evs, func(a, b ev) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.d - b.d
	})
	cur, most := 0, 0
	for _, v := range evs {
		cur += v.d
		most = max(most, cur)
	}
	if most > lim.Max || len(spans) != 60 {
		t.Fatalf("%d executions recorded, at most %d overlapping: want 60, at most %d", len(spans), most, lim.Max)
	}
}

// testGlobalLimitLease: slots held by a worker that died (taken and never
// extended nor released) come back when their lease runs out, and not
// before; a lost slot cannot be extended.
func testGlobalLimitLease(t *testing.T, e *env) {
	sem, ok := e.b.(queue.Semaphore)
	if !ok {
		t.Skipf("%T does not implement queue.Semaphore", e.b)
	}
	const q = "queuetest-limited-lease"
	lim := queue.GlobalLimit{Queue: q, Max: 2}
	ctx := e.ctx()
	lease := 4 * e.unit
	var dead []string
	for range lim.Max {
		tok := try(sem.AcquireSlot(ctx, lim.SlotName(), lim.Max, lease)).get(t)
		if tok == "" {
			t.Fatal("AcquireSlot of a free slot returned no token")
		}
		dead = append(dead, tok)
	}
	took := time.Now()
	if tok := try(sem.AcquireSlot(ctx, lim.SlotName(), lim.Max, lease)).get(t); tok != "" {
		t.Fatalf("AcquireSlot past Max returned %q, want none", tok)
	}
	var started atomic.Int64
	e.worker(&queue.WorkerConfig{Concurrency: 2, Queues: []string{q}, GlobalLimits: []queue.GlobalLimit{lim}}, func(w *queue.Worker) {
		queue.HandleFunc(w, double, func(ctx context.Context, n int) (int, error) {
			started.CompareAndSwap(0, time.Now().UnixNano())
			return 2 * n, nil
		})
	})
	task := try(queue.Enqueue(ctx, e.c, double, 21, queue.WithQueue(q))).get(t)
	if got := try(task.Await(ctx)).get(t); got != 42 {
		t.Fatalf("Await = %d, want 42", got)
	}
	if at := time.Unix(0, started.Load()); at.Sub(took) < lease-lease/10 {
		t.Fatalf("the task started %v after the dead holder took every slot: want no sooner than its lease, %v", at.Sub(took), lease)
	}
	if _, err := sem.ExtendSlot(ctx, lim.SlotName(), dead[0], lease); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("ExtendSlot of a slot whose lease ran out: %v, want ErrNotFound", err)
	}
	if err := sem.ReleaseSlot(ctx, lim.SlotName(), dead[1]); err != nil {
		t.Errorf("ReleaseSlot of a lost slot: %v, want nil", err)
	}
}

// testGlobalLimitFair: a worker that keeps claiming tasks of a kind limited
// to 1 keeps its slot across its claims, yet does not starve another
// worker waiting for it: the second worker, started once the first runs,
// starts a task while the first still has tasks to run (not only once it
// ran out of work), and never do two run at once.
func testGlobalLimitFair(t *testing.T, e *env) {
	if _, ok := e.b.(queue.Semaphore); !ok {
		t.Skipf("%T does not implement queue.Semaphore", e.b)
	}
	const q = "queuetest-limited-fair"
	lim := queue.GlobalLimit{Queue: q, Kind: limited.Name(), Max: 1}
	ctx := e.ctx()
	// Enough work for the first worker to be busy seconds after the
	// second starts (a holder checks for waiters every quarter of a
	// second): 3 s, and at least 12 units.
	work := e.unit / 4
	n := int(max(3*time.Second, 12*e.unit) / work)
	var (
		inflight, over atomic.Int32
		mu             sync.Mutex
		firstB         time.Time // when the second worker first started a task
		lastA          time.Time // when the first worker last finished one
		ranA           = make(chan struct{})
		ranOnce        sync.Once
	)
	handler := func(isA bool) func(context.Context, int) (int, error) {
		return func(ctx context.Context, v int) (int, error) {
			start := time.Now()
			if inflight.Add(1) > 1 {
				over.Add(1)
			}
			t := time.NewTimer(work) // the task's work
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			inflight.Add(-1)
			end := time.Now()
			mu.Lock()
			if isA {
				lastA = end
			} else if firstB.IsZero() {
				firstB = start
			}
			mu.Unlock()
			if isA {
				ranOnce.Do(func() { close(ranA) })
			}
			return v, nil
		}
	}
	cfg := func(claim int) *queue.WorkerConfig {
		return &queue.WorkerConfig{Concurrency: 1, MaxClaim: claim, Queues: []string{q}, GlobalLimits: []queue.GlobalLimit{lim}}
	}
	e.worker(cfg(0), func(w *queue.Worker) { queue.HandleFunc(w, limited, handler(true)) })
	b := try(queue.EnqueueBatch(ctx, e.c, limited, ints(n), queue.WithQueue(q))).get(t)
	select {
	case <-ranA:
	case <-ctx.Done():
		t.Fatal("the first worker ran no task")
	}
	// One task a claim: the second worker holds only what it waits to run.
	e.worker(cfg(1), func(w *queue.Worker) { queue.HandleFunc(w, limited, handler(false)) })
	if got := try(b.Await(ctx)).get(t); len(got) != n {
		t.Fatalf("%d results, want %d", len(got), n)
	}
	mu.Lock()
	defer mu.Unlock()
	if o := over.Load(); o > 0 {
		t.Errorf("%d tasks started while another ran: the limit is 1", o)
	}
	if firstB.IsZero() || !firstB.Before(lastA) {
		t.Fatalf("the second worker first started a task at %v, the first worker last finished one at %v: the second waited until the first ran out of work (starved)",
			firstB.Format(time.StampMicro), lastA.Format(time.StampMicro))
	}
}
