package gather

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// mode says where a finished task's outcome goes.
type mode uint8

const (
	failFast  mode = iota // values into out; the first failure cancels the rest
	joinAll               // values into out; every failure kept
	settled               // every outcome into res
	streaming             // every outcome sent to the ranging goroutine
	firstOK               // the first success into winner, cancelling the rest; every failure kept until then
)

// errAborted is the cancellation cause the tasks see when a sibling panicked, or the
// reader of a stream stopped early.
var errAborted = errors.New("gather: call aborted")

// errWon is the cancellation cause the tasks of [Any] and [MapAny] see when another
// task succeeded.
var errWon = errors.New("gather: another task succeeded first")

// core is one call's scheduling and failure handling, apart from the types of its
// tasks: the goroutine started per task closes over a *core and an index only, which
// keeps its closure to the size of a plain `go f(i)`. Every goroutine a call starts
// is counted in wg, and the call returns only after wg.Wait.
type core struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   <-chan struct{}
	mode   mode
	n      int64

	// runTask runs task i and records its outcome; runRange does so for the tasks from
	// start to end, in order, setting *cur to each index before it runs and stopping at
	// a halt; skipTask records that task i was not started because the context ended.
	// They are set by newJob.
	runTask, skipTask func(i int)
	runRange          func(start, end int, cur *int)

	workers int64        // how many workers claim indices; 0 with a goroutine per task
	next    atomic.Int64 // workers: the next index to claim
	failed  atomic.Bool  // failFast: err is set
	err     *TaskError   // failFast: the first failure
	stopped atomic.Bool  // fail or halt was called: start nothing more, record nothing more
	wg      sync.WaitGroup

	mu       sync.Mutex
	panicked *PanicError   // the first panic, re-raised by wait
	goexit   bool          // a task called runtime.Goexit
	quit     chan struct{} // streaming: closed by halt so blocked senders give up
	halted   bool          // quit is closed
}

func checkArgs(ctx context.Context, fnIsNil bool, caller string) {
	if ctx == nil {
		panic("gather: " + caller + ": nil Context")
	}
	if fnIsNil {
		panic("gather: " + caller + ": nil function")
	}
}

// run runs every task and waits for them, with the caller's goroutine taking a share:
// without a limit, a goroutine per task but the last, which the caller runs; with one,
// min(limit, n)-1 workers claiming indices, and the caller as one more.
func (c *core) run(limit int) {
	if limit > 0 {
		c.workers = int64(min(limit, int(c.n)))
		c.wg.Add(int(c.workers) - 1)
		for range c.workers - 1 {
			go c.work(false)
		}
		c.work(true)
	} else {
		n := int(c.n)
		c.wg.Add(n - 1)
		for i := range n - 1 {
			if c.isDone() {
				c.wg.Add(i - (n - 1))
				c.skipFrom(i)
				c.wait()
				return
			}
			go c.one(i, false)
		}
		c.one(n-1, true)
	}
	c.wait()
}

// start starts a stream's tasks on goroutines of their own, since the caller's goroutine
// reads their outcomes.
func (c *core) start(limit int) {
	if limit > 0 {
		c.workers = int64(min(limit, int(c.n)))
		c.wg.Add(int(c.workers))
		for range c.workers {
			go c.work(false)
		}
		return
	}
	c.wg.Add(int(c.n))
	for i := range int(c.n) {
		go c.one(i, false) // skipped tasks are reported by their own goroutines
	}
}

// wait waits for every goroutine of the call, then re-raises a task's panic or Goexit
// in the caller's goroutine.
func (c *core) wait() {
	c.wg.Wait()
	c.cancel(nil)
	if c.panicked != nil {
		panic(c.panicked)
	}
	if c.goexit {
		runtime.Goexit()
	}
}

func (c *core) isDone() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// exit ends a task's goroutine, or the caller's share of the tasks (inline): it records
// a panic or Goexit if the task did not return, and counts the goroutine out.
//
// When the caller's own task calls runtime.Goexit, the caller's goroutine is already
// on its way out: exit waits for the other goroutines first, so the Goexit still
// happens after every sibling has returned. A panic there is recovered, and re-raised
// by wait like any other.
func (c *core) exit(i int, ok, inline bool, v any) {
	if !ok {
		c.abort(i, v)
	}
	if !inline {
		c.wg.Done()
	} else if !ok && v == nil {
		c.wg.Wait()
	}
}

