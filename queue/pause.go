package queue

import "context"

// Pauser is the optional interface of brokers that can pause a queue for
// every worker that uses them (every process, on every machine, sharing the
// broker's storage). While a queue is paused, Claim returns no task of it:
// workers stop taking its tasks, tasks already running finish (and tasks a
// worker claimed before the pause, at most WorkerConfig.MaxClaim per
// runner, still run), and Enqueue keeps accepting tasks, which wait. Resume
// wakes the workers waiting in Notify. Pausing a paused queue, or resuming
// a running one, does nothing; a queue that does not exist yet can be
// paused before its first task arrives.
//
// Pause and Resume return an error wrapping ErrBadInput when the broker
// cannot name such a queue. A broker whose processes learn of a pause by a
// notice (natsbroker) documents how soon the others see it; the process
// that called Pause sees it when Pause returns.
type Pauser interface {
	Pause(ctx context.Context, queue string) error
	Resume(ctx context.Context, queue string) error
	// Paused reports whether queue is paused.
	Paused(ctx context.Context, queue string) (bool, error)
}
