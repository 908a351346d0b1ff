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
)

// errAborted is the cancellation cause the tasks see when a sibling panicked, or the
// reader of a stream stopped early.
var errAborted = errors.New("gather: call aborted")

// item is a finished task on its way to a stream's reader.
type item[T any] struct {
	i int
	r Result[T]
}

// job is one call: the tasks, where their outcomes go, and what ended it early.
// Every goroutine a job starts is counted in wg, and the call returns only after
// wg.Wait.
type job[In, Out any] struct {
	ctx     context.Context
	cancel  context.CancelCauseFunc
	done    <-chan struct{}
	in      []In
	fn      func(context.Context, In) (Out, error)
	mode    mode
	timeout time.Duration

	out  []Out          // failFast, joinAll
	res  []Result[Out]  // settled
	sink chan item[Out] // streaming; unbuffered
	quit chan struct{}  // streaming; closed by halt so blocked senders give up

	workers int64        // how many workers claim indices; 0 with a goroutine per task
	next    atomic.Int64 // workers: the next index to claim
	skipped atomic.Int64 // joinAll: tasks not started because the context ended
	failed  atomic.Bool  // failFast: err is set
	err     *TaskError   // failFast: the first failure
	stopped atomic.Bool  // fail or halt was called: start nothing more, record nothing more
	wg      sync.WaitGroup

	mu       sync.Mutex
	errs     []error     // joinAll: every failure
	panicked *PanicError // the first panic, re-raised by wait
	goexit   bool        // a task called runtime.Goexit
	halted   bool        // quit is closed
}

func newJob[In, Out any](ctx context.Context, in []In, fn func(context.Context, In) (Out, error), m mode, c config) *job[In, Out] {
	j := &job[In, Out]{in: in, fn: fn, mode: m, timeout: c.timeout}
	j.ctx, j.cancel = context.WithCancelCause(ctx)
	j.done = j.ctx.Done()
	return j
}

func checkArgs(ctx context.Context, fnIsNil bool, caller string) {
	if ctx == nil {
		panic("gather: " + caller + ": nil Context")
	}
	if fnIsNil {
		panic("gather: " + caller + ": nil function")
	}
}

// run starts the tasks and waits for them: a goroutine per task without a limit, or
// min(limit, len(in)) workers claiming indices with one.
func (j *job[In, Out]) run(limit int) {
	j.start(limit)
	j.wait()
}

func (j *job[In, Out]) start(limit int) {
	n := len(j.in)
	if limit > 0 {
		j.workers = int64(min(limit, n))
		j.wg.Add(int(j.workers))
		for range j.workers {
			go j.work()
		}
		return
	}
	j.wg.Add(n)
	for i := range n {
		// A stream's reader has not started reading yet, so its skipped tasks are
		// reported by their own goroutines; the other modes record them here.
		if j.mode != streaming && j.isDone() {
			j.wg.Add(i - n)
			j.skipRange(i, n)
			return
		}
		go j.one(i)
	}
}

// wait waits for every goroutine of the job, then re-raises a task's panic or Goexit
// in the caller's goroutine.
func (j *job[In, Out]) wait() {
	j.wg.Wait()
	j.cancel(nil)
	if j.panicked != nil {
		panic(j.panicked)
	}
	if j.goexit {
		runtime.Goexit()
	}
}

func (j *job[In, Out]) isDone() bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

// one runs task i on its own goroutine.
func (j *job[In, Out]) one(i int) {
	ok := false
	defer func() {
		if !ok {
			j.abort(i, recover())
		}
		j.wg.Done()
	}()
	if j.isDone() {
		j.skip(i)
	} else {
		j.runOne(i)
	}
	ok = true
}

// Chunking: a worker claims a run of indices with one atomic add and grows the run
// while its tasks are cheap, so that tasks of a few nanoseconds are not dominated by
// the claim, while a task that waits on I/O is claimed alone and never holds cheap
// ones back for long. A run is kept to about chunkTarget of work, and to a share of
// what is left so the last runs spread over every worker.
const (
	chunkTarget = 20 * time.Microsecond
	maxChunk    = 4096
)

