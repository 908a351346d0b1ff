package queue

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"sync"
	"time"

	"github.com/gather-go/gather"
)

// DefaultMaxPayload is the largest encoded input a Client accepts by default:
// 1 MiB, the default message size limit of NATS.
const DefaultMaxPayload = 1 << 20

// ClientConfig configures a Client. A nil *ClientConfig means every default.
type ClientConfig struct {
	// MaxPayload is the largest encoded input of one task, in bytes.
	// Default DefaultMaxPayload; negative is an error.
	MaxPayload int
	// Logger receives debug records of enqueues. Default: discard.
	Logger *slog.Logger
	// Observer receives EventEnqueued and EventBatchAwaited (see Event).
	// Default: none.
	Observer Observer
	// EnqueueMiddleware wraps every enqueue, EnqueueMiddleware[0]
	// outermost (see EnqueueMiddleware). Default: none. A nil element is
	// an error.
	EnqueueMiddleware []EnqueueMiddleware
}

// Client enqueues tasks on a Broker and awaits their results. It is safe for
// concurrent use and starts no goroutines; there is nothing to close. The
// Broker's lifetime is the caller's.
type Client struct {
	b          Broker
	enqueue    EnqueueFunc // b.Enqueue within the enqueue middleware
	maxPayload int
	log        *slog.Logger
	obs        Observer

	idMu sync.Mutex
	ids  *rand.ChaCha8 // batch IDs; seeded from crypto/rand
}

// NewClient returns a Client that enqueues on b.
func NewClient(b Broker, cfg *ClientConfig) (*Client, error) {
	if b == nil {
		return nil, errorf("%w: NewClient with a nil Broker", ErrBadConfig)
	}
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails (see its doc)
	c := &Client{b: b, enqueue: b.Enqueue, maxPayload: DefaultMaxPayload, log: discard, ids: rand.NewChaCha8(seed)}
	if cfg != nil {
		fn, err := enqueueChain(b, cfg.EnqueueMiddleware)
		if err != nil {
			return nil, err
		}
		c.enqueue = fn
		if cfg.MaxPayload < 0 {
			return nil, errorf("%w: ClientConfig.MaxPayload is %d: want 0 (default %d) or more",
				ErrBadConfig, cfg.MaxPayload, DefaultMaxPayload)
		}
		if cfg.MaxPayload > 0 {
			c.maxPayload = cfg.MaxPayload
		}
		if cfg.Logger != nil {
			c.log = cfg.Logger
		}
		c.obs = cfg.Observer
	}
	return c, nil
}

// Broker returns the client's broker.
func (c *Client) Broker() Broker { return c.b }

var discard = slog.New(slog.DiscardHandler)

// newBatchID returns 128 random bits in hex. They come from a ChaCha8
// stream seeded from crypto/rand once per client (cryptographically strong,
// as math/rand/v2 documents it): about 40 ns, where reading crypto/rand per
// batch took about 200 ns of a lone task's round trip.
func (c *Client) newBatchID() string {
	var b [16]byte
	c.idMu.Lock()
	_, _ = c.ids.Read(b[:])
	c.idMu.Unlock()
	var h [32]byte
	hex.Encode(h[:], b[:])
	return string(h[:])
}

// Task is one enqueued task: a batch of one. Its methods are safe for
// concurrent use.
type Task[Out any] struct{ b *Batch[Out] }

// Enqueue enqueues one task of kind k with input in and returns its handle.
// It returns an error wrapping ErrBadInput when in does not encode or is
// larger than the client's MaxPayload, and ErrQueueFull when the queue is at
// its bound. With WithIdempotencyKey, a repeated call returns the first
// call's task.
func Enqueue[In, Out any](ctx context.Context, c *Client, k Kind[In, Out], in In, opts ...Option) (*Task[Out], error) {
	b, err := EnqueueBatch(ctx, c, k, []In{in}, opts...)
	if err != nil {
		return nil, err
	}
	return &Task[Out]{b}, nil
}

// ID returns the task's ID (see TaskID).
func (t *Task[Out]) ID() string { return TaskID(t.b.id, 0) }

// BatchID returns the ID of the task's batch of one, for Attach.
func (t *Task[Out]) BatchID() string { return t.b.id }

