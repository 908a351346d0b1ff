package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
)

// The River rows: riverqueue/river with riverpgxv5 on the PostgreSQL that
// deployed.sh starts, with BenchmarkBroker's settings (its riverRig has the
// reasons): a worker process is a river.Client with River's own benchmark's
// settings (FetchCooldown 2 ms, FetchPollInterval 20 ms, MaxWorkers 2,000); the
// producer is an insert-only river.Client that inserts riverInsertChunk jobs per
// InsertMany and learns that a batch finished by listing its unfinished job IDs in
// the completed state, riverPollWindow at a time, sleeping riverPoll when a poll
// found nothing new. The driver migrates the schema and empties the job table
// before the workers start (riverReset).
const (
	riverInsertChunk = 1000
	riverPollWindow  = 1000
	riverPoll        = 20 * time.Millisecond
)

type riverArgs struct{}

func (riverArgs) Kind() string { return "bench_noop" }

type riverNoop struct {
	river.WorkerDefaults[riverArgs]
}

func (riverNoop) Work(context.Context, *river.Job[riverArgs]) error { return nil }

var riverLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

func riverPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	if url == "" {
		return nil, fmt.Errorf("%w: -postgres is required", errUsage)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("-postgres: %w", err)
	}
	cfg.MaxConns = 16
	return pgxpool.NewWithConfig(ctx, cfg)
}

// riverReset migrates River's schema up and empties its job table.
func riverReset(ctx context.Context, url string) error {
	pool, err := riverPool(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: riverLogger})
	if err != nil {
		return err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrations: %w", err)
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
	river.AddWorker(workers, &riverNoop{})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		FetchCooldown:     2 * time.Millisecond,
		FetchPollInterval: 20 * time.Millisecond,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2000}},
		Workers:           workers,
		Logger:            riverLogger,
	})
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
	// The producer's FetchCooldown is how often its inserts may notify the workers
	// (LISTEN/NOTIFY) of new jobs: the workers', not the default 100 ms.
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{FetchCooldown: 2 * time.Millisecond, Logger: riverLogger})
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &riverRig{pool: pool, client: client}, nil
}

func (r *riverRig) close() { r.pool.Close() }

func (r *riverRig) gather(ctx context.Context, n int) error {
	pending := make([]int64, 0, n)
	params := make([]river.InsertManyParams, min(n, riverInsertChunk))
	for i := range params {
		params[i].Args = riverArgs{}
	}
	for len(pending) < n {
		res, err := r.client.InsertMany(ctx, params[:min(n-len(pending), len(params))])
		if err != nil {
			return err
		}
		for _, j := range res {
			pending = append(pending, j.Job.ID)
		}
	}
	done := make(map[int64]bool, riverPollWindow)
	for len(pending) > 0 {
		window := pending[:min(len(pending), riverPollWindow)]
		res, err := r.client.JobList(ctx, river.NewJobListParams().
			IDs(window...).States(rivertype.JobStateCompleted).First(len(window)))
		if err != nil {
			return err
		}
		if len(res.Jobs) == 0 {
			if err := sleepCtx(ctx, riverPoll); err != nil {
				return fmt.Errorf("river: %d jobs unfinished: %w", len(pending), err)
			}
			continue
		}
		clear(done)
		for _, j := range res.Jobs {
			done[j.ID] = true
		}
		kept := pending[:0]
		for _, id := range pending {
			if !done[id] {
				kept = append(kept, id)
			}
		}
		pending = kept
	}
	return nil
}
