package queue

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Inspector is the optional interface of brokers that can list what they
// hold, for dashboards, APIs and operators: queues with their depth, batches
// with their progress, one batch's per-task state, and dead letters. Find it
// by type assertion on a Broker. Every method reads; none changes what is
// queued.
//
// The list methods page with an opaque cursor: pass the next they returned as
// the filter's After to get the following page; next is "" at the end. A
// page may hold fewer entries than Limit, even none, while next is not
// empty: a broker bounds the work of one call, and says where to go on.
// Filters are validated (see BatchFilter.Validate and
// DeadLetterFilter.Validate); a bad one, or a cursor the broker did not
// make, is an error wrapping ErrBadInput.
type Inspector interface {
	// Queues lists the queues the broker knows, sorted by name.
	Queues(ctx context.Context) ([]QueueInfo, error)
	// Batches lists the batches the broker still holds (see each broker's
	// retention), newest first.
	Batches(ctx context.Context, f BatchFilter) (page []BatchInfo, next string, err error)
	// Batch returns the batch with ID id and the state of each of its
	// tasks. It returns an error wrapping ErrNotFound for an unknown ID.
	Batch(ctx context.Context, id string) (*BatchDetail, error)
	// FindDeadLetters lists the dead letters that match f, oldest first.
	FindDeadLetters(ctx context.Context, f DeadLetterFilter) (page []DeadLetter, next string, err error)
}

// QueueInfo is a queue as Inspector.Queues reports it.
type QueueInfo struct {
	Name string
	// Depth is how many tasks of the queue are unfinished (waiting,
	// delayed or running), per priority level, PriorityLow first: what
	// Stats.Depth reports and what a queue's bound counts.
	Depth [NumPriorities]int
	// InFlight is how many of them are claimed by a worker now (see each
	// broker for how exact it is).
	InFlight int
}

// BatchInfo is a batch's summary as Inspector.Batches reports it. The
// counts are of tasks with an outcome: Done succeeded, Failed failed, and
// Canceled were cancelled (with their batch).
type BatchInfo struct {
	ID, Kind, Queue              string
	Size, Done, Failed, Canceled int
	Created                      time.Time
}

// Finished reports whether every task of the batch has an outcome.
func (b BatchInfo) Finished() bool { return b.Done+b.Failed+b.Canceled >= b.Size }

// TaskState is where one task of a batch stands.
type TaskState uint8

// The task states.
const (
	TaskPending  TaskState = iota // waiting to run: ready, delayed, or waiting for a retry
	TaskRunning                   // claimed by a worker
	TaskDone                      // succeeded
	TaskFailed                    // failed for good
	TaskCanceled                  // cancelled with its batch
)

var taskStates = [...]string{"pending", "running", "done", "failed", "canceled"}

// String returns the state's name: "pending", "running", "done", "failed"
// or "canceled".
func (s TaskState) String() string {
	if int(s) < len(taskStates) {
		return taskStates[s]
	}
	return "TaskState(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText returns the state's name, so that JSON holds "done", not 2.
func (s TaskState) MarshalText() ([]byte, error) {
	if int(s) >= len(taskStates) {
		return nil, fmt.Errorf("queue: task state %d out of range", s)
	}
	return []byte(taskStates[s]), nil
}

// UnmarshalText parses a state's name.
func (s *TaskState) UnmarshalText(b []byte) error {
	for i, name := range taskStates {
		if string(b) == name {
			*s = TaskState(i)
			return nil
		}
	}
	return errorf("%w: task state %q: want pending, running, done, failed or canceled", ErrBadInput, b)
}

// StateOf returns the final state of a task with outcome o.
func StateOf(o *Outcome) TaskState {
	switch {
	case o.Err == nil:
		return TaskDone
	case o.Err.Code == CodeCanceled:
		return TaskCanceled
	}
	return TaskFailed
}

// BatchDetail is a batch with the state of each of its tasks, as
// Inspector.Batch reports it.
type BatchDetail struct {
	BatchInfo
	States []TaskState // one per task, by index
}

// Page limits of the Inspector's list methods.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
)

// BatchFilter selects the batches Inspector.Batches lists. The zero value
// selects every batch, DefaultPageLimit at a time.
type BatchFilter struct {
	Queue string // only this queue's; "" for every queue
	State string // "" for every batch, "running" for unfinished ones, "finished"
	After string // the cursor a previous call returned; "" for the newest
	Limit int    // the most batches a page holds: 0 means DefaultPageLimit; at most MaxPageLimit
}

// Validate returns an error wrapping ErrBadInput that says what is wrong
// with f and what is accepted, or nil. It does not check After, which only
// the broker that made it can read.
func (f BatchFilter) Validate() error {
	switch f.State {
	case "", "running", "finished":
	default:
		return errorf("%w: batch state %q: want \"running\", \"finished\" or none", ErrBadInput, f.State)
	}
	return checkLimit(f.Limit)
}

// PageLimit returns f.Limit with the default applied.
func (f BatchFilter) PageLimit() int { return pageLimit(f.Limit) }

// Match reports whether a batch passes f's queue and state.
func (f BatchFilter) Match(b *BatchInfo) bool {
	if f.Queue != "" && b.Queue != f.Queue {
		return false
	}
	switch f.State {
	case "running":
		return !b.Finished()
	case "finished":
		return b.Finished()
	}
	return true
}

// DeadLetterFilter selects the dead letters Inspector.FindDeadLetters lists.
// The zero value selects every dead letter, DefaultPageLimit at a time.
type DeadLetterFilter struct {
	Queue         string // only this queue's; "" for every queue
	Kind          string // only this kind's; "" for every kind
	ErrorContains string // only those with an attempt error containing it, ignoring case; "" for all
	After         string // the cursor a previous call returned; "" for the oldest
	Limit         int    // the most a page holds: 0 means DefaultPageLimit; at most MaxPageLimit
}

// Validate returns an error wrapping ErrBadInput that says what is wrong
// with f and what is accepted, or nil. It does not check After.
func (f DeadLetterFilter) Validate() error { return checkLimit(f.Limit) }

// PageLimit returns f.Limit with the default applied.
func (f DeadLetterFilter) PageLimit() int { return pageLimit(f.Limit) }

// Match reports whether a dead letter passes f's queue, kind and error
// text.
func (f DeadLetterFilter) Match(d *DeadLetter) bool {
	if f.Queue != "" && d.Queue != f.Queue || f.Kind != "" && d.Kind != f.Kind {
		return false
	}
	if f.ErrorContains == "" {
		return true
	}
	for _, a := range d.Attempts {
		if strings.Contains(strings.ToLower(a.Error), strings.ToLower(f.ErrorContains)) {
			return true
		}
	}
	return false
}

func checkLimit(n int) error {
	if n < 0 || n > MaxPageLimit {
		return errorf("%w: page limit %d: want 1 to %d, or 0 for %d", ErrBadInput, n, MaxPageLimit, DefaultPageLimit)
	}
	return nil
}

func pageLimit(n int) int {
	if n == 0 {
		return DefaultPageLimit
	}
	return n
}

// BadCursor returns the error of a cursor c that a broker cannot read:
// it wraps ErrBadInput. Brokers use it so that every one says the same.
func BadCursor(c string) error {
	return errorf("%w: cursor %q was not returned by this broker: pass the next of a previous page, or none for the first", ErrBadInput, c)
}