// work is a worker: it claims runs of indices until none are left. It checks for the
// end of the context once a run (the run is short: see chunkTarget) and for a halt,
// which is this job's own decision to stop, before every task.
func (j *job[In, Out]) work() {
	cur, ok := -1, false
	defer func() {
		if !ok {
			j.abort(cur, recover())
		}
		j.wg.Done()
	}()
	n := int64(len(j.in))
	chunk := int64(1)
	for !j.stopped.Load() {
		start := j.next.Add(chunk) - chunk
		if start >= n {
			break
		}
		end := min(start+chunk, n)
		if j.isDone() {
			for i := start; i < end && !j.stopped.Load(); i++ {
				j.skip(int(i))
			}
			continue
		}
		t0 := time.Now()
		for i := start; i < end && !j.stopped.Load(); i++ {
			cur = int(i)
			j.runOne(cur)
		}
		elapsed := time.Since(t0)
		switch {
		case elapsed < chunkTarget/2 && chunk < maxChunk:
			chunk *= 2
		case elapsed > chunkTarget && chunk > 1:
			chunk /= 2
		}
		if share := (n - end) / (2 * j.workers); chunk > share {
			chunk = max(share, 1)
		}
	}
	ok = true
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
			j.mu.Lock()
			j.errs = append(j.errs, &TaskError{Index: i, Err: err})
			j.mu.Unlock()
			return
		}
		j.out[i] = v
	case settled:
		j.res[i] = Result[Out]{Value: v, Err: err}
	case streaming:
		j.emit(i, Result[Out]{Value: v, Err: err})
	}
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
	case joinAll:
		j.skipped.Add(1)
	case settled:
		j.res[i] = Result[Out]{Err: cause}
	case streaming:
		j.emit(i, Result[Out]{Err: cause})
	}
}

func (j *job[In, Out]) skipRange(from, to int) {
	switch j.mode {
	case settled:
		for i := from; i < to; i++ {
			j.skip(i)
		}
	case joinAll:
		j.skipped.Add(int64(to - from))
	default:
		j.skip(from)
	}
}

func (j *job[In, Out]) fail(i int, err error) {
	if j.failed.CompareAndSwap(false, true) {
		j.err = &TaskError{Index: i, Err: err}
		j.stopped.Store(true)
		j.cancel(j.err)
	}
}

func (j *job[In, Out]) emit(i int, r Result[Out]) {
	select {
	case j.sink <- item[Out]{i, r}:
	case <-j.quit:
	}
}

// abort records a task's panic (v != nil) or Goexit (v == nil) and stops the job.
func (j *job[In, Out]) abort(i int, v any) {
	var stack []byte
	if v != nil {
		stack = debug.Stack()
	}
	j.mu.Lock()
	if j.panicked == nil && !j.goexit {
		if v != nil {
			j.panicked = &PanicError{Index: i, Value: v, Stack: stack}
		} else {
			j.goexit = true
		}
	}
	j.mu.Unlock()
	j.halt(errAborted)
}

// halt stops the job: nothing more starts, nothing more is recorded, and blocked
// stream senders give up.
func (j *job[In, Out]) halt(cause error) {
	j.stopped.Store(true)
	j.cancel(cause)
	j.mu.Lock()
	if j.quit != nil && !j.halted {
		j.halted = true
		close(j.quit)
	}
	j.mu.Unlock()
}

// values returns a failFast or joinAll job's outcome, after wait.
func (j *job[In, Out]) values() ([]Out, error) {
	if j.mode == failFast {
		if j.err != nil {
			return nil, j.err
		}
		return j.out, nil
	}
	slices.SortFunc(j.errs, func(a, b error) int {
		return cmp.Compare(a.(*TaskError).Index, b.(*TaskError).Index)
	})
	if n := j.skipped.Load(); n > 0 {
		j.errs = append(j.errs, fmt.Errorf("gather: %d of %d tasks not started: %w", n, len(j.in), context.Cause(j.ctx)))
	}
	return j.out, errors.Join(j.errs...)
}