// Await blocks until the task has an outcome, and returns it: the output, or
// a *Failure (test it with errors.Is against ErrCanceled, ErrTimeout, ...),
// not wrapped in a *gather.TaskError since a lone task has no index to tell.
// It returns ctx's error if ctx ends first; the task keeps its course.
// It is Batch.Await for a batch of one, hence its name.
func (t *Task[Out]) Await(ctx context.Context) (Out, error) {
	r, err := t.b.AwaitSettled(ctx)
	if err != nil {
		var zero Out
		return zero, err
	}
	return r[0].Value, r[0].Err
}

// Cancel cancels the task (see Batch.Cancel).
func (t *Task[Out]) Cancel(ctx context.Context) error { return t.b.Cancel(ctx) }

// Batch is a set of tasks enqueued together and awaited together, as
// asyncio.gather awaits coroutines: Await (ordered, fail-fast), AwaitSettled
// (ordered, every outcome) or Results (completion order). Each await call
// follows the batch from its start, so several may run, in any process (see
// Attach). A Batch is safe for concurrent use and owns no goroutine.
type Batch[Out any] struct {
	c    *Client
	out  Codec[Out]
	id   string
	n    int
	kind string
}

// enqueueBlock is what EnqueueBatch allocates, in one piece.
type enqueueBlock[Out any] struct {
	b   Batch[Out]
	s   Submission
	one [1][]byte // the payload list of a batch of one
}

// EnqueueBatch enqueues one task of kind k per input, all or none, and
// returns the batch. It returns an error wrapping ErrBadInput for an empty
// ins, more than MaxBatch inputs, an option out of range, or an input that does not encode or is larger than the client's
// MaxPayload (naming its index), and ErrQueueFull when the queue cannot take
// them all; in each case nothing was enqueued. Encoding costs one allocation
// per batch with the default codec's fast types.
func EnqueueBatch[In, Out any](ctx context.Context, c *Client, k Kind[In, Out], ins []In, opts ...Option) (*Batch[Out], error) {
	k.check()
	if len(ins) == 0 {
		return nil, errorf("%w: EnqueueBatch of kind %q with no inputs: a batch needs at least one task", ErrBadInput, k.name)
	}
	if len(ins) > MaxBatch {
		return nil, errorf("%w: EnqueueBatch of kind %q with %d inputs: a batch holds at most %d (MaxBatch); split it",
			ErrBadInput, k.name, len(ins), MaxBatch)
	}
	// The batch handle, the submission and, for a batch of one, its payload
	// list share one allocation: the broker may keep the submission as long
	// as the batch, and the handle lives no longer than that matters.
	blk := new(enqueueBlock[Out])
	s := &blk.s
	if err := c.submission(s, opts); err != nil {
		return nil, err
	}
	s.Kind = k.name
	s.BatchID = c.newBatchID()
	// Encode every input into one buffer, then cut it: one allocation for
	// the bytes (amortised growth) and one for the slice headers (none for
	// a batch of one).
	ends := make([]int, len(ins))
	var buf []byte
	var err error
	for i := range ins {
		start := len(buf)
		buf, err = k.in.Append(buf, ins[i])
		if err != nil {
			return nil, errorf("%w: encoding input %d of kind %q: %v", ErrBadInput, i, k.name, err)
		}
		if n := len(buf) - start; n > c.maxPayload {
			return nil, errorf("%w: input %d of kind %q is %d bytes encoded: the limit is %d (ClientConfig.MaxPayload)",
				ErrBadInput, i, k.name, n, c.maxPayload)
		}
		ends[i] = len(buf)
	}
	if len(ins) == 1 {
		s.Payloads = blk.one[:]
	} else {
		s.Payloads = make([][]byte, len(ins))
	}
	start := 0
	for i, end := range ends {
		s.Payloads[i] = buf[start:end:end]
		start = end
	}
	id, err := c.enqueue(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("queue: enqueue %d tasks of kind %q on queue %q: %w", len(ins), k.name, clip(s.Queue), err)
	}
	b := &blk.b
	*b = Batch[Out]{c: c, out: k.out, id: id, n: len(ins), kind: k.name}
	if id != s.BatchID {
		// An idempotency key matched an earlier batch: check that it is the
		// same shape, so its results decode.
		a, err := Attach(ctx, c, k, id)
		if err != nil {
			return nil, err
		}
		if a.n != len(ins) {
			return nil, errorf("%w: idempotency key %q names batch %s of %d tasks, not %d",
				ErrBadInput, clip(s.IdempotencyKey), id, a.n, len(ins))
		}
		return a, nil
	}
	if c.obs != nil {
		c.obs.Observe(Event{Type: EventEnqueued, Queue: s.Queue, Kind: k.name, BatchID: id, Count: len(ins)})
	}
	if c.log.Enabled(ctx, slog.LevelDebug) { // the arguments cost 3 allocations
		c.log.DebugContext(ctx, "enqueued", "batch", id, "kind", k.name, "queue", s.Queue, "tasks", len(ins))
	}
	return b, nil
}

