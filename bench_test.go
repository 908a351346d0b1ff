package gather_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/gather-go/gather"
)

// These benchmarks measure gather alone, per task; bench/ measures it against its peers.

const benchN = 10_000

func double(ctx context.Context, n int) (int, error) { return n * 2, nil }

func perTask(b *testing.B, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/task")
}

func BenchmarkFloorWaitGroup(b *testing.B) {
	in := make([]int, benchN)
	b.ReportAllocs()
	for b.Loop() {
		out := make([]int, len(in))
		var wg sync.WaitGroup
		wg.Add(len(in))
		for i := range in {
			go func() { defer wg.Done(); out[i], _ = double(context.Background(), in[i]) }()
		}
		wg.Wait()
	}
	perTask(b, benchN)
}

func BenchmarkAll(b *testing.B) {
	fns := make([]func(context.Context) (int, error), benchN)
	for i := range fns {
		fns[i] = func(ctx context.Context) (int, error) { return i * 2, nil }
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		gather.All(ctx, fns...)
	}
	perTask(b, benchN)
}

func BenchmarkMap(b *testing.B) {
	in := make([]int, benchN)
	ctx := context.Background()
	for _, limit := range []int{0, 1, 8, 64} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			var opts []gather.Option
			if limit > 0 {
				opts = append(opts, gather.Limit(limit))
			}
			b.ReportAllocs()
			for b.Loop() {
				gather.Map(ctx, in, double, opts...)
			}
			perTask(b, benchN)
		})
	}
}

func BenchmarkMapSettledLimit8(b *testing.B) {
	in := make([]int, benchN)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		gather.MapSettled(ctx, in, double, gather.Limit(8))
	}
	perTask(b, benchN)
}

func BenchmarkStream(b *testing.B) {
	in := make([]int, benchN)
	ctx := context.Background()
	b.Run("completion/limit=8", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for range gather.Stream(ctx, in, double, gather.Limit(8)) {
			}
		}
		perTask(b, benchN)
	})
	b.Run("ordered/window=64", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for range gather.StreamOrdered(ctx, in, double, 64) {
			}
		}
		perTask(b, benchN)
	})
}

func BenchmarkGroup(b *testing.B) {
	ctx := context.Background()
	for _, limit := range []int{0, 8} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			var opts []gather.Option
			if limit > 0 {
				opts = append(opts, gather.Limit(limit))
			}
			b.ReportAllocs()
			for b.Loop() {
				g := gather.NewGroup[int](ctx, opts...)
				for i := range benchN {
					g.Go(func(ctx context.Context) (int, error) { return i * 2, nil })
				}
				g.Wait()
			}
			perTask(b, benchN)
		})
	}
}

// BenchmarkAny: every task succeeds at once; the first to do so cancels the others,
// which are still waited for.
func BenchmarkAny(b *testing.B) {
	fns := make([]func(context.Context) (int, error), benchN)
	for i := range fns {
		fns[i] = func(ctx context.Context) (int, error) { return i * 2, nil }
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		gather.Any(ctx, fns...)
	}
	perTask(b, benchN)
}

// BenchmarkMapAnyLastSucceeds is the worst case of MapAny: every input but the last
// fails, so every call runs and every failure is kept (one *TaskError each).
func BenchmarkMapAnyLastSucceeds(b *testing.B) {
	in := make([]int, benchN)
	in[benchN-1] = 1
	ctx := context.Background()
	lastOnly := func(ctx context.Context, n int) (int, error) {
		if n == 0 {
			return 0, errBench
		}
		return n, nil
	}
	for _, limit := range []int{0, 8} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			var opts []gather.Option
			if limit > 0 {
				opts = append(opts, gather.Limit(limit))
			}
			b.ReportAllocs()
			for b.Loop() {
				gather.MapAny(ctx, in, lastOnly, opts...)
			}
			perTask(b, benchN)
		})
	}
}

var errBench = errors.New("bench: failed")

// BenchmarkGroupSetLimit changes the limit between 4 and 8 every 1000 tasks while they
// run: the cost of the goroutines that exit and start again, beside BenchmarkGroup.
func BenchmarkGroupSetLimit(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		g := gather.NewGroup[int](ctx, gather.Limit(8))
		for i := range benchN {
			if i%1000 == 999 {
				g.SetLimit(4 + 4*(i/1000%2))
			}
			g.Go(func(ctx context.Context) (int, error) { return i * 2, nil })
		}
		g.Wait()
	}
	perTask(b, benchN)
}
