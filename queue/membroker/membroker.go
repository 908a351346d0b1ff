// Package membroker is the in-process queue.Broker: use it for tests, for
// libraries and programs that run their workers in the same process as their
// producers, and wherever the fastest path matters more than surviving a
// restart; use queue/natsbroker when tasks must outlive the process or cross
// machines.
//
// Everything lives in memory under one mutex. A batch is stored as one record
// with per-task slices (no per-task allocation), a ready list holds ranges of
// task indices (enqueueing a batch of a million tasks appends one range),
// claims take many tasks at once, and results go to the awaiting batch by
// waking its subscribers once per Complete call, not once per task. The
// broker starts no goroutine; a single timer (time.AfterFunc) wakes it when
// a delayed task, a retry or a lease comes due, and that is when those tasks
// become claimable (a claim of an empty level does not read the clock).
// Finished batches keep only their outcomes and are forgotten Retention
// after they finish, or sooner, oldest first, beyond MaxFinished tasks.
package membroker

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/gather-go/gather/queue"
)

// Defaults for Config.
const (
	DefaultMaxDepth       = 1 << 24
	DefaultRetention      = time.Hour
	DefaultMaxDeadLetters = 100_000
	DefaultMaxFinished    = 1 << 20
)

// maxTasks is the most tasks of one batch: tasks are indexed in 32 bits.
const maxTasks = 1<<31 - 1

// Config configures a Broker. A nil *Config means every default.
type Config struct {
	// MaxDepth bounds how many tasks of one queue may wait (ready, delayed or
	// leased): Enqueue returns queue.ErrQueueFull beyond it. Default
	// DefaultMaxDepth; negative is an error.
	MaxDepth int
	// QueueMaxDepth overrides MaxDepth for the named queues.
	QueueMaxDepth map[string]int
	// Retention is how long a finished batch's results stay available to
	// Subscribe (and Attach), at least a second (a batch forgotten as it
	// finishes could not be awaited). Default DefaultRetention.
	Retention time.Duration
	// MaxFinished bounds the tasks of the finished batches kept for
	// Retention: beyond it the oldest batches are forgotten first (their
	// Subscribe and Attach return queue.ErrNotFound; awaits already
	// following them finish), so that memory stays bounded however many
	// tasks an hour finish. The newest finished batch is kept whatever its
	// size. A finished task holds about 50 bytes plus its output in a
	// large batch, about 380 as a batch of one (BenchmarkFinishedMemory):
	// the default bound holds at most about 380 MiB. Default
	// DefaultMaxFinished.
	MaxFinished int
	// MaxDeadLetters bounds the dead letters kept per queue; the oldest go
	// first. Default DefaultMaxDeadLetters.
	MaxDeadLetters int
}

var errClosed = errors.New("membroker: broker closed")

// Broker is an in-memory queue.Broker. It implements queue.DeadLetterer,
// queue.Stats and queue.Inspector too. It is safe for concurrent use; Close stops its timer.
type Broker struct {
	maxDepth  int
	qdepth    map[string]int
	retention time.Duration
	maxFin    int
	maxDead   int

	mu       sync.Mutex
	queues   map[string]*mqueue
	batches  map[string]*batch
	idem     map[string]idemEntry
	delayed  pendingHeap
	leases   leaseHeap
	finished finishedList
	finTasks int // tasks of the batches in finished
	idemAt   int // the size of idem that prunes it
	dead     map[string][]*queue.DeadLetter
	created  []*batch      // every batch in enqueue order, and forgotten ones until compacted (see inspect.go)
	seq      uint64        // the last batch's batch.seq
	wake     chan struct{} // closed when work may be ready; nil until someone waits
	timer    *time.Timer
	timerAt  time.Time
	closed   bool
	paused   map[string]struct{} // queues paused (see Pause); nil when none ever was
	slots    semaphores          // see AcquireSlot
	buckets  map[string]int64    // rate buckets' theoretical arrival times (see TakeTokens)
}

