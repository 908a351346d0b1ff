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

// Limits of the per-call options: Enqueue refuses values beyond them with an
// error wrapping ErrBadInput.
const (
	// MaxAttemptsLimit is the largest WithMaxAttempts, 2^31-1: every
	// broker counts attempts in 32 bits.
	MaxAttemptsLimit = 1<<31 - 1
	// MaxBatch is the most tasks one EnqueueBatch call takes, 2^24: a
	// broker keeps per-task state of a batch (a flag, an outcome) for as
	// long as it is followed, so an awaited batch's size must be bounded.
	MaxBatch = 1 << 24
)

// The times Deadline and RunAt accept: years 1 to 9999, the range that RFC
// 3339 and encoding/json represent (dead letters are stored as JSON).
var (
	minTime = time.Date(1, time.January, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(10000, time.January, 1, 0, 0, 0, 0, time.UTC)
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
// ErrTimeout without further retries. A time already past fails the tasks
// when they are claimed; the zero time means no deadline. Enqueue refuses a
// time outside years 1 to 9999 with an error wrapping ErrBadInput.
func WithDeadline(t time.Time) Option { return Option{kind: optDeadline, t: t} }

// WithMaxAttempts sets how many times a failing task runs before it is
// dead-lettered (default DefaultMaxAttempts). It panics if n < 1; Enqueue
// refuses n above MaxAttemptsLimit with an error wrapping ErrBadInput.
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

// WithDelay makes the tasks ready d after they are enqueued; d <= 0 makes
// them ready at once.
func WithDelay(d time.Duration) Option { return Option{kind: optDelay, d: d} }

// WithRunAt makes the tasks ready at t; a time already past or the zero time
// makes them ready at once. Enqueue refuses a time outside years 1 to 9999
// with an error wrapping ErrBadInput.
func WithRunAt(t time.Time) Option { return Option{kind: optRunAt, t: t} }

// WithIdempotencyKey makes the call enqueue at most once per key and queue
// within window (DefaultIdempotencyWindow if window <= 0): a later call with
// the same key enqueues nothing and returns the first call's batch, whose
// results it then awaits. The key names the whole call, batch or single task.
// Enqueue refuses an empty key with an error wrapping ErrBadInput (omit the
// option to enqueue without de-duplication); a broker may bound the key's
// length (natsbroker: see its package documentation).
func WithIdempotencyKey(key string, window time.Duration) Option {
	if window <= 0 {
		window = DefaultIdempotencyWindow
	}
	return Option{kind: optIdempotency, s: key, d: window}
}

// WithQueue sends the tasks to the named queue (default DefaultQueue).
// Enqueue refuses an empty name with an error wrapping ErrBadInput; a broker
// may bound the name's length (natsbroker: see its package documentation).
func WithQueue(name string) Option { return Option{kind: optQueue, s: name} }

// submission fills s from the defaults and opts.
func (c *Client) submission(s *Submission, opts []Option) error {
	now := time.Now()
	*s = Submission{
		Queue: DefaultQueue, Priority: PriorityNormal, MaxAttempts: DefaultMaxAttempts,
		BackoffMin: DefaultBackoffMin, BackoffMax: DefaultBackoffMax, EnqueuedAt: now,
	}
	idem := false
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
			s.RunAt = time.Time{} // ready at once
			if o.d > 0 {
				s.RunAt = now.Add(o.d) // at most about 292 years on
			}
		case optRunAt:
			s.RunAt = o.t
		case optIdempotency:
			s.IdempotencyKey, s.IdempotencyTTL, idem = o.s, o.d, true
		case optQueue:
			s.Queue = o.s
		case optNone:
			return errorf("%w: zero Option: use the With functions", ErrBadInput)
		}
	}
	if s.Queue == "" {
		return errorf("%w: empty queue name", ErrBadInput)
	}
	if idem && s.IdempotencyKey == "" {
		return errorf("%w: WithIdempotencyKey with an empty key: want a non-empty key, or no WithIdempotencyKey to enqueue without de-duplication", ErrBadInput)
	}
	if s.MaxAttempts > MaxAttemptsLimit {
		return errorf("%w: WithMaxAttempts(%d): want 1 to %d", ErrBadInput, s.MaxAttempts, MaxAttemptsLimit)
	}
	for _, t := range []struct {
		name string
		v    time.Time
	}{{"WithDeadline", s.Deadline}, {"WithRunAt", s.RunAt}} {
		if !t.v.IsZero() && (t.v.Before(minTime) || !t.v.Before(maxTime)) {
			return errorf("%w: %s(%s): want a time in years 1 to 9999, or the zero time for none",
				ErrBadInput, t.name, t.v.Format(time.RFC3339Nano))
		}
	}
	return nil
}
