package main

import (
	"context"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/gather-go/gather/bench/internal/peers"
)

// The asynq rows: hibiken/asynq on the redis-server that deployed.sh starts, with
// BenchmarkBroker's settings (package peers has them and their reasons): a
// worker process is one peers.AsynqServer; the producer gathers with
// peers.AsynqGather.
const asynqType = "bench:noop"

func asynqWorker(_ context.Context, a addrs) (func(context.Context) error, error) {
	if a.redis == "" {
		return nil, fmt.Errorf("%w: -redis is required", errUsage)
	}
	srv := peers.AsynqServer(a.redis)
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
		client: peers.AsynqClient(a.redis),
		insp:   asynq.NewInspector(asynq.RedisClientOpt{Addr: a.redis}),
	}, nil
}

func (r *asynqRig) close() {
	r.client.Close()
	r.insp.Close()
}

func (r *asynqRig) gather(ctx context.Context, n int) error {
	return peers.AsynqGather(ctx, r.client, r.insp, asynqType, n)
}