// New returns an empty Broker. It returns an error wrapping
// queue.ErrBadConfig that lists every problem of an invalid config.
func New(cfg *Config) (*Broker, error) {
	b := &Broker{
		maxDepth: DefaultMaxDepth, retention: DefaultRetention, maxFin: DefaultMaxFinished, maxDead: DefaultMaxDeadLetters,
		queues: map[string]*mqueue{}, batches: map[string]*batch{}, idem: map[string]idemEntry{},
		dead: map[string][]*queue.DeadLetter{}, idemAt: 1 << 10,
	}
	if cfg != nil {
		var errs []error
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("membroker: %w: "+format, append([]any{queue.ErrBadConfig}, args...)...))
		}
		if cfg.MaxDepth < 0 {
			bad("Config.MaxDepth is %d: want 0 (default %d) or more", cfg.MaxDepth, DefaultMaxDepth)
		} else if cfg.MaxDepth > 0 {
			b.maxDepth = cfg.MaxDepth
		}
		for name, n := range cfg.QueueMaxDepth {
			if n < 1 {
				bad("Config.QueueMaxDepth[%q] is %d: want at least 1", name, n)
			}
		}
		b.qdepth = cfg.QueueMaxDepth
		if cfg.Retention < 0 || cfg.Retention > 0 && cfg.Retention < time.Second {
			bad("Config.Retention is %v: want 0 (default %v) or at least 1s", cfg.Retention, DefaultRetention)
		} else if cfg.Retention > 0 {
			b.retention = cfg.Retention
		}
		if cfg.MaxFinished < 0 {
			bad("Config.MaxFinished is %d: want 0 (default %d) or more", cfg.MaxFinished, DefaultMaxFinished)
		} else if cfg.MaxFinished > 0 {
			b.maxFin = cfg.MaxFinished
		}
		if cfg.MaxDeadLetters < 0 {
			bad("Config.MaxDeadLetters is %d: want 0 (default %d) or more", cfg.MaxDeadLetters, DefaultMaxDeadLetters)
		} else if cfg.MaxDeadLetters > 0 {
			b.maxDead = cfg.MaxDeadLetters
		}
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Close stops the broker's timer. Calls after Close return an error; Close
// does not wake blocked subscribers (end their contexts).
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.timer != nil {
		b.timer.Stop()
	}
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
	return nil
}

const (
	stQueued uint8 = iota // in a ready list or the delayed heap
	stLeased
	stDone
)

type batch struct {
	// sub is the submission until the batch finishes; then only what
	// Subscribe needs stays (kind, qname and the outcomes), so a finished
	// batch kept for Retention does not keep its inputs, the producer's
	// handle or its cancel channel alive.
	sub      *queue.Submission
	kind     string
	qname    string
	prio     queue.Priority
	attempt  []int32
	state    []uint8
	out      []queue.Outcome
	order    []int32 // indices in completion order
	canceled chan struct{}
	isCancel bool
	notify   chan struct{} // closed on new outcomes; nil until someone waits
	hist     map[int32][]queue.AttemptError
	one      oneTask // the per-task slices of a batch of one point here
	// For Inspector: the ID, when and in which order it was enqueued, and
	// how many outcomes are failures and cancellations.
	id             string
	at             time.Time
	seq            uint64
	nfail, ncancel int32
}

// oneTask holds the per-task state of a batch of one in its batch record:
// one allocation for the record instead of five.
type oneTask struct {
	attempt [1]int32
	state   [1]uint8
	order   [1]int32
	out     [1]queue.Outcome
}

func (bt *batch) finished() bool { return len(bt.order) == len(bt.state) }

// settle drops what a finished batch no longer needs: no task of it is
// claimed, retried, dead-lettered or cancelled any more. Running duplicate
// deliveries keep their own reference to the cancel channel.
func (bt *batch) settle() {
	bt.sub, bt.canceled, bt.hist = nil, nil, nil
}

type span struct {
	b      *batch
	lo, hi int32
}

type fifo struct {
	items []span
	head  int
}

func (f *fifo) push(s span) {
	if f.head > 0 && f.head == len(f.items) {
		f.items, f.head = f.items[:0], 0
	} else if f.head > 1024 && f.head > len(f.items)/2 {
		n := copy(f.items, f.items[f.head:])
		clear(f.items[n:])
		f.items, f.head = f.items[:n], 0
	}
	f.items = append(f.items, s)
}

