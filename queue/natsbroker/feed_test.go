package natsbroker_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/queuetest"
)

// TestFeedSubscribersMidFlight: subscriptions opened before, during and
// after a batch runs, on the worker's broker and on another one, each get
// every outcome exactly once: the replay and the shared results feed
// neither miss nor repeat what is recorded while a subscription starts.
func TestFeedSubscribersMidFlight(t *testing.T) {
	t.Parallel()
	s := embedded(t, false)
	cfg := natsbroker.Config{Prefix: "feed"}
	wb := newBroker(t, connect(t, s), cfg)
	pb := newBroker(t, connect(t, s), cfg)
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(2*time.Minute))
	defer cancel()
	c, err := queue.NewClient(pb, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	batch, err := queue.EnqueueBatch(ctx, c, procKind, ints(n))
	if err != nil {
		t.Fatal(err)
	}
	follow := func(b *natsbroker.Broker) error {
		sub, err := b.Subscribe(ctx, batch.ID())
		if err != nil {
			return err
		}
		defer sub.Close()
		seen := make([]bool, n)
		buf := make([]queue.Outcome, 7)
		count := 0
		for {
			k, err := sub.Next(ctx, buf)
			for _, o := range buf[:k] {
				if seen[o.Index] {
					return errors.New("an outcome twice")
				}
				seen[o.Index] = true
				count++
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
		}
		if count != n {
			return errors.New("outcomes missing")
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	start := func() {
		for _, b := range []*natsbroker.Broker{wb, pb} {
			wg.Go(func() { errs <- follow(b) })
		}
	}
	start() // before any outcome
	w, err := queue.NewWorker(wb, &queue.WorkerConfig{Concurrency: 2, MaxClaim: 8})
	if err != nil {
		t.Fatal(err)
	}
	done := 0
	queue.HandleFunc(w, procKind, func(ctx context.Context, n int) (procOut, error) { return procOut{V: n}, nil })
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), queuetest.Liveness(time.Minute))
		defer scancel()
		if err := w.Shutdown(sctx); err != nil {
			t.Error(err)
		}
	}()
	// Subscribe again and again while outcomes are being recorded.
	for i, r := range batch.Results(ctx) {
		if r.Err != nil || r.Value.V != i {
			t.Fatalf("task %d: %+v, %v", i, r.Value, r.Err)
		}
		if done++; done%100 == 0 {
			start()
		}
	}
	start() // after the last one
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