// Attach returns the batch with ID id, so that another client (another
// process, or a producer that restarted) can await it. It returns an error
// wrapping ErrNotFound for an unknown batch, and ErrBadInput when the batch
// holds tasks of another kind.
func Attach[In, Out any](ctx context.Context, c *Client, k Kind[In, Out], id string) (*Batch[Out], error) {
	k.check()
	sub, err := c.b.Subscribe(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("queue: attach to batch %s: %w", clip(id), err)
	}
	defer sub.Close()
	if sub.Kind() != k.name {
		return nil, errorf("%w: batch %s holds tasks of kind %q, not %q", ErrBadInput, id, sub.Kind(), k.name)
	}
	return &Batch[Out]{c: c, out: k.out, id: id, n: sub.Size(), kind: k.name}, nil
}

// ID returns the batch ID, for Attach.
func (b *Batch[Out]) ID() string { return b.id }

// Len returns the number of tasks in the batch.
func (b *Batch[Out]) Len() int { return b.n }

// Cancel cancels the batch: tasks not started never run, running handlers
// see their context cancelled, and every task without an outcome gets one
// that is a *Failure matching ErrCanceled. Cancelling a finished batch does
// nothing.
func (b *Batch[Out]) Cancel(ctx context.Context) error {
	if err := b.c.b.Cancel(ctx, b.id); err != nil {
		return fmt.Errorf("queue: cancel batch %s: %w", b.id, err)
	}
	return nil
}

// outcomeBuf is how many outcomes an await call takes from the broker at a
// time: a fixed buffer, so awaiting allocates nothing per task.
const outcomeBuf = 256

// outcomeBufs recycles await buffers (10 KiB each) between calls, so an
// await allocates its result slice and the broker's subscription only.
var outcomeBufs = sync.Pool{New: func() any { return new([outcomeBuf]Outcome) }}

// follow calls fn for every outcome of the batch, in completion order, until
// all were seen or fn returns false. It returns ctx's or the broker's error.
func (b *Batch[Out]) follow(ctx context.Context, fn func(o *Outcome) bool) error {
	sub, err := b.c.b.Subscribe(ctx, b.id)
	if err != nil {
		return fmt.Errorf("queue: await batch %s: %w", b.id, err)
	}
	defer sub.Close()
	var began time.Time
	if b.c.obs != nil {
		began = time.Now()
	}
	bp := outcomeBufs.Get().(*[outcomeBuf]Outcome)
	buf := bp[:min(b.n, outcomeBuf)]
	defer func() {
		clear(buf) // drop the outputs: they belong to the broker
		outcomeBufs.Put(bp)
	}()
	for seen := 0; seen < b.n; {
		n, err := sub.Next(ctx, buf)
		for i := range n {
			if !fn(&buf[i]) {
				return nil
			}
		}
		seen += n
		if err == io.EOF || seen == b.n {
			if b.c.obs != nil {
				b.c.obs.Observe(Event{Type: EventBatchAwaited, Queue: sub.Queue(), Kind: b.kind, BatchID: b.id,
					Count: b.n, Elapsed: time.Since(began)})
			}
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("queue: await batch %s: %w", b.id, err)
		}
	}
	return nil
}

// result decodes an outcome's output into *v, or returns the task's *Failure,
// or an error wrapping ErrBadInput when the output does not decode as Out.
// Like gather's settled results, the error is the task's own: its index is
// where the result is, and only the errors that leave a result slice (Await's)
// are wrapped in a *gather.TaskError.
func (b *Batch[Out]) result(o *Outcome, v *Out) error {
	if o.Err != nil {
		return o.Err
	}
	if err := b.out.Decode(o.Output, v); err != nil {
		// The kind's name matched (Attach checks it) but not its output
		// type: a programmer error on the awaiting side, so say which type.
		return errorf("%w: output of task %d of kind %q does not decode as %v: %v",
			ErrBadInput, o.Index, b.kind, reflect.TypeFor[Out](), err)
	}
	return nil
}

