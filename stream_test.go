package gather_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/gather-go/gather"
)

func TestStreamYieldsEveryIndexOnce(t *testing.T) {
	t.Parallel()
	for _, limit := range []int{0, 1, 4} {
		var opts []gather.Option
		if limit > 0 {
			opts = append(opts, gather.Limit(limit))
		}
		in := make([]int, 1000)
		for i := range in {
			in[i] = i
		}
		seen := make([]bool, len(in))
		for i, r := range gather.Stream(context.Background(), in, func(ctx context.Context, n int) (int, error) { return n * 3, nil }, opts...) {
			if seen[i] || r.Value != i*3 || r.Err != nil {
				t.Fatalf("limit %d: index %d: seen %v, result %+v", limit, i, seen[i], r)
			}
			seen[i] = true
		}
		for i, s := range seen {
			if !s {
				t.Fatalf("limit %d: index %d never yielded", limit, i)
			}
		}
	}
}

func TestStreamBreakCancelsTheRestAndWaits(t *testing.T) {
	t.Parallel()
	for _, limit := range []int{0, 3} {
		var opts []gather.Option
		if limit > 0 {
			opts = append(opts, gather.Limit(limit))
		}
		var started, returned atomic.Int32
		in := make([]int, 50)
		for i := range in {
			in[i] = i
		}
		for range gather.Stream(context.Background(), in, func(ctx context.Context, n int) (int, error) {
			started.Add(1)
			defer returned.Add(1)
			if n == 0 {
				return 0, nil
			}
			<-ctx.Done() // only the break ends the others
			return 0, ctx.Err()
		}, opts...) {
			break
		}
		if started.Load() != returned.Load() {
			t.Errorf("limit %d: the loop ended with %d of %d tasks still running", limit, started.Load()-returned.Load(), started.Load())
		}
		if limit > 0 && started.Load() > int32(limit)+1 {
			t.Errorf("limit %d: %d tasks started after the break", limit, started.Load())
		}
	}
}

func TestStreamYieldsTheContextErrorForTasksNotStarted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	n := 0
	for _, r := range gather.StreamOrdered(ctx, make([]int, 20), func(ctx context.Context, _ int) (int, error) {
		calls.Add(1)
		cancel()
		return 1, nil
	}, 1) {
		n++
		if n > 1 && !errors.Is(r.Err, context.Canceled) {
			t.Errorf("result %d after cancel: %+v", n, r)
		}
	}
	if n != 20 || calls.Load() != 1 {
		t.Fatalf("%d results, %d calls; want 20 results and 1 call", n, calls.Load())
	}
}

// TestStreamOrderedKeepsMemoryBounded checks that no task starts window or more indices
// past the oldest outcome not yet yielded, and that outcomes come in input order.
func TestStreamOrderedKeepsMemoryBounded(t *testing.T) {
	t.Parallel()
	for _, window := range []int{1, 3, 8} {
		var yielded atomic.Int64
		in := make([]int, 300)
		for i := range in {
			in[i] = i
		}
		next := 0
		for i, r := range gather.StreamOrdered(context.Background(), in, func(ctx context.Context, n int) (int, error) {
			if ahead := int64(n) - yielded.Load(); ahead >= int64(window) {
				t.Errorf("window %d: task %d started with %d yielded", window, n, yielded.Load())
			}
			return n, nil
		}, window) {
			if i != next || r.Value != next {
				t.Fatalf("window %d: got index %d value %d, want %d", window, i, r.Value, next)
			}
			next++
			yielded.Store(int64(next))
		}
		if next != len(in) {
			t.Fatalf("window %d: %d yielded", window, next)
		}
	}
}

func TestStreamOrderedWithAHeadOfLineTask(t *testing.T) {
	t.Parallel()
	// Task 0 finishes last; the rest of the window must wait for it, and the order holds.
	release := make(chan struct{})
	var started atomic.Int32
	in := []int{0, 1, 2, 3, 4, 5, 6, 7}
	got := []int{}
	for i := range gather.StreamOrdered(context.Background(), in, func(ctx context.Context, n int) (int, error) {
		if started.Add(1) == 4 {
			close(release) // four started while task 0 blocks: the window is full
		}
		if n == 0 {
			<-release
		}
		return n, nil
	}, 4, gather.Limit(4)) {
		got = append(got, i)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("order %v", got)
		}
	}
}
