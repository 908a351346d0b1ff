package queue_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// TestSettledErrorsAreTheTasksOwn checks that AwaitSettled and Results hold
// each task's *Failure as it is, as gather's settled results hold a task's own
// error, so that gather.Values wraps it once with its index; Await, whose
// error leaves the slice, carries the index in a *gather.TaskError.
func TestSettledErrorsAreTheTasksOwn(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kind := queue.NewKind[int, int]("settled.own")
	_, c := startWorker(t, kind, func(ctx context.Context, n int) (int, error) {
		if n%2 == 1 {
			return 0, queue.Permanent(errors.New("odd"))
		}
		return n, nil
	})
	b, err := queue.EnqueueBatch(ctx, c, kind, []int{0, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.AwaitSettled(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res[1].Err.(*queue.Failure); !ok {
		t.Errorf("AwaitSettled: result 1 error %v (%T), want the *queue.Failure itself", res[1].Err, res[1].Err)
	}
	for i, r := range b.Results(ctx) {
		if _, ok := r.Err.(*queue.Failure); i == 1 && !ok {
			t.Errorf("Results: result 1 error %v (%T), want the *queue.Failure itself", r.Err, r.Err)
		}
	}
	_, err = gather.Values(res)
	if want := "gather: task 1: queue: task permanent: odd"; err == nil || err.Error() != want {
		t.Errorf("gather.Values error %q, want %q", err, want)
	}
	_, err = b.Await(ctx)
	var te *gather.TaskError
	if !errors.As(err, &te) || te.Index != 1 || !errors.Is(err, queue.ErrPermanent) {
		t.Errorf("Await error %v: want a *gather.TaskError for index 1 wrapping ErrPermanent", err)
	}
	task, err := queue.Enqueue(ctx, c, kind, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := task.Await(ctx); err == nil || err.Error() != "queue: task permanent: odd" {
		t.Errorf("Task.Await error %v (%T), want the *queue.Failure itself", err, err)
	}
}

// TestAttachAnotherOutputType attaches to a batch with a kind of the same
// name but another output type. The broker records the kind's name, not its
// Go types, so Attach cannot refuse it; the outputs then fail to decode, with
// an error that names the type, and Await returns that error without
// cancelling the batch: its tasks succeeded and its producer still awaits it.
func TestAttachAnotherOutputType(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kind := queue.NewKind[int, int]("typed")
	gate := make(chan struct{})
	broker, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	// Two runners claiming one task at a time: task 0 runs while task 1 waits.
	w, err := queue.NewWorker(broker, &queue.WorkerConfig{Concurrency: 2, MaxClaim: 1})
	if err != nil {
		t.Fatal(err)
	}
	queue.HandleFunc(w, kind, func(ctx context.Context, n int) (int, error) {
		if n == 1 {
			<-gate // task 1 finishes only after the mistyped Await returned
		}
		return 2 * n, nil
	})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(ctx)
	c, err := queue.NewClient(broker, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := queue.EnqueueBatch(ctx, c, kind, []int{5, 1})
	if err != nil {
		t.Fatal(err)
	}
	mistyped, err := queue.Attach(ctx, c, queue.NewKind[int, string]("typed"), b.ID())
	if err != nil {
		t.Fatalf("Attach with the batch's kind name: %v", err)
	}
	_, err = mistyped.Await(ctx)
	close(gate)
	var te *gather.TaskError
	if !errors.As(err, &te) || te.Index != 0 || !errors.Is(err, queue.ErrBadInput) ||
		!strings.Contains(err.Error(), `output of task 0 of kind "typed" does not decode as string`) {
		t.Fatalf("mistyped Await error %v: want a *gather.TaskError for index 0 wrapping ErrBadInput, naming the type", err)
	}
	out, err := b.Await(ctx)
	if err != nil || out[0] != 10 || out[1] != 2 {
		t.Fatalf("the producer's Await: %v, %v; want [10 2] (the mistyped Await must not cancel the batch)", out, err)
	}
	res, err := mistyped.AwaitSettled(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if !errors.Is(r.Err, queue.ErrBadInput) {
			t.Errorf("mistyped AwaitSettled result %d error %v, want ErrBadInput", i, r.Err)
		}
	}
}
