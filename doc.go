// Package gather runs many operations concurrently in one process and collects their
// results synchronously, in input order, with errors handled the way the caller chose:
// Go's asyncio.gather.
//
// Use [All] when every result is needed and the first error makes the rest pointless:
// it returns the results in input order or the first error, and cancels the context
// the other tasks see. Use [Settled] when every outcome matters, as with
// asyncio.gather(..., return_exceptions=True) or Promise.allSettled: it never returns
// early and reports each task's value or error at its index. Use [Map] and
// [MapSettled] for the same over a slice of inputs, with [Limit] to bound how many run
// at once and [Timeout] to bound each task. Use [Any] (or [MapAny]) when one success is
// enough, as with Promise.any: the first to succeed cancels the rest, and only if every
// task fails is every failure returned. Use [Group] when tasks are discovered while
// others run. Use [Stream] to handle results as they complete, or [StreamOrdered] to
// handle them in input order with bounded memory.
//
// Results are always index-aligned with the inputs: result i belongs to input i, never
// compacted, never reordered. Errors returned for a task are [*TaskError] values that
// carry the task's index and wrap the task's own error, so errors.Is and errors.As reach
// it.
//
// No goroutine outlives a call: every function here returns only after every task it
// started has returned. A panic in a task is re-raised in the caller's goroutine as a
// [*PanicError] carrying the task's index and stack, after the other tasks have
// returned, so a recover in the caller (such as net/http's per-request recovery) sees
// it. A task that calls runtime.Goexit makes the caller's goroutine exit the same way.
//
// For the task queue that spreads work across processes and machines, see package
// queue; for consistent snapshots of asynchronous update streams, see package snapshot.
package gather
