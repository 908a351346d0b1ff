package gather

import (
	"context"
	"fmt"
	"iter"
	"sync/atomic"
)

// Stream calls fn on every input concurrently and yields each outcome as it completes,
// with the index of its input: the fastest way to act on results as they arrive.
//
// The calls start when the range loop starts, with a goroutine per input, or with
// [Limit] workers and no goroutine per input. A task waits to hand over its outcome
// until the loop asks for the next one, so a slow loop slows the tasks down rather than
// piling up results. Breaking out of the loop cancels the context the remaining tasks
// see and starts nothing more; the loop statement returns only after every call it
// started has returned. When ctx ends, tasks not started yet are yielded with ctx's
// cause as their error. A panic in a task is re-raised in the ranging goroutine after
// the others have returned. [Timeout] applies to each call; [JoinErrors] is not used.
//
// The iterator is single-use: ranging over it a second time panics. Stream panics if
// ctx or fn is nil.
func Stream[In, Out any](ctx context.Context, in []In, fn func(context.Context, In) (Out, error), opts ...Option) iter.Seq2[int, Result[Out]] {
	checkArgs(ctx, fn == nil, "Stream")
	c := configure(opts)
	var used atomic.Bool
	return func(yield func(int, Result[Out]) bool) {
		if used.Swap(true) {
			panic("gather: a Stream can be ranged over only once")
		}
		if len(in) == 0 {
			return
		}
		j := newStreamJob(ctx, in, fn, c)
		defer j.finish()
		j.start(c.limit)
		for range in {
			select {
			case it := <-j.sink:
				if !yield(it.i, it.r) {
					return
				}
			case <-j.quit: // a task panicked: finish re-raises it
				return
			}
		}
	}
}

// StreamOrdered calls fn on every input concurrently and yields the outcomes in input
// order, holding at most window finished outcomes that wait for an earlier one: memory
// stays bounded however many inputs there are, and a slow loop slows the tasks down.
//
// A task starts only when its index is less than window past the oldest outcome not yet
// yielded, so at most window tasks are running or waiting at any time; [Limit] lowers
// the number that run at once below window. Everything else is as in [Stream].
// StreamOrdered panics if ctx or fn is nil or if window < 1.
func StreamOrdered[In, Out any](ctx context.Context, in []In, fn func(context.Context, In) (Out, error), window int, opts ...Option) iter.Seq2[int, Result[Out]] {
	checkArgs(ctx, fn == nil, "StreamOrdered")
	if window < 1 {
		panic(fmt.Sprintf("gather: StreamOrdered: window %d: the window must be at least 1", window))
	}
	c := configure(opts)
	workers := window
	if c.limit > 0 {
		workers = min(c.limit, window)
	}
	var used atomic.Bool
	return func(yield func(int, Result[Out]) bool) {
		if used.Swap(true) {
			panic("gather: a StreamOrdered can be ranged over only once")
		}
		if len(in) == 0 {
			return
		}
		j := newStreamJob(ctx, in, fn, c)
		defer j.finish()
		window := min(window, len(in))
		// tokens holds one token per index a worker may claim beyond the oldest one not
		// yet yielded; a yielded result gives its token back. The channel is buffered to
		// window: at most window tokens exist, so giving one back never blocks.
		tokens := make(chan struct{}, window)
		for range window {
			tokens <- struct{}{}
		}
		w := min(workers, window)
		j.wg.Add(w)
		for range w {
			go j.workOrdered(tokens)
		}
		ring := make([]item[Out], window)
		ready := make([]bool, window)
		for next := 0; next < len(in); {
			select {
			case it := <-j.sink:
				ring[it.i%window], ready[it.i%window] = it, true
			case <-j.quit:
				return
			}
			for next < len(in) && ready[next%window] {
				it := ring[next%window]
				ring[next%window], ready[next%window] = item[Out]{}, false
				next++
				if !yield(it.i, it.r) {
					return
				}
				tokens <- struct{}{} // only now may a task start window past it
			}
		}
	}
}

func newStreamJob[In, Out any](ctx context.Context, in []In, fn func(context.Context, In) (Out, error), c config) *job[In, Out] {
	j := newJob(ctx, in, fn, streaming, c)
	j.sink = make(chan item[Out])
	j.quit = make(chan struct{})
	return j
}

// finish ends a stream's range loop however it ends (done, broken out of, or a panic in
// the loop body): it stops whatever is still running, waits for it, and re-raises a
// task's panic.
func (j *job[In, Out]) finish() {
	j.halt(errAborted)
	j.wait()
}

// workOrdered is a worker of StreamOrdered: it claims indices one at a time, each with
// a token.
func (j *job[In, Out]) workOrdered(tokens chan struct{}) {
	cur, ok := -1, false
	defer func() {
		if !ok {
			j.abort(cur, recover())
		}
		j.wg.Done()
	}()
	n := int64(len(j.in))
	for {
		select {
		case <-tokens:
		case <-j.quit:
			ok = true
			return
		}
		i := j.next.Add(1) - 1
		if i >= n {
			ok = true
			return
		}
		cur = int(i)
		if j.isDone() {
			j.skip(cur)
			continue
		}
		j.runOne(cur)
	}
}
