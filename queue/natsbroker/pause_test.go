package natsbroker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
)

// TestPauseAcrossBrokers: a pause made through one broker (one process) is
// what another broker of the prefix, on a connection of its own, starts
// with: its worker runs nothing of the paused queue while another queue
// flows; a resume through the first wakes the second's idle worker, which
// then runs what waited.
func TestPauseAcrossBrokers(t *testing.T) {
	t.Parallel()
	s := embedded(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := newBroker(t, connect(t, s), natsbroker.Config{Prefix: "pausex"})
	const paused, flowing = "held", "moving"
	if err := a.Pause(ctx, paused); err != nil {
		t.Fatal(err)
	}
	b := newBroker(t, connect(t, s), natsbroker.Config{Prefix: "pausex"})
	if p, err := b.Paused(ctx, paused); err != nil || !p {
		t.Fatalf("Paused through the other broker: %v, %v", p, err)
	}
	var ran atomic.Int32
	w, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 2, Queues: []string{paused, flowing}})
	if err != nil {
		t.Fatal(err)
	}
	kind := queue.NewKind[int, int]("pausex")
	queue.HandleFunc(w, kind, func(ctx context.Context, n int) (int, error) {
		if n < 0 {
			ran.Add(1)
		}
		return n, nil
	})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	c, _ := queue.NewClient(a, nil)
	held, err := queue.EnqueueBatch(ctx, c, kind, []int{-1, -2, -3}, queue.WithQueue(paused))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		mv, err := queue.EnqueueBatch(ctx, c, kind, []int{1, 2, 3, 4}, queue.WithQueue(flowing))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mv.Await(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := ran.Load(); n != 0 {
		t.Fatalf("%d tasks of the paused queue ran on the other broker's worker", n)
	}
	if err := a.Resume(ctx, paused); err != nil {
		t.Fatal(err)
	}
	got, err := held.Await(ctx)
	if err != nil || len(got) != 3 || got[2] != -3 {
		t.Fatalf("after the resume: %v, %v", got, err)
	}
}