type mqueue struct {
	ready [queue.NumPriorities]fifo
	depth [queue.NumPriorities]int // queued or leased, per level
	total int
}

type ref struct {
	b       *batch
	i       int32
	attempt int32
}

type lease struct {
	expires time.Time
	idx     int // in the heap; -1 when out
	refs    []ref
	open    int
	one     [1]ref // refs of a lease of one task: no second allocation
}

type pending struct {
	at time.Time
	s  span
}

type idemEntry struct {
	batchID string
	expires time.Time
}

type finishedBatch struct {
	at time.Time
	id string
	n  int // tasks
}

// finishedList holds the finished batches in finishing order, in blocks of
// finishedBlock: it holds every batch finished within Retention (millions on
// a busy broker), and one growing slice re-copied all of it at each growth,
// about 200 ns a batch.
type finishedList struct {
	blocks [][]finishedBatch
	head   int // the oldest entry's index in blocks[0]
	n      int // entries
}

const finishedBlock = 512

func (f *finishedList) push(e finishedBatch) {
	if n := len(f.blocks); n == 0 || len(f.blocks[n-1]) == finishedBlock {
		f.blocks = append(f.blocks, make([]finishedBatch, 0, finishedBlock))
	}
	last := &f.blocks[len(f.blocks)-1]
	*last = append(*last, e)
	f.n++
}

// front returns the oldest entry, nil if there is none.
func (f *finishedList) front() *finishedBatch {
	if len(f.blocks) == 0 {
		return nil
	}
	return &f.blocks[0][f.head]
}

// pop removes the oldest entry; there must be one.
func (f *finishedList) pop() {
	f.blocks[0][f.head] = finishedBatch{}
	f.n--
	f.head++
	if f.head == len(f.blocks[0]) {
		f.blocks[0] = nil
		f.blocks = f.blocks[1:]
		f.head = 0
	}
}

func (b *Broker) queue(name string) *mqueue {
	q := b.queues[name]
	if q == nil {
		q = &mqueue{}
		b.queues[name] = q
	}
	return q
}

func (b *Broker) wakeAll() {
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
}

// Enqueue implements queue.Broker.
func (b *Broker) Enqueue(ctx context.Context, s *queue.Submission) (string, error) {
	n := len(s.Payloads)
	if n == 0 {
		return "", fmt.Errorf("membroker: enqueue: %w: a batch needs at least one task", queue.ErrBadInput)
	}
	if n > maxTasks {
		return "", fmt.Errorf("membroker: enqueue: %w: a batch of %d tasks: want at most %d", queue.ErrBadInput, n, maxTasks)
	}
	if s.Priority < 0 || s.Priority >= queue.NumPriorities {
		return "", fmt.Errorf("membroker: enqueue: %w: priority %d out of range", queue.ErrBadInput, s.Priority)
	}
	if err := queue.CheckHeaders(s.Headers); err != nil {
		return "", fmt.Errorf("membroker: enqueue: %w", err)
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return "", errClosed
	}
	b.advance(now)
	var key string
	if s.IdempotencyKey != "" {
		key = s.Queue + "\x00" + s.IdempotencyKey
		if e, ok := b.idem[key]; ok {
			if now.Before(e.expires) {
				if _, ok := b.batches[e.batchID]; ok {
					return e.batchID, nil
				}
			}
			delete(b.idem, key)
		}
	}
	if _, dup := b.batches[s.BatchID]; dup {
		return "", fmt.Errorf("membroker: enqueue: batch ID %s is in use", s.BatchID)
	}
	q := b.queue(s.Queue)
	bound := b.maxDepth
	if d, ok := b.qdepth[s.Queue]; ok {
		bound = d
	}
	if q.total+n > bound {
		return "", fmt.Errorf("membroker: enqueue %d tasks on queue %q holding %d of at most %d: %w",
			n, s.Queue, q.total, bound, queue.ErrQueueFull)
	}
	b.seq++
	bt := &batch{sub: s, kind: s.Kind, qname: s.Queue, prio: s.Priority, canceled: make(chan struct{}),
		id: s.BatchID, at: now, seq: b.seq}
	if n == 1 {
		bt.attempt, bt.state, bt.out, bt.order = bt.one.attempt[:], bt.one.state[:], bt.one.out[:], bt.one.order[:0]
	} else {
		bt.attempt = make([]int32, n)
		bt.state = make([]uint8, n)
		bt.out = make([]queue.Outcome, n)
		bt.order = make([]int32, 0, n)
	}
	b.batches[s.BatchID] = bt
	b.logBatch(bt)
	q.total += n
	q.depth[s.Priority] += n
	sp := span{bt, 0, int32(n)}
	if s.RunAt.After(now) {
		heap.Push(&b.delayed, pending{s.RunAt, sp})
		b.resetTimer()
	} else {
		q.ready[s.Priority].push(sp)
		b.wakeAll()
	}
	if key != "" {
		b.remember(key, idemEntry{s.BatchID, now.Add(s.IdempotencyTTL)}, now)
	}
	return s.BatchID, nil
}

