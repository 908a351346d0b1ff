package gather_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gather-go/gather"
)

var errBoom = errors.New("boom")

// reverse returns n tasks that finish in reverse order: task i returns only after task
// i+1 has returned, so any result written to the wrong slot shows.
func reverse(n int) []func(context.Context) (int, error) {
	done := make([]chan struct{}, n+1)
	for i := range done {
		done[i] = make(chan struct{})
	}
	close(done[n])
	fns := make([]func(context.Context) (int, error), n)
	for i := range fns {
		fns[i] = func(ctx context.Context) (int, error) {
			<-done[i+1]
			close(done[i])
			return i * 10, nil
		}
	}
	return fns
}

func TestAllOrderedWhateverTheCompletionOrder(t *testing.T) {
	t.Parallel()
	got, err := gather.All(context.Background(), reverse(50)...)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != i*10 {
			t.Fatalf("result %d = %d, want %d", i, v, i*10)
		}
	}
}

func TestSettledOrderedWhateverTheCompletionOrder(t *testing.T) {
	t.Parallel()
	got := gather.Settled(context.Background(), reverse(50)...)
	for i, r := range got {
		if r.Err != nil || r.Value != i*10 {
			t.Fatalf("result %d = %+v, want %d", i, r, i*10)
		}
	}
}

func TestEmptyInputsGiveEmptySlices(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	v, err := gather.All[int](ctx)
	if v == nil || len(v) != 0 || err != nil {
		t.Errorf("All() = %#v, %v; want empty non-nil slice", v, err)
	}
	if r := gather.Settled[int](ctx); r == nil || len(r) != 0 {
		t.Errorf("Settled() = %#v", r)
	}
	id := func(ctx context.Context, n int) (int, error) { return n, nil }
	if v, err := gather.Map(ctx, nil, id, gather.Limit(3)); v == nil || len(v) != 0 || err != nil {
		t.Errorf("Map(nil) = %#v, %v", v, err)
	}
	if r := gather.MapSettled(ctx, nil, id); r == nil || len(r) != 0 {
		t.Errorf("MapSettled(nil) = %#v", r)
	}
	for range gather.Stream(ctx, nil, id) {
		t.Error("Stream(nil) yielded")
	}
	for range gather.StreamOrdered(ctx, nil, id, 4) {
		t.Error("StreamOrdered(nil) yielded")
	}
}

// TestFailFast checks, for All and Map with and without a limit, that the first error
// cancels what the others see, that the call returns only after every started task has
// returned, and that the error names the failing index and wraps its error.
func TestFailFast(t *testing.T) {
	t.Parallel()
	for _, limit := range []int{0, 1, 3} {
		t.Run(fmt.Sprintf("limit=%d", limit), func(t *testing.T) {
			t.Parallel()
			// Tasks before the failing one block until it fails, so with a limit it must
			// be among the first limit tasks.
			const n = 20
			failing := 2
			if limit > 0 {
				failing = min(failing, limit-1)
			}
			var running, returned atomic.Int32
			task := func(ctx context.Context, i int) (int, error) {
				running.Add(1)
				defer returned.Add(1)
				if i == failing {
					return 0, errBoom
				}
				<-ctx.Done() // only the failure ends the others
				if !errors.Is(context.Cause(ctx), errBoom) {
					t.Errorf("task %d: cause %v, want the failing task's error", i, context.Cause(ctx))
				}
				return i, ctx.Err()
			}
			var opts []gather.Option
			if limit > 0 {
				opts = append(opts, gather.Limit(limit))
			}
			inputs := make([]int, n)
			for i := range inputs {
				inputs[i] = i
			}
			got, err := gather.Map(context.Background(), inputs, task, opts...)
			if got != nil {
				t.Errorf("values %v, want nil on error", got)
			}
			var te *gather.TaskError
			if !errors.As(err, &te) || te.Index != failing || !errors.Is(err, errBoom) {
				t.Fatalf("err = %v, want task %d's error", err, failing)
			}
			if running.Load() != returned.Load() {
				t.Errorf("returned before every task did: %d started, %d returned", running.Load(), returned.Load())
			}
			if limit > 0 && int(running.Load()) == n {
				t.Errorf("with Limit(%d) every task started after the failure", limit)
			}
		})
	}
}