// one runs task i alone.
func (c *core) one(i int, inline bool) {
	ok := false
	defer func() {
		var v any
		if !ok {
			v = recover()
		}
		c.exit(i, ok, inline, v)
	}()
	if c.isDone() {
		c.skipTask(i)
	} else {
		c.runTask(i)
	}
	ok = true
}

// Chunking: a worker claims a run of indices with one atomic add and grows the run
// while its tasks are cheap, so that tasks of a few nanoseconds are not dominated by
// the claim, while a task that waits on I/O is claimed alone and never holds cheap
// ones back for long. A run is kept to about chunkTarget of work, and to a share of
// what is left so the last runs spread over every worker. The clock is read once a run,
// and only while the run's size is the worker's to choose: a clock read costs tens of
// nanoseconds on some machines, as much as several cheap tasks, and the share of what
// is left shrinks the last runs without it.
const (
	chunkTarget = 20 * time.Microsecond
	maxChunk    = 4096
)

// work is a worker: it claims runs of indices until none are left. It checks for the
// end of the context once a run (the run is short: see chunkTarget) and for a halt,
// which is this call's own decision to stop, before every task.
func (c *core) work(inline bool) {
	cur, ok := -1, false
	defer func() {
		var v any
		if !ok {
			v = recover()
		}
		c.exit(cur, ok, inline, v)
	}()
	chunk, size, timed := int64(1), int64(1), true
	for !c.stopped.Load() {
		start := c.next.Add(size) - size
		if start >= c.n {
			break
		}
		end := min(start+size, c.n)
		if c.isDone() {
			for i := start; i < end && !c.stopped.Load(); i++ {
				c.skipTask(int(i))
			}
			continue
		}
		var t0 time.Time
		if timed {
			t0 = time.Now()
		}
		c.runRange(int(start), int(end), &cur)
		if timed {
			switch elapsed := time.Since(t0); {
			case elapsed < chunkTarget/8:
				chunk = min(chunk*4, maxChunk)
			case elapsed < chunkTarget/2:
				chunk = min(chunk*2, maxChunk)
			case elapsed > chunkTarget:
				chunk = max(chunk/2, 1)
			}
		}
		share := (c.n - end) / (2 * c.workers)
		size, timed = max(min(chunk, share), 1), chunk < share
	}
	ok = true
}

// skipFrom records that the tasks from i on were not started.
func (c *core) skipFrom(i int) {
	for ; i < int(c.n) && !c.stopped.Load(); i++ {
		c.skipTask(i)
	}
}

func (c *core) fail(i int, err error) {
	if c.failed.CompareAndSwap(false, true) {
		c.err = &TaskError{Index: i, Err: err}
		c.stopped.Store(true)
		c.cancel(c.err)
	}
}

// abort records a task's panic (v != nil) or Goexit (v == nil) and stops the call.
func (c *core) abort(i int, v any) {
	var stack []byte
	if v != nil {
		stack = debug.Stack()
	}
	c.mu.Lock()
	if c.panicked == nil && !c.goexit {
		if v != nil {
			c.panicked = &PanicError{Index: i, Value: v, Stack: stack}
		} else {
			c.goexit = true
		}
	}
	c.mu.Unlock()
	c.halt(errAborted)
}

// halt stops the call: nothing more starts, nothing more is recorded, and blocked
// stream senders give up.
func (c *core) halt(cause error) {
	c.stopped.Store(true)
	c.cancel(cause)
	c.mu.Lock()
	if c.quit != nil && !c.halted {
		c.halted = true
		close(c.quit)
	}
	c.mu.Unlock()
}

// item is a finished task on its way to a stream's reader.
type item[T any] struct {
	i int
	r Result[T]
}

// job is one call with the types of its tasks: the inputs, the function, and where the
// outcomes go.
type job[In, Out any] struct {
	core
	in      []In
	fn      func(context.Context, In) (Out, error)
	timeout time.Duration

	out     []Out          // failFast, joinAll
	res     []Result[Out]  // settled
	sink    chan item[Out] // streaming; unbuffered
	skipped atomic.Int64   // joinAll, firstOK: tasks not started because the context ended
	errMu   sync.Mutex
	errs    []error     // joinAll, firstOK: every failure
	won     atomic.Bool // firstOK: winner is set
	winner  Out         // firstOK: the first success
}

