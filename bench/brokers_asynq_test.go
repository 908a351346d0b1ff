package bench_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
)

// asynqRig is hibiken/asynq on the redis-server that brokers.sh starts (loopback, no
// persistence): one asynq.Server (the worker) and one asynq.Client and Inspector (the
// producer), each with its own Redis connections.
//
// asynq enqueues one task per round trip, so the producer enqueues from
// asynqProducers goroutines at once. Its server dequeues one task per round trip from
// one goroutine and polls an empty queue every TaskCheckInterval (default 1 s, set
// here to 1 ms in its favour: its docs warn that a low value adds load to Redis).
//
// asynq has no batch await. Its documented way to learn a task's outcome is to
// enqueue it with asynq.Retention, so that a finished task is kept in the "completed"
// state instead of deleted, and to look it up with Inspector.GetTaskInfo (see the
// asynq wiki's "Task Retention and Results"). The producer does that for every task
// of the batch, in enqueue order: it walks its list of unfinished task IDs, dropping
// each completed one and stopping at the first that is not, and sleeps asynqPoll
// when a walk found nothing new. (Walking from several goroutines at once, or
// polling less often, measured no faster: every look-up is two round trips to the
// one Redis thread that the worker needs too.)
type asynqRig struct {
	client *asynq.Client
	insp   *asynq.Inspector
	pumped *countdown // pump tasks run
}

const (
	asynqQueue     = "default"
	asynqPump      = "bench:pump"
	asynqGather    = "bench:gather"
	asynqProducers = 16
	asynqPoll      = time.Millisecond // short, in asynq's favour
)

func setupAsynq(b *testing.B) brokerRig {
	addr := brokerEnv(b, envRedis)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	err := rdb.FlushDB(ctx).Err()
	rdb.Close()
	if err != nil {
		b.Fatalf("asynq: flushing %s: %v", addr, err)
	}
	r := &asynqRig{pumped: newCountdown()}
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: addr}, asynq.Config{
		Concurrency:       64,
		TaskCheckInterval: time.Millisecond,
		LogLevel:          asynq.ErrorLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(asynqPump, func(context.Context, *asynq.Task) error {
		r.pumped.add()
		return nil
	})
	mux.HandleFunc(asynqGather, func(context.Context, *asynq.Task) error { return nil })
	if err := srv.Start(mux); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Shutdown)
	r.client = asynq.NewClient(asynq.RedisClientOpt{Addr: addr, PoolSize: asynqProducers})
	b.Cleanup(func() { r.client.Close() })
	r.insp = asynq.NewInspector(asynq.RedisClientOpt{Addr: addr})
	b.Cleanup(func() { r.insp.Close() })
	return r
}

// reset deletes the tasks kept as completed by earlier gathers.
func (r *asynqRig) reset(ctx context.Context) error {
	queues, err := r.insp.Queues()
	if err != nil || !slices.Contains(queues, asynqQueue) {
		return err // asynq knows a queue once a task was enqueued to it
	}
	_, err = r.insp.DeleteAllCompletedTasks(asynqQueue)
	return err
}

// enqueue enqueues n tasks of type typ from asynqProducers goroutines and returns their
// IDs in the order they were given out.
func (r *asynqRig) enqueue(ctx context.Context, typ string, n int, opts ...asynq.Option) ([]string, error) {
	ids := make([]string, n)
	task := asynq.NewTask(typ, nil)
	var g errgroup.Group
	for p := range min(n, asynqProducers) {
		g.Go(func() error {
			for i := p; i < n; i += asynqProducers {
				info, err := r.client.EnqueueContext(ctx, task, opts...)
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

// pump counts the handler's runs, then polls the queue until no task is pending or
// active: asynq removes a task from its active list when it marks it done (without
// Retention, by deleting it).
func (r *asynqRig) pump(ctx context.Context, n int) error {
	r.pumped.expect(n)
	if _, err := r.enqueue(ctx, asynqPump, n); err != nil {
		return err
	}
	if err := r.pumped.wait(ctx); err != nil {
		return err
	}
	for {
		q, err := r.insp.GetQueueInfo(asynqQueue)
		if err != nil {
			return err
		}
		if q.Pending == 0 && q.Active == 0 {
			return nil
		}
		if err := sleepCtx(ctx, asynqPoll); err != nil {
			return fmt.Errorf("asynq: %d pending and %d active: %w", q.Pending, q.Active, err)
		}
	}
}

func (r *asynqRig) gather(ctx context.Context, n int) error {
	// Retention only needs to outlast the poll; the janitor deletes the rest.
	pending, err := r.enqueue(ctx, asynqGather, n, asynq.Retention(10*time.Minute))
	if err != nil {
		return err
	}
	for len(pending) > 0 {
		progress := false
		for len(pending) > 0 {
			info, err := r.insp.GetTaskInfo(asynqQueue, pending[0])
			if err != nil {
				return err
			}
			if info.State != asynq.TaskStateCompleted {
				break
			}
			pending, progress = pending[1:], true
		}
		if !progress {
			if err := sleepCtx(ctx, asynqPoll); err != nil {
				return fmt.Errorf("asynq: %d tasks unfinished: %w", len(pending), err)
			}
		}
	}
	return nil
}