// remember records an idempotency key, first forgetting the expired keys
// when the map has doubled since it last did: a key is otherwise deleted
// only when it is used again, and most are never reused. b.mu is held.
func (b *Broker) remember(key string, e idemEntry, now time.Time) {
	if len(b.idem) >= b.idemAt {
		for k, v := range b.idem {
			if !now.Before(v.expires) {
				delete(b.idem, k)
			}
		}
		b.idemAt = max(1<<10, 2*len(b.idem))
	}
	b.idem[key] = e
}

// advance moves due delayed tasks to their ready lists, requeues the tasks
// of expired leases and forgets batches past retention. b.mu is held.
func (b *Broker) advance(now time.Time) {
	woke := false
	for len(b.delayed) > 0 && !b.delayed[0].at.After(now) {
		p := heap.Pop(&b.delayed).(pending)
		bt := p.s.b // may be finished (cancelled): Claim skips its tasks
		b.queue(bt.qname).ready[bt.prio].push(p.s)
		woke = true
	}
	for len(b.leases) > 0 && !b.leases[0].expires.After(now) {
		l := heap.Pop(&b.leases).(*lease)
		for _, r := range l.refs {
			if r.b.state[r.i] == stLeased && r.b.attempt[r.i] == r.attempt {
				r.b.state[r.i] = stQueued
				r.b.addHistory(r.i, queue.AttemptError{Attempt: int(r.attempt), At: now, Error: "lease expired without an acknowledgement"})
				b.queue(r.b.qname).ready[r.b.prio].push(span{r.b, r.i, r.i + 1})
				woke = true
			}
		}
	}
	for f := b.finished.front(); f != nil && now.Sub(f.at) >= b.retention; f = b.finished.front() {
		b.forgetOldest()
	}
	if woke {
		b.wakeAll()
	}
	b.resetTimer()
}

func (bt *batch) addHistory(i int32, e queue.AttemptError) {
	if bt.hist == nil {
		bt.hist = map[int32][]queue.AttemptError{}
	}
	bt.hist[i] = append(bt.hist[i], e)
}

// resetTimer arms the timer for the next delayed task or lease expiry. A
// timer that fires early is harmless (onTimer advances and re-arms), so an
// armed timer is only ever moved earlier: never later, never stopped (but
// by Close). Otherwise every lone task, whose lease is the earliest while it
// runs and gone when it completes, would reset and stop the runtime timer.
func (b *Broker) resetTimer() {
	var next time.Time
	if len(b.delayed) > 0 {
		next = b.delayed[0].at
	}
	if len(b.leases) > 0 && (next.IsZero() || b.leases[0].expires.Before(next)) {
		next = b.leases[0].expires
	}
	if next.IsZero() || b.closed || !b.timerAt.IsZero() && !next.Before(b.timerAt) {
		return
	}
	b.timerAt = next
	d := time.Until(next)
	if b.timer == nil {
		b.timer = time.AfterFunc(d, b.onTimer)
	} else {
		b.timer.Reset(d)
	}
}

func (b *Broker) onTimer() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.timerAt = time.Time{}
	b.advance(time.Now())
}

