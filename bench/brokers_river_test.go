package bench_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
)

// riverRig is riverqueue/river with riverpgxv5 on the PostgreSQL that brokers.sh
// starts (loopback; see the script for its settings). The worker is a river.Client
// with a queue configured, the producer an insert-only river.Client; each has its
// own connection pool. The worker's settings are those of River's own benchmark
// (cmd/river/riverbench: FetchCooldown 2 ms, FetchPollInterval 20 ms, MaxWorkers
// 2,000), much faster than its defaults. River's worker marks jobs completed in
// batches (internal/jobcompleter, not configurable): on a 50 ms tick once 100 are
// waiting, else every 250 ms. That is nearly all of its latency for small batches.
//
// The producer inserts with InsertMany in chunks of riverInsertChunk, so the worker
// starts on the first chunk while the next is inserted.
//
// River has no batch await either. In another process than the worker's, the way to
// learn a job's outcome is to read its row (Client.JobGet, Client.JobList): the
// producer lists its unfinished job IDs in the completed state, riverPollWindow IDs
// at a time, oldest first, drops those it gets, and sleeps riverPoll when a poll
// found nothing new. riverPoll is River's own benchmark's FetchPollInterval, well
// under the completer's 50 ms tick; polling every 1 or 5 ms measured slower (each
// poll looks up 1,000 rows on the two cores the worker and PostgreSQL need). (River's event subscription only sees jobs worked by the same
// client; the pump uses it, as River's benchmark does, to count completions.)
type riverRig struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx] // producer
	pumped *countdown            // pump jobs completed, from the worker's subscription
}

const (
	riverInsertChunk = 1000
	riverPollWindow  = 1000
	riverPoll        = 20 * time.Millisecond
)

type riverPumpArgs struct{}

func (riverPumpArgs) Kind() string { return "bench_pump" }

type riverGatherArgs struct{}

func (riverGatherArgs) Kind() string { return "bench_gather" }

type riverNoop[T river.JobArgs] struct{ river.WorkerDefaults[T] }

func (riverNoop[T]) Work(context.Context, *river.Job[T]) error { return nil }

func setupRiver(b *testing.B) brokerRig {
	url := brokerEnv(b, envPostgres)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	newPool := func() *pgxpool.Pool {
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			b.Fatalf("%s: %v", envPostgres, err)
		}
		cfg.MaxConns = 16
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(pool.Close)
		return pool
	}
	wpool, ppool := newPool(), newPool()
	migrator, err := rivermigrate.New(riverpgxv5.New(ppool), &rivermigrate.Config{Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		b.Fatal("river migrations: ", err)
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, &riverNoop[riverPumpArgs]{})
	river.AddWorker(workers, &riverNoop[riverGatherArgs]{})
	worker, err := river.NewClient(riverpgxv5.New(wpool), &river.Config{
		FetchCooldown:     2 * time.Millisecond,
		FetchPollInterval: 20 * time.Millisecond,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2000}},
		Workers:           workers,
		Logger:            logger,
	})
	if err != nil {
		b.Fatal(err)
	}
	r := &riverRig{pool: ppool, pumped: newCountdown()}
	// The channel holds more than a chunk's events, so none is dropped while the
	// goroutine below is descheduled.
	events, unsubscribe := worker.SubscribeConfig(&river.SubscribeConfig{
		ChanSize: 4 * max(*brokerChunk, 10000),
		Kinds:    []river.EventKind{river.EventKindJobCompleted},
	})
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case e := <-events:
				if e != nil && e.Job.Kind == (riverPumpArgs{}).Kind() {
					r.pumped.add()
				}
			case <-stop:
				return
			}
		}
	}()
	b.Cleanup(func() { close(stop); <-stopped; unsubscribe() })
	// Start's context is the client's for as long as it runs: not the setup's timeout.
	if err := worker.Start(context.WithoutCancel(ctx)); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := worker.Stop(ctx); err != nil {
			b.Error("river worker stop: ", err)
		}
	})
	// The producer's FetchCooldown is how often its inserts may notify the worker
	// (LISTEN/NOTIFY) of a queue's new jobs: the worker's, not the default 100 ms.
	r.client, err = river.NewClient(riverpgxv5.New(ppool), &river.Config{FetchCooldown: 2 * time.Millisecond, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// reset empties the job table, as River's benchmark does before it starts.
func (r *riverRig) reset(ctx context.Context) error {
	_, err := r.pool.Exec(ctx, "TRUNCATE river_job")
	return err
}

// insert inserts n jobs with args, riverInsertChunk at a time, and returns their IDs.
func (r *riverRig) insert(ctx context.Context, args river.JobArgs, n int) ([]int64, error) {
	ids := make([]int64, 0, n)
	params := make([]river.InsertManyParams, min(n, riverInsertChunk))
	for i := range params {
		params[i].Args = args
	}
	for len(ids) < n {
		res, err := r.client.InsertMany(ctx, params[:min(n-len(ids), len(params))])
		if err != nil {
			return nil, err
		}
		for _, j := range res {
			ids = append(ids, j.Job.ID)
		}
	}
	return ids, nil
}

// pump counts completions through the worker's subscription, which River sends once
// its completer has written the jobs' completed state.
func (r *riverRig) pump(ctx context.Context, n int) error {
	r.pumped.expect(n)
	if _, err := r.insert(ctx, riverPumpArgs{}, n); err != nil {
		return err
	}
	return r.pumped.wait(ctx)
}

func (r *riverRig) gather(ctx context.Context, n int) error {
	pending, err := r.insert(ctx, riverGatherArgs{}, n)
	if err != nil {
		return err
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
