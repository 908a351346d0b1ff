package queue_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// The handler's context watches its batch's cancel channel only once asked
// (see taskCtx in worker.go). These tests reach it through the paths that do
// not start with Done: polling Err and Cause, and keeping the context after
// the handler returned.

func startWorker(t *testing.T, kind queue.Kind[int, int], fn func(context.Context, int) (int, error)) (*membroker.Broker, *queue.Client) {
	t.Helper()
	broker, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { broker.Close() })
	w, err := queue.NewWorker(broker, &queue.WorkerConfig{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	queue.HandleFunc(w, kind, fn)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Shutdown(context.Background()) })
	c, err := queue.NewClient(broker, nil)
	if err != nil {
		t.Fatal(err)
	}
	return broker, c
}

func TestHandlerContextErrWithoutDone(t *testing.T) {
	t.Parallel()
	kind := queue.NewKind[int, int]("poll")
	started := make(chan struct{})
	cause := make(chan error, 1) // one task, one send
	_, c := startWorker(t, kind, func(ctx context.Context, _ int) (int, error) {
		close(started)
		for ctx.Err() == nil {
			runtime.Gosched()
		}
		if !errors.Is(ctx.Err(), context.Canceled) {
			cause <- ctx.Err()
		} else {
			cause <- context.Cause(ctx)
		}
		select {
		case <-ctx.Done():
		default:
			t.Error("Err is set but Done is not closed")
		}
		return 0, ctx.Err()
	})
	ctx := t.Context()
	task, err := queue.Enqueue(ctx, c, kind, 1)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	if err := task.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-cause; !errors.Is(err, queue.ErrCanceled) {
		t.Fatalf("cause seen by a handler polling Err: %v, want ErrCanceled", err)
	}
}

func TestHandlerContextEndsWithTheTask(t *testing.T) {
	t.Parallel()
	kind := queue.NewKind[int, int]("keep")
	kept := make(chan context.Context, 1) // one task, one send
	_, c := startWorker(t, kind, func(ctx context.Context, i int) (int, error) {
		if ctx.Err() != nil {
			t.Errorf("context done while the task runs: %v", ctx.Err())
		}
		kept <- ctx
		return i, nil
	})
	ctx := t.Context()
	task, err := queue.Enqueue(ctx, c, kind, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := task.Await(ctx); err != nil {
		t.Fatal(err)
	}
	hctx := <-kept
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-hctx.Done():
	case <-timer.C:
		t.Fatal("a handler's context is not done after its task completed")
	}
	if !errors.Is(hctx.Err(), context.Canceled) {
		t.Fatalf("Err after the task: %v, want context.Canceled", hctx.Err())
	}
}
