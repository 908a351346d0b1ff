package gather

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync"
)

// Group runs tasks added one at a time, as errgroup.Group and asyncio.TaskGroup do, and
// collects their typed results in the order [Group.Go] was called. Use it when tasks are
// discovered while others run (a crawler, a tree walk); use [All] or [Map] when the
// tasks are known up front.
//
// A Group made by [NewGroup] gives its tasks a context derived from the one it was
// given. By default the group is fail-fast: the first task to fail cancels that context
// and [Group.Wait] reports that failure. With [JoinErrors], every task runs and Wait
// reports every failure. With [Limit], or [Group.SetLimit] at any time, at most that
// many tasks run at once, on at most that many goroutines: Go never blocks, and tasks
// wait their turn in the order they were added. [Timeout] bounds each task.
//
// The zero Group is ready to use: its tasks get context.Background, with no limit, and
// it is fail-fast without anything to cancel. A Group's methods may be called from any
// goroutine, including from its own tasks. The Group owns the goroutines it starts;
// [Group.Wait] (or [Group.WaitSettled]) must be called, and returns once every task has
// returned. A task's panic is re-raised by Wait as a [*PanicError], after the other
// tasks have returned. After Wait has returned, the Group must not be used again.
type Group[T any] struct {
	mu      sync.Mutex
	ctx     context.Context
	cancel  context.CancelCauseFunc
	cfg     config
	started bool // ctx and cancel are set
	waited  bool // Wait has returned

	pages   [][]Result[T] // results by index, in pages so a task's slot never moves
	n       int           // tasks added
	running int           // goroutines running tasks
	queue   []groupTask[T]
	idle    sync.Cond // signalled when running drops to zero

	err      *TaskError // fail-fast: the first failure
	panicked *PanicError
	goexit   bool
}

type groupTask[T any] struct {
	i    int
	fn   func(context.Context) (T, error)
	slot *Result[T]
}

const groupPage = 256

// NewGroup returns a Group whose tasks see a context derived from ctx, with the given
// options. It panics if ctx is nil.
func NewGroup[T any](ctx context.Context, opts ...Option) *Group[T] {
	checkArgs(ctx, false, "NewGroup")
	g := &Group[T]{cfg: configure(opts)}
	g.ctx, g.cancel = context.WithCancelCause(ctx)
	g.started = true
	return g
}

// Go adds a task to the group and returns its index: the index of its result in what
// Wait returns. Go never blocks. If the group's context has ended (a task failed, or
// the parent context ended), the task is not started and its result is the context's
// cause. Go panics if fn is nil or if Wait has already returned.
func (g *Group[T]) Go(fn func(context.Context) (T, error)) int {
	if fn == nil {
		panic("gather: Group.Go: nil function")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.waited {
		panic("gather: Group.Go called after Wait returned")
	}
	if !g.started {
		g.ctx, g.cancel = context.WithCancelCause(context.Background())
		g.started = true
	}
	i := g.n
	g.n++
	if i%groupPage == 0 {
		g.pages = append(g.pages, make([]Result[T], groupPage))
	}
	t := groupTask[T]{i: i, fn: fn, slot: &g.pages[i/groupPage][i%groupPage]}
	if g.ctx.Err() != nil {
		g.failLocked(i, context.Cause(g.ctx))
		t.slot.Err = context.Cause(g.ctx)
		return i
	}
	if g.cfg.limit > 0 && g.running >= g.cfg.limit {
		g.queue = append(g.queue, t)
		return i
	}
	g.running++
	go g.work(t)
	return i
}

// SetLimit sets how many tasks may run at once from now on: n >= 1 is the new limit,
// and a negative n removes the limit, as with errgroup.Group.SetLimit. Unlike errgroup,
// it may be called at any time, from any goroutine (a task among them), while tasks run
// or wait their turn, and Go still never blocks.
//
// Raising or removing the limit starts waiting tasks at once, up to the new limit, in
// the order they were added. Lowering it stops no running task: no task starts until
// fewer than n run, and the goroutines that finish a task while more than n run exit
// instead of taking the next one, so the group settles at n goroutines. Waiting tasks
// keep their order whatever the changes. In a group whose context has ended, raising
// the limit starts nothing: the waiting tasks are not started, as with Go.
//
// SetLimit panics if n is 0, a limit under which no waiting task could ever start (so
// that Wait would never return). On a zero Group it sets the limit for the tasks to come.
// After Wait has returned it does nothing. It costs a lock, and a goroutine per task it
// starts.
func (g *Group[T]) SetLimit(n int) {
	if n == 0 {
		panic("gather: Group.SetLimit(0): no task could ever start; want at least 1, or a negative n for no limit")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.waited {
		return
	}
	g.cfg.limit = max(n, 0) // 0 in the config is no limit
	if len(g.queue) == 0 || g.ctx.Err() != nil {
		// A cancelled group's waiting tasks are failed by the goroutine that
		// finishes a running task: one runs while any task waits.
		return
	}
	for len(g.queue) > 0 && (g.cfg.limit == 0 || g.running < g.cfg.limit) {
		t := g.queue[0]
		g.queue[0] = groupTask[T]{}
		g.queue = g.queue[1:]
		g.running++
		go g.work(t)
	}
}

// work runs t, then the tasks queued behind it, until none is left or more tasks run
// than the limit allows.
func (g *Group[T]) work(t groupTask[T]) {
	ok := false
	defer func() {
		if !ok {
			g.abort(t.i, recover())
		}
	}()
	for {
		g.runOne(t)
		g.mu.Lock()
		if len(g.queue) == 0 || g.cfg.limit > 0 && g.running > g.cfg.limit {
			// Nothing waits, or SetLimit lowered the limit: this goroutine's
			// share goes. While a task waits, running stays at least the
			// limit, so one goroutine or more remains to take it.
			g.running--
			if g.running == 0 {
				g.idle.Broadcast()
			}
			g.mu.Unlock()
			ok = true
			return
		}
		t = g.queue[0]
		g.queue[0] = groupTask[T]{}
		g.queue = g.queue[1:]
		if g.ctx.Err() != nil {
			// The group is cancelled: the queued tasks are not started.
			cause := context.Cause(g.ctx)
			g.failLocked(t.i, cause)
			t.slot.Err = cause
			for _, q := range g.queue {
				q.slot.Err = cause
			}
			g.queue = nil
			g.running--
			if g.running == 0 {
				g.idle.Broadcast()
			}
			g.mu.Unlock()
			ok = true
			return
		}
		g.mu.Unlock()
	}
}

func (g *Group[T]) runOne(t groupTask[T]) {
	ctx := g.ctx
	var cancel context.CancelFunc
	if g.cfg.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, g.cfg.timeout)
	}
	v, err := t.fn(ctx)
	if cancel != nil {
		cancel()
	}
	*t.slot = Result[T]{Value: v, Err: err}
	if err != nil {
		g.mu.Lock()
		g.failLocked(t.i, err)
		g.mu.Unlock()
	}
}

