package queue

import (
	"strconv"
	"time"
)

// EventType says what an Event reports.
type EventType uint8

// The event types. A task's attempt reports EventStarted, then exactly one
// of EventSucceeded and EventFailed; after EventFailed comes at most one of
// EventRetried, EventDeadLettered and EventReleased (none when the batch
// was cancelled while the attempt ran). A claimed task that does not run
// reports EventCanceled (its batch was cancelled) or EventDeadLettered (no
// handler for its kind, or its deadline passed) alone; a copy of a task
// whose outcome was recorded meanwhile (see Rechecker) reports nothing.
const (
	// EventEnqueued: a client stored a batch of Count tasks (Index 0).
	EventEnqueued EventType = iota + 1
	// EventStarted: a worker starts an attempt of a claimed task. Elapsed
	// is how long the task waited since it was enqueued.
	EventStarted
	// EventSucceeded: the attempt returned an output. Elapsed is how long
	// the handler ran.
	EventSucceeded
	// EventFailed: the attempt returned an error, panicked or timed out.
	// Elapsed is how long the handler ran; Err is the *Failure.
	EventFailed
	// EventRetried: the failed attempt's task will run again. Elapsed is
	// the backoff before the next attempt.
	EventRetried
	// EventDeadLettered: the task failed for good and went to the broker's
	// dead-letter store. Err is the *Failure.
	EventDeadLettered
	// EventReleased: a shutting-down worker handed the task back unfinished
	// (its shutdown deadline passed while the attempt ran); it runs again.
	EventReleased
	// EventCanceled: a worker dropped a claimed task of a cancelled batch
	// without running it.
	EventCanceled
	// EventBatchAwaited: an await call (Await, AwaitSettled, Results) saw
	// the outcome of every one of the batch's Count tasks. Elapsed is how
	// long the call followed the batch. Every await call of a batch that
	// reaches its end reports it, in whichever process it runs.
	EventBatchAwaited
)

var eventNames = [...]string{
	EventEnqueued: "enqueued", EventStarted: "started", EventSucceeded: "succeeded",
	EventFailed: "failed", EventRetried: "retried", EventDeadLettered: "dead_lettered",
	EventReleased: "released", EventCanceled: "canceled", EventBatchAwaited: "batch_awaited",
}

// String returns the type's name in snake case ("dead_lettered").
func (t EventType) String() string {
	if int(t) < len(eventNames) && eventNames[t] != "" {
		return eventNames[t]
	}
	return "EventType(" + strconv.Itoa(int(t)) + ")"
}

// Event is what a Client or Worker reports to its Observer. It is a plain
// value: a field that does not apply to the Type is zero.
type Event struct {
	Type    EventType
	Queue   string
	Kind    string // the task kind's name
	BatchID string
	Index   int           // the task's index in its batch
	Attempt int           // the attempt's 1-based number, for task events
	Count   int           // the batch's tasks, for EventEnqueued and EventBatchAwaited
	Elapsed time.Duration // see the Type
	Err     error         // a *Failure, for EventFailed and EventDeadLettered
}

// Observer receives the events of the Clients and Workers it is given to
// (ClientConfig.Observer, WorkerConfig.Observer): the seam for metrics (see
// queue/metrics for Prometheus), dashboards and traces. Observe is called
// synchronously on the goroutine doing the work (a worker's runner, the
// enqueueing or awaiting goroutine), from many goroutines at once: it must
// be safe for concurrent use and quick, and must neither block nor panic.
// An Event is passed by value, so reporting one allocates nothing; without
// an Observer nothing is built or reported at all.
type Observer interface {
	Observe(e Event)
}

// ObserverFunc adapts a function to an Observer.
type ObserverFunc func(e Event)

// Observe calls f(e).
func (f ObserverFunc) Observe(e Event) { f(e) }

// MultiObserver returns an Observer that passes each event to every one of
// obs in turn; nil entries are skipped. With no non-nil entry it returns nil.
func MultiObserver(obs ...Observer) Observer {
	var list multiObserver
	for _, o := range obs {
		if o != nil {
			list = append(list, o)
		}
	}
	switch len(list) {
	case 0:
		return nil
	case 1:
		return list[0]
	}
	return list
}

type multiObserver []Observer

func (m multiObserver) Observe(e Event) {
	for _, o := range m {
		o.Observe(e)
	}
}
