package bench_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/gather-go/gather/bench/internal/peers"
)

// asynqRig is hibiken/asynq on the redis-server that brokers.sh starts (loopback, no
// persistence): one asynq.Server (the worker) and one asynq.Client and Inspector (the
// producer), each with its own Redis connections.
//
// The worker is a peers.AsynqServer, the producer a peers.AsynqClient; a gather
// is peers.AsynqGather (package peers has the reasons for their settings).
type asynqRig struct {
	client *asynq.Client
	insp   *asynq.Inspector
	pumped *countdown // pump tasks run
}

const (
	asynqPump   = "bench:pump"
	asynqGather = "bench:gather"
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
	srv := peers.AsynqServer(addr)
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
	r.client = peers.AsynqClient(addr)
	b.Cleanup(func() { r.client.Close() })
	r.insp = asynq.NewInspector(asynq.RedisClientOpt{Addr: addr})
	b.Cleanup(func() { r.insp.Close() })
	return r
}

// reset deletes the tasks kept as completed by earlier gathers.
func (r *asynqRig) reset(ctx context.Context) error {
	queues, err := r.insp.Queues()
	if err != nil || !slices.Contains(queues, peers.AsynqQueue) {
		return err // asynq knows a queue once a task was enqueued to it
	}
	_, err = r.insp.DeleteAllCompletedTasks(peers.AsynqQueue)
	return err
}

// pump counts the handler's runs, then polls the queue until no task is pending or
// active: asynq removes a task from its active list when it marks it done (without
// Retention, by deleting it).
func (r *asynqRig) pump(ctx context.Context, n int) error {
	r.pumped.expect(n)
	if _, err := peers.AsynqEnqueue(ctx, r.client, asynqPump, n); err != nil {
		return err
	}
	if err := r.pumped.wait(ctx); err != nil {
		return err
	}
	for {
		q, err := r.insp.GetQueueInfo(peers.AsynqQueue)
		if err != nil {
			return err
		}
		if q.Pending == 0 && q.Active == 0 {
			return nil
		}
		if err := peers.Sleep(ctx, peers.AsynqPoll); err != nil {
			return fmt.Errorf("asynq: %d pending and %d active: %w", q.Pending, q.Active, err)
		}
	}
}

func (r *asynqRig) gather(ctx context.Context, n int) error {
	return peers.AsynqGather(ctx, r.client, r.insp, asynqGather, n)
}
