package gather

import (
	"fmt"
	"time"
)

// Option is a per-call setting for [Map], [MapSettled], [MapAny], [Stream],
// [StreamOrdered] and [NewGroup]. Options are plain values: passing them allocates
// nothing. When the same setting is given twice, the last one wins.
//
// Package queue has an Option type of its own, with other names (queue.WithTimeout,
// queue.WithMaxAttempts): its options set fields of each task it enqueues, while these
// configure how one call runs here. [Timeout] bounds a call of a function;
// queue.WithTimeout bounds one attempt of a task that may be retried.
type Option struct {
	limit   int
	timeout time.Duration
	join    bool
}

// Limit lets at most n tasks run at once. With a limit, at most n goroutines (the
// caller's among them, except in a stream) take the tasks in turn, each claiming a run
// of indices at a time while the tasks are cheap and one at a time while they are not;
// without a limit, every task gets a goroutine of its own. Limit panics if n < 1: a limit that lets nothing run is a programmer error.
func Limit(n int) Option {
	if n < 1 {
		panic(fmt.Sprintf("gather: Limit(%d): the limit must be at least 1", n))
	}
	return Option{limit: n}
}

// Timeout cancels each task's context d after the task starts, with
// context.DeadlineExceeded. A task that ignores its context is not stopped: Go cannot
// stop a goroutine from outside. Timeout costs one context and one timer per task
// (about 0.5 µs). It panics if d <= 0.
func Timeout(d time.Duration) Option {
	if d <= 0 {
		panic(fmt.Sprintf("gather: Timeout(%v): the timeout must be positive", d))
	}
	return Option{timeout: d}
}

// JoinErrors makes [Map] and [Group] run every task instead of cancelling the others at
// the first failure, and return every failure joined with errors.Join, each a
// [*TaskError] carrying its index, in index order. The values are then returned too,
// index-aligned, with the zero value where a task failed.
func JoinErrors() Option { return Option{join: true} }

type config struct {
	limit   int // 0: a goroutine per task
	timeout time.Duration
	join    bool
}

func configure(opts []Option) config {
	var c config
	for _, o := range opts {
		if o.limit != 0 {
			c.limit = o.limit
		}
		if o.timeout != 0 {
			c.timeout = o.timeout
		}
		if o.join {
			c.join = true
		}
	}
	return c
}