func TestAllFailFastWithFunctions(t *testing.T) {
	t.Parallel()
	var sawCancel atomic.Bool
	started := make(chan struct{})
	_, err := gather.All(context.Background(),
		func(ctx context.Context) (int, error) {
			close(started)
			<-ctx.Done()
			sawCancel.Store(true)
			return 0, ctx.Err()
		},
		func(ctx context.Context) (int, error) { <-started; return 0, errBoom },
	)
	if !errors.Is(err, errBoom) || !strings.Contains(err.Error(), "task 1") {
		t.Fatalf("err = %v", err)
	}
	if !sawCancel.Load() {
		t.Error("the sibling did not see its context cancelled before All returned")
	}
}

func TestSettledNeverReturnsEarly(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var finished atomic.Bool
	done := make(chan []gather.Result[int])
	go func() {
		done <- gather.Settled(context.Background(),
			func(ctx context.Context) (int, error) { return 0, errBoom },
			func(ctx context.Context) (int, error) {
				<-release
				if ctx.Err() != nil {
					t.Error("Settled cancelled a sibling after an error")
				}
				finished.Store(true)
				return 7, nil
			},
		)
	}()
	select {
	case <-done:
		t.Fatal("Settled returned while a task was still running")
	case <-time.After(10 * time.Millisecond):
	}
	close(release)
	got := <-done
	if !finished.Load() || !errors.Is(got[0].Err, errBoom) || got[1].Value != 7 || got[1].Err != nil {
		t.Fatalf("got %+v", got)
	}
}

func TestJoinErrorsRunsEveryTaskAndKeepsEveryIndex(t *testing.T) {
	t.Parallel()
	for _, limit := range []int{0, 2} {
		opts := []gather.Option{gather.JoinErrors()}
		if limit > 0 {
			opts = append(opts, gather.Limit(limit))
		}
		var ran atomic.Int32
		in := []int{0, 1, 2, 3, 4, 5}
		got, err := gather.Map(context.Background(), in, func(ctx context.Context, n int) (int, error) {
			ran.Add(1)
			if ctx.Err() != nil {
				t.Error("JoinErrors cancelled a task")
			}
			if n%2 == 1 {
				return -1, fmt.Errorf("odd %d", n)
			}
			return n, nil
		}, opts...)
		if ran.Load() != 6 {
			t.Errorf("limit %d: %d tasks ran, want 6", limit, ran.Load())
		}
		if want := []int{0, 0, 2, 0, 4, 0}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("limit %d: values %v, want %v", limit, got, want)
		}
		var joined interface{ Unwrap() []error }
		if !errors.As(err, &joined) || len(joined.Unwrap()) != 3 {
			t.Fatalf("limit %d: err %v, want 3 joined errors", limit, err)
		}
		for k, e := range joined.Unwrap() {
			var te *gather.TaskError
			if !errors.As(e, &te) || te.Index != 2*k+1 {
				t.Errorf("limit %d: joined error %d = %v, want index %d", limit, k, e, 2*k+1)
			}
		}
	}
}

// TestLimitIsNeverExceededAndUsesNoGoroutinePerTask runs many tasks under a limit and
// checks both the number running at once and the number of distinct goroutines that
// ran them.
func TestLimitIsNeverExceededAndUsesNoGoroutinePerTask(t *testing.T) {
	t.Parallel()
	for _, limit := range []int{1, 3, 8} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			t.Parallel()
			var running, peak atomic.Int64
			var mu sync.Mutex
			var goroutines map[uint64]bool
			in := make([]int, 500)
			task := func(ctx context.Context, n int) (int, error) {
				r := running.Add(1)
				defer running.Add(-1)
				for p := peak.Load(); r > p && !peak.CompareAndSwap(p, r); p = peak.Load() {
				}
				mu.Lock()
				goroutines[goroutineID()] = true
				mu.Unlock()
				runtime.Gosched()
				return n, nil
			}
			calls := map[string]func(){
				"Map":        func() { gather.Map(context.Background(), in, task, gather.Limit(limit)) },
				"MapSettled": func() { gather.MapSettled(context.Background(), in, task, gather.Limit(limit)) },
				"Stream": func() {
					for range gather.Stream(context.Background(), in, task, gather.Limit(limit)) {
					}
				},
				"StreamOrdered": func() {
					for range gather.StreamOrdered(context.Background(), in, task, 2*limit, gather.Limit(limit)) {
					}
				},
			}
			for name, call := range calls {
				goroutines = map[uint64]bool{}
				call()
				if len(goroutines) > limit {
					t.Errorf("%s: %d goroutines ran tasks, limit %d", name, len(goroutines), limit)
				}
			}
			if peak.Load() > int64(limit) {
				t.Errorf("peak %d tasks running, limit %d", peak.Load(), limit)
			}
		})
	}
}