// Await blocks until every task succeeded and returns the outputs in input
// order, or returns at the first failure, fail-fast like asyncio.gather:
// it cancels the rest of the batch (reaching running handlers) and returns
// a *gather.TaskError carrying the failed task's index and its *Failure.
// An output that does not decode as Out (a Kind of the batch's name but
// another output type) is returned the same way, wrapping ErrBadInput, but
// cancels nothing: the tasks succeeded, and the batch may have other awaiters.
// When ctx ends first it returns ctx's cause and the batch keeps running.
// Awaiting allocates the result slice and a fixed buffer, nothing per task.
func (b *Batch[Out]) Await(ctx context.Context) ([]Out, error) {
	res := make([]Out, b.n)
	var failed error
	var index int
	err := b.follow(ctx, func(o *Outcome) bool {
		failed, index = b.result(o, &res[o.Index]), o.Index
		return failed == nil
	})
	if err != nil {
		return nil, err
	}
	if failed != nil {
		if _, taskFailed := failed.(*Failure); taskFailed {
			if err := b.c.b.Cancel(context.WithoutCancel(ctx), b.id); err != nil {
				b.c.log.WarnContext(ctx, "cancelling the rest of a failed batch", "batch", b.id, "err", err)
			}
		}
		return nil, &gather.TaskError{Index: index, Err: failed}
	}
	return res, nil
}

// AwaitSettled blocks until every task has an outcome and returns them all,
// index-aligned with the inputs, as asyncio.gather(..., return_exceptions=True)
// and gather.MapSettled do: a failed task's Err is its *Failure itself (or an
// error wrapping ErrBadInput if its output does not decode as Out), its index
// being its place in the slice; gather.Values wraps each in a
// *gather.TaskError. The error is ctx's cause if ctx ended first, or the
// broker's.
func (b *Batch[Out]) AwaitSettled(ctx context.Context) ([]gather.Result[Out], error) {
	res := make([]gather.Result[Out], b.n)
	err := b.follow(ctx, func(o *Outcome) bool {
		r := &res[o.Index]
		r.Err = b.result(o, &r.Value)
		return true
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Results returns the outcomes as they are recorded, in completion order,
// each with its task's index, as gather.Stream does; a failed task's Err is
// as in AwaitSettled.
// If ctx ends or the broker fails first, it yields index -1 with that error
// and stops. Breaking out of the loop stops following the batch, which keeps
// running. The iterator may be ranged over more than once, each time from
// the first outcome.
func (b *Batch[Out]) Results(ctx context.Context) iter.Seq2[int, gather.Result[Out]] {
	return func(yield func(int, gather.Result[Out]) bool) {
		err := b.follow(ctx, func(o *Outcome) bool {
			var r gather.Result[Out]
			r.Err = b.result(o, &r.Value)
			return yield(o.Index, r)
		})
		if err != nil {
			yield(-1, gather.Result[Out]{Err: err})
		}
	}
}

// DeadLetters lists up to limit dead letters of queue after the task ID
// after (empty: from the oldest). It returns an error wrapping
// errors.ErrUnsupported when the broker keeps none.
func (c *Client) DeadLetters(ctx context.Context, queue, after string, limit int) ([]DeadLetter, error) {
	d, ok := c.b.(DeadLetterer)
	if !ok {
		return nil, fmt.Errorf("queue: dead letters: broker %T: %w", c.b, errors.ErrUnsupported)
	}
	return d.DeadLetters(ctx, queue, after, limit)
}

// Redrive enqueues the dead letter with task ID id again, as a new batch of
// one with its attempts reset, and returns that batch's ID (for Attach).
func (c *Client) Redrive(ctx context.Context, id string) (string, error) {
	d, ok := c.b.(DeadLetterer)
	if !ok {
		return "", fmt.Errorf("queue: redrive: broker %T: %w", c.b, errors.ErrUnsupported)
	}
	return d.Redrive(ctx, id)
}
