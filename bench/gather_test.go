// Package bench_test measures gather against its peers in one run on one machine: use
// BenchmarkFanout for ns and allocations per task of in-process fan-out/fan-in, and run.sh
// to run it with Python's asyncio.gather and print the table that BENCHMARKS.md records.
//
// Every implementation runs the same trivial task (task i returns i*2 and no error) over N
// inputs and leaves N results in a slice allocated by the call, as gather must. Each
// sub-benchmark is named BenchmarkFanout/n=N/impl=NAME and reports, besides the usual
// per-call ns/op, B/op and allocs/op:
//
//   - ns/task: b.Elapsed() / (b.N * N), the timed wall time per task (and its inverse,
//     tasks/s);
//   - allocs/task and B/task: the runtime.MemStats Mallocs and TotalAlloc deltas across the
//     timed loop (the counters behind allocs/op and B/op) divided by b.N * N. The deltas
//     include whatever the runtime and the testing package allocate meanwhile (nothing,
//     in practice), and nothing is excluded.
//
// The inputs (the N closures of All and Settled, the N ints of Map) are built once per
// N, outside the timed loop: they are the caller's, not the fan-out's. Each sub-benchmark
// makes one untimed call before timing, so every implementation is measured with the
// runtime's goroutine free list and heap already grown, as in a long-running process.
package bench_test

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/alitto/pond/v2"
	"github.com/gather-go/gather"
	"github.com/panjf2000/ants/v2"
	"github.com/sourcegraph/conc/pool"
	"golang.org/x/sync/errgroup"
)

var sizes = flag.String("sizes", "1000,100000,1000000", "comma-separated task counts N for BenchmarkFanout")

// limit is the concurrency of every limited implementation.
const limit = 8

// chunk is how many indices a worker of floor.chunks8 claims at once.
const chunk = 64

// task is the unit of work: trivial, so that the fan-out's own cost is what is measured.
func task(_ context.Context, i int) (int, error) { return i * 2, nil }

// work is one sub-benchmark's inputs and the last call's results.
type work struct {
	in      []int
	fns     []func(context.Context) (int, error)
	out     []int                // the last call's values, or
	results []gather.Result[int] // the last call's outcomes (Settled, MapSettled)
}

func newWork(n int) *work {
	w := &work{in: make([]int, n), fns: make([]func(context.Context) (int, error), n)}
	for i := range n {
		w.in[i] = i
		w.fns[i] = func(ctx context.Context) (int, error) { return task(ctx, i) }
	}
	return w
}

// impl is one way to run N tasks. setup, if set, runs once per sub-benchmark outside the
// timed loop (for the long-lived pools of pond and ants) and returns the run function
// and its cleanup.
type impl struct {
	name  string
	run   func(ctx context.Context, w *work)
	setup func() (run func(ctx context.Context, w *work), cleanup func())
}

