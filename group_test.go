package gather_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gather-go/gather"
)

func TestGroupResultsInGoOrderIncludingTasksAddedByTasks(t *testing.T) {
	t.Parallel()
	for _, limit := range []int{0, 1, 3} {
		var opts []gather.Option
		if limit > 0 {
			opts = append(opts, gather.Limit(limit))
		}
		g := gather.NewGroup[int](context.Background(), opts...)
		var mu sync.Mutex
		want := map[int]int{} // index -> value
		var add func(depth, v int)
		add = func(depth, v int) {
			mu.Lock()
			defer mu.Unlock()
			i := g.Go(func(ctx context.Context) (int, error) {
				if depth < 3 {
					add(depth+1, v*2)
					add(depth+1, v*2+1)
				}
				return v, nil
			})
			want[i] = v
		}
		add(0, 1)
		got, err := g.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 15 || len(want) != 15 {
			t.Fatalf("limit %d: %d results, %d tasks, want 15", limit, len(got), len(want))
		}
		for i, v := range got {
			if want[i] != v {
				t.Fatalf("limit %d: result %d = %d, want %d", limit, i, v, want[i])
			}
		}
	}
}

func TestZeroGroup(t *testing.T) {
	t.Parallel()
	var g gather.Group[string]
	g.Go(func(ctx context.Context) (string, error) { return "a", nil })
	g.Go(func(ctx context.Context) (string, error) { return "b", nil })
	got, err := g.Wait()
	if err != nil || fmt.Sprint(got) != "[a b]" {
		t.Fatalf("Wait = %v, %v", got, err)
	}
	var empty gather.Group[int]
	if got, err := empty.Wait(); len(got) != 0 || err != nil {
		t.Fatalf("empty Wait = %v, %v", got, err)
	}
}

func TestGroupFailFastCancelsRunningAndQueuedTasks(t *testing.T) {
	t.Parallel()
	g := gather.NewGroup[int](context.Background(), gather.Limit(2))
	started := make(chan struct{})
	g.Go(func(ctx context.Context) (int, error) {
		close(started)
		<-ctx.Done()
		return 0, ctx.Err()
	})
	g.Go(func(ctx context.Context) (int, error) { <-started; return 0, errBoom })
	var queuedRan atomic.Bool
	g.Go(func(ctx context.Context) (int, error) { queuedRan.Store(true); return 0, nil })
	_, err := g.Wait()
	var te *gather.TaskError
	if !errors.As(err, &te) || te.Index != 1 || !errors.Is(err, errBoom) {
		t.Fatalf("Wait error %v, want task 1's", err)
	}
	if queuedRan.Load() {
		t.Error("a queued task started after the group failed")
	}
}

func TestGroupWaitSettledReportsEveryOutcome(t *testing.T) {
	t.Parallel()
	g := gather.NewGroup[int](context.Background(), gather.JoinErrors(), gather.Limit(2))
	for i := range 5 {
		g.Go(func(ctx context.Context) (int, error) {
			if i%2 == 0 {
				return 0, fmt.Errorf("even %d", i)
			}
			return i, nil
		})
	}
	res := g.WaitSettled()
	for i, r := range res {
		if (i%2 == 0) != (r.Err != nil) || (r.Err == nil && r.Value != i) {
			t.Errorf("result %d = %+v", i, r)
		}
	}
}

func TestGroupJoinErrors(t *testing.T) {
	t.Parallel()
	g := gather.NewGroup[int](context.Background(), gather.JoinErrors())
	for i := range 4 {
		g.Go(func(ctx context.Context) (int, error) {
			if ctx.Err() != nil {
				t.Error("JoinErrors group cancelled a task")
			}
			if i == 1 || i == 2 {
				return 0, fmt.Errorf("bad %d", i)
			}
			return i, nil
		})
	}
	got, err := g.Wait()
	if fmt.Sprint(got) != "[0 0 0 3]" || err == nil || err.Error() != "gather: task 1: bad 1\ngather: task 2: bad 2" {
		t.Fatalf("Wait = %v, %q", got, err)
	}
}

func TestGroupLimitQueuesWithoutAGoroutinePerTask(t *testing.T) {
	base := runtime.NumGoroutine()
	g := gather.NewGroup[int](context.Background(), gather.Limit(2))
	var running, peak atomic.Int32
	release := make(chan struct{})
	for range 100 {
		g.Go(func(ctx context.Context) (int, error) {
			r := running.Add(1)
			defer running.Add(-1)
			for p := peak.Load(); r > p && !peak.CompareAndSwap(p, r); p = peak.Load() {
			}
			<-release
			return 1, nil
		})
	}
	if n := runtime.NumGoroutine() - base; n > 2 {
		t.Errorf("%d goroutines for 100 tasks under Limit(2)", n)
	}
	close(release)
	got, err := g.Wait()
	if err != nil || len(got) != 100 || peak.Load() > 2 {
		t.Fatalf("%d results, err %v, peak %d", len(got), err, peak.Load())
	}
}

func TestGroupAfterParentCancellation(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	g := gather.NewGroup[int](ctx)
	cancel()
	var ran atomic.Bool
	g.Go(func(ctx context.Context) (int, error) { ran.Store(true); return 1, nil })
	_, err := g.Wait()
	if !errors.Is(err, context.Canceled) || ran.Load() {
		t.Fatalf("Wait = %v, task ran: %v", err, ran.Load())
	}
}

func TestGroupTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := gather.NewGroup[int](context.Background(), gather.Timeout(time.Second), gather.JoinErrors())
		g.Go(func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() })
		g.Go(func(ctx context.Context) (int, error) { return 2, nil })
		res := g.WaitSettled()
		if !errors.Is(res[0].Err, context.DeadlineExceeded) || res[1].Value != 2 {
			t.Fatalf("got %+v", res)
		}
	})
}
