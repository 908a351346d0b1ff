package bench_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/gather-go/gather/bench/internal/peers"
)

// riverRig is riverqueue/river with riverpgxv5 on the PostgreSQL that brokers.sh
// starts (loopback; see the script for its settings). The worker is a
// peers.RiverWorker, the producer a peers.RiverProducer; each has its own
// connection pool. River's worker marks jobs completed in batches
// (internal/jobcompleter, not configurable): on a 50 ms tick once 100 are waiting,
// else every 250 ms. That is nearly all of its latency for small batches.
//
// A gather inserts with peers.RiverInsert and awaits with peers.RiverAwait (package
// peers has the reasons for their settings). (River's event subscription only sees
// jobs worked by the same client; the pump uses it, as River's benchmark does, to
// count completions.)
type riverRig struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx] // producer
	pumped *countdown            // pump jobs completed, from the worker's subscription
}

type riverPumpArgs struct{}

func (riverPumpArgs) Kind() string { return "bench_pump" }

type riverGatherArgs struct{}

func (riverGatherArgs) Kind() string { return "bench_gather" }

func setupRiver(b *testing.B) brokerRig {
	url := brokerEnv(b, envPostgres)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	newPool := func() *pgxpool.Pool {
		pool, err := peers.RiverPool(ctx, url)
		if err != nil {
			b.Fatalf("%s: %v", envPostgres, err)
		}
		b.Cleanup(pool.Close)
		return pool
	}
	wpool, ppool := newPool(), newPool()
	if err := peers.RiverMigrate(ctx, ppool, logger); err != nil {
		b.Fatal(err)
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, &peers.RiverNoop[riverPumpArgs]{})
	river.AddWorker(workers, &peers.RiverNoop[riverGatherArgs]{})
	worker, err := peers.RiverWorker(wpool, workers, logger)
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
	r.client, err = peers.RiverProducer(ppool, logger)
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

// pump counts completions through the worker's subscription, which River sends once
// its completer has written the jobs' completed state.
func (r *riverRig) pump(ctx context.Context, n int) error {
	r.pumped.expect(n)
	if _, err := peers.RiverInsert(ctx, r.client, riverPumpArgs{}, n); err != nil {
		return err
	}
	return r.pumped.wait(ctx)
}

func (r *riverRig) gather(ctx context.Context, n int) error {
	ids, err := peers.RiverInsert(ctx, r.client, riverGatherArgs{}, n)
	if err != nil {
		return err
	}
	return peers.RiverAwait(ctx, r.client, ids)
}