var impls = []impl{
	// Floors: what hand-written code without a library costs.
	{name: "floor.sequential", run: func(ctx context.Context, w *work) {
		out := make([]int, len(w.in))
		for i, v := range w.in {
			out[i], _ = task(ctx, v)
		}
		w.out = out
	}},
	{name: "floor.goroutines", run: func(ctx context.Context, w *work) {
		// A goroutine per task and a WaitGroup, writing into a pre-sized slice: the floor
		// of the goroutine-per-task implementations. The call's state is in one struct so
		// each goroutine's closure holds two words (the struct and the index); closing
		// over ctx, out, the function and the WaitGroup one by one would allocate 80 bytes
		// a task instead of 24.
		c := &fanout{ctx: ctx, fns: w.fns, out: make([]int, len(w.fns))}
		c.wg.Add(len(w.fns))
		for i := range w.fns {
			go c.one(i)
		}
		c.wg.Wait()
		w.out = c.out
	}},
	{name: "floor.goroutines.results", run: func(ctx context.Context, w *work) {
		// The same, writing each outcome as a Result (value and error, 24 bytes) as
		// Settled does, instead of an int (8 bytes): what Settled's larger results cost
		// by themselves.
		c := &fanout{ctx: ctx, fns: w.fns, res: make([]gather.Result[int], len(w.fns))}
		c.wg.Add(len(w.fns))
		for i := range w.fns {
			go c.oneResult(i)
		}
		c.wg.Wait()
		w.results = c.res
	}},
	{name: "floor.chunks8", run: func(ctx context.Context, w *work) {
		// 8 workers claiming chunks of indices: the floor a limited Map can approach.
		out := make([]int, len(w.in))
		var next atomic.Int64
		var wg sync.WaitGroup
		for range limit {
			wg.Go(func() {
				for {
					hi := int(next.Add(chunk))
					lo := hi - chunk
					if lo >= len(out) {
						return
					}
					for i := lo; i < min(hi, len(out)); i++ {
						out[i], _ = task(ctx, w.in[i])
					}
				}
			})
		}
		wg.Wait()
		w.out = out
	}},
	{name: "floor.claim8", run: func(ctx context.Context, w *work) {
		// 8 workers claiming one index at a time: one shared atomic add per task.
		out := make([]int, len(w.in))
		var next atomic.Int64
		var wg sync.WaitGroup
		for range limit {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < len(out); i = int(next.Add(1) - 1) {
					out[i], _ = task(ctx, w.in[i])
				}
			})
		}
		wg.Wait()
		w.out = out
	}},

	// gather.
	{name: "gather.All", run: func(ctx context.Context, w *work) {
		w.out = must(gather.All(ctx, w.fns...))
	}},
	{name: "gather.Settled", run: func(ctx context.Context, w *work) {
		w.results = gather.Settled(ctx, w.fns...)
	}},
	{name: "gather.Map", run: func(ctx context.Context, w *work) {
		w.out = must(gather.Map(ctx, w.in, task))
	}},
	{name: "gather.Map.limit8", run: func(ctx context.Context, w *work) {
		w.out = must(gather.Map(ctx, w.in, task, gather.Limit(limit)))
	}},
	{name: "gather.MapSettled.limit8", run: func(ctx context.Context, w *work) {
		w.results = gather.MapSettled(ctx, w.in, task, gather.Limit(limit))
	}},

	// Peers. errgroup gets a context, as All's fail-fast needs one; conc's plain result
	// pool gets none (it has no errors to cancel on).
	{name: "errgroup", run: func(ctx context.Context, w *work) {
		w.out = errgroupRun(ctx, w, 0)
	}},
	{name: "errgroup.limit8", run: func(ctx context.Context, w *work) {
		w.out = errgroupRun(ctx, w, limit)
	}},
	{name: "conc", run: func(ctx context.Context, w *work) {
		w.out = concRun(ctx, w, pool.NewWithResults[int]())
	}},
	{name: "conc.limit8", run: func(ctx context.Context, w *work) {
		w.out = concRun(ctx, w, pool.NewWithResults[int]().WithMaxGoroutines(limit))
	}},
	{name: "pond", setup: func() (func(context.Context, *work), func()) {
		return pondSetup(0) // 0: no limit
	}},
	{name: "pond.limit8", setup: func() (func(context.Context, *work), func()) {
		return pondSetup(limit)
	}},
	{name: "ants.limit8", setup: antsSetup},
}

// fanout is the state of one floor.goroutines or floor.goroutines.results call.
type fanout struct {
	ctx context.Context
	fns []func(context.Context) (int, error)
	out []int
	res []gather.Result[int]
	wg  sync.WaitGroup
}

func (c *fanout) one(i int) {
	c.out[i], _ = c.fns[i](c.ctx)
	c.wg.Done()
}

func (c *fanout) oneResult(i int) {
	v, err := c.fns[i](c.ctx)
	c.res[i] = gather.Result[int]{Value: v, Err: err}
	c.wg.Done()
}

func errgroupRun(ctx context.Context, w *work, n int) []int {
	out := make([]int, len(w.fns))
	g, ctx := errgroup.WithContext(ctx)
	if n > 0 {
		g.SetLimit(n)
	}
	for i, f := range w.fns {
		g.Go(func() (err error) {
			out[i], err = f(ctx)
			return err
		})
	}
	must(0, g.Wait())
	return out
}

