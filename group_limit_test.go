package gather_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gather-go/gather"
)

// liveness bounds the waits of these tests for something that must happen: it fails a
// broken group instead of hanging, and is never reached by a working one.
const liveness = 30 * time.Second

// TestGroupSetLimitRaiseStartsWaitingTasks: raising or removing the limit starts the
// waiting tasks while the running one still runs, the oldest first.
func TestGroupSetLimitRaiseStartsWaitingTasks(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 5, -1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			g := gather.NewGroup[int](context.Background(), gather.Limit(1))
			started := make(chan int, 4)
			raised := make(chan struct{})
			g.Go(func(ctx context.Context) (int, error) {
				<-raised
				// The waiting tasks start while this one runs: as many as the new limit
				// allows, the oldest first.
				want := 4
				if n > 0 {
					want = n - 1
				}
				timeout := time.After(liveness)
				for range want {
					select {
					case i := <-started:
						if n == 2 && i != 1 {
							return 0, fmt.Errorf("task %d started first, want task 1, the oldest", i)
						}
					case <-timeout:
						return 0, errors.New("the waiting tasks did not start after SetLimit raised the limit")
					}
				}
				return 0, nil
			})
			for i := 1; i <= 4; i++ {
				g.Go(func(ctx context.Context) (int, error) { started <- i; return i, nil })
			}
			g.SetLimit(n)
			close(raised)
			got, err := g.Wait()
			if err != nil || fmt.Sprint(got) != "[0 1 2 3 4]" {
				t.Fatalf("Wait = %v, %v", got, err)
			}
		})
	}
}

// TestGroupSetLimitLowerStopsNothingAndSettles: lowering the limit lets the running tasks
// finish, and the waiting ones then run within the new limit, on that many goroutines.
func TestGroupSetLimitLowerStopsNothingAndSettles(t *testing.T) {
	t.Parallel()
	g := gather.NewGroup[int](context.Background(), gather.Limit(4))
	gate := make(chan struct{})
	var running, peak atomic.Int64
	var mu sync.Mutex
	goroutines := map[uint64]bool{}
	var first sync.WaitGroup
	first.Add(4)
	for i := range 4 {
		g.Go(func(ctx context.Context) (int, error) { first.Done(); <-gate; return i, nil })
	}
	for i := 4; i < 60; i++ {
		g.Go(func(ctx context.Context) (int, error) {
			r := running.Add(1)
			defer running.Add(-1)
			for p := peak.Load(); r > p && !peak.CompareAndSwap(p, r); p = peak.Load() {
			}
			mu.Lock()
			goroutines[goroutineID()] = true
			mu.Unlock()
			runtime.Gosched()
			return i, nil
		})
	}
	first.Wait() // the four run
	g.SetLimit(1)
	close(gate)
	got, err := g.Wait()
	if err != nil || len(got) != 60 {
		t.Fatalf("Wait = %d results, %v", len(got), err)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("result %d = %d", i, v)
		}
	}
	if peak.Load() != 1 || len(goroutines) != 1 {
		t.Errorf("after SetLimit(1), %d waiting tasks ran at once on %d goroutines, want 1 and 1", peak.Load(), len(goroutines))
	}
}

// TestGroupSetLimitInACancelledGroupStartsNothing: the waiting tasks of a cancelled group
// are not started, whatever the limit, and report the cause.
func TestGroupSetLimitInACancelledGroupStartsNothing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancelCause(context.Background())
	g := gather.NewGroup[int](ctx, gather.Limit(1), gather.JoinErrors())
	running := make(chan struct{})
	g.Go(func(ctx context.Context) (int, error) { close(running); <-ctx.Done(); return 0, ctx.Err() })
	var ran atomic.Int32
	for range 3 {
		g.Go(func(ctx context.Context) (int, error) { ran.Add(1); return 1, nil })
	}
	<-running
	cancel(errBoom)
	g.SetLimit(10)
	res := g.WaitSettled()
	if ran.Load() != 0 {
		t.Errorf("%d waiting tasks ran in a cancelled group", ran.Load())
	}
	for i, r := range res[1:] {
		if !errors.Is(r.Err, errBoom) {
			t.Errorf("result %d error %v, want the cause", i+1, r.Err)
		}
	}
}

// TestGroupSetLimitOnAZeroGroupAndFromATask: a zero Group takes a limit before its first
// task, a task may change the limit, and SetLimit after Wait does nothing.
func TestGroupSetLimitOnAZeroGroupAndFromATask(t *testing.T) {
	t.Parallel()
	var g gather.Group[int]
	g.SetLimit(1)
	var running, peak atomic.Int64
	task := func(i int) func(context.Context) (int, error) {
		return func(ctx context.Context) (int, error) {
			r := running.Add(1)
			defer running.Add(-1)
			for p := peak.Load(); r > p && !peak.CompareAndSwap(p, r); p = peak.Load() {
			}
			runtime.Gosched()
			return i, nil
		}
	}
	for i := range 20 {
		g.Go(task(i))
	}
	got, err := g.Wait()
	if err != nil || len(got) != 20 || peak.Load() != 1 {
		t.Fatalf("Wait = %v, %v; peak %d running, want 1", got, err, peak.Load())
	}
	g.SetLimit(3) // after Wait: nothing

	h := gather.NewGroup[int](context.Background(), gather.Limit(1))
	h.Go(func(ctx context.Context) (int, error) { h.SetLimit(-1); return 0, nil })
	if got, err := h.Wait(); err != nil || len(got) != 1 {
		t.Fatalf("SetLimit from a task: %v, %v", got, err)
	}
}

func TestGroupSetLimitZeroPanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if s, _ := recover().(string); s != "gather: Group.SetLimit(0): no task could ever start; want at least 1, or a negative n for no limit" {
			t.Errorf("panic %q", s)
		}
	}()
	new(gather.Group[int]).SetLimit(0)
	t.Fatal("no panic")
}