// goroutineID returns the ID of the calling goroutine, from the header of its stack
// trace ("goroutine 7 [running]:"): for tests only.
func goroutineID() uint64 {
	var buf [32]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = b[len("goroutine "):]
	id, _ := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return id
}

func TestLimitSpreadsSlowTasksOverEveryWorker(t *testing.T) {
	t.Parallel()
	// Eight tasks that each wait for all eight to have started: a worker that claimed
	// more than one of them would deadlock, so this passes only if slow tasks are
	// claimed one at a time.
	var wg sync.WaitGroup
	wg.Add(8)
	in := make([]int, 8)
	_, err := gather.Map(context.Background(), in, func(ctx context.Context, n int) (int, error) {
		wg.Done()
		wg.Wait()
		return n, nil
	}, gather.Limit(8))
	if err != nil {
		t.Fatal(err)
	}
}

func TestParentCancellationReachesEveryTask(t *testing.T) {
	t.Parallel()
	for _, limit := range []int{0, 4} {
		ctx, cancel := context.WithCancelCause(context.Background())
		var started sync.WaitGroup
		started.Add(4)
		go func() { started.Wait(); cancel(errBoom) }()
		opts := []gather.Option{}
		if limit > 0 {
			opts = append(opts, gather.Limit(limit))
		}
		res := gather.MapSettled(ctx, make([]int, 4), func(ctx context.Context, _ int) (int, error) {
			started.Done()
			<-ctx.Done()
			return 0, context.Cause(ctx)
		}, opts...)
		for i, r := range res {
			if !errors.Is(r.Err, errBoom) {
				t.Errorf("limit %d: task %d: %v, want the parent's cause", limit, i, r.Err)
			}
		}
	}
}

func TestTasksNotStartedWhenContextEnded(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	task := func(ctx context.Context, n int) (int, error) {
		calls.Add(1)
		cancel()
		return n, nil
	}
	in := make([]int, 100)
	res := gather.MapSettled(ctx, in, task, gather.Limit(1))
	if calls.Load() != 1 {
		t.Fatalf("%d tasks called after the context ended, want 1", calls.Load())
	}
	if res[0].Err != nil {
		t.Errorf("the task that ran: %v", res[0].Err)
	}
	for i, r := range res[1:] {
		if !errors.Is(r.Err, context.Canceled) {
			t.Fatalf("task %d not started: result %+v, want context.Canceled", i+1, r)
		}
	}
	// Already cancelled: nothing runs, fail-fast reports the first task, JoinErrors
	// reports how many were not started.
	calls.Store(0)
	_, err := gather.Map(ctx, in, task)
	var te *gather.TaskError
	if !errors.As(err, &te) || te.Index != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("Map on a cancelled context: %v", err)
	}
	_, err = gather.Map(ctx, in, task, gather.JoinErrors(), gather.Limit(3))
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "100 of 100 tasks not started") {
		t.Errorf("JoinErrors on a cancelled context: %v", err)
	}
	if calls.Load() != 0 {
		t.Errorf("%d tasks ran on a cancelled context", calls.Load())
	}
}

