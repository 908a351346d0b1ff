package queue

import "time"

// Option is a per-call setting for Enqueue and EnqueueBatch; in a batch it
// applies to every task. Options are plain values: passing them allocates
// nothing. When the same setting is given twice, the last one wins.
type Option struct {
	kind optKind
	d    time.Duration
	d2   time.Duration
	t    time.Time
	n    int
	s    string
}

type optKind uint8

const (
	optNone optKind = iota
	optPriority
	optTimeout
	optDeadline
	optMaxAttempts
	optBackoff
	optDelay
	optRunAt
	optIdempotency
	optQueue
)

// Defaults for tasks enqueued without the matching option.
const (
	DefaultMaxAttempts       = 3
	DefaultBackoffMin        = time.Second
	DefaultBackoffMax        = 5 * time.Minute
	DefaultIdempotencyWindow = 24 * time.Hour
)

// WithPriority sets the tasks' priority level (default PriorityNormal). It
// panics if p is not between PriorityLow and PriorityCritical.
func WithPriority(p Priority) Option {
	if p < 0 || p >= NumPriorities {
		panic("queue: priority out of range [PriorityLow, PriorityCritical]")
	}
	return Option{kind: optPriority, n: int(p)}
}

// WithTimeout bounds each attempt: the handler's context is cancelled d after
// it starts, and the attempt fails with ErrTimeout (and may be retried).
// It panics if d <= 0.
func WithTimeout(d time.Duration) Option {
	if d <= 0 {
		panic("queue: WithTimeout needs a positive duration")
	}
	return Option{kind: optTimeout, d: d}
}

// WithDeadline sets a time after which the tasks do not start or run: a
// running handler's context is cancelled then, and the task fails with
// ErrTimeout without further retries.
func WithDeadline(t time.Time) Option { return Option{kind: optDeadline, t: t} }

// WithMaxAttempts sets how many times a failing task runs before it is
// dead-lettered (default DefaultMaxAttempts). It panics if n < 1.
func WithMaxAttempts(n int) Option {
	if n < 1 {
		panic("queue: WithMaxAttempts needs at least 1")
	}
	return Option{kind: optMaxAttempts, n: n}
}

// WithBackoff sets the retry delay: min after the first failure, doubling
// after each, capped at max, each delay drawn at random from its upper half
// (jitter). Defaults: DefaultBackoffMin, DefaultBackoffMax. It panics if min
// < 0 or max < min.
func WithBackoff(min, max time.Duration) Option {
	if min < 0 || max < min {
		panic("queue: WithBackoff needs 0 <= min <= max")
	}
	return Option{kind: optBackoff, d: min, d2: max}
}

// WithDelay makes the tasks ready d after they are enqueued.
func WithDelay(d time.Duration) Option { return Option{kind: optDelay, d: d} }

// WithRunAt makes the tasks ready at t.
func WithRunAt(t time.Time) Option { return Option{kind: optRunAt, t: t} }

// WithIdempotencyKey makes the call enqueue at most once per key and queue
// within window (DefaultIdempotencyWindow if window <= 0): a later call with
// the same key enqueues nothing and returns the first call's batch, whose
// results it then awaits. The key names the whole call, batch or single task.
func WithIdempotencyKey(key string, window time.Duration) Option {
	if window <= 0 {
		window = DefaultIdempotencyWindow
	}
	return Option{kind: optIdempotency, s: key, d: window}
}

// WithQueue sends the tasks to the named queue (default DefaultQueue).
func WithQueue(name string) Option { return Option{kind: optQueue, s: name} }

// submission fills s from the defaults and opts.
func (c *Client) submission(s *Submission, opts []Option) error {
	now := time.Now()
	*s = Submission{
		Queue: DefaultQueue, Priority: PriorityNormal, MaxAttempts: DefaultMaxAttempts,
		BackoffMin: DefaultBackoffMin, BackoffMax: DefaultBackoffMax, EnqueuedAt: now,
	}
	for _, o := range opts {
		switch o.kind {
		case optPriority:
			s.Priority = Priority(o.n)
		case optTimeout:
			s.Timeout = o.d
		case optDeadline:
			s.Deadline = o.t
		case optMaxAttempts:
			s.MaxAttempts = o.n
		case optBackoff:
			s.BackoffMin, s.BackoffMax = o.d, o.d2
		case optDelay:
			s.RunAt = now.Add(o.d)
		case optRunAt:
			s.RunAt = o.t
		case optIdempotency:
			s.IdempotencyKey, s.IdempotencyTTL = o.s, o.d
		case optQueue:
			s.Queue = o.s
		case optNone:
			return errorf("%w: zero Option: use the With functions", ErrBadInput)
		}
	}
	if s.Queue == "" {
		return errorf("%w: empty queue name", ErrBadInput)
	}
	return nil
}
