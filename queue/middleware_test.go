package queue_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

type requestIDKey struct{}

// Middleware on both sides: the client stamps a request ID on every task
// as a header, and the worker's middleware puts it in the handler's
// context and reports how each run ended.
func ExampleMiddleware() {
	ctx := context.Background()
	broker, _ := membroker.New(nil)
	defer broker.Close()

	stamp := func(next queue.EnqueueFunc) queue.EnqueueFunc {
		return func(ctx context.Context, s *queue.Submission) (string, error) {
			s.SetHeader("request-id", "r-42")
			return next(ctx, s)
		}
	}
	client, _ := queue.NewClient(broker, &queue.ClientConfig{EnqueueMiddleware: []queue.EnqueueMiddleware{stamp}})

	logRuns := func(next queue.RunFunc) queue.RunFunc {
		return func(ctx context.Context, m *queue.Message, dst []byte) ([]byte, error) {
			ctx = context.WithValue(ctx, requestIDKey{}, m.Headers["request-id"])
			out, err := next(ctx, m, dst)
			fmt.Printf("ran %s for %s: output %s, err %v\n", m.Kind, m.Headers["request-id"], out[len(dst):], err)
			return out, err
		}
	}
	greet := queue.NewKind[string, string]("greet")
	worker, _ := queue.NewWorker(broker, &queue.WorkerConfig{Concurrency: 1, Middleware: []queue.Middleware{logRuns}})
	queue.HandleFunc(worker, greet, func(ctx context.Context, name string) (string, error) {
		return fmt.Sprintf("hello %s (%v)", name, ctx.Value(requestIDKey{})), nil
	})
	_ = worker.Start()
	defer worker.Shutdown(ctx)

	task, _ := queue.Enqueue(ctx, client, greet, "ada")
	out, err := task.Await(ctx)
	fmt.Println(out, err)
	// Output:
	// ran greet for r-42: output "hello ada (r-42)", err <nil>
	// hello ada (r-42) <nil>
}

// A middleware that returns a nil RunFunc is a configuration error that
// Start reports, naming it; a nil middleware is refused by NewWorker.
func TestMiddlewareConfig(t *testing.T) {
	t.Parallel()
	broker, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	w, err := queue.NewWorker(broker, &queue.WorkerConfig{Middleware: []queue.Middleware{
		func(next queue.RunFunc) queue.RunFunc { return next },
		func(queue.RunFunc) queue.RunFunc { return nil },
	}})
	if err != nil {
		t.Fatal(err)
	}
	queue.HandleFunc(w, queue.NewKind[int, int]("n"), func(ctx context.Context, n int) (int, error) { return n, nil })
	if err := w.Start(); !errors.Is(err, queue.ErrBadConfig) || !strings.Contains(fmt.Sprint(err), "Middleware[1]") {
		t.Fatalf("Start = %v, want ErrBadConfig naming Middleware[1]", err)
	}
	if err := w.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := queue.NewWorker(broker, &queue.WorkerConfig{Middleware: []queue.Middleware{nil}}); !errors.Is(err, queue.ErrBadConfig) {
		t.Fatalf("NewWorker with a nil middleware: %v, want ErrBadConfig", err)
	}
}