// failLocked records task i's failure; in a fail-fast group the first one cancels the
// others.
func (g *Group[T]) failLocked(i int, err error) {
	if g.err == nil && !g.cfg.join {
		g.err = &TaskError{Index: i, Err: err}
		g.cancel(g.err)
	}
}

// abort records a task's panic (v != nil) or Goexit (v == nil), cancels the group, and
// gives up this goroutine's share of the queue to nobody: the queued tasks are not run.
func (g *Group[T]) abort(i int, v any) {
	pe := &PanicError{Index: i, Value: v}
	if v != nil {
		pe.Stack = debug.Stack()
	}
	g.mu.Lock()
	if g.panicked == nil && !g.goexit {
		if v != nil {
			g.panicked = pe
		} else {
			g.goexit = true
		}
	}
	g.cancel(errAborted)
	g.queue = nil
	g.running--
	if g.running == 0 {
		g.idle.Broadcast()
	}
	g.mu.Unlock()
}

// WaitSettled waits for every task, including tasks added while it waits, and returns
// every outcome in the order the tasks were added. In a fail-fast group, the tasks
// cancelled by the first failure report whatever they returned (usually the context's
// error); with [JoinErrors] no task is cancelled by another.
func (g *Group[T]) WaitSettled() []Result[T] {
	g.mu.Lock()
	if g.waited {
		g.mu.Unlock()
		panic("gather: Group.Wait called twice")
	}
	if g.idle.L == nil {
		g.idle.L = &g.mu
	}
	for g.running > 0 {
		g.idle.Wait()
	}
	g.waited = true
	if g.cancel != nil {
		g.cancel(nil)
	}
	g.mu.Unlock()
	if g.panicked != nil {
		panic(g.panicked)
	}
	if g.goexit {
		runtime.Goexit()
	}
	res := make([]Result[T], 0, g.n)
	for _, p := range g.pages {
		res = append(res, p[:min(groupPage, g.n-len(res))]...)
	}
	return res
}

// Wait waits for every task, including tasks added while it waits, and returns their
// values in the order the tasks were added. In a fail-fast group it returns nil values
// and the first failure; with [JoinErrors] it returns the values, with the zero value
// where a task failed, and every failure joined in index order (see [Values]).
func (g *Group[T]) Wait() ([]T, error) {
	res := g.WaitSettled()
	if g.err != nil {
		return nil, g.err
	}
	return Values(res)
}