func newJob[In, Out any](ctx context.Context, in []In, fn func(context.Context, In) (Out, error), m mode, c config) *job[In, Out] {
	j := &job[In, Out]{in: in, fn: fn, timeout: c.timeout}
	j.mode, j.n = m, int64(len(in))
	j.ctx, j.cancel = context.WithCancelCause(ctx)
	j.done = j.ctx.Done()
	j.runTask, j.skipTask, j.runRange = j.runOne, j.skip, j.runMany
	return j
}

// runMany runs the tasks from start to end. The common cases have loops of their own,
// without runOne's call and switch per task: the difference is measurable when tasks
// cost a few nanoseconds.
func (j *job[In, Out]) runMany(start, end int, cur *int) {
	ctx, fn, in := j.ctx, j.fn, j.in
	switch {
	case j.timeout > 0:
	case j.mode == failFast:
		out := j.out
		for i := start; i < end && !j.stopped.Load(); i++ {
			*cur = i
			v, err := fn(ctx, in[i])
			if err != nil {
				j.fail(i, err)
				return
			}
			out[i] = v
		}
		return
	case j.mode == settled:
		res := j.res
		for i := start; i < end && !j.stopped.Load(); i++ {
			*cur = i
			v, err := fn(ctx, in[i])
			res[i] = Result[Out]{Value: v, Err: err}
		}
		return
	}
	for i := start; i < end && !j.stopped.Load(); i++ {
		*cur = i
		j.runOne(i)
	}
}

// runOne runs task i and records its outcome.
func (j *job[In, Out]) runOne(i int) {
	ctx := j.ctx
	var cancel context.CancelFunc
	if j.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, j.timeout)
	}
	v, err := j.fn(ctx, j.in[i])
	if cancel != nil {
		cancel()
	}
	switch j.mode {
	case failFast:
		if err != nil {
			j.fail(i, err)
			return
		}
		j.out[i] = v
	case joinAll:
		if err != nil {
			j.keep(i, err)
			return
		}
		j.out[i] = v
	case settled:
		j.res[i] = Result[Out]{Value: v, Err: err}
	case streaming:
		j.emit(i, Result[Out]{Value: v, Err: err})
	case firstOK:
		if err != nil {
			j.keep(i, err)
			return
		}
		if j.won.CompareAndSwap(false, true) {
			j.winner = v
			j.stopped.Store(true)
			j.cancel(errWon)
		}
	}
}

// keep records task i's failure among every failure of a joinAll or firstOK job.
func (j *job[In, Out]) keep(i int, err error) {
	j.errMu.Lock()
	j.errs = append(j.errs, &TaskError{Index: i, Err: err})
	j.errMu.Unlock()
}

// skip records that task i was not started because the context ended.
func (j *job[In, Out]) skip(i int) {
	if j.stopped.Load() {
		return
	}
	cause := context.Cause(j.ctx)
	switch j.mode {
	case failFast:
		j.fail(i, cause)
	case joinAll, firstOK:
		j.skipped.Add(1)
	case settled:
		j.res[i] = Result[Out]{Err: cause}
	case streaming:
		j.emit(i, Result[Out]{Err: cause})
	}
}

func (j *job[In, Out]) emit(i int, r Result[Out]) {
	select {
	case j.sink <- item[Out]{i, r}:
	case <-j.quit:
	}
}

// values returns a failFast or joinAll job's outcome, after wait.
func (j *job[In, Out]) values() ([]Out, error) {
	if j.mode == failFast {
		if j.err != nil {
			return nil, j.err
		}
		return j.out, nil
	}
	return j.out, j.joined()
}

// first returns a firstOK job's outcome, after wait.
func (j *job[In, Out]) first() (Out, error) {
	if j.won.Load() {
		return j.winner, nil
	}
	var zero Out
	return zero, j.joined()
}

// joined joins every failure in index order, and the tasks not started, in one error.
func (j *job[In, Out]) joined() error {
	slices.SortFunc(j.errs, func(a, b error) int {
		return cmp.Compare(a.(*TaskError).Index, b.(*TaskError).Index)
	})
	if n := j.skipped.Load(); n > 0 {
		j.errs = append(j.errs, fmt.Errorf("gather: %d of %d tasks not started: %w", n, len(j.in), context.Cause(j.ctx)))
	}
	return errors.Join(j.errs...)
}
