package gather

import (
	"context"
	"strconv"
)

// Result is the outcome of one task: its value, or the error it returned. In a slice
// of results, the index of a result is the index of its task among the inputs.
type Result[T any] struct {
	Value T
	Err   error
}

// All runs every function concurrently, each on a goroutine of its own (the last one on
// the caller's), and returns their values in the order the functions were given.
//
// It is fail-fast, like asyncio.gather: the first function to return an error cancels
// the context the others see, All waits for every function to return, and then returns
// nil values and that error, a [*TaskError] carrying the function's index. When ctx ends
// before every function has started, the ones not started are not called and All
// returns ctx's cause as the error of the first of them. With no functions, All returns
// an empty slice.
//
// All panics if ctx or a function is nil. It costs about the same as starting a
// goroutine per function and waiting on a sync.WaitGroup: see BENCHMARKS.md.
func All[T any](ctx context.Context, fns ...func(context.Context) (T, error)) ([]T, error) {
	checkFuncs(ctx, fns, "All")
	return Map(ctx, fns, call[T])
}

// Settled runs every function concurrently, each on a goroutine of its own (the last one
// on the caller's), and returns every outcome in the order the functions were given, as
// asyncio.gather(..., return_exceptions=True) does.
//
// It never returns early: an error in one function cancels nothing, and Settled returns
// once every function has returned. When ctx ends before every function has started,
// the ones not started are not called and their results hold ctx's cause.
// Settled panics if ctx or a function is nil. [Values] turns the results into values
// and one error that joins every failure with its index.
func Settled[T any](ctx context.Context, fns ...func(context.Context) (T, error)) []Result[T] {
	checkFuncs(ctx, fns, "Settled")
	return MapSettled(ctx, fns, call[T])
}

// Map calls fn on every input concurrently and returns the outputs in input order.
//
// Without options it is to a slice what [All] is to a list of functions: fail-fast,
// with a goroutine per input. [Limit] bounds how many calls run at once, on that many
// goroutines (the caller's among them) and no goroutine per input, so that a call of a
// few nanoseconds costs a few nanoseconds more; [Timeout] bounds each call; [JoinErrors] runs
// every call to the end and returns every failure instead of the first. Map returns
// only after every call it started has returned. It panics if ctx or fn is nil.
func Map[In, Out any](ctx context.Context, in []In, fn func(context.Context, In) (Out, error), opts ...Option) ([]Out, error) {
	checkArgs(ctx, fn == nil, "Map")
	if len(in) == 0 {
		return []Out{}, nil
	}
	c := configure(opts)
	m := failFast
	if c.join {
		m = joinAll
	}
	j := newJob(ctx, in, fn, m, c)
	j.out = make([]Out, len(in))
	j.run(c.limit)
	return j.values()
}

// MapSettled calls fn on every input concurrently and returns every outcome in input
// order: it is to a slice what [Settled] is to a list of functions. [Limit] and
// [Timeout] apply as in [Map]; [JoinErrors] changes nothing, since every call runs to
// the end anyway. It panics if ctx or fn is nil.
func MapSettled[In, Out any](ctx context.Context, in []In, fn func(context.Context, In) (Out, error), opts ...Option) []Result[Out] {
	checkArgs(ctx, fn == nil, "MapSettled")
	if len(in) == 0 {
		return []Result[Out]{}
	}
	c := configure(opts)
	j := newJob(ctx, in, fn, settled, c)
	j.res = make([]Result[Out], len(in))
	j.run(c.limit)
	return j.res
}

func call[T any](ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	return fn(ctx)
}

func checkFuncs[T any](ctx context.Context, fns []func(context.Context) (T, error), caller string) {
	checkArgs(ctx, false, caller)
	for i, fn := range fns {
		if fn == nil {
			panic("gather: " + caller + ": function " + strconv.Itoa(i) + " is nil")
		}
	}
}