// Claim implements queue.Broker.
func (b *Broker) Claim(ctx context.Context, name string, level queue.Priority, dur time.Duration, dst []queue.Delivery) (int, error) {
	if level < 0 || level >= queue.NumPriorities {
		return 0, fmt.Errorf("membroker: claim: priority %d out of range", level)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errClosed
	}
	q := b.queues[name]
	if q == nil || q.ready[level].head == len(q.ready[level].items) || b.isPaused(name) {
		// Nothing ready at this level. Delayed tasks and expired leases
		// that are due are the timer's to move (it wakes Notify), so an
		// empty claim, the common case of a worker trying every level,
		// does not read the clock.
		return 0, nil
	}
	now := time.Now()
	b.advance(now)
	f := &q.ready[level]
	var l *lease
	n := 0
	expires := now.Add(dur)
	for n < len(dst) && f.head < len(f.items) {
		sp := &f.items[f.head]
		for sp.lo < sp.hi && n < len(dst) {
			i := sp.lo
			sp.lo++
			bt := sp.b
			if bt.state[i] != stQueued {
				continue // cancelled, or completed by a stale delivery
			}
			if l == nil {
				l = &lease{expires: expires}
				if c := min(len(dst), int(sp.hi-i)); c == 1 {
					l.refs = l.one[:0]
				} else {
					l.refs = make([]ref, 0, c)
				}
			}
			bt.state[i] = stLeased
			bt.attempt[i]++
			l.refs = append(l.refs, ref{bt, i, bt.attempt[i]})
			d := &dst[n]
			d.Message = bt.sub.Message(int(i))
			d.Attempt = int(bt.attempt[i])
			d.Expires = expires
			d.Canceled = bt.canceled
			d.Ref = l
			d.Seq = uint64(len(l.refs) - 1)
			n++
		}
		if sp.lo == sp.hi {
			*sp = span{}
			f.head++
		}
	}
	if l != nil {
		l.open = len(l.refs)
		heap.Push(&b.leases, l)
		b.resetTimer()
	}
	return n, nil
}

// Notify implements queue.Broker.
func (b *Broker) Notify(ctx context.Context, queues []string) (<-chan struct{}, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	if b.wake == nil {
		b.wake = make(chan struct{})
	}
	return b.wake, nil
}

// Extend implements queue.Broker.
func (b *Broker) Extend(ctx context.Context, dur time.Duration, ds []*queue.Delivery) error {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	var last *lease
	for _, d := range ds {
		l, ok := d.Ref.(*lease)
		if !ok {
			return fmt.Errorf("membroker: extend: delivery of task %s is not from this broker", d.ID())
		}
		if l == last || l.idx < 0 {
			continue
		}
		last = l
		l.expires = now.Add(dur)
		heap.Fix(&b.leases, l.idx)
	}
	b.resetTimer()
	return nil
}

// current reports whether d is the live delivery of its task, and if so
// releases its place in its lease.
func (b *Broker) release(d *queue.Delivery) (r ref, live bool, err error) {
	l, ok := d.Ref.(*lease)
	if !ok || d.Seq >= uint64(len(l.refs)) {
		return ref{}, false, fmt.Errorf("membroker: delivery of task %s is not from this broker", d.ID())
	}
	r = l.refs[d.Seq]
	if r.b.state[r.i] != stLeased || r.b.attempt[r.i] != r.attempt {
		return r, false, nil
	}
	l.open--
	if l.open == 0 && l.idx >= 0 {
		heap.Remove(&b.leases, l.idx)
	}
	return r, true, nil
}

// Complete implements queue.Broker.
func (b *Broker) Complete(ctx context.Context, cs []queue.Completion) error {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	var last *batch
	for k := range cs {
		c := &cs[k]
		r, _, err := b.release(c.Delivery)
		if err != nil {
			return err
		}
		bt := r.b
		if bt.state[r.i] == stDone {
			continue // first write wins
		}
		o := c.Outcome
		o.Index = int(r.i)
		b.record(bt, r.i, o, now)
		if c.Dead {
			b.bury(bt, r.i, c.Delivery.Attempt, o.Err, now)
		}
		if bt.finished() {
			bt.settle()
		}
		if bt != last {
			if last != nil {
				last.wakeSubs()
			}
			last = bt
		}
	}
	if last != nil {
		last.wakeSubs()
	}
	b.resetTimer()
	return nil
}

