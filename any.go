package gather

import (
	"context"
	"errors"
)

// Any runs every function concurrently, each on a goroutine of its own (the last one on
// the caller's), and returns the value of the first to succeed, as Promise.any does: its
// success cancels the context the others see, with a cause saying that another task
// succeeded first, and Any returns once every function has returned, so no loser
// outlives the call. "First" is the first to return a nil error, whatever its index.
//
// A failure cancels nothing: the others keep running, since one of them may still
// succeed. When every function fails, Any returns the zero value and an error that joins
// every failure in index order, each a [*TaskError] carrying its index (JavaScript's
// AggregateError, as [JoinErrors] reports failures). When ctx ends before every function
// has started, the ones not started are not called and one more error, wrapping ctx's
// cause, says how many. With no functions, Any returns an error: nothing can succeed.
//
// For the first outcome whether it succeeds or fails (asyncio.wait with FIRST_COMPLETED,
// Promise.race), range over [Stream] and break out of the loop: the rest are cancelled
// and waited for the same way.
//
// A panic in a function is re-raised in the caller's goroutine once the others have
// returned, as in [All], even when another function had succeeded. Any panics if ctx or
// a function is nil. It costs what [All] costs for the functions it starts, plus a
// [*TaskError] per failure; a function not yet started when one succeeds is never called.
func Any[T any](ctx context.Context, fns ...func(context.Context) (T, error)) (T, error) {
	checkFuncs(ctx, fns, "Any")
	return mapAny(ctx, fns, call[T], nil, "Any")
}

// MapAny calls fn on every input concurrently and returns the first output to succeed,
// cancelling the other calls: it is to a slice what [Any] is to a list of functions.
//
// With [Limit], at most that many calls run at once and the inputs start in index order,
// so MapAny(ctx, mirrors, fetch, Limit(1)) tries one input after another until one
// succeeds (a fallback chain), and a larger limit tries that many at a time; the inputs
// not started when one succeeds are never called. [Timeout] bounds each call, so that a
// slow input fails and leaves its turn to the next; [JoinErrors] changes nothing. MapAny
// returns only after every call it started has returned. With no inputs it returns an
// error. It panics if ctx or fn is nil.
func MapAny[In, Out any](ctx context.Context, in []In, fn func(context.Context, In) (Out, error), opts ...Option) (Out, error) {
	checkArgs(ctx, fn == nil, "MapAny")
	return mapAny(ctx, in, fn, opts, "MapAny")
}

func mapAny[In, Out any](ctx context.Context, in []In, fn func(context.Context, In) (Out, error), opts []Option, caller string) (Out, error) {
	if len(in) == 0 {
		var zero Out
		return zero, errors.New("gather: " + caller + " with nothing to run: no task can succeed")
	}
	c := configure(opts)
	j := newJob(ctx, in, fn, firstOK, c)
	j.run(c.limit)
	return j.first()
}