// concRun returns conc's results in completion order: conc v0.3.0's result pools do not
// keep the input order (and drop the results of panicking tasks).
func concRun(ctx context.Context, w *work, p *pool.ResultPool[int]) []int {
	for _, f := range w.fns {
		p.Go(func() int {
			v, _ := f(ctx)
			return v
		})
	}
	return p.Wait()
}

// pondSetup makes one result pool per sub-benchmark (pond's pools are long-lived) and a
// task group per call, whose Wait returns the results in input order.
func pondSetup(n int) (func(context.Context, *work), func()) {
	p := pond.NewResultPool[int](n)
	run := func(ctx context.Context, w *work) {
		g := p.NewGroupContext(ctx)
		for _, f := range w.fns {
			g.SubmitErr(func() (int, error) { return f(ctx) })
		}
		w.out = must(g.Wait())
	}
	return run, p.StopAndWait
}

// antsSetup makes one pool of 8 workers per sub-benchmark; ants has no results, so each
// task writes its own slot and a WaitGroup waits.
func antsSetup() (func(context.Context, *work), func()) {
	p := must(ants.NewPool(limit))
	run := func(ctx context.Context, w *work) {
		out := make([]int, len(w.fns))
		var wg sync.WaitGroup
		wg.Add(len(w.fns))
		for i, f := range w.fns {
			must(0, p.Submit(func() {
				out[i], _ = f(ctx)
				wg.Done()
			}))
		}
		wg.Wait()
		w.out = out
	}
	return run, p.Release
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func parseSizes(tb testing.TB) []int {
	var ns []int
	for f := range strings.SplitSeq(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			tb.Fatalf("-sizes: %q is not a positive integer", f)
		}
		ns = append(ns, n)
	}
	return ns
}

func BenchmarkFanout(b *testing.B) {
	ctx := context.Background()
	for _, n := range parseSizes(b) {
		w := newWork(n)
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for _, im := range impls {
				b.Run("impl="+im.name, func(b *testing.B) {
					run := im.run
					if im.setup != nil {
						var cleanup func()
						run, cleanup = im.setup()
						defer cleanup()
					}
					// One untimed call first: the first call that starts N goroutines
					// pays for the runtime's N goroutine structs and stacks (kept for
					// reuse afterwards), which would otherwise be charged to whichever
					// implementation happens to run first.
					run(ctx, w)
					b.ReportAllocs()
					runtime.GC() // start each sub-benchmark from the same, clean heap
					var before, after runtime.MemStats
					runtime.ReadMemStats(&before)
					for b.Loop() {
						run(ctx, w)
					}
					runtime.ReadMemStats(&after)
					tasks := float64(b.N) * float64(n)
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/tasks, "ns/task")
					b.ReportMetric(tasks/b.Elapsed().Seconds(), "tasks/s")
					b.ReportMetric(float64(after.Mallocs-before.Mallocs)/tasks, "allocs/task")
					b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/tasks, "B/task")
				})
			}
		})
	}
}

// TestImplsAgree checks that every implementation computes the same results, so that no
// benchmark measures a broken fan-out.
func TestImplsAgree(t *testing.T) {
	const n = 1000
	ctx := context.Background()
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			run := im.run
			if im.setup != nil {
				var cleanup func()
				run, cleanup = im.setup()
				defer cleanup()
			}
			w := newWork(n)
			run(ctx, w)
			got := w.out
			if w.results != nil {
				got = make([]int, len(w.results))
				for i, r := range w.results {
					if r.Err != nil {
						t.Fatalf("result %d: %v", i, r.Err)
					}
					got[i] = r.Value
				}
			}
			if strings.HasPrefix(im.name, "conc") {
				slices.Sort(got) // conc returns completion order
			}
			if len(got) != n {
				t.Fatalf("got %d results, want %d", len(got), n)
			}
			for i, v := range got {
				if v != i*2 {
					t.Fatalf("result %d = %d, want %d", i, v, i*2)
				}
			}
		})
	}
}