// record stores the outcome of task i; b.mu is held and the task has none.
func (b *Broker) record(bt *batch, i int32, o queue.Outcome, now time.Time) {
	q := b.queues[bt.qname]
	q.total--
	q.depth[bt.prio]--
	bt.state[i] = stDone
	bt.out[i] = o
	bt.order = append(bt.order, i)
	if o.Err != nil {
		if o.Err.Code == queue.CodeCanceled {
			bt.ncancel++
		} else {
			bt.nfail++
		}
	}
	if bt.finished() {
		b.finished.push(finishedBatch{now, bt.sub.BatchID, len(bt.state)}) // the caller settles bt
		b.finTasks += len(bt.state)
		for b.finTasks > b.maxFin && b.finished.n > 1 {
			b.forgetOldest()
		}
	}
}

// forgetOldest forgets the oldest finished batch; there must be one.
func (b *Broker) forgetOldest() {
	f := b.finished.front()
	delete(b.batches, f.id)
	b.finTasks -= f.n
	b.finished.pop()
}

func (bt *batch) wakeSubs() {
	if bt.notify != nil {
		close(bt.notify)
		bt.notify = nil
	}
}

// bury keeps task i in the dead-letter store.
func (b *Broker) bury(bt *batch, i int32, attempt int, f *queue.Failure, now time.Time) {
	dl := &queue.DeadLetter{Message: bt.sub.Message(int(i)), At: now}
	dl.Attempt = attempt
	dl.Attempts = slices.Clone(bt.hist[i])
	if f != nil {
		dl.Attempts = append(dl.Attempts, queue.AttemptError{Attempt: attempt, At: now, Error: string(f.Code) + ": " + f.Message})
	}
	list := append(b.dead[bt.qname], dl)
	if len(list) > b.maxDead {
		list[0] = nil
		list = list[1:]
	}
	b.dead[bt.qname] = list
}

// Retry implements queue.Broker.
func (b *Broker) Retry(ctx context.Context, d *queue.Delivery, at time.Time, failure *queue.AttemptError) error {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	r, live, err := b.release(d)
	if err != nil || !live {
		return err
	}
	bt := r.b
	if failure != nil {
		bt.addHistory(r.i, *failure)
	} else {
		bt.attempt[r.i]-- // handed back: not an attempt
	}
	bt.state[r.i] = stQueued
	sp := span{bt, r.i, r.i + 1}
	if at.After(now) {
		heap.Push(&b.delayed, pending{at, sp})
	} else {
		b.queue(bt.qname).ready[bt.prio].push(sp)
		b.wakeAll()
	}
	b.resetTimer()
	return nil
}

// Cancel implements queue.Broker.
func (b *Broker) Cancel(ctx context.Context, id string) error {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	bt := b.batches[id]
	if bt == nil {
		return fmt.Errorf("membroker: cancel batch %s: %w", clip(id), queue.ErrNotFound)
	}
	if bt.isCancel || bt.finished() {
		return nil
	}
	bt.isCancel = true
	close(bt.canceled)
	f := &queue.Failure{Code: queue.CodeCanceled, Message: "batch canceled"}
	for i, st := range bt.state {
		if st != stDone {
			b.record(bt, int32(i), queue.Outcome{Index: i, Err: f}, now)
		}
	}
	bt.settle()
	bt.wakeSubs()
	return nil
}

// Subscribe implements queue.Broker.
func (b *Broker) Subscribe(ctx context.Context, id string) (queue.Subscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bt := b.batches[id]
	if bt == nil {
		return nil, fmt.Errorf("membroker: subscribe to batch %s: %w", clip(id), queue.ErrNotFound)
	}
	return &subscription{b: b, bt: bt}, nil
}

type subscription struct {
	b      *Broker
	bt     *batch
	cursor int
}

