package queue

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// Priority is a task's priority level, from PriorityLow (0) to PriorityCritical
// (NumPriorities-1). Higher levels run first under the strict policy and get a
// larger share under the weighted one. The zero value is PriorityLow; tasks
// enqueued without the Priority option get PriorityNormal.
type Priority int

// The priority levels. Brokers keep one ready list per level and queue (NATS:
// one subject and pull consumer per level), so the set is small and fixed.
const (
	PriorityLow Priority = iota
	PriorityNormal
	PriorityHigh
	PriorityCritical

	// NumPriorities is the number of priority levels.
	NumPriorities = 4
)

// DefaultQueue is the queue tasks go to without the Queue option, and the one
// a worker serves when its config lists none.
const DefaultQueue = "default"

// Message is one task as brokers store and deliver it: the envelope. Every
// field is plain data (strings, bytes, integers, times) so a broker can put it
// in a record, a message body or headers. Brokers do not interpret Payload.
type Message struct {
	BatchID  string // the batch the task belongs to; a lone task is a batch of one
	Index    int    // the task's index in its batch, 0-based
	Queue    string
	Kind     string
	Payload  []byte // the input, encoded by the kind's codec
	Priority Priority
	// Attempt is the 1-based number of this delivery, set by the broker when
	// it hands the task out: 1 the first time, 2 after a retry or a lease that
	// expired, and so on. A delivery handed back by a shutting-down worker may
	// or may not count, depending on the broker.
	Attempt     int
	MaxAttempts int           // at least 1
	Timeout     time.Duration // per attempt; 0 means none
	Deadline    time.Time     // no attempt starts or runs past it; zero means none
	RunAt       time.Time     // not delivered before; zero means now
	BackoffMin  time.Duration // first retry delay (before jitter)
	BackoffMax  time.Duration // cap on the retry delay
	EnqueuedAt  time.Time
	// Headers are what enqueue middleware added (a trace context, a
	// tenant), carried to the handler's middleware; nil means none. See
	// CheckHeaders for what is accepted. They belong to the broker: do
	// not modify them.
	Headers map[string]string
}

// ID returns the task's ID, "<batch ID>/<index>": unique per task, stable across
// retries and redeliveries (a broker may use it as a de-duplication key).
func (m *Message) ID() string { return TaskID(m.BatchID, m.Index) }

// TaskID formats a task ID from its batch ID and index.
func TaskID(batchID string, index int) string {
	return batchID + "/" + strconv.Itoa(index)
}

// ParseTaskID splits a task ID made by TaskID. A malformed ID gets an error
// wrapping ErrBadInput; brokers return it from DeadLetters and Redrive.
func ParseTaskID(id string) (batchID string, index int, err error) {
	i := strings.LastIndexByte(id, '/')
	if i <= 0 {
		return "", 0, errorf("%w: bad task ID %q: want <batch ID>/<index>", ErrBadInput, clip(id))
	}
	n, err := strconv.Atoi(id[i+1:])
	if err != nil || n < 0 {
		return "", 0, errorf("%w: bad task ID %q: want <batch ID>/<index>", ErrBadInput, clip(id))
	}
	return id[:i], n, nil
}

// Submission is a batch of tasks as a producer hands it to Broker.Enqueue:
// the fields every task shares, once, and one payload per task. Message builds
// the envelope of task i. Payloads may share one backing array; brokers must
// not modify them.
type Submission struct {
	BatchID        string
	Queue          string
	Kind           string
	Priority       Priority
	MaxAttempts    int
	Timeout        time.Duration
	Deadline       time.Time
	RunAt          time.Time
	BackoffMin     time.Duration
	BackoffMax     time.Duration
	EnqueuedAt     time.Time
	IdempotencyKey string            // empty means none
	IdempotencyTTL time.Duration     // how long the key is remembered; > 0 when the key is set
	Headers        map[string]string // every task's; nil means none (see Message.Headers)
	Payloads       [][]byte          // one per task; at least one
}

