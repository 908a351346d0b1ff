package peers

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
)

// River's producer inserts with InsertMany in chunks of RiverInsertChunk, so the
// worker starts on the first chunk while the next is inserted. River has no batch
// await: in another process than the worker's, the way to learn a job's outcome is
// to read its row, so RiverAwait lists the unfinished job IDs in the completed
// state, RiverPollWindow IDs at a time, oldest first, and sleeps RiverPoll when a
// poll found nothing new. RiverPoll is River's own benchmark's FetchPollInterval,
// well under its completer's 50 ms tick; polling every 1 or 5 ms measured slower
// (each poll looks up 1,000 rows on the cores the worker and PostgreSQL need).
const (
	RiverInsertChunk = 1000
	RiverPollWindow  = 1000
	RiverPoll        = 20 * time.Millisecond
)

// RiverNoop is a River worker that does nothing, for jobs of args T.
type RiverNoop[T river.JobArgs] struct{ river.WorkerDefaults[T] }

// Work returns nil.
func (RiverNoop[T]) Work(context.Context, *river.Job[T]) error { return nil }

// RiverPool connects a pool of at most 16 connections to the PostgreSQL at url.
// The caller closes it.
func RiverPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 16
	return pgxpool.NewWithConfig(ctx, cfg)
}

// RiverMigrate migrates River's schema up.
func RiverMigrate(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: logger})
	if err != nil {
		return err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	return nil
}

// RiverWorker returns a worker client on pool with River's own benchmark's
// settings (cmd/river/riverbench: FetchCooldown 2 ms, FetchPollInterval 20 ms,
// MaxWorkers 2,000), much faster than its defaults. The caller starts and stops it.
func RiverWorker(pool *pgxpool.Pool, workers *river.Workers, logger *slog.Logger) (*river.Client[pgx.Tx], error) {
	return river.NewClient(riverpgxv5.New(pool), &river.Config{
		FetchCooldown:     2 * time.Millisecond,
		FetchPollInterval: 20 * time.Millisecond,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2000}},
		Workers:           workers,
		Logger:            logger,
	})
}

// RiverProducer returns an insert-only client on pool. Its FetchCooldown is how
// often its inserts may notify the workers (LISTEN/NOTIFY) of new jobs: the
// workers', not the default 100 ms.
func RiverProducer(pool *pgxpool.Pool, logger *slog.Logger) (*river.Client[pgx.Tx], error) {
	return river.NewClient(riverpgxv5.New(pool), &river.Config{FetchCooldown: 2 * time.Millisecond, Logger: logger})
}

// RiverInsert inserts n jobs with args, RiverInsertChunk at a time, and returns
// their IDs.
func RiverInsert(ctx context.Context, client *river.Client[pgx.Tx], args river.JobArgs, n int) ([]int64, error) {
	ids := make([]int64, 0, n)
	params := make([]river.InsertManyParams, min(n, RiverInsertChunk))
	for i := range params {
		params[i].Args = args
	}
	for len(ids) < n {
		res, err := client.InsertMany(ctx, params[:min(n-len(ids), len(params))])
		if err != nil {
			return nil, err
		}
		for _, j := range res {
			ids = append(ids, j.Job.ID)
		}
	}
	return ids, nil
}

// RiverAwait returns when every job of pending is completed, polling as the
// constants above say. It overwrites pending.
func RiverAwait(ctx context.Context, client *river.Client[pgx.Tx], pending []int64) error {
	done := make(map[int64]bool, RiverPollWindow)
	for len(pending) > 0 {
		window := pending[:min(len(pending), RiverPollWindow)]
		res, err := client.JobList(ctx, river.NewJobListParams().
			IDs(window...).States(rivertype.JobStateCompleted).First(len(window)))
		if err != nil {
			return err
		}
		if len(res.Jobs) == 0 {
			if err := Sleep(ctx, RiverPoll); err != nil {
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