func (s *subscription) Size() int     { return len(s.bt.state) }
func (s *subscription) Kind() string  { return s.bt.kind }
func (s *subscription) Queue() string { return s.bt.qname }
func (s *subscription) Close() error  { return nil }

func (s *subscription) Next(ctx context.Context, dst []queue.Outcome) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	for {
		s.b.mu.Lock()
		bt := s.bt
		if s.cursor < len(bt.order) {
			n := 0
			for n < len(dst) && s.cursor < len(bt.order) {
				dst[n] = bt.out[bt.order[s.cursor]]
				s.cursor++
				n++
			}
			s.b.mu.Unlock()
			return n, nil
		}
		if s.cursor == len(bt.state) {
			s.b.mu.Unlock()
			return 0, io.EOF
		}
		if bt.notify == nil {
			bt.notify = make(chan struct{})
		}
		ch := bt.notify
		s.b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
	}
}

// DeadLetters implements queue.DeadLetterer.
func (b *Broker) DeadLetters(ctx context.Context, name, after string, limit int) ([]queue.DeadLetter, error) {
	if after != "" {
		if _, _, err := queue.ParseTaskID(after); err != nil {
			return nil, fmt.Errorf("membroker: dead letters: %w", err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	list := b.dead[name]
	start := 0
	if after != "" {
		start = len(list)
		for i, dl := range list {
			if dl.ID() == after {
				start = i + 1
				break
			}
		}
	}
	var out []queue.DeadLetter
	for _, dl := range list[start:] {
		if limit > 0 && len(out) >= limit {
			break
		}
		c := *dl
		c.Attempts = slices.Clone(dl.Attempts)
		out = append(out, c)
	}
	return out, nil
}

// Redrive implements queue.DeadLetterer.
func (b *Broker) Redrive(ctx context.Context, id string) (string, error) {
	if _, _, err := queue.ParseTaskID(id); err != nil {
		return "", fmt.Errorf("membroker: redrive: %w", err)
	}
	b.mu.Lock()
	var dl *queue.DeadLetter
	for name, list := range b.dead {
		for i, d := range list {
			if d.ID() == id {
				dl = d
				b.dead[name] = slices.Delete(list, i, i+1)
				break
			}
		}
		if dl != nil {
			break
		}
	}
	b.mu.Unlock()
	if dl == nil {
		return "", fmt.Errorf("membroker: redrive %s: %w", clip(id), queue.ErrNotFound)
	}
	m := &dl.Message
	s := &queue.Submission{
		BatchID: newID(), Queue: m.Queue, Kind: m.Kind, Priority: m.Priority, MaxAttempts: m.MaxAttempts,
		Timeout: m.Timeout, BackoffMin: m.BackoffMin, BackoffMax: m.BackoffMax, EnqueuedAt: time.Now(),
		Headers: m.Headers, Payloads: [][]byte{m.Payload},
	}
	return b.Enqueue(ctx, s)
}

// Depth implements queue.Stats.
func (b *Broker) Depth(ctx context.Context, name string) ([queue.NumPriorities]int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if q := b.queues[name]; q != nil {
		return q.depth, nil
	}
	return [queue.NumPriorities]int{}, nil
}

// clip shortens a caller's string for an error message: hostile input may
// be megabytes long.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:n], len(s))
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type pendingHeap []pending

func (h pendingHeap) Len() int           { return len(h) }
func (h pendingHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h pendingHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *pendingHeap) Push(x any)        { *h = append(*h, x.(pending)) }
func (h *pendingHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = pending{}
	*h = old[:len(old)-1]
	return x
}

type leaseHeap []*lease

func (h leaseHeap) Len() int           { return len(h) }
func (h leaseHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h leaseHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *leaseHeap) Push(x any) {
	l := x.(*lease)
	l.idx = len(*h)
	*h = append(*h, l)
}
func (h *leaseHeap) Pop() any {
	old := *h
	l := old[len(old)-1]
	old[len(old)-1] = nil
	l.idx = -1
	*h = old[:len(old)-1]
	return l
}

var _ interface {
	queue.Broker
	queue.DeadLetterer
	queue.Stats
	queue.Inspector
} = (*Broker)(nil)