// Message returns the envelope of task i, with Attempt 0.
func (s *Submission) Message(i int) Message {
	return Message{
		BatchID: s.BatchID, Index: i, Queue: s.Queue, Kind: s.Kind, Payload: s.Payloads[i],
		Priority: s.Priority, MaxAttempts: s.MaxAttempts, Timeout: s.Timeout,
		Deadline: s.Deadline, RunAt: s.RunAt, BackoffMin: s.BackoffMin, BackoffMax: s.BackoffMax,
		EnqueuedAt: s.EnqueuedAt, Headers: s.Headers,
	}
}

// Delivery is a claimed task: the envelope plus what the broker needs to
// extend, complete or retry it. It is valid until it is completed or retried,
// or its lease expires.
type Delivery struct {
	Message
	// Expires is when the lease ends unless extended.
	Expires time.Time
	// Canceled is closed when the task's batch is cancelled; nil if the
	// broker never cancels this delivery.
	Canceled <-chan struct{}
	// Ref and Seq are the broker's own; callers must not change them.
	Ref any
	Seq uint64
}

// Outcome is the recorded result of one task.
type Outcome struct {
	Index  int
	Output []byte   // the output, encoded by the kind's codec, when Err is nil
	Err    *Failure // nil on success
}

// Completion is the final outcome of a delivery, as a worker reports it.
type Completion struct {
	Delivery *Delivery
	Outcome  Outcome
	// Dead asks the broker to keep the task in its dead-letter store (if it
	// has one, see DeadLetterer), with the errors of its attempts.
	Dead bool
}

// AttemptError is the error of one failed attempt, as kept for dead letters.
type AttemptError struct {
	Attempt int
	At      time.Time
	Error   string // for a panic, the value and the stack
}

// DeadLetter is a task that failed its last attempt (or failed permanently).
type DeadLetter struct {
	Message
	Attempts []AttemptError // every recorded attempt's error, oldest first
	At       time.Time      // when it was dead-lettered
}

// Broker stores tasks and results for Clients and Workers: the seam between
// the queue and an engine. Implementations must be safe for concurrent use and
// pass queuetest.Run. Scheduling between priority levels is the worker's, so a
// broker only needs one FIFO per queue and level.
//
// Errors are wrapped with the operation; ErrQueueFull and ErrNotFound are the
// sentinels callers test for.
type Broker interface {
	// Enqueue stores every task of s, or none of them. It returns the batch
	// ID: s.BatchID, or, when s.IdempotencyKey was used by an earlier batch in
	// the same queue within its TTL, that batch's ID (storing nothing new). It
	// returns an error wrapping ErrQueueFull when the queue cannot take all
	// the tasks.
	Enqueue(ctx context.Context, s *Submission) (batchID string, err error)

	// Claim fills dst with up to len(dst) tasks of queue at level whose RunAt
	// has come, oldest first, leases each for lease, and returns how many it
	// filled. It never blocks waiting for work (see Notify). Tasks of a
	// cancelled batch may be returned with Canceled closed.
	Claim(ctx context.Context, queue string, level Priority, lease time.Duration, dst []Delivery) (int, error)

	// Notify returns a channel that is closed when work may have become ready
	// in one of queues after the call: an enqueue, a retry or delay coming
	// due, a lease expiring. Spurious wake-ups are allowed; missed ones are
	// not. The broker releases what the channel needs when ctx ends.
	Notify(ctx context.Context, queues []string) (<-chan struct{}, error)

	// Extend renews the leases of ds for lease from now. Deliveries already
	// completed, retried or expired are ignored.
	Extend(ctx context.Context, lease time.Duration, ds []*Delivery) error

	// Complete records each outcome and acknowledges its delivery. The first
	// outcome recorded for a task wins; later ones (a redelivered task that
	// ran twice, a task cancelled with its batch) are dropped, so subscribers
	// see each task once. Completing a delivery whose lease expired is
	// allowed and still records the outcome if none was recorded.
	Complete(ctx context.Context, cs []Completion) error

	// Retry hands a delivery back to run again at or after at. With a
	// non-nil failure it records the failed attempt (for dead letters); with
	// nil it releases the task (a worker shutting down) and the broker should
	// not count the delivery as an attempt if it can. Retrying a delivery
	// whose lease expired or whose task was completed does nothing.
	Retry(ctx context.Context, d *Delivery, at time.Time, failure *AttemptError) error

	// Subscribe follows the outcomes of a batch: it replays every outcome
	// recorded before the call, then returns new ones as they are recorded,
	// each exactly once. It returns an error wrapping ErrNotFound for an
	// unknown batch.
	Subscribe(ctx context.Context, batchID string) (Subscription, error)

	// Cancel cancels a batch: every task without an outcome gets a Failure
	// with code CodeCanceled as its outcome, tasks not started never run, and
	// the Canceled channel of running deliveries is closed. Cancelling a
	// finished or cancelled batch does nothing; an unknown one returns an
	// error wrapping ErrNotFound.
	Cancel(ctx context.Context, batchID string) error
}

