package main

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"
)

// The asynq rows: hibiken/asynq on the redis-server that deployed.sh starts, with
// BenchmarkBroker's settings (its asynqRig has the reasons): a worker process is
// one asynq.Server (Concurrency 64, TaskCheckInterval 1 ms in its favour); the
// producer enqueues from asynqProducers goroutines with asynq.Retention and learns
// that a batch finished by looking its tasks up with Inspector.GetTaskInfo, in
// enqueue order, sleeping asynqPoll when a walk found nothing new.
const (
	asynqQueue     = "default"
	asynqType      = "bench:noop"
	asynqProducers = 16
	asynqPoll      = time.Millisecond
)

func asynqWorker(_ context.Context, a addrs) (func(context.Context) error, error) {
	if a.redis == "" {
		return nil, fmt.Errorf("%w: -redis is required", errUsage)
	}
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: a.redis}, asynq.Config{
		Concurrency:       64,
		TaskCheckInterval: time.Millisecond,
		LogLevel:          asynq.ErrorLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(asynqType, func(context.Context, *asynq.Task) error { return nil })
	if err := srv.Start(mux); err != nil {
		return nil, err
	}
	return func(context.Context) error { srv.Shutdown(); return nil }, nil
}

type asynqRig struct {
	client *asynq.Client
	insp   *asynq.Inspector
}

func asynqProducer(_ context.Context, a addrs, _ int) (rig, error) {
	if a.redis == "" {
		return nil, fmt.Errorf("%w: -redis is required", errUsage)
	}
	return &asynqRig{
		client: asynq.NewClient(asynq.RedisClientOpt{Addr: a.redis, PoolSize: asynqProducers}),
		insp:   asynq.NewInspector(asynq.RedisClientOpt{Addr: a.redis}),
	}, nil
}

func (r *asynqRig) close() {
	r.client.Close()
	r.insp.Close()
}

func (r *asynqRig) gather(ctx context.Context, n int) error {
	pending := make([]string, n)
	task := asynq.NewTask(asynqType, nil)
	var g errgroup.Group
	for p := range min(n, asynqProducers) {
		g.Go(func() error {
			for i := p; i < n; i += asynqProducers {
				// Retention only needs to outlast the poll; asynq's janitor deletes the rest.
				info, err := r.client.EnqueueContext(ctx, task, asynq.Retention(10*time.Minute))
				if err != nil {
					return err
				}
				pending[i] = info.ID
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
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