func TestTimeoutCancelsEachTask(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		res := gather.MapSettled(context.Background(), []time.Duration{time.Millisecond, time.Hour},
			func(ctx context.Context, d time.Duration) (string, error) {
				select {
				case <-time.After(d):
					return "done", nil
				case <-ctx.Done():
					return "", ctx.Err()
				}
			}, gather.Timeout(time.Second))
		if res[0].Value != "done" || !errors.Is(res[1].Err, context.DeadlineExceeded) {
			t.Fatalf("got %+v", res)
		}
	})
}

// TestPanicIsReraisedInTheCaller checks every entry point: the panic reaches the
// caller's goroutine as a *PanicError with the task's index and stack, after every
// sibling has returned.
func TestPanicIsReraisedInTheCaller(t *testing.T) {
	t.Parallel()
	type call func(task func(ctx context.Context, i int) (int, error))
	mapWith := func(opts ...gather.Option) call {
		return func(task func(ctx context.Context, i int) (int, error)) {
			gather.Map(context.Background(), []int{0, 1, 2, 3}, task, opts...)
		}
	}
	calls := map[string]call{
		"All": func(task func(ctx context.Context, i int) (int, error)) {
			fns := make([]func(context.Context) (int, error), 4)
			for i := range fns {
				fns[i] = func(ctx context.Context) (int, error) { return task(ctx, i) }
			}
			gather.All(context.Background(), fns...)
		},
		"Map":          mapWith(),
		"Map/Limit":    mapWith(gather.Limit(2)),
		"Map/JoinErrs": mapWith(gather.JoinErrors()),
		"MapSettled": func(task func(ctx context.Context, i int) (int, error)) {
			gather.MapSettled(context.Background(), []int{0, 1, 2, 3}, task, gather.Limit(3))
		},
		"Stream": func(task func(ctx context.Context, i int) (int, error)) {
			for range gather.Stream(context.Background(), []int{0, 1, 2, 3}, task) {
			}
		},
		"StreamOrdered": func(task func(ctx context.Context, i int) (int, error)) {
			for range gather.StreamOrdered(context.Background(), []int{0, 1, 2, 3}, task, 4) {
			}
		},
		"Group": func(task func(ctx context.Context, i int) (int, error)) {
			g := gather.NewGroup[int](context.Background(), gather.Limit(3))
			for i := range 4 {
				g.Go(func(ctx context.Context) (int, error) { return task(ctx, i) })
			}
			g.Wait()
		},
	}
	for name, c := range calls {
		for _, panicking := range []int{1, 3} { // 3 runs on the caller's goroutine without a limit
			t.Run(fmt.Sprintf("%s/task=%d", name, panicking), func(t *testing.T) {
				t.Parallel()
				var siblingsReturned atomic.Int32
				var ready sync.WaitGroup
				ready.Add(1)
				task := func(ctx context.Context, i int) (int, error) {
					if i == panicking {
						ready.Wait() // let a sibling start, so it must be waited for
						panicInTask()
					}
					if i == 0 {
						ready.Done()
						<-ctx.Done() // the panic cancels the siblings
						time.Sleep(time.Millisecond)
					}
					siblingsReturned.Add(1)
					return i, nil
				}
				defer func() {
					v := recover()
					pe, ok := v.(*gather.PanicError)
					if !ok {
						t.Fatalf("recovered %#v, want *gather.PanicError", v)
					}
					if pe.Index != panicking || pe.Value != "task failed hard" {
						t.Errorf("PanicError{Index: %d, Value: %v}", pe.Index, pe.Value)
					}
					if !strings.Contains(string(pe.Stack), "panicInTask") {
						t.Errorf("the stack does not show the task:\n%s", pe.Stack)
					}
					if siblingsReturned.Load() == 0 {
						t.Error("the panic was re-raised before the blocked sibling returned")
					}
				}()
				c(task)
				t.Fatal("no panic")
			})
		}
	}
}

//go:noinline
func panicInTask() { panic("task failed hard") }