// Subscription follows one batch's outcomes (see Broker.Subscribe). It is
// used by one goroutine at a time; Close releases it.
type Subscription interface {
	// Size is the number of tasks in the batch; Kind and Queue are theirs.
	Size() int
	Kind() string
	Queue() string
	// Next fills dst with outcomes not returned before, blocking until there
	// is at least one, and returns how many it filled. It returns ctx's error
	// when ctx ends first, and io.EOF once all Size outcomes were returned.
	Next(ctx context.Context, dst []Outcome) (int, error)
	Close() error
}

// DeadLetterer is the optional interface of brokers that keep tasks that
// failed their last attempt, for inspection and re-driving. Both methods
// return an error wrapping ErrBadInput for a task ID that ParseTaskID
// refuses.
type DeadLetterer interface {
	// DeadLetters lists up to limit dead letters of queue, oldest first,
	// starting after the task ID after (empty: from the start; a task that
	// is not a dead letter of queue: nothing).
	DeadLetters(ctx context.Context, queue string, after string, limit int) ([]DeadLetter, error)
	// Redrive enqueues the dead-lettered task with ID id again as a new batch
	// of one, with its attempts reset, removes it from the store, and returns
	// the new batch's ID. It returns an error wrapping ErrNotFound when there
	// is no such dead letter.
	Redrive(ctx context.Context, id string) (batchID string, err error)
}

// Limiter is the optional interface of brokers whose limits a worker's
// config must respect: NewWorker checks the config against them and
// reports every conflict with its other problems.
type Limiter interface {
	// MaxLease returns the longest lease the broker keeps without a
	// heartbeat, 0 for no limit (natsbroker: its AckWait). NewWorker
	// refuses a WorkerConfig.Lease above it and lowers the default lease
	// to it, so that heartbeats come often enough.
	MaxLease() time.Duration
	// CheckQueue returns an error wrapping ErrBadInput, saying what is
	// accepted, when name cannot name a queue on this broker.
	CheckQueue(name string) error
	// MaxPayload returns the largest encoded output of one task the broker
	// stores, 0 for no limit. A worker fails a task whose handler returns
	// a larger one, permanently, saying so.
	MaxPayload() int
}

// Rechecker is the optional interface of brokers that can deliver one task
// in more than one message at once (natsbroker after a server crash: a
// message delivered again beside tasks moved out of it before), so that a
// copy claimed before another copy ran may still be waiting in a runner when
// that one's outcome is recorded. A worker asks just before it runs each
// claimed task; the check must be cheap (no round trip).
type Rechecker interface {
	// Finished reports whether d's task has an outcome recorded already.
	// If so the broker has settled d as Complete would, recording nothing,
	// and the worker drops it without running it or reporting an event.
	Finished(d *Delivery) bool
}

// Stats is the optional interface of brokers that can count ready tasks.
type Stats interface {
	// Depth returns how many tasks of queue are unfinished (ready, delayed
	// or leased), per priority level: what a queue bound counts.
	Depth(ctx context.Context, queue string) ([NumPriorities]int, error)
}
