package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/gather-go/gather/bench/internal/peers"
)

// The River rows: riverqueue/river with riverpgxv5 on the PostgreSQL that
// deployed.sh starts, as BenchmarkBroker measures it (its riverRig and package
// peers have the settings and their reasons): a worker process is a
// peers.RiverWorker; the producer is a peers.RiverProducer that inserts with
// peers.RiverInsert and learns that a batch finished with peers.RiverAwait. The
// driver migrates the schema and empties the job table before the workers start
// (riverReset).

// riverArgs are the arguments of the rows' no-op job.
type riverArgs struct{}

func (riverArgs) Kind() string { return "bench_noop" }

var riverLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

func riverPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	if url == "" {
		return nil, fmt.Errorf("%w: -postgres is required", errUsage)
	}
	pool, err := peers.RiverPool(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("-postgres: %w", err)
	}
	return pool, nil
}

// riverReset migrates River's schema up and empties its job table.
func riverReset(ctx context.Context, url string) error {
	pool, err := riverPool(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := peers.RiverMigrate(ctx, pool, riverLogger); err != nil {
		return err
	}
	_, err = pool.Exec(ctx, "TRUNCATE river_job")
	return err
}

func riverWorker(ctx context.Context, a addrs) (func(context.Context) error, error) {
	pool, err := riverPool(ctx, a.postgres)
	if err != nil {
		return nil, err
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &peers.RiverNoop[riverArgs]{})
	client, err := peers.RiverWorker(pool, workers, riverLogger)
	if err == nil {
		// Start's context is the client's for as long as it runs: not the setup's.
		err = client.Start(context.WithoutCancel(ctx))
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	return func(ctx context.Context) error {
		err := client.Stop(ctx)
		pool.Close()
		return err
	}, nil
}

type riverRig struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
}

func riverProducer(ctx context.Context, a addrs, _ int) (rig, error) {
	pool, err := riverPool(ctx, a.postgres)
	if err != nil {
		return nil, err
	}
	client, err := peers.RiverProducer(pool, riverLogger)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &riverRig{pool: pool, client: client}, nil
}

func (r *riverRig) close() { r.pool.Close() }

func (r *riverRig) gather(ctx context.Context, n int) error {
	ids, err := peers.RiverInsert(ctx, r.client, riverArgs{}, n)
	if err != nil {
		return err
	}
	return peers.RiverAwait(ctx, r.client, ids)
}