// TestGoexitEndsTheCallersGoroutine has a task call runtime.Goexit, the first or the
// last one (the last runs on the caller's goroutine without a limit), while a sibling
// is still running: the caller's goroutine must exit too, and only after the sibling.
func TestGoexitEndsTheCallersGoroutine(t *testing.T) {
	t.Parallel()
	for _, limit := range []int{0, 1, 2} {
		for _, exiting := range []int{0, 2} {
			var siblingReturned atomic.Bool
			started := make(chan struct{})
			done := make(chan [2]bool)
			go func() {
				returned := false
				defer func() { done <- [2]bool{returned, siblingReturned.Load()} }()
				opts := []gather.Option{}
				if limit > 0 {
					opts = append(opts, gather.Limit(limit))
				}
				gather.Map(context.Background(), []int{0, 1, 2}, func(ctx context.Context, i int) (int, error) {
					switch {
					case i == exiting:
						if limit != 1 {
							<-started
						}
						runtime.Goexit()
					case i == 1 && limit != 1:
						close(started)
						<-ctx.Done() // the Goexit cancels the siblings
						time.Sleep(time.Millisecond)
						siblingReturned.Store(true)
					}
					return i, nil
				}, opts...)
				returned = true
			}()
			got := <-done
			if got[0] {
				t.Errorf("limit %d, task %d: the caller went on after a task called runtime.Goexit", limit, exiting)
			}
			if limit != 1 && !got[1] {
				t.Errorf("limit %d, task %d: the caller exited before a sibling returned", limit, exiting)
			}
		}
	}
}

func TestPanicErrorUnwrapsAnErrorValue(t *testing.T) {
	t.Parallel()
	defer func() {
		pe := recover().(*gather.PanicError)
		if !errors.Is(pe, errBoom) || !strings.Contains(pe.Error(), "boom") {
			t.Errorf("PanicError %v does not reach the panic's error", pe)
		}
	}()
	gather.All(context.Background(), func(ctx context.Context) (int, error) { panic(errBoom) })
}

func TestBadArgumentsPanicWithAClearMessage(t *testing.T) {
	t.Parallel()
	var nilCtx context.Context
	id := func(ctx context.Context, n int) (int, error) { return n, nil }
	cases := map[string]struct {
		f    func()
		want string
	}{
		"Limit(0)":        {func() { gather.Limit(0) }, "Limit(0): the limit must be at least 1"},
		"Limit(-1)":       {func() { gather.Limit(-1) }, "Limit(-1)"},
		"Timeout(0)":      {func() { gather.Timeout(0) }, "the timeout must be positive"},
		"nil ctx":         {func() { gather.Map(nilCtx, []int{1}, id) }, "Map: nil Context"},
		"nil fn":          {func() { gather.Map[int, int](context.Background(), []int{1}, nil) }, "Map: nil function"},
		"nil in All":      {func() { gather.All[int](context.Background(), nil) }, "All: function 0 is nil"},
		"nil in Settled":  {func() { gather.Settled(context.Background(), id0, nil) }, "Settled: function 1 is nil"},
		"window 0":        {func() { gather.StreamOrdered(context.Background(), []int{1}, id, 0) }, "window 0: the window must be at least 1"},
		"nil Group ctx":   {func() { gather.NewGroup[int](nilCtx) }, "NewGroup: nil Context"},
		"nil Group fn":    {func() { new(gather.Group[int]).Go(nil) }, "Group.Go: nil function"},
		"Stream twice":    {func() { s := gather.Stream(context.Background(), []int{1}, id); drain(s); drain(s) }, "ranged over only once"},
		"Go after Wait":   {func() { var g gather.Group[int]; g.Wait(); g.Go(id0) }, "Go called after Wait returned"},
		"Wait after Wait": {func() { var g gather.Group[int]; g.Wait(); g.Wait() }, "Wait called twice"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			defer func() {
				v := recover()
				if s, _ := v.(string); !strings.Contains(s, c.want) {
					t.Errorf("panic %v, want it to contain %q", v, c.want)
				}
			}()
			c.f()
		})
	}
}

func id0(ctx context.Context) (int, error) { return 0, nil }

func drain[K, V any](s func(func(K, V) bool)) {
	for range s {
	}
}

func TestValues(t *testing.T) {
	t.Parallel()
	v, err := gather.Values([]gather.Result[string]{{Value: "a"}, {Value: "b"}})
	if err != nil || fmt.Sprint(v) != "[a b]" {
		t.Errorf("Values = %v, %v", v, err)
	}
}
