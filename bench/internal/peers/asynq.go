package peers

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"
)

// asynq enqueues one task per round trip, so the producer enqueues from
// AsynqProducers goroutines at once. asynq has no batch await: its documented way
// to learn a task's outcome is to enqueue it with asynq.Retention and look it up
// with Inspector.GetTaskInfo (the asynq wiki's "Task Retention and Results");
// AsynqAwait does that in enqueue order and sleeps AsynqPoll when a walk found
// nothing new. (Walking from several goroutines at once, or polling less often,
// measured no faster: every look-up is two round trips to the one Redis thread
// that the worker needs too.)
const (
	AsynqQueue     = "default"
	AsynqProducers = 16
	AsynqPoll      = time.Millisecond // short, in asynq's favour
)

// AsynqServer returns a worker on the Redis at addr: Concurrency 64, and
// TaskCheckInterval (how often it polls an empty queue; default 1 s) 1 ms in
// asynq's favour, though its docs warn that a low value adds load to Redis. The
// caller starts and shuts it down.
func AsynqServer(addr string) *asynq.Server {
	return asynq.NewServer(asynq.RedisClientOpt{Addr: addr}, asynq.Config{
		Concurrency:       64,
		TaskCheckInterval: time.Millisecond,
		LogLevel:          asynq.ErrorLevel,
	})
}

// AsynqClient returns a producer's client on the Redis at addr, with a connection
// for each of its AsynqProducers goroutines. The caller closes it.
func AsynqClient(addr string) *asynq.Client {
	return asynq.NewClient(asynq.RedisClientOpt{Addr: addr, PoolSize: AsynqProducers})
}

// AsynqEnqueue enqueues n tasks of type typ from AsynqProducers goroutines and
// returns their IDs in the order they were given out.
func AsynqEnqueue(ctx context.Context, client *asynq.Client, typ string, n int, opts ...asynq.Option) ([]string, error) {
	ids := make([]string, n)
	task := asynq.NewTask(typ, nil)
	var g errgroup.Group
	for p := range min(n, AsynqProducers) {
		g.Go(func() error {
			for i := p; i < n; i += AsynqProducers {
				info, err := client.EnqueueContext(ctx, task, opts...)
				if err != nil {
					return err
				}
				ids[i] = info.ID
			}
			return nil
		})
	}
	return ids, g.Wait()
}

// AsynqGather enqueues n tasks of type typ, kept when completed, and returns when
// every one is: it walks the list of unfinished task IDs in enqueue order,
// dropping each completed one and stopping at the first that is not.
func AsynqGather(ctx context.Context, client *asynq.Client, insp *asynq.Inspector, typ string, n int) error {
	// Retention only needs to outlast the poll; asynq's janitor deletes the rest.
	pending, err := AsynqEnqueue(ctx, client, typ, n, asynq.Retention(10*time.Minute))
	if err != nil {
		return err
	}
	for len(pending) > 0 {
		progress := false
		for len(pending) > 0 {
			info, err := insp.GetTaskInfo(AsynqQueue, pending[0])
			if err != nil {
				return err
			}
			if info.State != asynq.TaskStateCompleted {
				break
			}
			pending, progress = pending[1:], true
		}
		if !progress {
			if err := Sleep(ctx, AsynqPoll); err != nil {
				return fmt.Errorf("asynq: %d tasks unfinished: %w", len(pending), err)
			}
		}
	}
	return nil
}
